/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/*
 * Text from a guest (or anything the broker relays from one), made safe to
 * show in a GtkLabel with gtk_label_set_text() — never as markup:
 *   - invalid UTF-8 becomes U+FFFD;
 *   - control and format characters (C0/C1, bidi embeddings, overrides and
 *     isolates, LRM/RLM/ALM, zero-width joiners, BOM, ...) are shown as
 *     "<U+XXXX>", so nothing reorders or hides the text around them;
 *   - at most max_chars characters are kept; the rest is dropped and
 *     "… (N more bytes)" appended.
 * Returns a new string (g_free).
 */
char *safetext_make(const char *untrusted, size_t max_chars);

/* Whether c is shown as "<U+XXXX>" by safetext_make(). */
gboolean safetext_char_is_hidden(gunichar c);
