/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Generations of vms.d/ and policy.d/: record, dedupe, list, rollback, crash recovery, pruning, hard links. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fed-test-util.h"
#include "federation/generation.h"

static char *slurp(const char *dir, const char *rel) {
        g_autofree char *p = g_build_filename(dir, rel, NULL);
        char *t = NULL;
        if (read_full_file(p, 65536, &t, NULL) < 0)
                return NULL;
        return t;
}

static void test_generations(void) {
        g_autofree char *tmp = g_dir_make_tmp("vmfed-gen-XXXXXX", NULL);
        g_autofree char *config = g_build_filename(tmp, "etc", NULL), *state = g_build_filename(tmp, "state", NULL);
        g_autofree char *p1 = g_build_filename(config, "vms.d/a.vm", NULL);
        g_autofree char *p2 = g_build_filename(config, "policy.d/30-user.policy", NULL);
        g_autofree char *p3 = g_build_filename(config, "policy.d/inc/extra", NULL);
        g_autofree char *t = NULL, *cmd = NULL;
        g_autoptr(GPtrArray) list = NULL;
        uint64_t n = 0;

        g_assert_cmpuint(generation_latest(state), ==, 0);
        write_text(p1, "[VM]\nRole=app\n");
        write_text(p2, "vmfed.OpenURL * @anyvm @dispvm allow\n");
        write_text(p3, "nested\n");
        g_assert_cmpint(generation_record(config, state, "first", &n), ==, GENERATION_RECORDED);
        g_assert_cmpuint(n, ==, 1);
        /* Unchanged: nothing new. */
        g_assert_cmpint(generation_record(config, state, "again", &n), ==, GENERATION_UNCHANGED);
        g_assert_cmpuint(n, ==, 1);
        write_text(p1, "[VM]\nRole=persona\n");
        g_assert_cmpint(generation_record(config, state, "persona\tnow", &n), ==, GENERATION_RECORDED);
        g_assert_cmpuint(n, ==, 2);
        g_assert_cmpint(unlink(p3), ==, 0);
        g_assert_cmpint(generation_record(config, state, "third", &n), ==, GENERATION_RECORDED);
        g_assert_cmpuint(n, ==, 3);

        g_assert_cmpint(generation_list(state, &list), ==, 0);
        g_assert_cmpuint(list->len, ==, 3);
        g_assert_cmpstr(((Generation *) list->pdata[1])->description, ==, "persona now");
        g_assert_cmpint(((Generation *) list->pdata[0])->time_usec, >, 0);

        /* Roll back to 1: both trees as they were, nested file included; recorded as 4. */
        g_assert_cmpint(generation_rollback(config, state, 1, &n), ==, 0);
        g_assert_cmpuint(n, ==, 4);
        t = slurp(config, "vms.d/a.vm");
        g_assert_cmpstr(t, ==, "[VM]\nRole=app\n");
        g_clear_pointer(&t, g_free);
        t = slurp(config, "policy.d/inc/extra");
        g_assert_cmpstr(t, ==, "nested\n");
        g_clear_pointer(&t, g_free);
        {
                g_autofree char *aside = g_build_filename(config, ".vmfed-rollback", NULL);
                g_assert_false(g_file_test(aside, G_FILE_TEST_EXISTS));
        }
        g_assert_cmpint(generation_rollback(config, state, 42, NULL), ==, -ENOENT);

        /* A crash between the two swaps: vms.d/ from 3, policy.d/ from 1, journal says 3. */
        write_text(p1, "[VM]\nRole=persona\n");
        {
                g_autofree char *j = g_build_filename(state, "generations/rollback.journal", NULL);
                write_text(j, "3\n");
        }
        g_assert_cmpint(generation_recover(config, state), ==, 1);
        g_assert_cmpint(generation_recover(config, state), ==, 0);
        g_assert_false(g_file_test(p3, G_FILE_TEST_EXISTS)); /* policy.d/ of 3 has no inc/extra */
        t = slurp(config, "vms.d/a.vm");
        g_assert_cmpstr(t, ==, "[VM]\nRole=persona\n");

        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        g_assert_cmpint(system(cmd), ==, 0);
}

/* A crash between the rename of .tmp-N to N and the index append: N is not a generation. */
static void test_unindexed(void) {
        g_autofree char *tmp = g_dir_make_tmp("vmfed-gen-XXXXXX", NULL);
        g_autofree char *config = g_build_filename(tmp, "etc", NULL), *state = g_build_filename(tmp, "state", NULL);
        g_autofree char *p1 = g_build_filename(config, "vms.d/a.vm", NULL);
        g_autofree char *orphan = g_build_filename(state, "generations/2/vms.d/a.vm", NULL);
        g_autofree char *half = g_build_filename(state, "generations/.tmp-7/vms.d/a.vm", NULL);
        g_autofree char *two = g_build_filename(state, "generations/2", NULL);
        g_autofree char *seven = g_build_filename(state, "generations/.tmp-7", NULL);
        g_autofree char *one = g_build_filename(state, "generations/1", NULL);
        g_autofree char *cmd = NULL;
        uint64_t n = 0;

        write_text(p1, "[VM]\nRole=app\n");
        g_assert_cmpint(generation_record(config, state, "first", &n), ==, GENERATION_RECORDED);
        write_text(orphan, "[VM]\nRole=persona\n");
        write_text(half, "[VM]\nRole=pers");
        /* At start: gone, the indexed one stays. */
        g_assert_cmpint(generation_recover(config, state), ==, 0);
        g_assert_false(g_file_test(two, G_FILE_TEST_EXISTS));
        g_assert_false(g_file_test(seven, G_FILE_TEST_EXISTS));
        g_assert_true(g_file_test(one, G_FILE_TEST_IS_DIR));
        /* And when recording: the next generation is 2 again, with the right content. */
        write_text(orphan, "[VM]\nRole=persona\n");
        write_text(p1, "[VM]\nRole=disposable\n");
        g_assert_cmpint(generation_record(config, state, "second", &n), ==, GENERATION_RECORDED);
        g_assert_cmpuint(n, ==, 2);
        g_autofree char *t = slurp(two, "vms.d/a.vm");
        g_assert_cmpstr(t, ==, "[VM]\nRole=disposable\n");
        g_assert_cmpuint(generation_latest(state), ==, 2);

        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        g_assert_cmpint(system(cmd), ==, 0);
}

static void write_keep(const char *config, const char *value) {
        g_autofree char *p = g_build_filename(config, "vmfed.conf", NULL);
        g_autofree char *t = g_strdup_printf("[Generations]\nKeepGenerations=%s\n", value);
        write_text(p, t);
}

static bool gen_exists(const char *state, uint64_t n) {
        g_autofree char *p = g_strdup_printf("%s/generations/%" G_GUINT64_FORMAT, state, n);
        return g_file_test(p, G_FILE_TEST_EXISTS);
}

static void assert_listed(const char *state, const uint64_t *want, guint n_want) {
        g_autoptr(GPtrArray) list = NULL;
        g_assert_cmpint(generation_list(state, &list), ==, 0);
        g_assert_cmpuint(list->len, ==, n_want);
        for (guint i = 0; i < n_want; i++)
                g_assert_cmpuint(((Generation *) list->pdata[i])->number, ==, want[i]);
}

/* KeepGenerations= drops the oldest at each record; a pruned number is told apart from one never recorded. */
static void test_prune(void) {
        g_autofree char *tmp = g_dir_make_tmp("vmfed-gen-XXXXXX", NULL);
        g_autofree char *config = g_build_filename(tmp, "etc", NULL), *state = g_build_filename(tmp, "state", NULL);
        g_autofree char *p1 = g_build_filename(config, "vms.d/a.vm", NULL), *cmd = NULL, *t = NULL;
        uint64_t n = 0;

        g_assert_cmpuint(generation_keep(config), ==, 50); /* no vmfed.conf */
        write_keep(config, "3");
        g_assert_cmpuint(generation_keep(config), ==, 3);
        for (int i = 1; i <= 5; i++) {
                g_autofree char *text = g_strdup_printf("[VM]\nRole=app\n# %d\n", i);
                write_text(p1, text);
                g_assert_cmpint(generation_record(config, state, "edit", &n), ==, GENERATION_RECORDED);
                g_assert_cmpuint(n, ==, (uint64_t) i);
        }
        assert_listed(state, (const uint64_t[]) { 3, 4, 5 }, 3);
        g_assert_false(gen_exists(state, 1));
        g_assert_false(gen_exists(state, 2));
        g_assert_true(gen_exists(state, 3));
        g_assert_cmpint(generation_status(state, 1), ==, GENERATION_PRUNED);
        g_assert_cmpint(generation_status(state, 2), ==, GENERATION_PRUNED);
        g_assert_cmpint(generation_status(state, 4), ==, GENERATION_RETAINED);
        g_assert_cmpint(generation_status(state, 0), ==, GENERATION_UNKNOWN);
        g_assert_cmpint(generation_status(state, 6), ==, GENERATION_UNKNOWN);
        g_assert_cmpint(generation_rollback(config, state, 2, NULL), ==, -ENOENT);

        /* A rollback to the oldest kept is recorded as 6 and prunes 3 itself; numbers are never reused. */
        g_assert_cmpint(generation_rollback(config, state, 3, &n), ==, 0);
        g_assert_cmpuint(n, ==, 6);
        t = slurp(config, "vms.d/a.vm");
        g_assert_cmpstr(t, ==, "[VM]\nRole=app\n# 3\n");
        assert_listed(state, (const uint64_t[]) { 4, 5, 6 }, 3);

        /* Bad values: the default, which keeps all of these. */
        const char *bad[] = { "0", "-1", "abc", "3x", "", "100001" };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                write_keep(config, bad[i]);
                g_assert_cmpuint(generation_keep(config), ==, 50);
        }
        write_text(p1, "[VM]\nRole=persona\n");
        g_assert_cmpint(generation_record(config, state, "edit", &n), ==, GENERATION_RECORDED);
        assert_listed(state, (const uint64_t[]) { 4, 5, 6, 7 }, 4);

        /* Lowered by hand: generation_prune() alone; 0 still keeps the latest. */
        g_assert_cmpint(generation_prune(state, 2), ==, 2);
        assert_listed(state, (const uint64_t[]) { 6, 7 }, 2);
        g_assert_cmpint(generation_prune(state, 0), ==, 1);
        assert_listed(state, (const uint64_t[]) { 7 }, 1);
        g_assert_cmpint(generation_prune(state, 5), ==, 0);
        g_assert_false(gen_exists(state, 6));

        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        g_assert_cmpint(system(cmd), ==, 0);
}

/* A crash inside a prune: the index (the commit point) was rewritten, directories are left; swept at start. */
static void test_prune_crash(void) {
        g_autofree char *tmp = g_dir_make_tmp("vmfed-gen-XXXXXX", NULL);
        g_autofree char *config = g_build_filename(tmp, "etc", NULL), *state = g_build_filename(tmp, "state", NULL);
        g_autofree char *p1 = g_build_filename(config, "vms.d/a.vm", NULL), *cmd = NULL;
        g_autofree char *left = g_build_filename(state, "generations/1/vms.d/a.vm", NULL);
        g_autofree char *renamed = g_build_filename(state, "generations/.tmp-pruned-2/vms.d/a.vm", NULL);
        g_autofree char *renamed_dir = g_build_filename(state, "generations/.tmp-pruned-2", NULL);

        write_keep(config, "1");
        write_text(p1, "[VM]\nRole=app\n");
        g_assert_cmpint(generation_record(config, state, "first", NULL), ==, GENERATION_RECORDED);
        write_text(p1, "[VM]\nRole=persona\n");
        g_assert_cmpint(generation_record(config, state, "second", NULL), ==, GENERATION_RECORDED);
        write_text(p1, "[VM]\nRole=service\n");
        g_assert_cmpint(generation_record(config, state, "third", NULL), ==, GENERATION_RECORDED);
        assert_listed(state, (const uint64_t[]) { 3 }, 1);
        /* What the crash left: 1 not yet renamed, 2 renamed and half removed. */
        write_text(left, "[VM]\nRole=app\n");
        write_text(renamed, "[VM]\nRole=persona\n");
        g_assert_cmpint(generation_recover(config, state), ==, 0);
        g_assert_false(gen_exists(state, 1));
        g_assert_false(g_file_test(renamed_dir, G_FILE_TEST_EXISTS));
        g_assert_true(gen_exists(state, 3));
        g_assert_cmpint(generation_status(state, 1), ==, GENERATION_PRUNED);
        g_assert_cmpint(generation_rollback(config, state, 1, NULL), ==, -ENOENT);

        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        g_assert_cmpint(system(cmd), ==, 0);
}

static struct stat stat_of(const char *dir, const char *rel) {
        g_autofree char *p = g_build_filename(dir, rel, NULL);
        struct stat st;
        g_assert_cmpint(lstat(p, &st), ==, 0);
        return st;
}

/*
 * Unchanged files are hard links to the previous generation's; changed
 * content or mode is a new file; nothing in CONFIG shares an inode with a
 * generation, so editing a live file in place never changes a generation.
 */
static void test_links(void) {
        g_autofree char *tmp = g_dir_make_tmp("vmfed-gen-XXXXXX", NULL);
        g_autofree char *config = g_build_filename(tmp, "etc", NULL), *state = g_build_filename(tmp, "state", NULL);
        g_autofree char *gens = g_build_filename(state, "generations", NULL);
        g_autofree char *pa = g_build_filename(config, "vms.d/a.vm", NULL);
        g_autofree char *pb = g_build_filename(config, "vms.d/b.vm", NULL);
        g_autofree char *pp = g_build_filename(config, "policy.d/inc/x.policy", NULL);
        g_autofree char *cmd = NULL, *t = NULL;
        struct stat a1, a2, b1, b2, p1, p2, a3, live;

        write_text(pa, "[VM]\nRole=app\n");
        write_text(pb, "[VM]\nRole=app\n# b\n");
        write_text(pp, "vmfed.OpenURL * @anyvm @dispvm allow\n");
        g_assert_cmpint(generation_record(config, state, "first", NULL), ==, GENERATION_RECORDED);
        write_text(pb, "[VM]\nRole=persona\n");
        g_assert_cmpint(generation_record(config, state, "second", NULL), ==, GENERATION_RECORDED);
        a1 = stat_of(gens, "1/vms.d/a.vm"), a2 = stat_of(gens, "2/vms.d/a.vm");
        b1 = stat_of(gens, "1/vms.d/b.vm"), b2 = stat_of(gens, "2/vms.d/b.vm");
        p1 = stat_of(gens, "1/policy.d/inc/x.policy"), p2 = stat_of(gens, "2/policy.d/inc/x.policy");
        g_assert_cmpuint(a1.st_ino, ==, a2.st_ino);
        g_assert_cmpuint(a2.st_nlink, ==, 2);
        g_assert_cmpuint(p1.st_ino, ==, p2.st_ino); /* nested directories too */
        g_assert_cmpuint(b1.st_ino, !=, b2.st_ino);
        g_assert_cmpuint(b1.st_nlink, ==, 1);
        g_assert_cmpuint(stat_of(config, "vms.d/a.vm").st_nlink, ==, 1);

        /* Same content, other mode (recorded with another change): a new file with that mode. */
        g_assert_cmpint(chmod(pa, 0600), ==, 0);
        write_text(pb, "[VM]\nRole=service\n");
        g_assert_cmpint(generation_record(config, state, "mode", NULL), ==, GENERATION_RECORDED);
        a3 = stat_of(gens, "3/vms.d/a.vm");
        g_assert_cmpuint(a3.st_ino, !=, a2.st_ino);
        g_assert_cmpuint(a3.st_mode & 07777, ==, 0600);

        /* Rolled back to 1: live files are copies; written in place, generation 1 stays. */
        g_assert_cmpint(generation_rollback(config, state, 1, NULL), ==, 0);
        live = stat_of(config, "vms.d/a.vm");
        g_assert_cmpuint(live.st_nlink, ==, 1);
        g_assert_cmpuint(live.st_mode & 07777, ==, 0644);
        {
                FILE *f = fopen(pa, "w"); /* O_TRUNC, same inode: what an editor may do */
                g_assert_nonnull(f);
                fputs("[VM]\nRole=service\n", f);
                g_assert_cmpint(fclose(f), ==, 0);
        }
        t = slurp(gens, "1/vms.d/a.vm");
        g_assert_cmpstr(t, ==, "[VM]\nRole=app\n");
        g_clear_pointer(&t, g_free);
        t = slurp(gens, "4/vms.d/a.vm"); /* the rollback's own generation */
        g_assert_cmpstr(t, ==, "[VM]\nRole=app\n");

        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        g_assert_cmpint(system(cmd), ==, 0);
}

/* The VMs a rollback could bring back: every retained generation's vms.d/. */
static void test_vm_names(void) {
        g_autofree char *tmp = g_dir_make_tmp("vmfed-gen-XXXXXX", NULL);
        g_autofree char *config = g_build_filename(tmp, "etc", NULL), *state = g_build_filename(tmp, "state", NULL);
        g_autofree char *pa = g_build_filename(config, "vms.d/a.vm", NULL);
        g_autofree char *pb = g_build_filename(config, "vms.d/b.vm", NULL);
        g_autofree char *pc = g_build_filename(config, "vms.d/c.vm", NULL);
        g_autofree char *cmd = NULL;
        g_autoptr(GHashTable) names = NULL;

        g_assert_cmpint(generation_vm_names(state, &names), ==, 0); /* none yet */
        g_assert_cmpuint(g_hash_table_size(names), ==, 0);
        g_clear_pointer(&names, g_hash_table_unref);
        write_keep(config, "2");
        write_text(pa, "[VM]\nRole=app\n");
        g_assert_cmpint(generation_record(config, state, "a", NULL), ==, GENERATION_RECORDED);
        write_text(pb, "[VM]\nRole=app\n");
        g_assert_cmpint(unlink(pa), ==, 0);
        g_assert_cmpint(generation_record(config, state, "b, no a", NULL), ==, GENERATION_RECORDED);
        g_assert_cmpint(generation_vm_names(state, &names), ==, 0);
        g_assert_cmpuint(g_hash_table_size(names), ==, 2);
        g_assert_true(g_hash_table_contains(names, "a"));
        g_assert_true(g_hash_table_contains(names, "b"));
        g_clear_pointer(&names, g_hash_table_unref);
        write_text(pc, "[VM]\nRole=app\n");
        g_assert_cmpint(generation_record(config, state, "b, c: a pruned", NULL), ==, GENERATION_RECORDED);
        g_assert_cmpint(generation_vm_names(state, &names), ==, 0);
        g_assert_cmpuint(g_hash_table_size(names), ==, 2);
        g_assert_false(g_hash_table_contains(names, "a"));
        g_assert_true(g_hash_table_contains(names, "c"));

        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        g_assert_cmpint(system(cmd), ==, 0);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/generation/record-list-rollback-recover", test_generations);
        g_test_add_func("/generation/unindexed-removed", test_unindexed);
        g_test_add_func("/generation/prune", test_prune);
        g_test_add_func("/generation/prune-crash", test_prune_crash);
        g_test_add_func("/generation/hard-links", test_links);
        g_test_add_func("/generation/vm-names", test_vm_names);
        return g_test_run();
}
