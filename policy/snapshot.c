/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "policy/snapshot.h"

PolicySnapshot *snapshot_new(void) {
        PolicySnapshot *s = g_new0(PolicySnapshot, 1);
        s->n_ref = 1;
        intern_init(&s->strings);
        return s;
}

PolicySnapshot *policy_snapshot_ref(PolicySnapshot *s) {
        if (s)
                g_atomic_int_inc(&s->n_ref);
        return s;
}

PolicySnapshot *policy_snapshot_unref(PolicySnapshot *s) {
        if (!s || !g_atomic_int_dec_and_test(&s->n_ref))
                return NULL;
        for (size_t i = 0; i < s->n_diagnostics; i++) {
                g_free(s->diagnostics[i].file);
                g_free(s->diagnostics[i].message);
        }
        g_free(s->diagnostics);
        g_free(s->rules);
        g_free(s->buckets);
        g_free(s->service_bucket);
        g_free(s->service_slots);
        g_free(s->list_slots);
        for (uint32_t i = 0; s->gids && i <= s->strings.n; i++)
                policy_name_unref(s->gids[i]);
        g_free(s->gids);
        g_free(s->entries);
        intern_done(&s->strings);
        g_free(s);
        return NULL;
}

bool policy_snapshot_is_valid(const PolicySnapshot *s) {
        return s && !s->broken;
}

size_t policy_snapshot_n_diagnostics(const PolicySnapshot *s) {
        return s ? s->n_diagnostics : 0;
}

const PolicyDiagnostic *policy_snapshot_diagnostic(const PolicySnapshot *s, size_t i) {
        return s && i < s->n_diagnostics ? &s->diagnostics[i] : NULL;
}

size_t policy_snapshot_n_rules(const PolicySnapshot *s) {
        return s ? s->n_rules : 0;
}

size_t policy_snapshot_n_files(const PolicySnapshot *s) {
        return s ? s->n_files : 0;
}

const char *snapshot_intern(PolicySnapshot *s, const char *str, size_t len) {
        return intern_string(&s->strings, intern_add(&s->strings, str, len));
}

void snapshot_add_rule(PolicySnapshot *s, const PolicyRule *rule) {
        if (s->n_rules == s->cap_rules) {
                s->cap_rules = s->cap_rules ? s->cap_rules * 2 : 64;
                s->rules = g_renew(PolicyRule, s->rules, s->cap_rules);
        }
        s->rules[s->n_rules++] = *rule;
}

void snapshot_add_diagnostic(PolicySnapshot *s, const char *file, unsigned line, unsigned column,
                             const char *format, ...) {
        s->broken = true;
        if (s->too_many_diagnostics)
                return;
        if (s->n_diagnostics + 1 >= POLICY_MAX_DIAGNOSTICS) {
                /* Keep memory bounded on garbage input; say that we stopped. */
                s->too_many_diagnostics = true;
                file = s->n_diagnostics > 0 ? s->diagnostics[s->n_diagnostics - 1].file : ".";
                line = column = 0;
                format = "too many errors; not reporting any more";
        }
        if (s->n_diagnostics == s->cap_diagnostics) {
                s->cap_diagnostics = s->cap_diagnostics ? s->cap_diagnostics * 2 : 8;
                s->diagnostics = g_renew(PolicyDiagnostic, s->diagnostics, s->cap_diagnostics);
        }
        PolicyDiagnostic *d = &s->diagnostics[s->n_diagnostics];
        va_list ap;
        va_start(ap, format);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        d->message = g_strdup_vprintf(format, ap);
#pragma GCC diagnostic pop
        va_end(ap);
        d->file = g_strdup(file ? file : ".");
        d->line = line;
        d->column = column;
        s->n_diagnostics++;
}

/* ---- index ----------------------------------------------------------- */

typedef struct Entry {
        uint32_t key; /* list key, 0 for generic */
        uint32_t rule;
} Entry;

static int entry_compare(const void *a, const void *b) {
        const Entry *x = a, *y = b;
        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        return x->rule < y->rule ? -1 : x->rule > y->rule;
}

/*
 * Which list a rule goes to: its source when that is one VM or @host;
 * otherwise its target when that is one VM; otherwise the generic list.
 */
static uint32_t list_key(const PolicySnapshot *s, const PolicyRule *r) {
        if (r->source.kind == TOKEN_NAME)
                return s->gids[r->source.id];
        if (r->source.kind == TOKEN_HOST)
                return LIST_KEY_HOST;
        if (r->target.kind == TOKEN_NAME)
                return LIST_KEY_TARGET | s->gids[r->target.id];
        return 0;
}

typedef struct UintArray {
        uint32_t *v;
        size_t n, cap;
} UintArray;

static void uint_array_push(UintArray *a, uint32_t x) {
        if (a->n == a->cap) {
                a->cap = a->cap ? a->cap * 2 : 16;
                a->v = g_renew(uint32_t, a->v, a->cap);
        }
        a->v[a->n++] = x;
}

static IndexEntry index_entry(const PolicySnapshot *s, uint32_t i) {
        const PolicyRule *r = &s->rules[i];
        return (IndexEntry) {
                .rule = i,
                .arg = r->arg,
                .src_id = s->gids[r->source.id],
                .dst_id = s->gids[r->target.id],
                .src_kind = r->source.kind,
                .dst_kind = r->target.kind,
                .src_role = r->source.role,
                .dst_role = r->target.role,
        };
}

/* 0. names and tags the rules use, in the registry shared with the facts */
static void snapshot_share_names(PolicySnapshot *s) {
        uint32_t n_strings = s->strings.n;

        s->gids = g_new0(uint32_t, n_strings + 1);
        for (size_t i = 0; i < s->n_rules; i++) {
                const PolicyToken *tokens[] = { &s->rules[i].source, &s->rules[i].target };
                for (size_t k = 0; k < G_N_ELEMENTS(tokens); k++) {
                        uint32_t id = tokens[k]->id;
                        if (id == 0 || tokens[k]->kind == TOKEN_ROLE || s->gids[id] != 0)
                                continue;
                        const char *str = intern_string(&s->strings, id);
                        s->gids[id] = policy_name_ref(str, strlen(str));
                }
        }
}

/* 1b. the service table requests look up: names inline in their bucket */
static void snapshot_index_services(PolicySnapshot *s, uint32_t n_buckets) {
        uint32_t n_strings = s->strings.n;

        uint32_t nservice_slots = 16;
        while (nservice_slots < n_buckets * 2)
                nservice_slots *= 2;
        s->service_slots = g_new0(ServiceSlot, nservice_slots);
        s->service_mask = nservice_slots - 1;
        for (uint32_t id = 1; id <= n_strings; id++) {
                uint32_t b = s->service_bucket[id];
                if (b == 0)
                        continue;
                const InternEntry *e = &s->strings.entries[id];
                Bucket *bk = &s->buckets[b];
                bk->name = e->str;
                bk->name_len = e->len;
                if (e->len < BUCKET_NAME_INLINE)
                        memcpy(bk->name_inline, e->str, e->len + 1);
                uint32_t h = e->hash & s->service_mask;
                while (s->service_slots[h].bucket != 0)
                        h = (h + 1) & s->service_mask;
                s->service_slots[h] = (ServiceSlot) { e->hash, b };
        }
}

/* 4. the (bucket, key) hash table, load factor at most 1/2 */
static void snapshot_index_lists(PolicySnapshot *s, const ListSlot *lists, size_t n_lists) {
        uint32_t nslots = 16;
        while (nslots < n_lists * 2)
                nslots *= 2;
        s->list_slots = g_new0(ListSlot, nslots);
        s->list_mask = nslots - 1;
        for (size_t i = 0; i < n_lists; i++) {
                uint32_t h = list_slot_hash(lists[i].bucket, lists[i].key) & s->list_mask;
                while (s->list_slots[h].n != 0)
                        h = (h + 1) & s->list_mask;
                s->list_slots[h] = lists[i];
        }
}

void snapshot_compile(PolicySnapshot *s) {
        uint32_t n_strings = s->strings.n;

        if (n_strings >= SOURCE_KEY_MAX_ID || s->n_rules >= UINT32_MAX / 2) {
                snapshot_add_diagnostic(s, ".", 0, 0, "policy too large to index");
                s->n_rules = 0;
        }

        snapshot_share_names(s);
        s->empty_arg = intern_lookup_len(&s->strings, "", 0);

        /* 1. one bucket per service named by a rule; bucket 0 for '*' only. */
        s->n_service_bucket = n_strings + 1;
        s->service_bucket = g_new0(uint32_t, s->n_service_bucket);
        uint32_t n_buckets = 1;
        for (size_t i = 0; i < s->n_rules; i++) {
                uint32_t svc = s->rules[i].service;
                if (svc != 0 && s->service_bucket[svc] == 0)
                        s->service_bucket[svc] = n_buckets++;
        }

        s->buckets = g_new0(Bucket, n_buckets);
        snapshot_index_services(s, n_buckets);

        /* 2. rule numbers per bucket, in order; '*' rules go to bucket 0. */
        UintArray *per = g_new0(UintArray, n_buckets);
        for (size_t i = 0; i < s->n_rules; i++) {
                uint32_t svc = s->rules[i].service;
                uint_array_push(&per[svc ? s->service_bucket[svc] : 0], (uint32_t) i);
        }

        /* 3. for each bucket: its rules and the '*' rules, grouped by list key, each group in rule order. */
        size_t total = 0;
        for (uint32_t b = 0; b < n_buckets; b++)
                total += per[b].n + (b == 0 ? 0 : per[0].n);
        s->n_buckets = n_buckets;
        s->entries = g_new(IndexEntry, total ? total : 1);
        size_t n_entries = 0, n_lists = 0, cap_lists = 0, cap_entries = 0;
        Entry *entries = NULL;
        ListSlot *lists = NULL;

        for (uint32_t b = 0; b < n_buckets; b++) {
                const UintArray *own = &per[b], *wild = b == 0 ? NULL : &per[0];
                size_t n = own->n + (wild ? wild->n : 0);
                if (n > cap_entries) {
                        cap_entries = n;
                        entries = g_renew(Entry, entries, cap_entries);
                }
                size_t k = 0;
                for (size_t i = 0; i < own->n; i++)
                        entries[k++] = (Entry) { list_key(s, &s->rules[own->v[i]]), own->v[i] };
                for (size_t i = 0; wild && i < wild->n; i++)
                        entries[k++] = (Entry) { list_key(s, &s->rules[wild->v[i]]), wild->v[i] };
                if (n > 1)
                        qsort(entries, n, sizeof(Entry), entry_compare);

                Bucket *bk = &s->buckets[b];
                bk->generic_offset = (uint32_t) n_entries;
                size_t i = 0;
                for (; i < n && entries[i].key == 0; i++)
                        s->entries[n_entries++] = index_entry(s, entries[i].rule);
                bk->n_generic = (uint32_t) i;
                while (i < n) {
                        uint32_t key = entries[i].key;
                        if (n_lists == cap_lists) {
                                cap_lists = cap_lists ? cap_lists * 2 : 64;
                                lists = g_renew(ListSlot, lists, cap_lists);
                        }
                        ListSlot *l = &lists[n_lists++];
                        l->bucket = b;
                        l->key = key;
                        l->offset = (uint32_t) n_entries;
                        for (; i < n && entries[i].key == key; i++)
                                s->entries[n_entries++] = index_entry(s, entries[i].rule);
                        l->n = (uint32_t) (n_entries - l->offset);
                }
        }

        snapshot_index_lists(s, lists, n_lists);
        g_free(lists);

        for (uint32_t b = 0; b < n_buckets; b++)
                g_free(per[b].v);
        g_free(per);
        g_free(entries);
}
