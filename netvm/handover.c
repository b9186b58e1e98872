/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/handover.h"

#include <string.h>

/* The client of s that has address a, or NULL. */
static const NetClient *owner_of(const NetState *s, const NetAddr *a) {
        for (guint i = 0; i < s->clients->len; i++) {
                const NetClient *c = s->clients->pdata[i];
                for (guint j = 0; j < c->addrs->len; j++)
                        if (netaddr_equal(&g_array_index(c->addrs, NetAddr, j), a))
                                return c;
        }
        return NULL;
}

void handover_plan(const NetState *old, const NetState *new_state, Handover *ret) {
        *ret = (Handover) { g_array_new(FALSE, FALSE, sizeof(NetAddr)), NULL };
        if (!old)
                return;
        g_autoptr(GHashTable) takers = g_hash_table_new(g_str_hash, g_str_equal);
        for (guint i = 0; i < old->clients->len; i++) {
                const NetClient *c = old->clients->pdata[i];
                const NetClient *same = netstate_find_client(new_state, c->name);
                if (same == c)
                        continue;       /* shared by reference: unchanged */
                for (guint j = 0; j < c->addrs->len; j++) {
                        const NetAddr *a = &g_array_index(c->addrs, NetAddr, j);
                        const NetClient *o = owner_of(new_state, a);
                        if (o && strcmp(o->name, c->name) == 0 && memcmp(o->mac, c->mac, 6) == 0)
                                continue;       /* still its own */
                        g_array_append_val(ret->released, *a);
                        if (o)
                                g_hash_table_add(takers, o->name);
                }
        }
        if (g_hash_table_size(takers) == 0)
                return;
        ret->between = netstate_copy(new_state);
        GHashTableIter it;
        gpointer name;
        g_hash_table_iter_init(&it, takers);
        while (g_hash_table_iter_next(&it, &name, NULL))
                (void) netstate_remove_client(ret->between, name);
}

void handover_done(Handover *h) {
        if (h->released)
                g_array_unref(h->released);
        netstate_free(h->between);
        *h = (Handover) {};
}
