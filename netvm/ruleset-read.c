/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ruleset_read(): the model of what the kernel's table inet vmfed holds,
 * with each chain's digest from the comment of its first rule.
 */
#include "netvm/ruleset.h"

#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include <glib.h>

#include "common/log.h"
#include "netvm/nft-rule.h"
#include "netvm/ruleset-model.h"

static int table_cb(const struct nlmsghdr *nlh, void *data) {
        Ruleset *r = data;
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = nftnl_table_alloc();
        if (nftnl_table_nlmsg_parse(nlh, t) < 0)
                return MNL_CB_ERROR;
        if (strcmp(nftnl_table_get_str(t, NFTNL_TABLE_NAME), RULESET_TABLE) == 0)
                r->table_exists = true;
        return MNL_CB_OK;
}

static int chain_cb(const struct nlmsghdr *nlh, void *data) {
        Ruleset *r = data;
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();
        if (nftnl_chain_nlmsg_parse(nlh, c) < 0)
                return MNL_CB_ERROR;
        if (strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), RULESET_TABLE) == 0)
                ruleset_add_chain(r, nftnl_chain_get_str(c, NFTNL_CHAIN_NAME), "");
        return MNL_CB_OK;
}

static int rule_cb(const struct nlmsghdr *nlh, void *data) {
        GHashTable *first = data;
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = nftnl_rule_alloc();
        char buf[NFT_USERDATA_MAXLEN];
        if (nftnl_rule_nlmsg_parse(nlh, r) < 0)
                return MNL_CB_ERROR;
        if (strcmp(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), RULESET_TABLE) != 0)
                return MNL_CB_OK;
        const char *chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
        if (g_hash_table_contains(first, chain))
                return MNL_CB_OK;
        const char *comment = nr_get_comment(r, buf, sizeof buf);
        g_hash_table_insert(first, g_strdup(chain),
                            g_strdup(comment && g_str_has_prefix(comment, DIGEST_PREFIX)
                                     ? comment + strlen(DIGEST_PREFIX) : ""));
        return MNL_CB_OK;
}

static int set_cb(const struct nlmsghdr *nlh, void *data) {
        Ruleset *r = data;
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();
        if (nftnl_set_nlmsg_parse(nlh, s) < 0)
                return MNL_CB_ERROR;
        if (strcmp(nftnl_set_get_str(s, NFTNL_SET_TABLE), RULESET_TABLE) != 0)
                return MNL_CB_OK;
        const char *name = nftnl_set_get_str(s, NFTNL_SET_NAME);
        for (int i = 0; i < _SET_MAX; i++)
                if (strcmp(chains_sets[i].name, name) == 0)
                        r->set_exists[i] = true;
        if (g_str_has_prefix(name, CLIENT_SET_PREFIX)) {
                char *copy = g_strdup(name);
                g_ptr_array_add(r->owned, copy);
                g_hash_table_replace(r->client_sets, copy, NULL);
        }
        return MNL_CB_OK;
}

typedef struct ElemCtx {
        Ruleset *r;
        int set;
} ElemCtx;

static int elem_cb(const struct nlmsghdr *nlh, void *data) {
        ElemCtx *ctx = data;
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();
        if (nftnl_set_elems_nlmsg_parse(nlh, s) < 0)
                return MNL_CB_ERROR;
        struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
        for (struct nftnl_set_elem *e = nftnl_set_elems_iter_next(it); e; e = nftnl_set_elems_iter_next(it)) {
                uint32_t len = 0;
                const void *key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
                if (!key || len > 32)
                        continue;
                const char *chain = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN)
                                            ? nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN) : NULL;
                ruleset_add_elem(ctx->r, ctx->set, key, len, chain);
        }
        nftnl_set_elems_iter_destroy(it);
        return MNL_CB_OK;
}

static void build_rule_dump(struct nlmsghdr *nlh, void *data) {
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = nftnl_rule_alloc();
        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, RULESET_TABLE);
        nftnl_rule_nlmsg_build_payload(nlh, r);
}

static void build_elem_dump(struct nlmsghdr *nlh, void *data) {
        const char *name = data;
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();
        nftnl_set_set_str(s, NFTNL_SET_TABLE, RULESET_TABLE);
        nftnl_set_set_str(s, NFTNL_SET_NAME, name);
        nftnl_set_elems_nlmsg_build_payload(nlh, s);
}

int ruleset_read(NftSocket *sock, Ruleset **ret) {
        _cleanup_(ruleset_freep) Ruleset *r = ruleset_new();
        int k;

        r->from_kernel = true;
        k = nft_socket_dump(sock, NFT_MSG_GETTABLE, NFPROTO_INET, NULL, NULL, table_cb, r);
        if (k < 0)
                return log_error_errno(k, "nftables: listing tables failed: %m");
        if (r->table_exists) {
                k = nft_socket_dump(sock, NFT_MSG_GETCHAIN, NFPROTO_INET, NULL, NULL, chain_cb, r);
                if (k < 0)
                        return log_error_errno(k, "nftables: listing chains failed: %m");
                g_autoptr(GHashTable) first = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
                k = nft_socket_dump(sock, NFT_MSG_GETRULE, NFPROTO_INET, build_rule_dump, NULL, rule_cb, first);
                if (k < 0)
                        return log_error_errno(k, "nftables: listing rules failed: %m");
                GHashTableIter it;
                ChainSpec *c;
                g_hash_table_iter_init(&it, r->chains);
                while (g_hash_table_iter_next(&it, NULL, (gpointer *) &c)) {
                        const char *d = g_hash_table_lookup(first, c->name);
                        char *copy = g_strdup(d ? d : "");
                        g_ptr_array_add(r->owned, copy);
                        c->digest = copy;
                }
                k = nft_socket_dump(sock, NFT_MSG_GETSET, NFPROTO_INET, NULL, NULL, set_cb, r);
                if (k < 0)
                        return log_error_errno(k, "nftables: listing sets failed: %m");
                for (int i = 0; i < _SET_MAX; i++) {
                        if (!r->set_exists[i])
                                continue;
                        ElemCtx ctx = { r, i };
                        k = nft_socket_dump(sock, NFT_MSG_GETSETELEM, NFPROTO_INET, build_elem_dump,
                                            (void *) chains_sets[i].name, elem_cb, &ctx);
                        if (k < 0)
                                return log_error_errno(k, "nftables: listing set %s failed: %m", chains_sets[i].name);
                }
        }
        *ret = steal_pointer(&r);
        return 0;
}
