/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Changes to vms.d/: reload, add, remove, generations and rollback.
 */
#include "federation/federation.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"
#include "federation/generation.h"

/* ---- configuration ------------------------------------------------------ */

/* Swap in a model (taking the reference): new VMs appear, removed ones stay while they run. */
void federation_take_model(Federation *f, VmModel *model) {
        GPtrArray *specs = vm_model_specs(model);
        GHashTableIter it;
        gpointer value;

        vm_model_unref(f->model);
        f->model = model;
        f->specs = specs;
        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                Vm *vm = value;
                if (vm->disposable)
                        continue;
                vm->configured = vm_spec_find(specs, vm->name) != NULL;
                if (!vm->configured && !vm_is_active(vm))
                        g_hash_table_iter_remove(&it);
        }
        for (guint i = 0; i < specs->len; i++) {
                VmSpec *s = specs->pdata[i];
                Vm *vm = federation_find_vm(f, s->name);
                if (vm && vm->disposable)
                        continue; /* a template named like a running disposable: unlikely, keep the disposable */
                if (!vm)
                        vm = vm_new(f, s->name);
                vm->configured = true;
        }
        f->generation = generation_latest(f->state_dir);
}

/* Specs loaded and validated here (vm_spec_load_dir()). */
void federation_take_specs(Federation *f, GPtrArray *specs) {
        federation_take_model(f, vm_model_new(specs));
}

void federation_set_model(Federation *f, VmModel *m) {
        FEDERATION_BUSY(f);
        federation_take_model(f, vm_model_ref(m));
}

VmModel *federation_model(Federation *f) {
        return f->model;
}

int federation_reload(Federation *f, GPtrArray **ret_errors) {
        FEDERATION_BUSY(f);
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        int r;

        r = vm_spec_load_dir(f->config_dir, NULL, &specs, &errors);
        if (r < 0) {
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return r;
        }
        federation_take_specs(f, steal_pointer(&specs));
        return 0;
}

static int record_generation(Federation *f, const char *description) {
        int r = generation_record(f->config_dir, f->state_dir, description, &f->generation);
        if (r < 0)
                log_warning_errno(r, "federation: cannot record a generation: %s", g_strerror(-r));
        return r;
}

int federation_add_vm(Federation *f, const char *name, const char *untrusted_text, GPtrArray **ret_errors) {
        FEDERATION_BUSY(f);
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        g_autofree char *dir = g_build_filename(f->config_dir, "vms.d", NULL), *file = NULL, *desc = NULL;
        VmSpecOverride o = { .name = name, .text = untrusted_text };
        int r;

        if (!vm_spec_name_is_valid(name)) {
                errors = g_ptr_array_new_with_free_func(g_free);
                g_ptr_array_add(errors, g_strdup_printf("vms.d/%s.vm:0: '%s' is not a valid VM name", name, name));
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return -EINVAL;
        }
        r = vm_spec_load_dir(f->config_dir, &o, &specs, &errors);
        if (r < 0) {
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return r;
        }
        r = mkdir_parents(dir, 0755);
        if (r < 0)
                return r;
        file = g_strdup_printf("%s/%s.vm", dir, name);
        r = write_file_atomic(file, untrusted_text, strlen(untrusted_text), 0644);
        if (r < 0)
                return r;
        desc = g_strdup_printf("add VM %s", name);
        (void) record_generation(f, desc);
        /* The specs were validated against the files now on disk: take them. */
        federation_take_specs(f, steal_pointer(&specs));
        return 0;
}

static void undefined(Federation *f, int r, const char *error, void *domain_name) {
        if (r < 0 && r != -ENOENT)
                log_warning("federation: cannot undefine %s: %s", (char *) domain_name, error);
        g_free(domain_name);
}

int federation_remove_vm(Federation *f, const char *name, GPtrArray **ret_errors) {
        FEDERATION_BUSY(f);
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        g_autofree char *dir = g_build_filename(f->config_dir, "vms.d", NULL), *file = NULL, *desc = NULL;
        VmSpecOverride o = { .name = name, .text = NULL };
        _cleanup_close_ int dfd = -EBADF;
        Vm *vm = federation_find_vm(f, name);
        int r;

        if (!vm || !vm->configured)
                return -ENOENT;
        if (vm_is_active(vm)) {
                errors = g_ptr_array_new_with_free_func(g_free);
                g_ptr_array_add(errors, g_strdup_printf("vms.d/%s.vm:0: %s is %s; stop it first", name, name,
                                                        federation_vm_state_to_string(vm->state)));
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return -EBUSY;
        }
        r = vm_spec_load_dir(f->config_dir, &o, &specs, &errors);
        if (r < 0) {
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return r;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        file = g_strdup_printf("%s.vm", name);
        r = unlink_durable_at(dfd, file);
        if (r < 0)
                return r;
        /* In the worker, before any later job on this domain (a new VM of the same name). */
        virt_domain_job(f, vm->domain_name, VIRT_DOMAIN_UNDEFINE, undefined, g_strdup(vm->domain_name), g_free);
        desc = g_strdup_printf("remove VM %s", name);
        (void) record_generation(f, desc);
        federation_take_specs(f, steal_pointer(&specs));
        return 0;
}

int federation_record_generation(Federation *f, const char *description, uint64_t *ret_number) {
        FEDERATION_BUSY(f);
        int r = generation_record(f->config_dir, f->state_dir, description, &f->generation);
        if (r >= 0 && ret_number)
                *ret_number = f->generation;
        return r;
}

int federation_rollback(Federation *f, uint64_t n, uint64_t *ret_new, GPtrArray **ret_errors) {
        FEDERATION_BUSY(f);
        int r;

        if (f->sw)
                return -EBUSY;
        r = generation_rollback(f->config_dir, f->state_dir, n, ret_new);
        if (r < 0)
                return r;
        return federation_reload(f, ret_errors);
}
