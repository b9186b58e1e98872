/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "policy/intern.h"

#include <string.h>

#include <glib.h>

/* FNV-1a, 32 bit: short keys, no seeding needed (keys come from root-owned files and the table never degrades to worse than linear). */
static inline uint32_t hash_bytes(const char *s, size_t len) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t) s[i];
                h *= 16777619u;
        }
        return h;
}

void intern_init(Intern *t) {
        *t = (Intern) {};
}

void intern_done(Intern *t) {
        for (uint32_t i = 1; i <= t->n; i++)
                g_free(t->strings[i]);
        g_free(t->strings);
        g_free(t->hashes);
        g_free(t->lens);
        g_free(t->slots);
        *t = (Intern) {};
}

static void intern_rehash(Intern *t, uint32_t nslots) {
        g_free(t->slots);
        t->slots = g_new0(uint32_t, nslots);
        t->mask = nslots - 1;
        for (uint32_t id = 1; id <= t->n; id++) {
                uint32_t i = t->hashes[id] & t->mask;
                while (t->slots[i] != 0)
                        i = (i + 1) & t->mask;
                t->slots[i] = id;
        }
}

static uint32_t lookup_hashed(const Intern *t, const char *s, size_t len, uint32_t h) {
        if (!t->slots)
                return 0;
        for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
                uint32_t id = t->slots[i];
                if (id == 0)
                        return 0;
                if (t->hashes[id] == h && t->lens[id] == len && memcmp(t->strings[id], s, len) == 0)
                        return id;
        }
}

uint32_t intern_lookup_len(const Intern *t, const char *s, size_t len) {
        return lookup_hashed(t, s, len, hash_bytes(s, len));
}

uint32_t intern_lookup(const Intern *t, const char *s) {
        /* One pass: hash while measuring. */
        uint32_t h = 2166136261u;
        size_t len = 0;
        for (; s[len]; len++) {
                h ^= (uint8_t) s[len];
                h *= 16777619u;
        }
        return lookup_hashed(t, s, len, h);
}

uint32_t intern_add(Intern *t, const char *s, size_t len) {
        uint32_t h = hash_bytes(s, len);
        uint32_t id = lookup_hashed(t, s, len, h);
        if (id)
                return id;

        if (t->n + 1 >= t->cap) {
                t->cap = t->cap ? t->cap * 2 : 64;
                t->strings = g_renew(char *, t->strings, t->cap);
                t->hashes = g_renew(uint32_t, t->hashes, t->cap);
                t->lens = g_renew(uint32_t, t->lens, t->cap);
                t->strings[0] = NULL;
                t->hashes[0] = 0;
        }
        id = ++t->n;
        t->strings[id] = g_strndup(s, len);
        t->hashes[id] = h;
        t->lens[id] = (uint32_t) len;

        /* Keep the load factor at most 1/2. */
        if (!t->slots || (uint64_t) t->n * 2 > (uint64_t) t->mask + 1)
                intern_rehash(t, t->slots ? (t->mask + 1) * 2 : 128);
        else {
                uint32_t i = h & t->mask;
                while (t->slots[i] != 0)
                        i = (i + 1) & t->mask;
                t->slots[i] = id;
        }
        return id;
}
