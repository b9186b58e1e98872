/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Clipboard: the federation's one global clipboard (Qubes' model).
 *
 * A copy in VM A (an explicit user action there: Guest.Copy on A's channel)
 * stores the data with its owner A and MIME type; a paste into VM B is the
 * policy service vmfed.Clipboard.Paste with source A and target B, and
 * empties the clipboard afterwards unless ClearAfterPaste=false.
 *
 * The data lives in a sealed memfd (F_SEAL_SHRINK|GROW|WRITE|SEAL), mapped
 * read-only: nobody — including a bug of ours — can change it after the
 * copy, and a paste sends straight from the mapping.  Size limit MaxSize=
 * (default 256 MiB); larger copies are refused with TooLarge, never
 * truncated.  Text types (text/...) must be UTF-8.  A copy that came
 * through a stream (broker/guest-clipboard-stream.c) is filled into a
 * memfd from clipboard_memfd_new() and handed over whole.
 *
 * The admin side sees org.vmfed.Federation1.Clipboard on
 * /org/vmfed/Federation1: Owner, Mime, Size (emit changes) and Clear() —
 * never the contents.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

#define CLIPBOARD_INTERFACE "org.vmfed.Federation1.Clipboard"
#define CLIPBOARD_DEFAULT_MAX_SIZE (256ULL * 1024 * 1024)
#define CLIPBOARD_HARD_MAX_SIZE (4ULL * 1024 * 1024 * 1024)
/* A copy, a paste or an OpenFile in one D-Bus message carries at most this; larger ones go through a
 * stream (services/clipboard-wire.h). */
#define CLIPBOARD_MESSAGE_MAX (16u * 1024 * 1024)

typedef struct Clipboard Clipboard;

Clipboard *clipboard_new(uint64_t max_size, bool clear_after_paste);
Clipboard *clipboard_free(Clipboard *c);

uint64_t clipboard_max_size(Clipboard *c);
bool clipboard_clear_after_paste(Clipboard *c);
/* Bumped by every copy and clear: a paste that waited (ask) checks it did not change. */
uint64_t clipboard_generation(Clipboard *c);

/* Export the admin interface on broker_bus(b). */
int clipboard_register(Broker *b, Clipboard *c);

/*
 * Replace the contents.  mime must be normalized (service-args.h).
 * -EFBIG over the limit, -EILSEQ for text that is not UTF-8; *why (g_free)
 * says so for the user.
 */
int clipboard_copy(Broker *b, Clipboard *c, const char *owner, const char *mime, const void *data, size_t size,
                   char **why);

/* A new memfd of size bytes (close-on-exec, sealable, not sealed), to fill and give to clipboard_copy_memfd(). */
int clipboard_memfd_new(uint64_t size);
/*
 * Replace the contents with memfd (taken, also on error), size bytes with no writable mapping left:
 * sealed and checked here, as clipboard_copy() checks.
 */
int clipboard_copy_memfd(Broker *b, Clipboard *c, const char *owner, const char *mime, int memfd, size_t size,
                         char **why);
/* The contents' sealed memfd, duplicated (close-on-exec): a paste reads it at its own pace. -ENOENT when empty. */
int clipboard_dup_memfd(Clipboard *c);

/* The contents (borrowed, valid until the next copy/clear); -ENOENT when empty. */
int clipboard_peek(Clipboard *c, const char **ret_owner, const char **ret_mime, const void **ret_data,
                   size_t *ret_size);

/* Empty it (emits PropertiesChanged when it held something). */
void clipboard_clear(Broker *b, Clipboard *c, const char *why);
