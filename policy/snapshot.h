/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The inside of a PolicySnapshot: rules in file order, diagnostics, the
 * string table, and the index built by snapshot_compile():
 *
 *   service name --service_bucket--> Bucket
 *   Bucket = the rules naming that service or '*', in rule order, split into
 *            "exact source" lists (source is one VM name or @host; found by
 *            binary search on the source) and one "generic" list (every
 *            other source).
 *
 * Evaluation merge-walks the request source's exact list with the generic
 * list by rule number, so it only looks at rules that can match and still
 * honours "first match wins".
 */
#pragma once

#include <stdint.h>

#include "policy/intern.h"
#include "policy/policy.h"
#include "policy/rule.h"

#define SOURCE_KEY_HOST UINT32_MAX

typedef struct SourceList {
        uint32_t source; /* interned VM name, or SOURCE_KEY_HOST */
        uint32_t offset; /* into PolicySnapshot.pool */
        uint32_t n;
} SourceList;

typedef struct Bucket {
        uint32_t generic_offset; /* into pool */
        uint32_t n_generic;
        uint32_t lists_offset; /* into PolicySnapshot.lists, sorted by source */
        uint32_t n_lists;
} Bucket;

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
        SourceList *lists;
        uint32_t *pool;
};

#define POLICY_MAX_DIAGNOSTICS 1000

PolicySnapshot *snapshot_new(void);
void snapshot_add_rule(PolicySnapshot *s, const PolicyRule *rule);
void snapshot_add_diagnostic(PolicySnapshot *s, const char *file, unsigned line, unsigned column,
                             const char *format, ...) __attribute__((format(printf, 5, 6)));
const char *snapshot_intern(PolicySnapshot *s, const char *str, size_t len);
/* Build the index; called once when loading is done. */
void snapshot_compile(PolicySnapshot *s);
