/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The inside of PolicyFacts, for the evaluator. */
#pragma once

#include <stdbool.h>
#include <string.h>

#include "policy/intern.h"
#include "policy/name.h"
#include "policy/policy.h"

typedef struct FactsVm {
        char *name;
        uint32_t gid; /* policy_name_ref() id of the name */
        PolicyRole role;
        char **tags;   /* NULL-terminated, never NULL */
        size_t n_tags; /* at most POLICY_MAX_TAGS */
        uint32_t tag_gids[POLICY_MAX_TAGS];
        /*
         * Template for "@dispvm" requests from this VM (NULL: the federation
         * default); for a running disposable, the template it was made from.
         */
        char *default_dispvm;
        char *dispvm_token; /* "@dispvm:NAME", the routing target when this VM is a template */
} FactsVm;

struct PolicyFacts {
        int n_ref;
        bool frozen;
        Intern names; /* VM name -> id; vms[id - 1] */
        FactsVm *vms;
        size_t n_vms, cap_vms;
        uint32_t active;      /* id of the active persona, 0 for none */
        char *default_dispvm; /* federation default template, or NULL */
};

static inline const FactsVm *facts_find_vm(const PolicyFacts *f, const char *name) {
        size_t len = strlen(name);
        if (len > POLICY_NAME_MAX) /* cannot be a VM; do not hash what a caller may have made huge */
                return NULL;
        uint32_t id = intern_lookup_hashed(&f->names, name, len, intern_hash_len(name, len));
        return id ? &f->vms[id - 1] : NULL;
}

static inline bool facts_vm_is_active(const PolicyFacts *f, const FactsVm *vm) {
        return vm && f->active != 0 && vm == &f->vms[f->active - 1];
}
