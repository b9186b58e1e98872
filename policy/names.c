/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "policy/names.h"

#include <glib.h>

typedef struct Name {
        char *str; /* NULL when the id is free */
        uint32_t n_ref;
} Name;

static GMutex lock;
static GHashTable *by_string; /* str -> id */
static Name *names;           /* by id; [0] unused */
static uint32_t n_names, cap_names;
static uint32_t *free_ids;
static uint32_t n_free, cap_free;
static size_t n_live;

uint32_t policy_name_ref(const char *s, size_t len) {
        g_autofree char *key = g_strndup(s, len);
        uint32_t id;

        g_mutex_lock(&lock);
        if (!by_string)
                by_string = g_hash_table_new(g_str_hash, g_str_equal);
        id = GPOINTER_TO_UINT(g_hash_table_lookup(by_string, key));
        if (id == 0) {
                if (n_free > 0)
                        id = free_ids[--n_free];
                else {
                        if (n_names + 1 >= cap_names) {
                                cap_names = cap_names ? cap_names * 2 : 256;
                                names = g_renew(Name, names, cap_names);
                        }
                        id = ++n_names;
                        g_assert(id < 0x7fffffffu);
                }
                names[id] = (Name) { g_steal_pointer(&key), 0 };
                g_hash_table_insert(by_string, names[id].str, GUINT_TO_POINTER(id));
                n_live++;
        }
        names[id].n_ref++;
        g_mutex_unlock(&lock);
        return id;
}

void policy_name_unref(uint32_t id) {
        if (id == 0)
                return;
        g_mutex_lock(&lock);
        g_assert(id <= n_names && names[id].str && names[id].n_ref > 0);
        if (--names[id].n_ref == 0) {
                g_hash_table_remove(by_string, names[id].str);
                g_free(names[id].str);
                names[id].str = NULL;
                if (n_free == cap_free) {
                        cap_free = cap_free ? cap_free * 2 : 64;
                        free_ids = g_renew(uint32_t, free_ids, cap_free);
                }
                free_ids[n_free++] = id;
                n_live--;
        }
        g_mutex_unlock(&lock);
}

size_t policy_name_count(void) {
        g_mutex_lock(&lock);
        size_t n = n_live;
        g_mutex_unlock(&lock);
        return n;
}
