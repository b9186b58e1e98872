/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "safetext.h"

#include <string.h>

gboolean safetext_char_is_hidden(gunichar c) {
        switch (g_unichar_type(c)) {
        case G_UNICODE_CONTROL:     /* C0, DEL, C1 */
        case G_UNICODE_FORMAT:      /* bidi controls, ZWJ/ZWNJ, BOM, soft hyphen, tags */
        case G_UNICODE_UNASSIGNED:
        case G_UNICODE_PRIVATE_USE:
        case G_UNICODE_SURROGATE:
        case G_UNICODE_LINE_SEPARATOR:
        case G_UNICODE_PARAGRAPH_SEPARATOR:
                return TRUE;
        default:
                break;
        }
        /* Belt and braces: every bidi control by number, whatever GLib's tables say. */
        return (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c == 0x200e || c == 0x200f ||
               c == 0x061c;
}

char *safetext_make(const char *untrusted, size_t max_chars) {
        g_autofree char *valid = g_utf8_make_valid(untrusted ? untrusted : "", -1);
        GString *out = g_string_sized_new(MIN(strlen(valid), max_chars * 4) + 32);
        size_t n = 0;
        const char *p = valid;

        for (; *p && n < max_chars; p = g_utf8_next_char(p), n++) {
                gunichar c = g_utf8_get_char(p);
                if (safetext_char_is_hidden(c))
                        g_string_append_printf(out, "<U+%04X>", c);
                else
                        g_string_append_unichar(out, c);
        }
        if (*p)
                g_string_append_printf(out, "… (%zu more bytes)", strlen(p));
        return g_string_free(out, FALSE);
}
