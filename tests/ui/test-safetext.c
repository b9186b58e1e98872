/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit test of ui/safetext.c: what the ask prompt shows of hostile text. */
#include "safetext.h"

#include <string.h>

static void test_plain(void) {
        g_autofree char *s = safetext_make("vmfed.Launch", 200);
        g_assert_cmpstr(s, ==, "vmfed.Launch");
        g_autofree char *n = safetext_make(NULL, 200);
        g_assert_cmpstr(n, ==, "");
}

static void test_markup_stays_text(void) {
        /* Markup is not interpreted (the labels use gtk_label_set_text): it is kept as characters. */
        g_autofree char *s = safetext_make("<b>bold</b> &amp; <span foreground='red'>x</span>", 200);
        g_assert_cmpstr(s, ==, "<b>bold</b> &amp; <span foreground='red'>x</span>");
}

static void test_bidi_and_controls(void) {
        /* "file" RLO "fdp.exe" PDF: shown as "fdp.exe" reversed, were the override applied. */
        g_autofree char *s = safetext_make("file\u202Efdp.exe\u202C\n\t\x1b[31m\u2066x\u2069\u200F\u061C\uFEFF", 200);
        g_assert_cmpstr(s, ==, "file<U+202E>fdp.exe<U+202C><U+000A><U+0009><U+001B>[31m<U+2066>x<U+2069>"
                               "<U+200F><U+061C><U+FEFF>");
        for (gunichar c = 0x202a; c <= 0x202e; c++)
                g_assert_true(safetext_char_is_hidden(c));
        for (gunichar c = 0x2066; c <= 0x2069; c++)
                g_assert_true(safetext_char_is_hidden(c));
        g_assert_false(safetext_char_is_hidden('a'));
        g_assert_false(safetext_char_is_hidden(0x05d0)); /* Hebrew letters are shown, in their own direction */
}

static void test_invalid_utf8(void) {
        g_autofree char *s = safetext_make("a\xff\xfe" "b", 200);
        g_assert_true(g_utf8_validate(s, -1, NULL));
        g_assert_cmpstr(s, ==, "a\uFFFD\uFFFDb");
}

static void test_bounded(void) {
        g_autofree char *big = g_malloc(65537);
        memset(big, 'A', 65536);
        big[65536] = 0;
        g_autofree char *s = safetext_make(big, 200);
        g_assert_true(g_str_has_prefix(s, "AAAA"));
        g_assert_true(g_str_has_suffix(s, "… (65336 more bytes)"));
        g_assert_cmpuint(g_utf8_strlen(s, -1), <=, 200 + 32);
        /* 64 KiB of RLO: each is shown as 8 characters, still at most 200 of the input. */
        GString *rlo = g_string_new(NULL);
        for (int i = 0; i < 65536 / 3; i++)
                g_string_append(rlo, "\u202E");
        g_autofree char *t = safetext_make(rlo->str, 200);
        g_assert_null(strstr(t, "\u202E"));
        g_assert_cmpuint(strlen(t), <=, 200 * 8 + 40);
        g_string_free(rlo, TRUE);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/safetext/plain", test_plain);
        g_test_add_func("/safetext/markup", test_markup_stays_text);
        g_test_add_func("/safetext/bidi", test_bidi_and_controls);
        g_test_add_func("/safetext/invalid-utf8", test_invalid_utf8);
        g_test_add_func("/safetext/bounded", test_bounded);
        return g_test_run();
}
