/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The inside of a PolicySnapshot: rules in file order, diagnostics, the
 * string table, and the index built by snapshot_compile():
 *
 *   service name --service_slots--> Bucket
 *   Bucket = the rules naming that service or '*', in rule order, split into
 *            keyed lists and one generic list:
 *              - source is one VM or @host: the list keyed by that source;
 *              - else target is one VM: the list keyed by that target;
 *              - else (source and target both patterns): the generic list.
 *            A hash table finds a (bucket, key) list with one probe.
 *
 * A request from VM v to VM t walks at most three lists: "source v",
 * "target t" and generic (from @host: only "source @host", no generic
 * source matches the host).  It merge-walks them by rule number, so it
 * honours "first match wins" while looking only at rules that can match.
 * The lists hold compact copies of what matching needs (IndexEntry),
 * contiguous per list, so a walk does not chase pointers into the rules.
 */
#pragma once

#include <stdint.h>

#include "policy/intern.h"
#include "policy/policy.h"
#include "policy/rule.h"

#define LIST_KEY_TARGET 0x80000000u /* | registry id of the target VM */
#define LIST_KEY_HOST 0xFFFFFFFFu   /* source @host; registry ids stay below LIST_KEY_TARGET */
#define SOURCE_KEY_MAX_ID 0x7FFFFFFFu

typedef struct IndexEntry {
        uint32_t rule; /* index into PolicySnapshot.rules */
        uint32_t arg;  /* PolicyRule.arg */
        uint32_t src_id, dst_id;
        uint8_t src_kind, dst_kind;
        int8_t src_role, dst_role;
} IndexEntry;

/* (bucket, source key) -> list of entries; open addressing, n == 0 marks an empty slot. */
typedef struct ListSlot {
        uint32_t bucket;
        uint32_t key;
        uint32_t offset; /* into PolicySnapshot.entries */
        uint32_t n;
} ListSlot;

#define BUCKET_NAME_INLINE 40

/* One cache line: where its generic list is, and the service's name to confirm a lookup. */
typedef struct Bucket {
        uint32_t generic_offset; /* into entries */
        uint32_t n_generic;
        uint32_t name_len;
        const char *name;                     /* interned; NULL for bucket 0 ('*' only) */
        char name_inline[BUCKET_NAME_INLINE]; /* the name when shorter than this */
} Bucket;

/* service name -> bucket, open addressing; bucket 0 marks an empty slot. */
typedef struct ServiceSlot {
        uint32_t hash; /* intern_hash_len() of the name */
        uint32_t bucket;
} ServiceSlot;

static inline uint32_t list_slot_hash(uint32_t bucket, uint32_t key) {
        uint64_t x = ((uint64_t) bucket << 32) | key;
        x *= 0x9e3779b97f4a7c15ull;
        x ^= x >> 31;
        x *= 0xbf58476d1ce4e5b9ull;
        return (uint32_t) (x >> 32);
}

struct PolicySnapshot {
        int n_ref;
        Intern strings;

        PolicyRule *rules;
        size_t n_rules, cap_rules;

        PolicyDiagnostic *diagnostics;
        size_t n_diagnostics, cap_diagnostics;
        bool too_many_diagnostics;
        bool broken; /* any error at all (also beyond the diagnostics limit) */

        size_t n_files;

        /* Index, see above.  Bucket 0 holds the '*' service rules only. */
        Bucket *buckets;
        uint32_t n_buckets;
        uint32_t *service_bucket; /* by string id, 0..strings.n */
        uint32_t n_service_bucket;
        ServiceSlot *service_slots; /* the same as a hash table, for requests */
        uint32_t service_mask;
        ListSlot *list_slots;
        uint32_t list_mask;
        IndexEntry *entries; /* ids are policy_name_ref() ids, shared with the facts */
        uint32_t *gids;      /* string id -> registry id, 0 when not a VM name or tag */
        uint32_t empty_arg;  /* string id of "" (a lone '+'), 0 when no rule has one */
};

#define POLICY_MAX_DIAGNOSTICS 1000

PolicySnapshot *snapshot_new(void);
void snapshot_add_rule(PolicySnapshot *s, const PolicyRule *rule);
void snapshot_add_diagnostic(PolicySnapshot *s, const char *file, unsigned line, unsigned column,
                             const char *format, ...) __attribute__((format(printf, 5, 6)));
const char *snapshot_intern(PolicySnapshot *s, const char *str, size_t len);
/* Build the index; called once when loading is done. */
void snapshot_compile(PolicySnapshot *s);
