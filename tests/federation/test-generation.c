/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Generations of vms.d/ and policy.d/: record, dedupe, list, rollback, crash recovery. */
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

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/generation/record-list-rollback-recover", test_generations);
        g_test_add_func("/generation/unindexed-removed", test_unindexed);
        return g_test_run();
}
