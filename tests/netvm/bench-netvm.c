/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark: one client VM add and one remove (a persona switch's two
 * halves) as vmfed-netd does them -- compile the state, diff against the
 * applied model, one libnftnl transaction, every ack read -- with 10, 1,000
 * and 10,000 firewall rules already in table inet vmfed; beside it, `nft -f`
 * of the same full ruleset (what a reload-style daemon would do), measured
 * in the same run.  Runs in a private network namespace (unshare), so the
 * host's nftables are never touched.  Prints exactly one JSON line.
 *
 * With --dhcp-v6 every client also has an IPv6 address, the state has
 * DHCP=yes, and an add/remove is what vmfed-netd does then: the handover
 * plan, the transaction, the conntrack deletion of the released addresses
 * and dnsmasq's hosts file rewritten and signalled (a real dnsmasq on a
 * dummy downstream interface).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "common/log.h"
#include "netvm/conntrack.h"
#include "netvm/dhcp.h"
#include "netvm/handover.h"
#include "netvm/netstate.h"
#include "netvm/nft-batch.h"
#include "netvm/ruleset.h"

#define RULES_PER_CLIENT 100
#define ITERATIONS 201
#define NFT_RUNS 3

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
        qsort(v, n, sizeof *v, cmp_double);
        return v[n / 2];
}

static bool dhcp_v6;

static char *client_section(unsigned idx, unsigned nrules) {
        GString *s = g_string_new(NULL);
        g_string_append_printf(s, "[Client c%u]\nMAC=52:54:%02x:%02x:%02x:01\nAddress=10.%u.%u.%u\n",
                               idx, (idx >> 16) & 0xff, (idx >> 8) & 0xff, idx & 0xff,
                               100 + ((idx + 2) >> 16), ((idx + 2) >> 8) & 0xff, (idx + 2) & 0xff);
        if (dhcp_v6)
                g_string_append_printf(s, "Address=fd00:100::%x\n", idx + 2);
        g_string_append(s, "Rule=default drop\nRule=accept dns\n");
        for (unsigned r = 1; r < nrules; r++)
                g_string_append_printf(s, "Rule=accept 198.51.%u.%u proto tcp port %u\n",
                                       (r >> 8) & 0xff, r & 0xff, 1000 + r);
        return g_string_free(s, FALSE);
}

static NetState *make_state(unsigned total_rules, bool extra) {
        GString *t = g_string_new("[Uplink]\nInterface=up0\nDNS=192.0.2.53\n"
                                  "[Downstream]\nInterface=down0\nAddress=10.100.0.1/10\n");
        if (dhcp_v6)
                g_string_append(t, "Address=fd00:100::1/64\nDHCP=yes\n");
        unsigned left = total_rules, idx = 1;
        while (left > 0) {
                unsigned n = MIN(left, RULES_PER_CLIENT);
                g_autofree char *c = client_section(idx++, n);
                g_string_append(t, c);
                left -= n;
        }
        if (extra) {
                /* The persona that comes and goes: 10 rules. */
                g_autofree char *c = client_section(60000, 10);
                g_string_append(t, c);
        }
        NetState *s = NULL;
        g_autofree char *errors = NULL;
        if (netstate_parse("bench", t->str, NULL, &s, &errors) < 0)
                g_error("bench state: %s", errors);
        g_string_free(t, TRUE);
        return s;
}

static int run_cmd(const char *cmd) {
        int r = system(cmd);
        return r == 0 ? 0 : -EIO;
}

/*
 * What vmfed-netd's apply does beside the transaction when DHCP and IPv6
 * are on (netd.c, netd_apply()): the handover plan and the conntrack
 * deletion of released addresses, then dnsmasq's hosts file.
 */
typedef struct Extra {
        Conntrack *ct;
        Dhcp *dhcp;
        const NetState *current;
        double ct_ms, dhcp_ms;
} Extra;

static int apply(NftSocket *nft, Ruleset **applied, const NetState *s, RulesetStats *st, Extra *x) {
        if (!x)
                return ruleset_apply(nft, applied, s, st);
        _cleanup_(handover_done) Handover h = {};
        handover_plan(x->current, s, &h);
        int r = ruleset_apply(nft, applied, h.between ? h.between : s, st);
        double t0 = now_ms();
        if (r >= 0 && h.released->len > 0)
                r = conntrack_flush_addrs(x->ct, (const NetAddr *) h.released->data, h.released->len, NULL);
        double t1 = now_ms();
        if (r >= 0 && h.between)
                r = ruleset_apply(nft, applied, s, st);
        double t2 = now_ms();
        if (r >= 0)
                r = dhcp_apply(x->dhcp, s);
        x->ct_ms += t1 - t0;
        x->dhcp_ms += now_ms() - t2;
        x->current = s;
        return r;
}

/* One size: set up, time 201 add/remove pairs, the commits alone, and nft -f; its JSON object. */
static void bench_size(size_t k, unsigned size, Extra *x, const char *ruleset_file, GString *json,
                       double *add_ms, double *remove_ms) {
        _cleanup_(nft_socket_freep) NftSocket *nft = NULL;
        _cleanup_(ruleset_freep) Ruleset *applied = NULL;
        g_autoptr(NetState) base = make_state(size, false);
        g_autoptr(NetState) with = make_state(size, true);
        RulesetStats st = {};
        double adds[ITERATIONS], removes[ITERATIONS];

        if (run_cmd("nft flush ruleset") < 0 || nft_socket_open(&nft) < 0 ||
            ruleset_read(nft, &applied) < 0 || ruleset_apply(nft, &applied, base, &st) < 0)
                g_error("setting up %u rules failed", size);
        if (x) {
                x->current = NULL;
                if (dhcp_apply(x->dhcp, base) < 0)
                        g_error("starting dnsmasq failed");
                x->current = base;
                x->ct_ms = x->dhcp_ms = 0;
        }
        unsigned table_rules = st.rules_added;

        RulesetStats add_st = {}, rm_st = {};
        double user[ITERATIONS];
        for (int i = 0; i < ITERATIONS; i++) {
                /* The userspace share of an add: compile and diff only, nothing sent. */
                double u0 = now_ms();
                _cleanup_(ruleset_freep) Ruleset *desired = ruleset_compile(with);
                _cleanup_(nft_batch_freep) NftBatch *dry = nft_batch_new();
                ruleset_diff(applied, desired, dry, NULL);
                user[i] = now_ms() - u0;
        }
        double user_ms = median(user, ITERATIONS);

        /* The kernel's share: the commits alone (the model is re-read afterwards, untimed). */
        double kern[21], kern_rm[21];
        for (int i = 0; i < 21; i++) {
                for (int dir = 0; dir < 2; dir++) {
                        _cleanup_(ruleset_freep) Ruleset *desired = ruleset_compile(dir ? base : with);
                        _cleanup_(nft_batch_freep) NftBatch *batch = nft_batch_new();
                        ruleset_diff(applied, desired, batch, NULL);
                        double k0 = now_ms();
                        if (nft_socket_commit(nft, batch) < 0)
                                g_error("commit failed");
                        (dir ? kern_rm : kern)[i] = now_ms() - k0;
                        ruleset_free(applied);
                        applied = NULL;
                        if (ruleset_read(nft, &applied) < 0)
                                g_error("reading back failed");
                }
        }
        double kern_rm_ms = median(kern_rm, 21);
        double kern_ms = median(kern, 21);
        for (int i = 0; i < ITERATIONS; i++) {
                double t0 = now_ms();
                if (apply(nft, &applied, with, &add_st, x) < 0)
                        g_error("add failed");
                double t1 = now_ms();
                if (apply(nft, &applied, base, &rm_st, x) < 0)
                        g_error("remove failed");
                double t2 = now_ms();
                adds[i] = t1 - t0;
                removes[i] = t2 - t1;
        }
        if (x)
                x->current = NULL;
        *add_ms = median(adds, ITERATIONS);
        *remove_ms = median(removes, ITERATIONS);
        double add_min = adds[0], remove_min = removes[0]; /* sorted by median() */

        /* nft -f of the same full ruleset (with the extra client), from scratch. */
        if (ruleset_apply(nft, &applied, with, NULL) < 0)
                g_error("full apply failed");
        g_autofree char *dump = g_strdup_printf("nft list ruleset > '%s'", ruleset_file);
        if (run_cmd(dump) < 0)
                g_error("nft list failed");
        double nft_runs[NFT_RUNS];
        g_autofree char *load = g_strdup_printf("nft -f '%s'", ruleset_file);
        for (int i = 0; i < NFT_RUNS; i++) {
                if (run_cmd("nft flush ruleset") < 0)
                        g_error("flush failed");
                double t0 = now_ms();
                if (run_cmd(load) < 0)
                        g_error("nft -f failed");
                nft_runs[i] = now_ms() - t0;
        }
        double nft_ms = median(nft_runs, NFT_RUNS);
        (void) run_cmd("nft flush ruleset");

        g_string_append_printf(json,
                "%s{\"firewall_rules\":%u,\"table_rules\":%u,\"add_client_ms\":%.3f,\"remove_client_ms\":%.3f,"
                "\"add_client_min_ms\":%.3f,\"remove_client_min_ms\":%.3f,\"remove_commit_ms\":%.3f,"
                "\"add_userspace_ms\":%.3f,\"add_commit_ms\":%.3f,\"add_messages\":%u,\"remove_messages\":%u,\"nft_f_full_ruleset_ms\":%.1f",
                k ? "," : "", size, table_rules, *add_ms, *remove_ms, add_min, remove_min, kern_rm_ms,
                user_ms, kern_ms, add_st.messages, rm_st.messages, nft_ms);
        if (x)
                g_string_append_printf(json, ",\"conntrack_mean_ms\":%.3f,\"dhcp_hosts_mean_ms\":%.3f",
                                       x->ct_ms / ITERATIONS, x->dhcp_ms / (2 * ITERATIONS));
        g_string_append_c(json, '}');
}

int main(int argc, char **argv) {
        static const unsigned sizes[] = { 10, 1000, 10000 };
        dhcp_v6 = argc > 1 && strcmp(argv[1], "--dhcp-v6") == 0;
        const char *name = dhcp_v6 ? "netvm-client-transaction-dhcp-v6" : "netvm-client-transaction";
        g_autoptr(GString) json = g_string_new(NULL);
        g_string_printf(json, "{\"benchmark\":\"%s\",\"unit\":\"ms\"", name);
        double add_ms[G_N_ELEMENTS(sizes)], remove_ms[G_N_ELEMENTS(sizes)];

        log_set_max_level(LOG_WARNING);
        if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0) {
                printf("{\"benchmark\":\"%s\",\"skipped\":\"needs root for a private network namespace\"}\n", name);
                return 77;
        }
        g_autofree char *tmp = g_dir_make_tmp("vmfed-bench-XXXXXX", NULL);
        Extra extra = {}, *x = NULL;
        if (dhcp_v6) {
                if (g_find_program_in_path("dnsmasq") == NULL) {
                        printf("{\"benchmark\":\"%s\",\"skipped\":\"no dnsmasq\"}\n", name);
                        return 77;
                }
                /* dnsmasq reads its hosts file as nobody. */
                if (chmod(tmp, 0711) < 0 || run_cmd("ip link add down0 type veth peer name down0p && ip link set down0p up && ip addr add 10.100.0.1/10 dev down0 && "
                                                   "ip addr add fd00:100::1/64 dev down0 nodad && ip link set down0 up") < 0 ||
                    conntrack_open(&extra.ct) < 0)
                        g_error("setting up the downstream side failed");
                g_autofree char *run_dir = g_build_filename(tmp, "run", NULL);
                extra.dhcp = dhcp_new("dnsmasq", run_dir);
                x = &extra;
        }
        g_autofree char *ruleset_file = g_build_filename(tmp, "ruleset.nft", NULL);

        g_string_append(json, ",\"sizes\":[");
        for (size_t k = 0; k < G_N_ELEMENTS(sizes); k++)
                bench_size(k, sizes[k], x, ruleset_file, json, &add_ms[k], &remove_ms[k]);
        size_t last = G_N_ELEMENTS(sizes) - 1;
        double growth_add = add_ms[last] / add_ms[0], growth_rm = remove_ms[last] / remove_ms[0];
        bool ok = add_ms[last] < 2.0 && remove_ms[last] < 2.0 && growth_add < 2.0 && growth_rm < 2.0;
        if (x) {
                /* The conntrack dump walks every bucket of the (global) hash, whatever it holds. */
                g_autofree char *buckets = NULL;
                if (g_file_get_contents("/proc/sys/net/netfilter/nf_conntrack_buckets", &buckets, NULL, NULL))
                        g_string_append_printf(json, "],\"conntrack_buckets\":%u", (unsigned) strtoul(buckets, NULL, 10));
                else
                        g_string_append(json, "]");
                g_string_append(json, ",\"note\":\"remove = transaction + conntrack dump (conntrack_mean_ms)\"");
        } else
                g_string_append(json, "]");
        g_string_append_printf(json, ",\"iterations\":%d,\"growth_10_to_10000\":{\"add\":%.2f,\"remove\":%.2f},"
                               "\"target\":\"< 2 ms and < 2x growth\",\"target_met\":%s}",
                               ITERATIONS, growth_add, growth_rm, ok ? "true" : "false");
        printf("%s\n", json->str);

        unlink(ruleset_file);
        if (x) {
                dhcp_free(extra.dhcp);
                conntrack_free(extra.ct);
                g_autofree char *rm = g_strdup_printf("rm -rf '%s'", tmp);
                (void) run_cmd(rm);
        }
        rmdir(tmp);
        return 0;
}
