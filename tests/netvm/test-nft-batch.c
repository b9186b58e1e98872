/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One nftables transaction is all or nothing, and every ack is read: a
 * batch whose last message fails leaves no trace of its first ones, and
 * the socket is in step for the next transaction.  And the incremental
 * diff (ruleset.c, client by client) leaves the kernel exactly where a full
 * compare says it should be, over random sequences of states that share
 * clients.  Runs in a private network namespace.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <glib.h>

#include "common/log.h"
#include "netvm/netstate.h"
#include "netvm/nft-batch.h"
#include "netvm/nft-rule.h"
#include "netvm/ruleset.h"

static struct nftnl_table *table(const char *name) {
        struct nftnl_table *t = nftnl_table_alloc();
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
        return t;
}

static struct nftnl_chain *chain(const char *t, const char *name) {
        struct nftnl_chain *c = nftnl_chain_alloc();
        nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, t);
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
        return c;
}

static int count_cb(const struct nlmsghdr *nlh, void *data) {
        (*(unsigned *) data)++;
        return MNL_CB_OK;
}

static unsigned count_tables(NftSocket *s) {
        unsigned n = 0;
        g_assert_cmpint(nft_socket_dump(s, NFT_MSG_GETTABLE, NFPROTO_INET, NULL, NULL, count_cb, &n), ==, 0);
        return n;
}

static void test_all_or_nothing(void) {
        _cleanup_(nft_socket_freep) NftSocket *s = NULL;
        g_assert_cmpint(nft_socket_open(&s), ==, 0);
        g_assert_cmpuint(count_tables(s), ==, 0);

        /* add table, add chain, 100 rules, then delete a chain that does not exist */
        _cleanup_(nft_batch_freep) NftBatch *b = nft_batch_new();
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = table("atomic");
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = chain("atomic", "c");
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *missing = chain("atomic", "missing");
        nft_batch_add_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, t);
        nft_batch_add_chain(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, c);
        for (int i = 0; i < 100; i++) {
                _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = nr_new(NFPROTO_INET, "atomic", "c");
                nr_match_l4proto(r, 6);
                nr_verdict(r, NF_ACCEPT, NULL);
                nft_batch_add_rule(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, r);
        }
        nft_batch_add_chain(b, NFT_MSG_DELCHAIN, 0, missing);
        g_assert_cmpuint(nft_batch_size(b), ==, 103);
        log_set_max_level(LOG_CRIT);
        g_assert_cmpint(nft_socket_commit(s, b), ==, -ENOENT);
        log_set_max_level(LOG_INFO);
        g_assert_cmpuint(count_tables(s), ==, 0); /* nothing of it was applied */

        /* The same socket, next transaction: every ack of the failed one was consumed. */
        _cleanup_(nft_batch_freep) NftBatch *ok = nft_batch_new();
        nft_batch_add_table(ok, NFT_MSG_NEWTABLE, NLM_F_CREATE, t);
        nft_batch_add_chain(ok, NFT_MSG_NEWCHAIN, NLM_F_CREATE, c);
        g_assert_cmpint(nft_socket_commit(s, ok), ==, 0);
        g_assert_cmpuint(count_tables(s), ==, 1);

        /* A large transaction (sized socket buffers, 20,000 acks). */
        _cleanup_(nft_batch_freep) NftBatch *big = nft_batch_new();
        for (int i = 0; i < 20000; i++) {
                _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = nr_new(NFPROTO_INET, "atomic", "c");
                nr_match_l4proto(r, 17);
                nr_verdict(r, NF_DROP, NULL);
                nft_batch_add_rule(big, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, r);
        }
        g_assert_cmpint(nft_socket_commit(s, big), ==, 0);

        /* An empty batch is a no-op. */
        _cleanup_(nft_batch_freep) NftBatch *empty = nft_batch_new();
        g_assert_cmpint(nft_socket_commit(s, empty), ==, 0);
}

static NetState *random_state(void) {
        GString *t = g_string_new("[Uplink]\nInterface=up0\nDNS=192.0.2.53\n"
                                  "[Downstream]\nInterface=down0\nAddress=10.100.0.1/16\n");
        for (unsigned idx = 1; idx <= 24; idx++) {
                int variant = g_test_rand_int_range(0, 4);
                if (variant == 0)
                        continue;
                g_string_append_printf(t, "[Client c%u]\nMAC=52:54:00:00:%02x:01\nAddress=10.100.1.%u\n"
                                       "Rule=default drop\nRule=accept dns\n", idx, idx, idx);
                for (int r = 1; r < variant * 4; r++)
                        g_string_append_printf(t, "Rule=accept 198.51.100.%d proto tcp port %d\n", r, 1000 + r);
        }
        NetState *s = NULL;
        g_autofree char *errors = NULL;
        g_assert_cmpint(netstate_parse("random", t->str, NULL, &s, &errors), ==, 0);
        g_string_free(t, TRUE);
        return s;
}

static void apply_and_check(NftSocket *nft, Ruleset **applied, const NetState *s) {
        g_assert_cmpint(ruleset_apply(nft, applied, s, NULL), ==, 0);
        _cleanup_(ruleset_freep) Ruleset *kernel = NULL;
        g_assert_cmpint(ruleset_read(nft, &kernel), ==, 0);
        _cleanup_(ruleset_freep) Ruleset *desired = ruleset_compile(s);
        _cleanup_(nft_batch_freep) NftBatch *b = nft_batch_new();
        RulesetStats st = {};
        ruleset_diff(kernel, desired, b, &st);
        g_assert_cmpuint(st.messages, ==, 0);
}

static void test_incremental_diff(void) {
        _cleanup_(nft_socket_freep) NftSocket *nft = NULL;
        _cleanup_(ruleset_freep) Ruleset *applied = NULL;
        g_assert_cmpint(nft_socket_open(&nft), ==, 0);
        g_assert_cmpint(ruleset_read(nft, &applied), ==, 0);
        NetState *prev = NULL;
        for (int round = 0; round < 60; round++) {
                /* A fresh parse: new clients, some equal to the applied ones. */
                NetState *s = random_state();
                apply_and_check(nft, &applied, s);
                /* Copies sharing the clients: one removed, then back (what RemoveClient/AddClient do). */
                if (s->clients->len > 1) {
                        NetState *c = netstate_copy(s);
                        const NetClient *victim = c->clients->pdata[g_test_rand_int_range(0, c->clients->len)];
                        g_autofree char *name = g_strdup(victim->name);
                        g_assert_cmpint(netstate_remove_client(c, name), ==, 0);
                        apply_and_check(nft, &applied, c);
                        apply_and_check(nft, &applied, s);
                        netstate_free(c);
                }
                if (prev)
                        netstate_free(prev);
                prev = s;
        }
        netstate_free(prev);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0) {
                printf("1..0 # SKIP needs root for a private network namespace\n");
                return 77;
        }
        g_test_add_func("/nft-batch/all-or-nothing", test_all_or_nothing);
        g_test_add_func("/nft-batch/incremental-diff", test_incremental_diff);
        return g_test_run();
}
