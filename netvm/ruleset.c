/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The model of table inet vmfed (netvm/ruleset-model.h) and
 * ruleset_apply(): compile, diff, commit.
 */
#include "netvm/ruleset.h"

#include <string.h>

#include <glib.h>

#include "netvm/ruleset-model.h"

void client_model_unref(void *p) {
        ClientModel *m = p;
        if (!m || --m->n_ref > 0)
                return;
        g_free(m->client);
        g_free(m->chain.name);
        g_free(m->chain.digest);
        g_ptr_array_unref(m->elem_ids);
        g_ptr_array_unref(m->elems);
        g_array_unref(m->elem_sets);
        for (guint i = 0; i < m->sets->len; i++) {
                ClientSetEntry *e = &g_array_index(m->sets, ClientSetEntry, i);
                g_free(e->name);
                g_free(e->client);
        }
        g_array_unref(m->sets);
        g_free(m);
}

Ruleset *ruleset_new(void) {
        Ruleset *r = g_new0(Ruleset, 1);
        r->chains = g_hash_table_new(g_str_hash, g_str_equal);
        for (int i = 0; i < _SET_MAX; i++)
                r->elems[i] = g_hash_table_new(g_str_hash, g_str_equal);
        r->client_sets = g_hash_table_new(g_str_hash, g_str_equal);
        r->owned = g_ptr_array_new_with_free_func(g_free);
        r->models = g_ptr_array_new_with_free_func(client_model_unref);
        return r;
}

Ruleset *ruleset_free(Ruleset *r) {
        if (!r)
                return NULL;
        g_hash_table_unref(r->chains);
        for (int i = 0; i < _SET_MAX; i++)
                g_hash_table_unref(r->elems[i]);
        g_hash_table_unref(r->client_sets);
        g_ptr_array_unref(r->owned);
        g_ptr_array_unref(r->models);
        g_free(r);
        return NULL;
}

static ChainKind chain_kind_from_name(const char *name) {
        for (size_t i = 0; i < CHAIN_CLIENT; i++)
                if (strcmp(chains_base[i].name, name) == 0)
                        return (ChainKind) i;
        if (g_str_has_prefix(name, CLIENT_CHAIN_PREFIX))
                return CHAIN_CLIENT;
        return CHAIN_UNKNOWN;
}

void ruleset_add_chain(Ruleset *r, const char *name, const char *digest) {
        size_t nl = strlen(name) + 1, dl = strlen(digest ? digest : "") + 1;
        ChainSpec *c = g_malloc(sizeof(ChainSpec) + nl + dl);
        c->name = (char *) (c + 1);
        memcpy(c->name, name, nl);
        c->digest = c->name + nl;
        memcpy(c->digest, digest ? digest : "", dl);
        c->kind = chain_kind_from_name(name);
        g_ptr_array_add(r->owned, c);
        g_hash_table_replace(r->chains, c->name, c);
}

char *elem_spec_identity(const ElemSpec *e) {
        static const char hex[] = "0123456789abcdef";
        size_t clen = e->chain ? strlen(e->chain) + 1 : 0;
        char *s = g_malloc(e->key_len * 2 + clen + 1), *p = s;
        for (uint32_t i = 0; i < e->key_len; i++) {
                *p++ = hex[e->key[i] >> 4];
                *p++ = hex[e->key[i] & 15];
        }
        if (e->chain) {
                *p++ = '>';
                memcpy(p, e->chain, clen - 1);
                p += clen - 1;
        }
        *p = '\0';
        return s;
}

ElemSpec *elem_spec_new(const void *key, uint32_t key_len, const char *chain) {
        size_t cl = chain ? strlen(chain) + 1 : 0;
        ElemSpec *e = g_malloc0(sizeof(ElemSpec) + cl);
        g_assert(key_len <= sizeof e->key);
        memcpy(e->key, key, key_len);
        e->key_len = key_len;
        if (chain) {
                e->chain = (char *) (e + 1);
                memcpy(e->chain, chain, cl);
        }
        return e;
}

void ruleset_add_elem(Ruleset *r, int set, const void *key, uint32_t key_len, const char *chain) {
        ElemSpec *e = elem_spec_new(key, key_len, chain);
        char *id = elem_spec_identity(e);
        g_ptr_array_add(r->owned, e);
        g_ptr_array_add(r->owned, id);
        g_hash_table_replace(r->elems[set], id, e);
}

void ruleset_materialize(Ruleset *r, bool in) {
        if (r->materialized == in)
                return;
        for (guint i = 0; i < r->models->len; i++) {
                ClientModel *m = r->models->pdata[i];
                if (in)
                        g_hash_table_replace(r->chains, m->chain.name, &m->chain);
                else
                        g_hash_table_remove(r->chains, m->chain.name);
                for (guint k = 0; k < m->elems->len; k++) {
                        GHashTable *t = r->elems[g_array_index(m->elem_sets, int, k)];
                        if (in)
                                g_hash_table_replace(t, m->elem_ids->pdata[k], m->elems->pdata[k]);
                        else
                                g_hash_table_remove(t, m->elem_ids->pdata[k]);
                }
                for (guint k = 0; k < m->sets->len; k++) {
                        ClientSetEntry *e = &g_array_index(m->sets, ClientSetEntry, k);
                        if (in)
                                g_hash_table_replace(r->client_sets, e->name, e);
                        else
                                g_hash_table_remove(r->client_sets, e->name);
                }
        }
        r->materialized = in;
}

/* A desired model without its borrowed state: what the kernel now holds. */
static void ruleset_detach(Ruleset *r) {
        r->state = NULL;
        ruleset_materialize(r, false);
}

int ruleset_apply(NftSocket *sock, Ruleset **applied, const NetState *state, RulesetStats *stats) {
        _cleanup_(ruleset_freep) Ruleset *desired = ruleset_compile(state);
        _cleanup_(nft_batch_freep) NftBatch *b = nft_batch_new();

        ruleset_diff(*applied, desired, b, stats);
        int r = nft_socket_commit(sock, b);
        if (r < 0) {
                Ruleset *fresh = NULL;
                if (ruleset_read(sock, &fresh) >= 0) {
                        ruleset_free(*applied);
                        *applied = fresh;
                }
                return r;
        }
        ruleset_detach(desired);
        ruleset_free(*applied);
        *applied = steal_pointer(&desired);
        return 0;
}
