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
                slot_insert(t, t->entries[id].hash, id);
}

uint32_t intern_add(Intern *t, const char *s, size_t len) {
        uint32_t h = intern_hash_len(s, len);
        uint32_t id = intern_lookup_hashed(t, s, len, h);
        if (id)
                return id;

        if (t->n + 1 >= t->cap) {
                t->cap = t->cap ? t->cap * 2 : 64;
                t->entries = g_renew(InternEntry, t->entries, t->cap);
                t->entries[0] = (InternEntry) {};
        }
        id = ++t->n;
        t->entries[id] = (InternEntry) { g_strndup(s, len), (uint32_t) len, h };

        /* Keep the load factor at most 1/2. */
        if (!t->slots || (uint64_t) t->n * 2 > (uint64_t) t->mask + 1)
                intern_rehash(t, t->slots ? (t->mask + 1) * 2 : 128);
        else
                slot_insert(t, h, id);
        return id;
}
