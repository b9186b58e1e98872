/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "policy/facts.h"
#include "policy/intern.h"

PolicyFacts *policy_facts_new(void) {
        PolicyFacts *f = g_new0(PolicyFacts, 1);
        f->n_ref = 1;
        intern_init(&f->names);
        return f;
}

PolicyFacts *policy_facts_ref(PolicyFacts *f) {
        if (f)
                g_atomic_int_inc(&f->n_ref);
        return f;
}

PolicyFacts *policy_facts_unref(PolicyFacts *f) {
        if (!f || !g_atomic_int_dec_and_test(&f->n_ref))
                return NULL;
        for (size_t i = 0; i < f->n_vms; i++) {
                FactsVm *vm = &f->vms[i];
                policy_name_unref(vm->gid);
                for (size_t k = 0; k < vm->n_tags; k++)
                        policy_name_unref(vm->tag_gids[k]);
                g_free(vm->name);
                g_strfreev(vm->tags);
                g_free(vm->default_dispvm);
                g_free(vm->dispvm_token);
        }
        g_free(f->vms);
        g_free(f->default_dispvm);
        intern_done(&f->names);
        g_free(f);
        return NULL;
}

int policy_facts_add_vm(PolicyFacts *f, const char *name, const char *role, const char *const *tags,
                        const char *default_dispvm) {
        if (!f || !name || !role)
                return -EINVAL;
        if (f->frozen)
                return -EPERM;
        if (!policy_vm_name_is_valid(name, strlen(name)))
                return -EINVAL;
        PolicyRole r = policy_role_from_string(role, strlen(role));
        if (r < 0)
                return -EINVAL;
        if (default_dispvm && !policy_vm_name_is_valid(default_dispvm, strlen(default_dispvm)))
                return -EINVAL;
        size_t n_tags = 0;
        for (const char *const *t = tags; t && *t; t++, n_tags++)
                if (policy_tag_invalid_at(*t, strlen(*t)) >= 0)
                        return -EINVAL;
        if (n_tags > POLICY_MAX_TAGS)
                return -E2BIG;
        if (intern_lookup(&f->names, name) != 0)
                return -EEXIST;

        uint32_t id = intern_add(&f->names, name, strlen(name));
        g_assert(id == f->n_vms + 1);
        if (f->n_vms == f->cap_vms) {
                f->cap_vms = f->cap_vms ? f->cap_vms * 2 : 16;
                f->vms = g_renew(FactsVm, f->vms, f->cap_vms);
        }
        FactsVm *vm = &f->vms[f->n_vms++];
        *vm = (FactsVm) {
                .name = g_strdup(name),
                .gid = policy_name_ref(name, strlen(name)),
                .role = r,
                .tags = g_strdupv((char **) (tags ? tags : (const char *const[]) { NULL })),
                .n_tags = n_tags,
                .default_dispvm = g_strdup(default_dispvm),
                .dispvm_token = g_strconcat("@dispvm:", name, NULL),
        };
        for (size_t i = 0; i < n_tags; i++)
                vm->tag_gids[i] = policy_name_ref(vm->tags[i], strlen(vm->tags[i]));
        vm->name_len = (uint32_t) strlen(name);
        memcpy(vm->name_inline, name, vm->name_len + 1);
        return 0;
}

int policy_facts_set_active(PolicyFacts *f, const char *persona) {
        if (!f)
                return -EINVAL;
        if (f->frozen)
                return -EPERM;
        if (!persona) {
                f->active = 0;
                return 0;
        }
        uint32_t id = intern_lookup(&f->names, persona);
        if (id == 0)
                return -ENOENT;
        if (f->vms[id - 1].role != POLICY_ROLE_PERSONA)
                return -EINVAL;
        f->active = id;
        return 0;
}

int policy_facts_set_default_dispvm(PolicyFacts *f, const char *template_name) {
        if (!f)
                return -EINVAL;
        if (f->frozen)
                return -EPERM;
        if (template_name && !policy_vm_name_is_valid(template_name, strlen(template_name)))
                return -EINVAL;
        g_free(f->default_dispvm);
        f->default_dispvm = g_strdup(template_name);
        return 0;
}

void policy_facts_freeze(PolicyFacts *f) {
        if (f)
                f->frozen = true;
}
