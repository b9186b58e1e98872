/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ClipboardWire: the header line of a clipboard stream (docs/dbus-api.md,
 * "Clipboard"), how a copy or a paste too large for one D-Bus message
 * travels.  Both are streams between a guest and the broker itself (target
 * "@host"); the broker keeps the data as it keeps a small copy's:
 *
 *   vmfed.Clipboard.Copy   guest -> broker  "VMFED-CLIP1 SIZE MIME\n", SIZE bytes, EOF
 *                          broker -> guest  EOF; the stream's status: 0 copied,
 *                                           1 refused (the message says why)
 *   vmfed.Clipboard.Paste  broker -> guest  "VMFED-CLIP1 SIZE MIME SOURCE\n", SIZE bytes, EOF
 *
 * Pure functions, shared by the broker, vmfed-guest and the tests.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "services/service-args.h"

#define CLIPBOARD_WIRE_MAGIC "VMFED-CLIP1"
#define CLIPBOARD_WIRE_LINE_MAX 256    /* a header line, without its '\n' */
#define CLIPBOARD_WIRE_SOURCE_MAX 31   /* POLICY_NAME_MAX */
/* Copies and pastes up to this size travel in one D-Bus message, larger ones through a stream. */
#define CLIPBOARD_WIRE_INLINE_MAX (16u << 20)
#define CLIPBOARD_WIRE_COPY_SERVICE "vmfed.Clipboard.Copy"
#define CLIPBOARD_WIRE_PASTE_SERVICE "vmfed.Clipboard.Paste"
#define CLIPBOARD_WIRE_HOST "@host"

/*
 * The header line with its '\n'.  source NULL: a copy's.  -EINVAL when
 * mime is not a normalized MIME type or source not a VM name.
 */
int clipboard_wire_format(char buf[CLIPBOARD_WIRE_LINE_MAX + 2], uint64_t size, const char *mime,
                          const char *source);

/*
 * Parse a header line (without its '\n'); with_source: a paste's.  0, or
 * -EBADMSG with *why (a static sentence).  The MIME type must already be
 * normalized (service_args_mime_normalize()).
 */
int clipboard_wire_parse(const char *untrusted_line, size_t len, bool with_source, uint64_t *ret_size,
                         char ret_mime[SERVICE_ARGS_MIME_MAX + 1], char ret_source[CLIPBOARD_WIRE_SOURCE_MAX + 1],
                         const char **why);
