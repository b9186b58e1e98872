/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
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
        return g_test_run();
}
