/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ClipboardStream: vmfed-guest's end of the clipboard's streams, a copy or
 * a paste too large for one D-Bus message (services/clipboard-wire.h has
 * the bytes).  Blocking; the caller ignores SIGPIPE (sendfile(2) to a
 * stream whose other end is gone).  Errors: -errno, and *error
 * (FILE_COPY_ERROR, code the positive errno) with a sentence for the user.
 */
#pragma once

#include <stdint.h>

#include <glib.h>

#include "services/clipboard-wire.h"

/*
 * What a copy sends: path (NULL: stdin) as an fd at offset 0 and its size.
 * A regular file is used as it is; anything else (a pipe, a terminal) is
 * read into a memfd first.  -EFBIG past max bytes.
 */
int clipboard_stream_input(const char *path, uint64_t max, int *ret_fd, uint64_t *ret_size);

/*
 * Send a vmfed.Clipboard.Copy stream on fd: the header, size bytes of
 * in_fd, shutdown(SHUT_WR); then wait for the broker's end of file.
 * Whether the broker took it is the stream's status (WaitStream).
 */
int clipboard_stream_send(int fd, int in_fd, uint64_t size, const char *mime, GError **error);

/*
 * Receive a vmfed.Clipboard.Paste stream from fd: its header (source VM,
 * type, size), exactly that many bytes to out_fd, then the end of file.
 */
int clipboard_stream_receive(int fd, int out_fd, char ret_source[CLIPBOARD_WIRE_SOURCE_MAX + 1],
                             char ret_mime[SERVICE_ARGS_MIME_MAX + 1], uint64_t *ret_size, GError **error);
