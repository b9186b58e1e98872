/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The header line of a clipboard stream (services/clipboard-wire.c): a
 * copy's and a paste's, what is taken and what is refused.  The streams
 * themselves, with the real broker and agents, are in
 * services-clipboard_streams (test_clipboard_streams.py).
 */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "services/clipboard-wire.h"

static int parse(const char *line, bool with_source, uint64_t *size, char mime[SERVICE_ARGS_MIME_MAX + 1],
                 char source[CLIPBOARD_WIRE_SOURCE_MAX + 1]) {
        const char *why = NULL;
        int r = clipboard_wire_parse(line, strlen(line), with_source, size, mime, source, &why);
        g_assert_true(r == 0 || (r == -EBADMSG && why));
        if (r < 0)
                g_test_message("refused (%s): %s", why, line);
        return r;
}

static void test_round_trip(void) {
        char buf[CLIPBOARD_WIRE_LINE_MAX + 2], mime[SERVICE_ARGS_MIME_MAX + 1], source[CLIPBOARD_WIRE_SOURCE_MAX + 1];
        uint64_t size;

        g_assert_cmpint(clipboard_wire_format(buf, 41943040, "image/png", NULL), ==, 0);
        g_assert_cmpstr(buf, ==, "VMFED-CLIP1 41943040 image/png\n");
        buf[strlen(buf) - 1] = 0;
        g_assert_cmpint(parse(buf, false, &size, mime, source), ==, 0);
        g_assert_cmpuint(size, ==, 41943040);
        g_assert_cmpstr(mime, ==, "image/png");
        /* A copy's header is not a paste's, nor the other way round. */
        g_assert_cmpint(parse(buf, true, &size, mime, source), ==, -EBADMSG);

        g_assert_cmpint(clipboard_wire_format(buf, 0, "text/plain", "work-vm_2"), ==, 0);
        g_assert_cmpstr(buf, ==, "VMFED-CLIP1 0 text/plain work-vm_2\n");
        buf[strlen(buf) - 1] = 0;
        g_assert_cmpint(parse(buf, true, &size, mime, source), ==, 0);
        g_assert_cmpuint(size, ==, 0);
        g_assert_cmpstr(source, ==, "work-vm_2");
        g_assert_cmpint(parse(buf, false, &size, mime, source), ==, -EBADMSG);

        /* The longest type and source fit in the line. */
        g_autofree char *sub = g_strnfill(SERVICE_ARGS_MIME_MAX - 12, 'x');
        g_autofree char *long_mime = g_strconcat("application/", sub, NULL);
        g_autofree char *long_vm = g_strnfill(CLIPBOARD_WIRE_SOURCE_MAX, 'v');
        g_assert_cmpuint(strlen(long_mime), ==, SERVICE_ARGS_MIME_MAX);
        g_assert_cmpint(clipboard_wire_format(buf, UINT64_MAX, long_mime, long_vm), ==, 0);
        buf[strlen(buf) - 1] = 0;
        g_assert_cmpint(parse(buf, true, &size, mime, source), ==, 0);
        g_assert_cmpuint(size, ==, UINT64_MAX);
        g_assert_cmpstr(mime, ==, long_mime);
        g_assert_cmpstr(source, ==, long_vm);

        /* What the format refuses to write. */
        g_assert_cmpint(clipboard_wire_format(buf, 1, "Text/Plain", NULL), ==, -EINVAL);
        g_assert_cmpint(clipboard_wire_format(buf, 1, "text/plain; charset=utf-8", NULL), ==, -EINVAL);
        g_assert_cmpint(clipboard_wire_format(buf, 1, "text/plain", "a b"), ==, -EINVAL);
        g_assert_cmpint(clipboard_wire_format(buf, 1, "text/plain", ""), ==, -EINVAL);
}

static void test_refused(void) {
        char mime[SERVICE_ARGS_MIME_MAX + 1], source[CLIPBOARD_WIRE_SOURCE_MAX + 1];
        uint64_t size;
        const char *copy_bad[] = {
                "VMFED-CLIP1 18446744073709551616 text/plain", /* over 2^64 - 1 */
                "VMFED-CLIP1 05 text/plain",                   /* a second spelling of 5 */
                "VMFED-CLIP1 -5 text/plain",
                "VMFED-CLIP1 5text/plain",
                "VMFED-CLIP1 5 ",
                "VMFED-CLIP1 5 Text/Plain",          /* not normalized */
                "VMFED-CLIP1 5 text/plain;charset=utf-8",
                "VMFED-CLIP1 5 textplain",
                "VMFED-CLIP1 5 text//plain",
                "VMFED-CLIP1 5 text/pl\xc3\xa4in",
                "VMFED-CLIP1 5 text/plain\t",
                "VMFED-CLIP1 5 text/plain ",         /* a source where none belongs, empty */
                "VMFED-CLIP2 5 text/plain",
                "VMFED-CLIP1",
                "",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(copy_bad); i++)
                g_assert_cmpint(parse(copy_bad[i], false, &size, mime, source), ==, -EBADMSG);
        const char *paste_bad[] = {
                "VMFED-CLIP1 5 text/plain",
                "VMFED-CLIP1 5 text/plain ",
                "VMFED-CLIP1 5 text/plain a b",
                "VMFED-CLIP1 5 text/plain ../x",
                "VMFED-CLIP1 5 text/plain vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv", /* 32 */
                "VMFED-CLIP1 5 text/plain @host",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(paste_bad); i++)
                g_assert_cmpint(parse(paste_bad[i], true, &size, mime, source), ==, -EBADMSG);

        /* A NUL inside, and a line over the maximum. */
        const char nul[] = "VMFED-CLIP1 5 text/plain\0x";
        const char *why = NULL;
        g_assert_cmpint(clipboard_wire_parse(nul, sizeof nul - 1, false, &size, mime, source, &why), ==, -EBADMSG);
        g_autofree char *huge = g_strnfill(CLIPBOARD_WIRE_LINE_MAX + 1, '9');
        g_assert_cmpint(parse(huge, false, &size, mime, source), ==, -EBADMSG);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/clipboard-wire/round-trip", test_round_trip);
        g_test_add_func("/clipboard-wire/refused", test_refused);
        return g_test_run();
}
