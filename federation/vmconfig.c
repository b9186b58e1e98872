/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "federation/vmconfig.h"

#include <errno.h>
#include <string.h>

#include "common/macro.h"
#include "federation/vmspec.h"

static const char *const role_names[_VM_ROLE_MAX] = {
        [VM_ROLE_PERSONA] = "persona",
        [VM_ROLE_SERVICE] = "service",
        [VM_ROLE_DISPOSABLE_TEMPLATE] = "disposable-template",
        [VM_ROLE_APP] = "app",
};

const char *vm_role_to_string(VmRole r) {
        if (r < 0 || r >= _VM_ROLE_MAX)
                return NULL;
        return role_names[r];
}

VmRole vm_role_from_string(const char *s) {
        if (!s)
                return VM_ROLE_INVALID;
        for (int i = 0; i < _VM_ROLE_MAX; i++)
                if (strcmp(role_names[i], s) == 0)
                        return (VmRole) i;
        return VM_ROLE_INVALID;
}

VmConfig *vm_config_free(VmConfig *c) {
        if (!c)
                return NULL;
        g_free(c->name);
        g_free(c->path);
        g_strfreev(c->tags);
        g_free(c->default_dispvm);
        g_free(c->disk);
        g_free(c->netvm);
        g_free(c->accel);
        g_strfreev(c->devices);
        g_free(c);
        return NULL;
}

static void vm_config_destroy(gpointer p) {
        vm_config_free(p);
}

/* The policy side's view of a spec: the fields as vmconfig.h documents them. */
static VmConfig *vm_config_from_spec(const VmSpec *s) {
        VmConfig *c = g_new0(VmConfig, 1);

        c->name = g_strdup(s->name);
        c->path = g_strdup(s->path);
        c->role = s->role;
        c->tags = g_strdupv(s->tags);
        c->default_dispvm = g_strdup(s->default_dispvm);
        c->memory = s->memory;
        c->vcpus = s->vcpus;
        c->disk = g_strdup(s->disk);
        /* The key as written: the default netvm a missing key stands for is the federation's business. */
        c->netvm = s->netvm_set ? g_strdup(s->netvm ? s->netvm : "") : NULL;
        c->autostart = s->autostart;
        c->accel = s->accel == VM_ACCEL_AUTO ? NULL : g_strdup(vm_accel_to_string(s->accel));
        c->devices = g_strdupv(s->devices);
        return c;
}

int vm_config_load_dir(const char *config_dir, GPtrArray **ret_vms, GPtrArray **ret_errors) {
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        GPtrArray *vms;
        int r;

        g_return_val_if_fail(config_dir && ret_vms && ret_errors, -EINVAL);
        *ret_vms = NULL;
        *ret_errors = NULL;

        r = vm_spec_load_dir_full(config_dir, NULL, VM_SPEC_NO_FILE_CHECKS, &specs, &errors);
        if (r == -EINVAL) {
                *ret_errors = steal_pointer(&errors);
                return r;
        }
        if (r < 0)
                return r; /* vms.d/ itself unreadable: no per-file messages */

        vms = g_ptr_array_new_full(specs->len, vm_config_destroy);
        for (guint i = 0; i < specs->len; i++)
                g_ptr_array_add(vms, vm_config_from_spec(specs->pdata[i]));
        *ret_vms = vms;
        return 0;
}

int vm_config_build_policy_facts(GPtrArray *vms, const char *active_persona, const char *default_dispvm,
                                 PolicyFacts **ret) {
        g_return_val_if_fail(vms && ret, -EINVAL);
        PolicyFacts *f = policy_facts_new();
        const char *only_template = NULL;
        unsigned n_templates = 0;
        int r = 0;

        for (guint i = 0; i < vms->len && r == 0; i++) {
                const VmConfig *c = vms->pdata[i];
                r = policy_facts_add_vm(f, c->name, vm_role_to_string(c->role), (const char *const *) c->tags,
                                        c->default_dispvm);
                if (c->role == VM_ROLE_DISPOSABLE_TEMPLATE) {
                        only_template = c->name;
                        n_templates++;
                }
        }
        if (r == 0)
                r = policy_facts_set_active(f, active_persona);
        if (r == 0)
                r = policy_facts_set_default_dispvm(f, default_dispvm ? default_dispvm
                                                       : n_templates == 1 ? only_template
                                                                          : NULL);
        if (r < 0) {
                policy_facts_unref(f);
                return r;
        }
        policy_facts_freeze(f);
        *ret = f;
        return 0;
}
