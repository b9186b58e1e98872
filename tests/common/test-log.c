/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "common/log.h"

/* Run fn with stderr on a pipe and return what it wrote. */
static char *capture(void (*fn)(void)) {
        int p[2], saved = dup(STDERR_FILENO);
        char buf[16384];
        g_assert_cmpint(pipe(p), ==, 0);
        g_assert_cmpint(dup2(p[1], STDERR_FILENO), ==, STDERR_FILENO);
        close(p[1]);
        fn();
        dup2(saved, STDERR_FILENO);
        close(saved);
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        g_assert_cmpint(n, >=, 0);
        buf[n] = 0;
        return g_strdup(buf);
}

static void log_two(void) {
        const char *fields[] = { "VMFED_SOURCE=rivendale", "VMFED_DECISION=allow", NULL };
        log_struct_internal(LOG_INFO, fields, "request %d routed", 7);
        g_assert_cmpint(log_error_errno(-ENOENT, "no such thing: %m"), ==, -ENOENT);
}

static void test_line_format(void) {
        g_autofree char *out = capture(log_two);
        /* Not a terminal: sd-daemon priority prefix, fields on the same line, %m of the given error. */
        g_assert_cmpstr(out, ==,
                        "<6>request 7 routed VMFED_SOURCE=rivendale VMFED_DECISION=allow\n"
                        "<3>no such thing: No such file or directory\n");
}

static void log_long(void) {
        g_autofree char *big = g_strnfill(10000, 'x');
        const char *fields[] = { big, NULL };
        log_struct_internal(LOG_WARNING, fields, "long");
}

static void test_long_line_is_cut(void) {
        g_autofree char *out = capture(log_long);
        size_t n = strlen(out);
        g_assert_cmpuint(n, ==, 4096);
        g_assert_true(g_str_has_prefix(out, "<4>long xxx"));
        g_assert_true(g_str_has_suffix(out, "...\n"));
        g_assert_true(strchr(out, '\n') == out + n - 1); /* one line */
}

static void log_filtered(void) {
        log_set_max_level(LOG_INFO);
        log_debug("hidden");
        g_assert_cmpint(log_debug_errno(-EIO, "hidden too"), ==, -EIO);
        log_info("shown");
}

static void test_level_filter(void) {
        g_autofree char *out = capture(log_filtered);
        g_assert_cmpstr(out, ==, "<6>shown\n");
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/log/line-format", test_line_format);
        g_test_add_func("/log/long-line-is-cut", test_long_line_is_cut);
        g_test_add_func("/log/level-filter", test_level_filter);
        return g_test_run();
}
