/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The lines of a vmfed.OpenFile stream (services/file-open-wire.c,
 * docs/file-open.md): what is taken, what is refused, and the error line
 * cut to fit without splitting a character or a line.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "services/file-open-wire.h"

static int parse(const char *line, uint64_t *size, char name[FILE_OPEN_NAME_MAX + 1]) {
        const char *why = NULL;
        int r = file_open_header_parse(line, strlen(line), size, name, &why);
        g_assert_true(r == 0 || (r == -EBADMSG && why));
        return r;
}

static void test_header(void) {
        char buf[FILE_OPEN_LINE_MAX + 2], name[FILE_OPEN_NAME_MAX + 1];
        uint64_t size;

        g_assert_cmpint(file_open_header_format(buf, 12345, "annual report.pdf"), ==, 0);
        g_assert_cmpstr(buf, ==, "VMFED-OPENFILE1 12345 annual report.pdf\n");
        buf[strlen(buf) - 1] = 0;
        g_assert_cmpint(parse(buf, &size, name), ==, 0);
        g_assert_cmpuint(size, ==, 12345);
        g_assert_cmpstr(name, ==, "annual report.pdf");

        g_assert_cmpint(parse("VMFED-OPENFILE1 18446744073709551615 x", &size, name), ==, 0);
        g_assert_cmpuint(size, ==, UINT64_MAX);
        g_autofree char *n255 = g_strnfill(FILE_OPEN_NAME_MAX, 'n'), *n256 = g_strnfill(FILE_OPEN_NAME_MAX + 1, 'n');
        g_autofree char *longest = g_strconcat("VMFED-OPENFILE1 0 ", n255, NULL);
        g_assert_cmpint(parse(longest, &size, name), ==, 0);
        g_assert_cmpuint(strlen(name), ==, FILE_OPEN_NAME_MAX);

        const char *bad[] = {
                "VMFED-OPENFILE1 18446744073709551616 x", /* over 2^64 - 1 */
                "VMFED-OPENFILE1 05 x",                   /* a second spelling of 5 */
                "VMFED-OPENFILE1 -5 x",
                "VMFED-OPENFILE1 5x",
                "VMFED-OPENFILE1 5 ",
                "VMFED-OPENFILE1 5 ../etc/passwd",
                "VMFED-OPENFILE1 5 .hidden",
                "VMFED-OPENFILE1 5 -rf",
                "VMFED-OPENFILE1 5 a\tb",
                "VMFED-OPENFILE1 5 \xff\xfe",
                "VMFED-OPENFILE2 5 x",
                "VMFED-OPENFILE1",
                "",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_test_message("refused: %s", bad[i]);
                g_assert_cmpint(parse(bad[i], &size, name), ==, -EBADMSG);
        }
        g_autofree char *too_long = g_strconcat("VMFED-OPENFILE1 0 ", n256, NULL);
        g_assert_cmpint(parse(too_long, &size, name), ==, -EBADMSG);
        /* The name is the rest of the line: one starting with a space is " x" (a plain name may). */
        g_assert_cmpint(parse("VMFED-OPENFILE1 5  x", &size, name), ==, 0);
        g_assert_cmpstr(name, ==, " x");
        const char nul[] = "VMFED-OPENFILE1 5 a\0b";
        const char *why;
        g_assert_cmpint(file_open_header_parse(nul, sizeof nul - 1, &size, name, &why), ==, -EBADMSG);
        g_assert_cmpint(file_open_header_format(buf, 1, "a/b"), ==, -EINVAL);
        g_assert_cmpint(file_open_header_format(buf, 1, ".."), ==, -EINVAL);
}

static void test_answer(void) {
        char buf[FILE_OPEN_LINE_MAX + 2];
        g_autofree char *message = NULL;
        uint64_t size;
        bool changed;

        file_open_answer_format(buf, true, 42);
        g_assert_cmpstr(buf, ==, "CHANGED 42\n");
        g_assert_cmpint(file_open_answer_parse(buf, strlen(buf) - 1, &changed, &size, &message), ==, 0);
        g_assert_true(changed);
        g_assert_cmpuint(size, ==, 42);
        file_open_answer_format(buf, false, 42);
        g_assert_cmpstr(buf, ==, "UNCHANGED\n");
        g_assert_cmpint(file_open_answer_parse(buf, strlen(buf) - 1, &changed, &size, &message), ==, 0);
        g_assert_false(changed);

        const char *bad[] = { "CHANGED", "CHANGED ", "CHANGED 1 ", "CHANGED 01", "UNCHANGED ", "unchanged", "OK" };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                g_assert_cmpint(file_open_answer_parse(bad[i], strlen(bad[i]), &changed, &size, &message), ==, -EBADMSG);

        const char *error = "ERROR disk \x1b[2J full\x7f";
        g_assert_cmpint(file_open_answer_parse(error, strlen(error), &changed, &size, &message), ==, -EREMOTEIO);
        g_assert_cmpstr(message, ==, "disk ?[2J full?");
        g_clear_pointer(&message, g_free);
        const char *bidi = "ERROR gpj.\xe2\x80\xae" "exe"; /* U+202E: would show as "exe.jpg" */
        g_assert_cmpint(file_open_answer_parse(bidi, strlen(bidi), &changed, &size, &message), ==, -EREMOTEIO);
        g_assert_cmpstr(message, ==, "gpj.?exe");
}

static void test_error_cut(void) {
        char buf[FILE_OPEN_LINE_MAX + 2];

        file_open_error_format(buf, "two\nlines");
        g_assert_cmpstr(buf, ==, "ERROR two lines\n");
        /* 300 three-byte characters ("ERROR " + 168 of them is 510 bytes, the 169th would end at 513): cut
         * before the one that would be split, one '\n' at the end. */
        GString *s = g_string_new(NULL);
        for (int i = 0; i < 300; i++)
                g_string_append(s, "\xe2\x82\xac");
        file_open_error_format(buf, s->str);
        g_string_free(s, TRUE);
        size_t n = strlen(buf);
        g_assert_cmpuint(n, <=, FILE_OPEN_LINE_MAX + 1);
        g_assert_cmpint(buf[n - 1], ==, '\n');
        g_assert_null(memchr(buf, '\n', n - 1));
        g_assert_true(g_utf8_validate(buf, (gssize) n, NULL));
        g_assert_cmpuint(n, ==, 6 + 168 * 3 + 1);
}

static void test_read_line(void) {
        char line[FILE_OPEN_LINE_MAX + 1];
        size_t len;
        int sv[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
        g_assert_cmpint(write(sv[1], "UNCHANGED\nrest", 14), ==, 14);
        g_assert_cmpint(file_open_read_line(sv[0], line, &len), ==, 0);
        g_assert_cmpstr(line, ==, "UNCHANGED");
        char rest[8];
        g_assert_cmpint(read(sv[0], rest, sizeof rest), ==, 4); /* nothing past the '\n' was taken */
        g_autofree char *big = g_strnfill(FILE_OPEN_LINE_MAX + 1, 'x');
        g_assert_cmpint(write(sv[1], big, strlen(big)), ==, (ssize_t) strlen(big));
        g_assert_cmpint(file_open_read_line(sv[0], line, &len), ==, -EBADMSG);
        g_assert_cmpint(write(sv[1], "\nhalf", 5), ==, 5);
        g_assert_cmpint(file_open_read_line(sv[0], line, &len), ==, 0); /* the overlong line's end */
        close(sv[1]);
        g_assert_cmpint(file_open_read_line(sv[0], line, &len), ==, -EPIPE);
        g_assert_cmpuint(len, ==, 4);
        close(sv[0]);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/file-open-wire/header", test_header);
        g_test_add_func("/file-open-wire/answer", test_answer);
        g_test_add_func("/file-open-wire/error-cut", test_error_cut);
        g_test_add_func("/file-open-wire/read-line", test_read_line);
        return g_test_run();
}
