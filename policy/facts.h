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
        uint32_t name_len;
        char name_inline[POLICY_NAME_MAX + 1]; /* the same, beside the hot fields, for lookups */
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
        if (len > POLICY_NAME_MAX || !f->names.slots) /* cannot be a VM; do not hash what a caller made huge */
                return NULL;
        /* The facts' own probe: compare against the name kept inside the FactsVm (one cache line less). */
        uint32_t h = intern_hash_len(name, len);
        for (uint32_t i = h & f->names.mask;; i = (i + 1) & f->names.mask) {
                const InternSlot *slot = &f->names.slots[i];
                if (slot->id == 0)
                        return NULL;
                if (slot->hash == h) {
                        const FactsVm *vm = &f->vms[slot->id - 1];
                        if (vm->name_len == len && intern_bytes_equal(vm->name_inline, name, len))
                                return vm;
                }
        }
}

static inline bool facts_vm_is_active(const PolicyFacts *f, const FactsVm *vm) {
        return vm && f->active != 0 && vm == &f->vms[f->active - 1];
}
