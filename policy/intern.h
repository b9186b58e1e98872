/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A string interning table: each distinct string gets a small integer id
 * (1, 2, ...; 0 means "not present"), so that a compiled policy compares
 * names as integers.  Open addressing, no deletion.  A table is owned by
 * one snapshot (or one facts object) and read-only once that is frozen, so
 * lookups need no locking and never allocate.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct Intern {
        char **strings;   /* by id; [0] is NULL */
        uint32_t *hashes; /* by id */
        uint32_t *lens;   /* by id */
        uint32_t n;       /* ids 1..n are in use */
        uint32_t cap;     /* entries allocated in strings/hashes */
        uint32_t *slots;  /* 0 = empty, else an id */
        uint32_t mask;    /* number of slots - 1 */
} Intern;

void intern_init(Intern *t);
void intern_done(Intern *t);

/* Returns the id of s[0..len), adding a copy when new.  Never fails (GLib aborts on OOM). */
uint32_t intern_add(Intern *t, const char *s, size_t len);
/* 0 when absent. */
uint32_t intern_lookup_len(const Intern *t, const char *s, size_t len);
uint32_t intern_lookup(const Intern *t, const char *s);

static inline const char *intern_string(const Intern *t, uint32_t id) {
        return id > 0 && id <= t->n ? t->strings[id] : NULL;
}
