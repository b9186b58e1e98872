/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ruleset_compile(): the model a NetState should produce.  Every chain gets
 * a digest of everything its bytecode depends on; a client's part is built
 * once per client (and client context) and cached in its NetClient.
 */
#include "netvm/ruleset.h"

#include <string.h>
#include <sys/socket.h>

#include <glib.h>

#include "netvm/ruleset-model.h"

static char *digest_of(const char *text) {
        g_autofree char *full = g_compute_checksum_for_string(G_CHECKSUM_SHA256, text, -1);
        return g_strndup(full, 16);
}

/* Everything a base chain's bytecode depends on. */
static char *base_context(const NetState *s, ChainKind kind) {
        GString *t = g_string_new(NULL);
        char buf[NETADDR_STRLEN];
        g_string_append_printf(t, "v" RULESET_VERSION " %s up=%s down=%s",
                               chains_base[kind].name, s->uplink, s->downstream);
        if ((kind == CHAIN_ANTISPOOF || kind == CHAIN_INPUT) && s->dhcp)
                g_string_append(t, " dhcp");
        if (kind == CHAIN_DNAT) {
                for (guint i = 0; i < s->downstream_addrs->len; i++)
                        g_string_append_printf(t, " gw=%s", netaddr_format_cidr(&g_array_index(s->downstream_addrs, NetAddr, i), buf));
                for (guint i = 0; i < s->dns->len; i++)
                        g_string_append_printf(t, " dns=%s", netaddr_format(&g_array_index(s->dns, NetAddr, i), buf));
        }
        return g_string_free(t, FALSE);
}

/* The client's own part of its chain digest, computed once per NetClient. */
static const char *client_digest(const NetClient *c) {
        if (!c->digest) {
                GString *t = g_string_new(NULL);
                g_string_append_printf(t, "broken=%d rules=%d default=%d\n", firewall_is_broken(c->firewall),
                                       c->has_rules, (int) firewall_default(c->firewall));
                for (guint i = 0; i < c->firewall->rules->len; i++) {
                        g_autofree char *line = fwrule_format(&g_array_index(c->firewall->rules, FwRule, i));
                        g_string_append_printf(t, "%s\n", line);
                }
                /* A cache in an otherwise immutable object. */
                ((NetClient *) c)->digest = digest_of(t->str);
                g_string_free(t, TRUE);
        }
        return c->digest;
}

static char *client_context(const NetState *s) {
        return g_strdup_printf("v" RULESET_VERSION " client up=%s down=%s dns4=%d dns6=%d",
                               s->uplink, s->downstream, chains_has_dns(s, AF_INET), chains_has_dns(s, AF_INET6));
}

static void client_model_add_elem(ClientModel *m, int set, const void *key, uint32_t key_len, const char *chain) {
        ElemSpec *e = elem_spec_new(key, key_len, chain);
        g_ptr_array_add(m->elems, e);
        g_ptr_array_add(m->elem_ids, elem_spec_identity(e));
        g_array_append_val(m->elem_sets, set);
}

static ClientModel *client_model_get(NetClient *c, const char *cdigest) {
        ClientModel *m = c->model;
        if (m && memcmp(m->ctx, cdigest, 8) == 0)
                return m;

        m = g_new0(ClientModel, 1);
        m->n_ref = 1;
        memcpy(m->ctx, cdigest, 8);
        m->elem_ids = g_ptr_array_new_with_free_func(g_free);
        m->elems = g_ptr_array_new_with_free_func(g_free);
        m->elem_sets = g_array_new(FALSE, FALSE, sizeof(int));
        m->sets = g_array_new(FALSE, TRUE, sizeof(ClientSetEntry));

        m->client = g_strdup(c->name);
        m->chain.name = g_strconcat(CLIENT_CHAIN_PREFIX, c->name, NULL);
        m->chain.kind = CHAIN_CLIENT;
        m->chain.digest = g_malloc(17);
        memcpy(m->chain.digest, cdigest, 8);
        memcpy(m->chain.digest + 8, client_digest(c), 8);
        m->chain.digest[16] = '\0';

        for (guint j = 0; j < c->addrs->len; j++) {
                const NetAddr *a = &g_array_index(c->addrs, NetAddr, j);
                bool v6 = a->family == AF_INET6;
                uint8_t key[24] = {};
                memcpy(key, c->mac, 6);
                memcpy(key + 8, a->bytes, v6 ? 16 : 4);
                client_model_add_elem(m, v6 ? SET_ALLOWED6 : SET_ALLOWED4, key, v6 ? 24 : 12, NULL);
                client_model_add_elem(m, v6 ? SET_FWD6 : SET_FWD4, a->bytes, v6 ? 16 : 4, m->chain.name);
        }
        if (!firewall_is_broken(c->firewall)) {
                const FwPlan *plan = chains_client_plan(c);
                for (guint k = 0; k < plan->sets->len; k++) {
                        ClientSetEntry e = {
                                .name = chains_client_set_name(c, m->chain.digest, k),
                                .client = g_strdup(c->name),
                                .index = k,
                        };
                        g_array_append_val(m->sets, e);
                }
        }

        /* A cache in an otherwise immutable object, like the digest and the plan. */
        if (c->model)
                c->model_free(c->model);
        c->model = m;
        c->model_free = client_model_unref;
        return m;
}

Ruleset *ruleset_compile(const NetState *s) {
        Ruleset *r = ruleset_new();
        r->state = s;
        r->table_exists = true;
        for (int i = 0; i < _SET_MAX; i++)
                r->set_exists[i] = true;

        for (size_t k = 0; k < CHAIN_CLIENT; k++) {
                g_autofree char *ctx = base_context(s, (ChainKind) k);
                g_autofree char *d = digest_of(ctx);
                ruleset_add_chain(r, chains_base[k].name, d);
        }

        /* A client chain's digest: what every client chain depends on, plus the client's own part. */
        g_autofree char *cctx = client_context(s);
        g_autofree char *cdigest = digest_of(cctx);
        for (guint i = 0; i < s->clients->len; i++) {
                ClientModel *m = client_model_get(s->clients->pdata[i], cdigest);
                m->n_ref++;
                g_ptr_array_add(r->models, m);
        }
        for (guint i = 0; i < s->dns->len; i++) {
                const NetAddr *a = &g_array_index(s->dns, NetAddr, i);
                bool v6 = a->family == AF_INET6;
                ruleset_add_elem(r, v6 ? SET_DNS6 : SET_DNS4, a->bytes, v6 ? 16 : 4, NULL);
        }
        return r;
}
