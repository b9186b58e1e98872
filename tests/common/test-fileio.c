/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "common/fileio.h"
#include "common/macro.h"

static void test_atomic_replace(void) {
        g_autofree char *dir = g_dir_make_tmp("vmfed-fileio-XXXXXX", NULL);
        g_autofree char *path = g_build_filename(dir, "a.policy", NULL);
        _cleanup_free_ char *got = NULL;
        size_t size = 0;

        g_assert_cmpint(write_file_atomic(path, "one\n", 4, 0644), ==, 0);
        g_assert_cmpint(write_file_atomic(path, "two two\n", 8, 0600), ==, 0);
        g_assert_cmpint(read_full_file(path, 1024, &got, &size), ==, 0);
        g_assert_cmpstr(got, ==, "two two\n");
        g_assert_cmpuint(size, ==, 8);

        struct stat st;
        g_assert_cmpint(stat(path, &st), ==, 0);
        g_assert_cmpint(st.st_mode & 0777, ==, 0600);

        /* No temporary file is left behind. */
        GDir *d = g_dir_open(dir, 0, NULL);
        const char *name;
        unsigned n = 0;
        while ((name = g_dir_read_name(d)))
                n++;
        g_dir_close(d);
        g_assert_cmpuint(n, ==, 1);

        /* A name with a slash is refused, nothing is written. */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        g_assert_cmpint(write_file_atomic_at(dfd, "x/y", "z", 1, 0644), ==, -EINVAL);
        g_assert_cmpint(unlink_durable_at(dfd, "a.policy"), ==, 0);
        g_assert_cmpint(unlink_durable_at(dfd, "a.policy"), ==, -ENOENT);
        close(dfd);
        g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/* A writer killed between creating and renaming its temporary file: the next start removes it. */
static void test_stale_temps(void) {
        g_autofree char *dir = g_dir_make_tmp("vmfed-fileio-XXXXXX", NULL);
        g_autofree char *dead = NULL, *live = NULL, *other = NULL, *kept = NULL;
        pid_t pid, child;

        g_assert_true(file_is_atomic_temp(".#50-big.policy.23519.66334873", &pid));
        g_assert_cmpint(pid, ==, 23519);
        g_assert_false(file_is_atomic_temp("50-big.policy", NULL));
        g_assert_false(file_is_atomic_temp(".#x.policy", NULL));
        g_assert_false(file_is_atomic_temp(".#x.policy.abc.66334873", NULL));
        g_assert_false(file_is_atomic_temp(".#x.12.123", NULL));

        child = fork();
        g_assert_cmpint(child, >=, 0);
        if (child == 0)
                _exit(0);
        g_assert_cmpint(waitpid(child, NULL, 0), ==, child);
        dead = g_strdup_printf("%s/.#a.policy.%d.0000abcd", dir, (int) child);
        live = g_strdup_printf("%s/.#b.policy.%d.0000abcd", dir, (int) getpid());
        other = g_build_filename(dir, ".hidden", NULL);
        kept = g_build_filename(dir, "a.policy", NULL);
        for (const char *const *p = (const char *const[]) { dead, live, other, kept, NULL }; *p; p++)
                g_assert_true(g_file_set_contents(*p, "x", 1, NULL));
        g_assert_cmpint(remove_stale_atomic_temps(dir), ==, 1);
        g_assert_false(g_file_test(dead, G_FILE_TEST_EXISTS));
        g_assert_true(g_file_test(live, G_FILE_TEST_EXISTS)); /* its writer runs */
        g_assert_true(g_file_test(other, G_FILE_TEST_EXISTS));
        g_assert_true(g_file_test(kept, G_FILE_TEST_EXISTS));
        g_assert_cmpint(remove_stale_atomic_temps("/nonexistent/vmfed"), ==, 0);
        for (const char *const *p = (const char *const[]) { live, other, kept, NULL }; *p; p++)
                g_unlink(*p);
        g_rmdir(dir);
}

static void test_read_limits(void) {
        g_autofree char *dir = g_dir_make_tmp("vmfed-fileio-XXXXXX", NULL);
        g_autofree char *path = g_build_filename(dir, "big", NULL);
        char data[4096];
        memset(data, 'x', sizeof data);
        g_assert_cmpint(write_file_atomic(path, data, sizeof data, 0644), ==, 0);

        _cleanup_free_ char *got = NULL;
        g_assert_cmpint(read_full_file(path, 4095, &got, NULL), ==, -EFBIG);
        g_assert_null(got);
        g_assert_cmpint(read_full_file(path, 4096, &got, NULL), ==, 0);
        g_assert_cmpuint(strlen(got), ==, 4096);
        g_assert_cmpint(read_full_file(dir, 10, &got, NULL), ==, -EISDIR);
        g_assert_cmpint(read_full_file("/nonexistent/vmfed", 10, &got, NULL), ==, -ENOENT);

        g_autofree char *deep = g_build_filename(dir, "a", "b", "c", NULL);
        g_assert_cmpint(mkdir_parents(deep, 0755), ==, 0);
        g_assert_true(g_file_test(deep, G_FILE_TEST_IS_DIR));
        g_assert_cmpint(mkdir_parents(deep, 0755), ==, 0);

        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        g_assert_cmpint(system(cmd), ==, 0);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/fileio/atomic-replace", test_atomic_replace);
        g_test_add_func("/fileio/read-limits", test_read_limits);
        g_test_add_func("/fileio/stale-temps", test_stale_temps);
        return g_test_run();
}
