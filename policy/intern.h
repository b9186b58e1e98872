/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A string interning table: each distinct string gets a small integer id
 * (1, 2, ...; 0 means "not present"), so that a compiled policy compares
 * names as integers.  Open addressing, no deletion.  A table is owned by
 * one snapshot (or one facts object) and read-only once that is frozen, so
 * lookups need no locking and never allocate.
 *
 * The hash is fixed (not seeded), so a hash computed once -- say when a VM
 * is added to the facts -- serves lookups in every table.  Keys come from
 * root-owned files; request strings only ever look up, and every hit is
 * verified byte by byte, so collisions cost time, never correctness.
 *
 * This is the policy's one name registry.  Besides the tables each
 * snapshot and facts object owns, one process-wide table, reference-counted
 * (policy_name_ref() below), gives the VM names and tags that snapshots and
 * facts share one id, so that evaluation joins a request's VM (found in the
 * facts) with the compiled rules by comparing integers.  Reference and
 * release happen only while building and freeing snapshots and facts, under
 * a mutex; evaluation never touches the shared table (it compares ids
 * already stored in the immutable snapshot and facts), so it stays pure and
 * lock-free.  Shared ids are below 2^31 (the index uses the top bit); an id
 * whose last reference went is reused.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct InternSlot {
        uint32_t hash;
        uint32_t id; /* 0 = empty */
} InternSlot;

typedef struct InternEntry {
        char *str;
        uint32_t len;
        uint32_t hash;
} InternEntry;

typedef struct Intern {
        InternEntry *entries; /* by id; [0] unused */
        uint32_t n;           /* ids 1..n are in use */
        uint32_t cap;         /* entries allocated */
        InternSlot *slots;
        uint32_t mask; /* number of slots - 1 */
} Intern;

void intern_init(Intern *t);
void intern_done(Intern *t);

/* Returns the id of s[0..len), adding a copy when new.  Never fails (GLib aborts on OOM). */
uint32_t intern_add(Intern *t, const char *s, size_t len);

static inline uint32_t intern_hash_len(const char *s, size_t len) {
        uint64_t h = 0x9e3779b97f4a7c15ull * ((uint64_t) len + 1);
        while (len >= 8) {
                uint64_t w;
                memcpy(&w, s, 8);
                h = (h ^ w) * 0xff51afd7ed558ccdull;
                h = (h << 31) | (h >> 33);
                s += 8;
                len -= 8;
        }
        if (len > 0) {
                /* (a variable-length memcpy() would be a library call) */
                uint64_t w = 0;
                for (size_t i = 0; i < len; i++)
                        w |= (uint64_t) (uint8_t) s[i] << (8 * i);
                h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
        }
        /* murmur3's finaliser: every input bit reaches every output bit */
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 33;
        return (uint32_t) h;
}

/* The table's hash of s, and its length. */
static inline uint32_t intern_hash(const char *s, size_t *ret_len) {
        *ret_len = strlen(s);
        return intern_hash_len(s, *ret_len);
}

static inline bool intern_bytes_equal(const char *a, const char *b, size_t len) {
        while (len >= 8) {
                uint64_t x, y;
                memcpy(&x, a, 8);
                memcpy(&y, b, 8);
                if (x != y)
                        return false;
                a += 8;
                b += 8;
                len -= 8;
        }
        for (size_t i = 0; i < len; i++)
                if (a[i] != b[i])
                        return false;
        return true;
}

/* 0 when absent. */
static inline uint32_t intern_lookup_hashed(const Intern *t, const char *s, size_t len, uint32_t hash) {
        if (!t->slots)
                return 0;
        for (uint32_t i = hash & t->mask;; i = (i + 1) & t->mask) {
                const InternSlot *slot = &t->slots[i];
                if (slot->id == 0)
                        return 0;
                if (slot->hash == hash) {
                        const InternEntry *e = &t->entries[slot->id];
                        if (e->len == len && intern_bytes_equal(e->str, s, len))
                                return slot->id;
                }
        }
}

static inline uint32_t intern_lookup_len(const Intern *t, const char *s, size_t len) {
        return intern_lookup_hashed(t, s, len, intern_hash_len(s, len));
}

static inline uint32_t intern_lookup(const Intern *t, const char *s) {
        size_t len;
        uint32_t h = intern_hash(s, &len);
        return intern_lookup_hashed(t, s, len, h);
}

static inline const char *intern_string(const Intern *t, uint32_t id) {
        return id > 0 && id <= t->n ? t->entries[id].str : NULL;
}

/* ---- the process-wide table of VM names and tags ------------------------- */

/* Returns the shared id (>= 1) of s[0..len), taking a reference. */
uint32_t policy_name_ref(const char *s, size_t len);
void policy_name_unref(uint32_t id);
/* Number of names currently registered (for tests). */
size_t policy_name_count(void);
