/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * broker/addressing: client addresses, kept across restarts in
 * STATE/addresses; a broken file; removed VMs' indexes released unless a
 * retained generation has them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "broker/addressing.h"
#include "common/log.h"
#include "federation/generation.h"

static char *tmp_dir(void) {
        g_autoptr(GError) e = NULL;
        char *d = g_dir_make_tmp("vmfed-test-addressing-XXXXXX", &e);
        g_assert_no_error(e);
        return d;
}

static void rm_dir(char *d) {
        g_autofree char *f = g_build_filename(d, "addresses", NULL);
        (void) g_unlink(f);
        g_assert_cmpint(g_rmdir(d), ==, 0);
        g_free(d);
}

static char *lookup(Addressing *a, const char *vm, bool persistent) {
        char *addr = NULL;
        g_assert_cmpint(addressing_lookup(a, vm, persistent, &addr), ==, 0);
        return addr;
}

static char *addresses_file(const char *dir) {
        g_autofree char *f = g_build_filename(dir, "addresses", NULL);
        char *text = NULL;
        if (!g_file_get_contents(f, &text, NULL, NULL))
                return NULL;
        return text;
}

static void write_addresses(const char *dir, const char *text) {
        g_autofree char *f = g_build_filename(dir, "addresses", NULL);
        g_assert_true(g_file_set_contents(f, text, -1, NULL));
}

static void test_default_subnet(void) {
        char *dir = tmp_dir();
        _cleanup_(addressing_freep) Addressing *a = NULL;

        g_assert_cmpint(addressing_new(dir, dir, NULL, &a), ==, 0);
        g_assert_cmpstr(addressing_gateway(a), ==, "10.137.0.1");
        g_assert_cmpuint(addressing_prefixlen(a), ==, 24);
        g_autofree char *x = lookup(a, "work", true);
        g_autofree char *y = lookup(a, "mail", true);
        g_autofree char *x2 = lookup(a, "work", true);
        g_assert_cmpstr(x, ==, "10.137.0.10");
        g_assert_cmpstr(y, ==, "10.137.0.11");
        g_assert_cmpstr(x2, ==, x);
        a = addressing_free(a);
        rm_dir(dir);
}

static void test_other_subnet(void) {
        char *dir = tmp_dir();
        _cleanup_(addressing_freep) Addressing *a = NULL;

        g_assert_cmpint(addressing_new(dir, dir, "192.168.77.0/24", &a), ==, 0);
        g_assert_cmpstr(addressing_gateway(a), ==, "192.168.77.1");
        g_autofree char *x = lookup(a, "work", false);
        g_assert_cmpstr(x, ==, "192.168.77.10");
        a = addressing_free(a);
        rm_dir(dir);
}

/* IPv6: the default ULA derived from the IPv4 subnet (SHA-256 of "vmfed-ula:SUBNET"), Subnet6=, none. */
static void test_ipv6(void) {
        char *dir = tmp_dir();
        _cleanup_(addressing_freep) Addressing *a = NULL;
        const char *bad[] = { "fd00:1::/48", "fd00:1::5/64", "fd00:1::", "10.0.0.0/64", "x/64", "fd00:1::/64x", "" };

        g_assert_cmpint(addressing_new(dir, dir, NULL, &a), ==, 0);
        g_assert_cmpstr(addressing_gateway6(a), ==, "fd2a:f345:cbfe::1");
        g_autofree char *x = lookup(a, "work", false);
        g_autofree char *y = lookup(a, "mail", false);
        g_autofree char *x6 = addressing_address6(a, x);
        g_autofree char *y6 = addressing_address6(a, y);
        g_autofree char *hi = addressing_address6(a, "10.137.0.254");
        g_assert_cmpstr(x6, ==, "fd2a:f345:cbfe::10");
        g_assert_cmpstr(y6, ==, "fd2a:f345:cbfe::11");
        g_assert_cmpstr(hi, ==, "fd2a:f345:cbfe::254");
        g_assert_null(addressing_address6(a, "10.138.0.10")); /* not of the subnet */
        g_assert_null(addressing_address6(a, "10.137.0.0"));
        g_assert_null(addressing_address6(a, "bogus"));

        g_assert_cmpint(addressing_set_subnet6(a, "fd00:137:0:5::/64"), ==, 0);
        g_autofree char *x6b = addressing_address6(a, x);
        g_assert_cmpstr(addressing_gateway6(a), ==, "fd00:137:0:5::1");
        g_assert_cmpstr(x6b, ==, "fd00:137:0:5::10");
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_assert_cmpint(addressing_set_subnet6(a, bad[i]), ==, -EINVAL);
                g_assert_cmpstr(addressing_gateway6(a), ==, "fd00:137:0:5::1"); /* unchanged */
        }
        g_assert_cmpint(addressing_set_subnet6(a, "none"), ==, 0);
        g_assert_null(addressing_gateway6(a));
        g_assert_null(addressing_address6(a, x));
        a = addressing_free(a);

        /* Another IPv4 subnet, another default prefix. */
        g_assert_cmpint(addressing_new(dir, dir, "192.168.77.0/24", &a), ==, 0);
        g_assert_cmpstr(addressing_gateway6(a), ==, "fdf3:257:9309::1");
        a = addressing_free(a);
        rm_dir(dir);
}

static void test_bad_subnets(void) {
        const char *bad[] = { "10.137.0.0/16", "10.137.0.5/24", "10.137.0.0", "x/24", "10.137.0.0/24x",
                              "/24", "", "10.137.0.0/ 24", "2001:db8::/24", "256.1.1.0/24" };
        char *dir = tmp_dir();

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                Addressing *a = NULL;
                g_assert_cmpint(addressing_new(dir, dir, bad[i], &a), ==, -EINVAL);
                g_assert_null(a);
        }
        rm_dir(dir);
}

/* A VM of vms.d keeps its address across a broker restart; a disposable's is not written. */
static void test_persistent_across_restart(void) {
        char *dir = tmp_dir();
        _cleanup_(addressing_freep) Addressing *a = NULL;
        g_autofree char *text = NULL;

        g_assert_cmpint(addressing_new(dir, dir, NULL, &a), ==, 0);
        g_autofree char *p1 = lookup(a, "alpha", true);
        g_autofree char *d1 = lookup(a, "disp1234", false);
        g_autofree char *p2 = lookup(a, "beta", true);
        g_assert_cmpstr(p1, ==, "10.137.0.10");
        g_assert_cmpstr(d1, ==, "10.137.0.11");
        g_assert_cmpstr(p2, ==, "10.137.0.12");
        text = addresses_file(dir);
        g_assert_nonnull(text);
        g_assert_nonnull(strstr(text, "\nalpha 0\n"));
        g_assert_nonnull(strstr(text, "\nbeta 2\n"));
        g_assert_null(strstr(text, "disp1234"));
        a = addressing_free(a);

        /* "Restart": beta keeps .12 although .11 is free now, and a new VM gets .11. */
        g_assert_cmpint(addressing_new(dir, dir, NULL, &a), ==, 0);
        g_autofree char *p2b = lookup(a, "beta", true);
        g_autofree char *n = lookup(a, "gamma", true);
        g_assert_cmpstr(p2b, ==, "10.137.0.12");
        g_assert_cmpstr(n, ==, "10.137.0.11");
        a = addressing_free(a);
        rm_dir(dir);
}

static void test_release(void) {
        char *dir = tmp_dir();
        _cleanup_(addressing_freep) Addressing *a = NULL;

        g_assert_cmpint(addressing_new(dir, dir, NULL, &a), ==, 0);
        g_autofree char *p = lookup(a, "alpha", true);
        g_autofree char *d = lookup(a, "disp1", false);
        g_assert_cmpstr(d, ==, "10.137.0.11");
        addressing_release(a, "disp1");
        addressing_release(a, "alpha");    /* persistent: kept */
        addressing_release(a, "unknown");  /* nothing to do */
        g_autofree char *d2 = lookup(a, "disp2", false);
        g_autofree char *p2 = lookup(a, "alpha", true);
        g_assert_cmpstr(d2, ==, "10.137.0.11");
        g_assert_cmpstr(p2, ==, p);
        a = addressing_free(a);
        rm_dir(dir);
}

static void test_full(void) {
        char *dir = tmp_dir();
        _cleanup_(addressing_freep) Addressing *a = NULL;
        char *addr = NULL;

        g_assert_cmpint(addressing_new(dir, dir, NULL, &a), ==, 0);
        for (unsigned i = 0; i < ADDRESSING_MAX_CLIENTS; i++) {
                g_autofree char *name = g_strdup_printf("disp%u", i);
                g_autofree char *x = lookup(a, name, false);
                g_autofree char *want = g_strdup_printf("10.137.0.%u", ADDRESSING_FIRST_HOST + i);
                g_assert_cmpstr(x, ==, want);
        }
        g_assert_cmpint(addressing_lookup(a, "one-too-many", false, &addr), ==, -ENOSPC);
        g_assert_null(addr);
        addressing_release(a, "disp7");
        g_autofree char *again = lookup(a, "one-too-many", false);
        g_assert_cmpstr(again, ==, "10.137.0.17");
        a = addressing_free(a);
        rm_dir(dir);
}

/*
 * A hand-edited or corrupted STATE/addresses: junk lines, indices out of
 * range, a name twice, an index twice.  Never two VMs with one address.
 */
static void test_broken_file(void) {
        char *dir = tmp_dir();
        _cleanup_(addressing_freep) Addressing *a = NULL;

        write_addresses(dir, "# comment\n"
                             "alpha 3\n"
                             "junk\n"
                             "beta 245\n"           /* out of range */
                             "gamma -1\n"
                             "delta 3\n"            /* alpha's index */
                             "eta 5\n"
                             "eta 6\n"              /* eta again */
                             "epsilon 0 trailing\n"
                             "zeta 1\n");
        g_assert_cmpint(addressing_new(dir, dir, NULL, &a), ==, 0);
        g_autofree char *al = lookup(a, "alpha", true);
        g_autofree char *de = lookup(a, "delta", true);
        g_autofree char *be = lookup(a, "beta", true);
        g_autofree char *ze = lookup(a, "zeta", true);
        g_autofree char *et = lookup(a, "eta", true);
        g_assert_cmpstr(al, ==, "10.137.0.13");
        g_assert_cmpstr(de, !=, al); /* index 3 twice: delta gets a free one */
        g_assert_cmpstr(et, ==, "10.137.0.15"); /* the first line for a name counts */
        g_assert_cmpstr(ze, ==, "10.137.0.11");
        g_assert_cmpstr(be, !=, al);
        g_assert_cmpstr(be, !=, ze);
        g_assert_cmpstr(de, !=, be);
        g_assert_cmpstr(de, !=, ze);
        a = addressing_free(a);

        /* What was written back is consistent: one line per name, no index twice. */
        g_autofree char *text = addresses_file(dir);
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        g_autoptr(GHashTable) names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autoptr(GHashTable) idx = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        for (char **l = lines; *l; l++) {
                if (!**l || **l == '#')
                        continue;
                g_auto(GStrv) w = g_strsplit(*l, " ", -1);
                g_assert_cmpuint(g_strv_length(w), ==, 2);
                g_assert_true(g_hash_table_add(names, g_strdup(w[0])));
                g_assert_true(g_hash_table_add(idx, g_strdup(w[1])));
        }
        g_assert_cmpuint(g_hash_table_size(names), ==, 5); /* alpha beta delta eta zeta */
        rm_dir(dir);
}

/* ---- removed VMs: config_dir/vms.d/ and state_dir/generations/ ------------- */

typedef struct Dirs {
        char *tmp, *config, *state;
} Dirs;

/* On tmpfs when there is one: hundreds of generation records, whose fsyncs are not what is tested here. */
static Dirs dirs_new(void) {
        Dirs d = { .tmp = g_strdup("/dev/shm/vmfed-test-addressing-XXXXXX") };
        if (!g_mkdtemp(d.tmp)) {
                g_free(d.tmp);
                d.tmp = tmp_dir();
        }
        d.config = g_build_filename(d.tmp, "etc", NULL);
        d.state = g_build_filename(d.tmp, "state", NULL);
        g_assert_cmpint(g_mkdir_with_parents(d.state, 0755), ==, 0);
        return d;
}

static void dirs_free(Dirs *d) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", d->tmp);
        g_assert_cmpint(system(cmd), ==, 0);
        g_free(d->tmp);
        g_free(d->config);
        g_free(d->state);
}

static void put(const char *dir, const char *rel, const char *text) {
        g_autofree char *p = g_build_filename(dir, rel, NULL), *parent = g_path_get_dirname(p);
        g_assert_cmpint(g_mkdir_with_parents(parent, 0755), ==, 0);
        g_assert_true(g_file_set_contents(p, text, -1, NULL));
}

static void keep_generations(Dirs *d, unsigned keep) {
        g_autofree char *t = g_strdup_printf("[Generations]\nKeepGenerations=%u\n", keep);
        put(d->config, "vmfed.conf", t);
}

/* AddVM / RemoveVM as the broker does them: the file, then a generation. */
static void vm_add(Dirs *d, const char *vm) {
        g_autofree char *rel = g_strdup_printf("vms.d/%s.vm", vm);
        put(d->config, rel, "[VM]\nRole=app\n");
        g_assert_cmpint(generation_record(d->config, d->state, "add", NULL), ==, GENERATION_RECORDED);
}

static void vm_remove(Dirs *d, const char *vm) {
        g_autofree char *p = g_strdup_printf("%s/vms.d/%s.vm", d->config, vm);
        g_assert_cmpint(g_unlink(p), ==, 0);
        g_assert_cmpint(generation_record(d->config, d->state, "remove", NULL), ==, GENERATION_RECORDED);
}

/* n running disposables dispFROM… (each takes a free index). */
static void fill(Addressing *a, unsigned from, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                g_autofree char *name = g_strdup_printf("disp%u", from + i);
                g_free(lookup(a, name, false));
        }
}

static void unfill(Addressing *a, unsigned from, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                g_autofree char *name = g_strdup_printf("disp%u", from + i);
                addressing_release(a, name);
        }
}

/* 300 VMs added, run, stopped and removed one after the other: never -ENOSPC, never one address twice. */
static void test_many_removed(void) {
        Dirs d = dirs_new();
        _cleanup_(addressing_freep) Addressing *a = NULL;

        keep_generations(&d, 5);
        g_assert_cmpint(addressing_new(d.config, d.state, NULL, &a), ==, 0);
        vm_add(&d, "netvm-client-kept"); /* one that stays, running all along */
        g_autofree char *kept = lookup(a, "netvm-client-kept", true);
        for (unsigned i = 0; i < 300; i++) {
                g_autofree char *vm = g_strdup_printf("vm%u", i);
                char *addr = NULL;
                vm_add(&d, vm);
                g_assert_cmpint(addressing_lookup(a, vm, true, &addr), ==, 0);
                g_assert_cmpstr(addr, !=, kept);
                g_free(addr);
                addressing_release(a, vm);
                vm_remove(&d, vm);
                if (i % 97 == 0) { /* a broker restart now and then */
                        a = addressing_free(a);
                        g_assert_cmpint(addressing_new(d.config, d.state, NULL, &a), ==, 0);
                        g_free(lookup(a, "netvm-client-kept", true));
                }
        }
        g_autofree char *kept2 = lookup(a, "netvm-client-kept", true);
        g_assert_cmpstr(kept2, ==, kept);
        g_autofree char *text = addresses_file(d.state);
        g_assert_nonnull(text);
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        g_assert_cmpuint(g_strv_length(lines), <=, ADDRESSING_MAX_CLIENTS + 2); /* comment, final "" */
        a = addressing_free(a);
        dirs_free(&d);
}

/*
 * A removed VM that a retained generation still has keeps its index, even
 * when the subnet is full; a rollback (and a broker restart) gives it back
 * its address.  Once that generation is pruned, its index goes to a new VM.
 */
static void test_rollback_keeps_pruned_reused(void) {
        Dirs d = dirs_new();
        _cleanup_(addressing_freep) Addressing *a = NULL;
        uint64_t with_x = 0;
        char *addr = NULL;
        unsigned n;

        g_assert_cmpint(addressing_new(d.config, d.state, NULL, &a), ==, 0);
        vm_add(&d, "x");
        with_x = generation_latest(d.state);
        g_autofree char *x1 = lookup(a, "x", true);
        g_assert_cmpstr(x1, ==, "10.137.0.10");
        addressing_release(a, "x");
        vm_remove(&d, "x");

        /* Full: a new VM cannot have x's index while generation with_x can bring x back. */
        n = ADDRESSING_MAX_CLIENTS - 1;
        fill(a, 0, n);
        vm_add(&d, "y");
        g_assert_cmpint(addressing_lookup(a, "y", true, &addr), ==, -ENOSPC);
        g_assert_null(addr);
        unfill(a, 0, n);
        vm_remove(&d, "y");

        g_assert_cmpint(generation_rollback(d.config, d.state, with_x, NULL), ==, 0);
        a = addressing_free(a);
        g_assert_cmpint(addressing_new(d.config, d.state, NULL, &a), ==, 0);
        g_autofree char *x2 = lookup(a, "x", true);
        g_assert_cmpstr(x2, ==, x1);
        addressing_release(a, "x");

        /* Removed again, and every generation that had it pruned: its index is reused. */
        keep_generations(&d, 1);
        vm_remove(&d, "x");
        g_assert_cmpint(generation_status(d.state, with_x), ==, GENERATION_PRUNED);
        fill(a, 1000, n);
        vm_add(&d, "z");
        g_autofree char *z = lookup(a, "z", true);
        g_assert_cmpstr(z, ==, x1);
        g_autofree char *text = addresses_file(d.state);
        g_assert_null(strstr(text, "\nx "));
        g_assert_nonnull(strstr(text, "\nz 0\n"));
        unfill(a, 1000, n);
        a = addressing_free(a);
        dirs_free(&d);
}

/* A VM removed by hand while it runs keeps its address while it runs, generations or not. */
static void test_running_kept(void) {
        Dirs d = dirs_new();
        _cleanup_(addressing_freep) Addressing *a = NULL;
        char *addr = NULL;
        unsigned n;

        keep_generations(&d, 1);
        g_assert_cmpint(addressing_new(d.config, d.state, NULL, &a), ==, 0);
        vm_add(&d, "x");
        g_autofree char *x = lookup(a, "x", true);
        vm_remove(&d, "x"); /* no generation has x now */
        n = ADDRESSING_MAX_CLIENTS - 1;
        fill(a, 0, n);
        vm_add(&d, "y");
        g_assert_cmpint(addressing_lookup(a, "y", true, &addr), ==, -ENOSPC);
        addressing_release(a, "x"); /* x stops: now it can go */
        g_autofree char *y = lookup(a, "y", true);
        g_assert_cmpstr(y, ==, x);
        unfill(a, 0, n);
        a = addressing_free(a);
        dirs_free(&d);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        log_set_max_level(LOG_CRIT);
        g_test_add_func("/addressing/default-subnet", test_default_subnet);
        g_test_add_func("/addressing/other-subnet", test_other_subnet);
        g_test_add_func("/addressing/bad-subnets", test_bad_subnets);
        g_test_add_func("/addressing/ipv6", test_ipv6);
        g_test_add_func("/addressing/persistent-across-restart", test_persistent_across_restart);
        g_test_add_func("/addressing/release", test_release);
        g_test_add_func("/addressing/full", test_full);
        g_test_add_func("/addressing/broken-file", test_broken_file);
        g_test_add_func("/addressing/300-removed-never-full", test_many_removed);
        g_test_add_func("/addressing/rollback-keeps-pruned-reused", test_rollback_keeps_pruned_reused);
        g_test_add_func("/addressing/running-kept", test_running_kept);
        return g_test_run();
}
