/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The nftnl objects of table inet vmfed, queued into a batch: chains, sets,
 * their elements, a chain's rules.  ruleset-diff.c decides which.
 */
#include "netvm/ruleset-objects.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "netvm/nft-rule.h"
#include "netvm/ruleset.h"

static void rule_destroy(gpointer p) {
        nftnl_rule_free(p);
}

void ruleset_queue_chain_rules(const Ruleset *desired, const ChainSpec *c, NftBatch *b, RulesetStats *st) {
        g_autoptr(GPtrArray) rules = g_ptr_array_new_with_free_func(rule_destroy);
        if (c->kind == CHAIN_CLIENT) {
                const NetClient *client = netstate_find_client(desired->state, c->name + strlen(CLIENT_CHAIN_PREFIX));
                chains_build_client(desired->state, client, c->name, c->digest, rules);
        } else
                chains_build_base(desired->state, c->kind, rules);
        for (guint i = 0; i < rules->len; i++) {
                struct nftnl_rule *r = rules->pdata[i];
                if (i == 0) {
                        g_autofree char *comment = g_strconcat(DIGEST_PREFIX, c->digest, NULL);
                        nr_comment(r, comment);
                }
                nft_batch_add_rule(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, r);
        }
        st->rules_added += rules->len;
}

struct nftnl_chain *ruleset_chain_obj(const char *name) {
        struct nftnl_chain *c = nftnl_chain_alloc();
        nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, RULESET_TABLE);
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
        return c;
}

struct nftnl_set *ruleset_set_obj(int i) {
        struct nftnl_set *s = nftnl_set_alloc();
        nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
        nftnl_set_set_str(s, NFTNL_SET_TABLE, RULESET_TABLE);
        nftnl_set_set_str(s, NFTNL_SET_NAME, chains_sets[i].name);
        return s;
}

void ruleset_queue_table(NftBatch *b) {
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = nftnl_table_alloc();
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, RULESET_TABLE);
        nft_batch_add_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, t);
}

void ruleset_queue_set(int i, NftBatch *b) {
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = ruleset_set_obj(i);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, chains_sets[i].key_type);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, chains_sets[i].key_len);
        nftnl_set_set_u32(s, NFTNL_SET_ID, (uint32_t) i + 1);
        if (chains_sets[i].map) {
                nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
                nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
        } else
                nftnl_set_set_u32(s, NFTNL_SET_FLAGS, 0);
        nft_batch_add_set(b, NFT_MSG_NEWSET, NLM_F_CREATE, s);
}

void ruleset_queue_new_chain(const char *name, ChainKind kind, NftBatch *b) {
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *ch = ruleset_chain_obj(name);
        if (kind < CHAIN_CLIENT) {
                const BaseChainDef *d = &chains_base[kind];
                nftnl_chain_set_u32(ch, NFTNL_CHAIN_HOOKNUM, d->hook);
                nftnl_chain_set_s32(ch, NFTNL_CHAIN_PRIO, d->prio);
                nftnl_chain_set_str(ch, NFTNL_CHAIN_TYPE, d->type);
                nftnl_chain_set_u32(ch, NFTNL_CHAIN_POLICY, NF_ACCEPT);
        }
        nft_batch_add_chain(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, ch);
}

void ruleset_queue_flush_chain(const char *name, NftBatch *b) {
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *flush = nr_new(NFPROTO_INET, RULESET_TABLE, name);
        nft_batch_add_rule(b, NFT_MSG_DELRULE, 0, flush);
}

void ruleset_queue_del_chain(const char *name, NftBatch *b) {
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *ch = ruleset_chain_obj(name);
        nft_batch_add_chain(b, NFT_MSG_DELCHAIN, 0, ch);
}

void ruleset_queue_del_set(const char *name, NftBatch *b) {
        _cleanup_(nftnl_set_freep) struct nftnl_set *del = nftnl_set_alloc();
        nftnl_set_set_u32(del, NFTNL_SET_FAMILY, NFPROTO_INET);
        nftnl_set_set_str(del, NFTNL_SET_TABLE, RULESET_TABLE);
        nftnl_set_set_str(del, NFTNL_SET_NAME, name);
        nft_batch_add_set(b, NFT_MSG_DELSET, 0, del);
}

unsigned ruleset_queue_elems(GHashTable *from, GHashTable *other, int set, uint16_t msg_type, NftBatch *b) {
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = NULL;
        unsigned n = 0, total = 0;
        GHashTableIter it;
        const char *id;
        ElemSpec *e;

        g_hash_table_iter_init(&it, from);
        while (g_hash_table_iter_next(&it, (gpointer *) &id, (gpointer *) &e)) {
                if (other && g_hash_table_contains(other, id))
                        continue;
                if (!s)
                        s = ruleset_set_obj(set);
                struct nftnl_set_elem *el = nftnl_set_elem_alloc();
                nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, e->key, e->key_len);
                if (e->chain && msg_type == NFT_MSG_NEWSETELEM) {
                        nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, (uint32_t) NFT_GOTO);
                        nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, e->chain);
                }
                nftnl_set_elem_add(s, el);
                n++;
                total++;
                if (n == ELEMS_PER_MSG) {
                        nft_batch_add_elems(b, msg_type, msg_type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, s);
                        nftnl_set_free(steal_pointer(&s));
                        n = 0;
                }
        }
        if (s && n > 0)
                nft_batch_add_elems(b, msg_type, msg_type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, s);
        return total;
}

/* nft's datatype ids of the parts of a client set's key (with TYPE_IPV4/6, netvm/chains.h). */
#define TYPE_INET_PROTO 12
#define TYPE_INET_SERVICE 13

void ruleset_queue_client_set(const NetState *state, const ClientSetEntry *ref, const char *name, uint32_t id,
                             NftBatch *b, RulesetStats *st) {
        const NetClient *c = netstate_find_client(state, ref->client);
        const FwSetPlan *sp = chains_client_plan(c)->sets->pdata[ref->index];
        bool v6 = sp->family == AF_INET6;
        uint32_t key_len = fwplan_key_len(sp->family);
        const uint8_t fields[3] = { v6 ? 16 : 4, 1, 2 };

        _cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();
        nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
        nftnl_set_set_str(s, NFTNL_SET_TABLE, RULESET_TABLE);
        nftnl_set_set_str(s, NFTNL_SET_NAME, name);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE,
                          CONCAT(CONCAT(v6 ? TYPE_IPV6 : TYPE_IPV4, TYPE_INET_PROTO), TYPE_INET_SERVICE));
        nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, key_len);
        nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_INTERVAL | NFT_SET_CONCAT);
        nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, fields, sizeof fields);
        nftnl_set_set_u32(s, NFTNL_SET_ID, id);
        nft_batch_add_set(b, NFT_MSG_NEWSET, NLM_F_CREATE, s);

        for (guint i = 0; i < sp->boxes->len; i += ELEMS_PER_MSG) {
                _cleanup_(nftnl_set_freep) struct nftnl_set *e = nftnl_set_alloc();
                nftnl_set_set_u32(e, NFTNL_SET_FAMILY, NFPROTO_INET);
                nftnl_set_set_str(e, NFTNL_SET_TABLE, RULESET_TABLE);
                nftnl_set_set_str(e, NFTNL_SET_NAME, name);
                nftnl_set_set_u32(e, NFTNL_SET_ID, id);
                for (guint k = i; k < sp->boxes->len && k < i + ELEMS_PER_MSG; k++) {
                        const FwBox *box = &g_array_index(sp->boxes, FwBox, k);
                        struct nftnl_set_elem *el = nftnl_set_elem_alloc();
                        nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, box->lo, key_len);
                        nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, box->hi, key_len);
                        nftnl_set_elem_add(e, el);
                }
                nft_batch_add_elems(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, e);
        }
        st->elems_added += sp->boxes->len;
}

void ruleset_queue_elem(int set, const ElemSpec *e, uint16_t msg_type, NftBatch *b) {
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = ruleset_set_obj(set);
        struct nftnl_set_elem *el = nftnl_set_elem_alloc();
        nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, e->key, e->key_len);
        if (e->chain && msg_type == NFT_MSG_NEWSETELEM) {
                nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, (uint32_t) NFT_GOTO);
                nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, e->chain);
        }
        nftnl_set_elem_add(s, el);
        nft_batch_add_elems(b, msg_type, msg_type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, s);
}
