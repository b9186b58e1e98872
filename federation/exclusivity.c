/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * May a VM start now?  Devices and personas held by other VMs, passthrough
 * checks, files.
 */
#include "federation/federation.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"
#include "federation/firmware.h"
#include "federation/passthrough.h"

int federation_check_files(Federation *f, const VmSpec *s, char **ret_error) {
        const char *files[] = { s->disk, s->kernel, s->initrd };
        const char *keys[] = { "Disk", "Kernel", "Initrd" };

        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                if (files[i] && access(files[i], R_OK) < 0) {
                        int r = negative_errno();
                        if (ret_error)
                                *ret_error = g_strdup_printf("%s: %s=%s: %s", s->name, keys[i], files[i],
                                                             g_strerror(-r));
                        return r;
                }
        return firmware_check_host(s, f->ovmf_dir, ret_error);
}

static void settle_answer(Federation *f, int r, const char *error, void *name) {
        Vm *vm = federation_find_vm(f, name);

        if (vm && vm->releasing && (r == 0 || r == -ENOENT))
                vm_domain_stopped(vm, "failed", false);
        g_free(name);
}

/*
 * VMs whose QEMU exited: have the worker ask libvirt whether the teardown
 * finished before its event reaches us (settled later, on the loop; this
 * check counts them as still holding their devices).
 */
static void settle_releasing(Federation *f) {
        GHashTableIter it;
        gpointer value;

        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                Vm *vm = value;
                if (vm->releasing)
                        virt_domain_job(f, vm->domain_name, VIRT_DOMAIN_IS_ACTIVE, settle_answer, g_strdup(vm->name),
                                        g_free);
        }
}

const char *federation_releasing_conflict(Federation *f, const VmSpec *s) {
        GHashTableIter it;
        gpointer value;

        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                Vm *other = value;
                const VmSpec *os = vm_get_spec(f, other);
                if (!other->releasing || !os || strcmp(other->name, s->name) == 0)
                        continue;
                if ((s->role == VM_ROLE_PERSONA && os->role == VM_ROLE_PERSONA) ||
                    passthrough_shared_device(s->devices, os->devices))
                        return other->name;
        }
        return NULL;
}

static int check_start(Federation *f, const VmSpec *s, Vm *ignore, bool skip_releasing, char **ret_error) {
        GHashTableIter it;
        gpointer value;
        int r;

        settle_releasing(f);
        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                Vm *other = value;
                const VmSpec *os;
                const char *dev;

                if (other == ignore || strcmp(other->name, s->name) == 0 || !vm_holds_resources(other))
                        continue;
                if (skip_releasing && other->releasing && !vm_is_active(other))
                        continue;
                os = vm_get_spec(f, other);
                if (!os)
                        continue;
                if (s->role == VM_ROLE_PERSONA && os->role == VM_ROLE_PERSONA) {
                        if (ret_error)
                                *ret_error = g_strdup_printf("cannot start persona %s: persona %s is %s; "
                                                             "switch personas instead",
                                                             s->name, other->name,
                                                             other->releasing
                                                                     ? "being torn down by libvirt"
                                                                     : federation_vm_state_to_string(other->state));
                        return -EBUSY;
                }
                dev = passthrough_shared_device(s->devices, os->devices);
                if (dev) {
                        if (ret_error)
                                *ret_error = g_strdup_printf("cannot start %s: PCI device %s is held by %s (%s)",
                                                             s->name, dev, other->name,
                                                             other->releasing
                                                                     ? "being torn down by libvirt"
                                                                     : federation_vm_state_to_string(other->state));
                        return -EBUSY;
                }
        }
        if (s->devices[0] && (!f->fake_passthrough || f->sysfs_root)) {
                g_autofree char *reason = NULL;
                r = passthrough_check(f->sysfs_root, s->name, s->devices, &reason);
                if (r < 0) {
                        if (ret_error)
                                *ret_error = g_strdup_printf("cannot start %s: %s", s->name, reason);
                        return r;
                }
        }
        return federation_check_files(f, s, ret_error);
}

int federation_check_start(Federation *f, const VmSpec *s, Vm *ignore, char **ret_error) {
        return check_start(f, s, ignore, false, ret_error);
}

/* As federation_check_start(), but a VM that libvirt is still tearing down
 * does not count: the caller waits for it (a switch does, switch.c). */
int federation_check_start_after_release(Federation *f, const VmSpec *s, Vm *ignore, char **ret_error) {
        return check_start(f, s, ignore, true, ret_error);
}
