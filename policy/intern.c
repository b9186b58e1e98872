/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "policy/intern.h"

#include <glib.h>

void intern_init(Intern *t) {
        *t = (Intern) {};
}

void intern_done(Intern *t) {
        for (uint32_t i = 1; i <= t->n; i++)
                g_free(t->entries[i].str);
        g_free(t->entries);
        g_free(t->slots);
        *t = (Intern) {};
}

static void slot_insert(Intern *t, uint32_t hash, uint32_t id) {
        uint32_t i = hash & t->mask;
        while (t->slots[i].id != 0)
                i = (i + 1) & t->mask;
        t->slots[i] = (InternSlot) { hash, id };
}

static void intern_rehash(Intern *t, uint32_t nslots) {
        g_free(t->slots);
        t->slots = g_new0(InternSlot, nslots);
        t->mask = nslots - 1;
        for (uint32_t id = 1; id <= t->n; id++)
                if (t->entries[id].str) /* (the shared table frees ids) */
                        slot_insert(t, t->entries[id].hash, id);
}

/* Store s as id (new: t->n + 1, or a freed one <= t->n) and index it. */
static void intern_put(Intern *t, const char *s, size_t len, uint32_t h, uint32_t id) {
        if (id > t->n) {
                if (t->n + 1 >= t->cap) {
                        t->cap = t->cap ? t->cap * 2 : 64;
                        t->entries = g_renew(InternEntry, t->entries, t->cap);
                        t->entries[0] = (InternEntry) {};
                }
                t->n = id;
        }
        t->entries[id] = (InternEntry) { g_strndup(s, len), (uint32_t) len, h };

        /* Keep the load factor at most 1/2. */
        if (!t->slots || (uint64_t) t->n * 2 > (uint64_t) t->mask + 1)
                intern_rehash(t, t->slots ? (t->mask + 1) * 2 : 128);
        else
                slot_insert(t, h, id);
}

uint32_t intern_add(Intern *t, const char *s, size_t len) {
        uint32_t h = intern_hash_len(s, len);
        uint32_t id = intern_lookup_hashed(t, s, len, h);
        if (id)
                return id;
        id = t->n + 1;
        intern_put(t, s, len, h, id);
        return id;
}

/* Drop id from the index (linear probing's backward-shift deletion: no tombstones) and free its string. */
static void intern_remove(Intern *t, uint32_t id) {
        uint32_t i = t->entries[id].hash & t->mask;

        while (t->slots[i].id != id)
                i = (i + 1) & t->mask;
        for (uint32_t j = (i + 1) & t->mask; t->slots[j].id != 0; j = (j + 1) & t->mask) {
                uint32_t home = t->slots[j].hash & t->mask;
                /* The entry at j may move to the hole at i unless its home lies cyclically in (i, j]. */
                bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
                if (!stays) {
                        t->slots[i] = t->slots[j];
                        i = j;
                }
        }
        t->slots[i] = (InternSlot) {};
        g_free(t->entries[id].str);
        t->entries[id] = (InternEntry) {};
}

/* ---- the process-wide table ------------------------------------------------ */

static GMutex shared_lock;
static Intern shared;             /* VM names and tags of every snapshot and facts object */
static uint32_t *shared_refs;     /* by id */
static uint32_t n_shared_refs;    /* shared_refs allocated */
static uint32_t *free_ids;
static uint32_t n_free, cap_free;
static size_t n_live;

uint32_t policy_name_ref(const char *s, size_t len) {
        uint32_t h = intern_hash_len(s, len), id;

        g_mutex_lock(&shared_lock);
        id = intern_lookup_hashed(&shared, s, len, h);
        if (id == 0) {
                id = n_free > 0 ? free_ids[--n_free] : shared.n + 1;
                g_assert(id < 0x7fffffffu);
                intern_put(&shared, s, len, h, id);
                if (id >= n_shared_refs) {
                        uint32_t n = MAX(256u, n_shared_refs * 2);
                        shared_refs = g_renew(uint32_t, shared_refs, n);
                        memset(shared_refs + n_shared_refs, 0, (n - n_shared_refs) * sizeof(uint32_t));
                        n_shared_refs = n;
                }
                n_live++;
        }
        shared_refs[id]++;
        g_mutex_unlock(&shared_lock);
        return id;
}

void policy_name_unref(uint32_t id) {
        if (id == 0)
                return;
        g_mutex_lock(&shared_lock);
        g_assert(id <= shared.n && shared.entries[id].str && shared_refs[id] > 0);
        if (--shared_refs[id] == 0) {
                intern_remove(&shared, id);
                if (n_free == cap_free) {
                        cap_free = cap_free ? cap_free * 2 : 64;
                        free_ids = g_renew(uint32_t, free_ids, cap_free);
                }
                free_ids[n_free++] = id;
                n_live--;
        }
        g_mutex_unlock(&shared_lock);
}

size_t policy_name_count(void) {
        g_mutex_lock(&shared_lock);
        size_t n = n_live;
        g_mutex_unlock(&shared_lock);
        return n;
}
