/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FileOpen: a file opened in another VM through a vmfed.OpenFile stream
 * (docs/file-open.md), for files too large for Guest1.OpenFile's one
 * message.  The caller sends the file; the handler in the target stores it
 * in a private directory, runs the viewer on it and waits for it, then
 * sends it back when its bytes changed; the caller puts a changed file in
 * place of the original only once all of it has arrived.
 *
 * Both ends block (they run in vmfed-guest and in the handler, never in a
 * daemon's loop) and ignore SIGPIPE (sendfile(2) to a socket whose peer
 * is gone raises it).  Errors: -errno, and *error (FILE_COPY_ERROR, code
 * the positive errno) with a sentence for the user; -EREMOTEIO from the
 * caller: the handler refused or failed, its reason in the message.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/*
 * The caller's end: send the regular file at path on fd (the stream's
 * socket), shutdown(SHUT_WR), wait for the answer.  When the file came
 * back changed (at most max_back bytes) it replaces path: a temporary file
 * beside it, with its permission bits, written, synced and renamed over
 * it (path's symlinks resolved first).  *ret_changed says which.
 */
int file_open_send(int fd, const char *path, uint64_t max_back, bool *ret_changed, GError **error);

/*
 * The handler's end: read one stream from in_fd (at most max_bytes of
 * file data), store the file in a new directory (0700) under dir, run
 * viewer (argv; the file's path appended; stdin /dev/null, stdout onto
 * stderr) and wait for it, answer on out_fd, remove the file and its
 * directory.  *ret_changed (optional) what was answered.  A refusal or a
 * failure is answered too ("ERROR ..."), when the stream still takes it.
 */
int file_open_serve(int in_fd, int out_fd, const char *dir, uint64_t max_bytes, char **viewer, bool *ret_changed,
                    GError **error);
