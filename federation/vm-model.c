/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "federation/vm-model.h"

#include <errno.h>
#include <string.h>

#include "common/macro.h"

struct VmModel {
        int n_ref;
        GPtrArray *specs; /* VmSpec*, sorted by name, owning; never changed */
};

static void spec_destroy(gpointer p) {
        vm_spec_free(p);
}

VmModel *vm_model_new(GPtrArray *specs) {
        VmModel *m = g_new0(VmModel, 1);
        m->n_ref = 1;
        m->specs = specs ? specs : g_ptr_array_new_with_free_func(spec_destroy);
        return m;
}

VmModel *vm_model_ref(VmModel *m) {
        if (m)
                g_atomic_int_inc(&m->n_ref);
        return m;
}

VmModel *vm_model_unref(VmModel *m) {
        if (!m || !g_atomic_int_dec_and_test(&m->n_ref))
                return NULL;
        g_ptr_array_unref(m->specs);
        g_free(m);
        return NULL;
}

int vm_model_load(const char *config_dir, const VmSpecOverride *override, VmSpecLoadFlags flags, VmModel **ret,
                  GPtrArray **ret_errors) {
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        int r;

        g_return_val_if_fail(config_dir && ret, -EINVAL);
        *ret = NULL;
        if (ret_errors)
                *ret_errors = NULL;

        r = vm_spec_load_dir_full(config_dir, override, flags, &specs, &errors);
        if (r < 0) {
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return r;
        }
        *ret = vm_model_new(steal_pointer(&specs));
        return 0;
}

guint vm_model_n_vms(const VmModel *m) {
        return m ? m->specs->len : 0;
}

const VmSpec *vm_model_vm(const VmModel *m, guint i) {
        return m && i < m->specs->len ? m->specs->pdata[i] : NULL;
}

const VmSpec *vm_model_find(const VmModel *m, const char *name) {
        return m && name ? vm_spec_find(m->specs, name) : NULL;
}

GPtrArray *vm_model_specs(const VmModel *m) {
        return m ? m->specs : NULL;
}

int vm_model_build_policy_facts(const VmModel *m, const char *active_persona, const char *default_dispvm,
                                PolicyFacts **ret) {
        return vm_model_build_policy_facts_with(m, active_persona, default_dispvm, NULL, ret);
}

int vm_model_build_policy_facts_with(const VmModel *m, const char *active_persona, const char *default_dispvm,
                                     GHashTable *dispvms, PolicyFacts **ret) {
        g_return_val_if_fail(ret, -EINVAL);
        PolicyFacts *f = policy_facts_new();
        const char *only_template = NULL;
        unsigned n_templates = 0;
        int r = 0;

        for (guint i = 0; i < vm_model_n_vms(m) && r == 0; i++) {
                const VmSpec *s = vm_model_vm(m, i);
                r = policy_facts_add_vm(f, s->name, vm_role_to_string(s->role), (const char *const *) s->tags,
                                        s->default_dispvm);
                if (s->role == VM_ROLE_DISPOSABLE_TEMPLATE) {
                        only_template = s->name;
                        n_templates++;
                }
        }
        if (dispvms) {
                GHashTableIter it;
                gpointer name, template;
                g_hash_table_iter_init(&it, dispvms);
                while (r == 0 && g_hash_table_iter_next(&it, &name, &template))
                        r = policy_facts_add_vm(f, name, "disposable", NULL, template);
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
