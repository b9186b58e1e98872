/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FileCopy: files and directories over one stream (vmfed.FileCopy,
 * vmfed.FileMove; the format and the rules are docs/file-copy.md).
 *
 * The sender walks the paths it is given and writes entries; the receiver
 * treats every byte as hostile, writes into a directory through *at()
 * calls relative to it, never follows anything the stream created, and
 * makes a file visible under its name only once it is complete and on
 * disk.  Then the receiver answers with one status line on the same
 * stream, so the sender knows everything arrived (and a move may delete
 * its sources).
 *
 * Errors: -errno, and *error (FILE_COPY_ERROR, code the positive errno)
 * with a sentence for the user.  -EREMOTEIO from the sender: the receiver
 * refused, its reason in the message.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#define FILE_COPY_ERROR (file_copy_error_quark())
#define FILE_COPY_DEFAULT_MAX_BYTES (4ULL << 30)

typedef struct FileCopyStats {
        uint64_t files;
        uint64_t dirs;
        uint64_t symlinks;
        uint64_t bytes;          /* file data */
        int64_t started_ns;      /* sender: CLOCK_REALTIME_COARSE when it began (file_copy_remove_sources) */
} FileCopyStats;

GQuark file_copy_error_quark(void);

/*
 * Send paths (NULL-terminated) on out_fd, a bidirectional stream (socket):
 * each path under its base name.  A path given is followed when it is a
 * symlink; inside directories nothing is followed: a symlink is sent as
 * one when its target is relative and stays inside the copied directory,
 * else the copy is refused.  FIFOs, sockets and devices are refused; the
 * permission bits are sent without setuid, setgid and sticky.  After the
 * end record: shutdown(SHUT_WR) and the receiver's status line.  out_fd may
 * be a pipe only if the caller ignores SIGPIPE (sockets use MSG_NOSIGNAL).
 */
int file_copy_send(int out_fd, char *const *paths, FileCopyStats *stats, GError **error);

/*
 * Receive one stream from in_fd into the existing directory dest_dir,
 * at most max_bytes of file data in all, and write the status line to
 * out_fd (may equal in_fd).  A top-level name that exists already becomes
 * "NAME (1)" ... "NAME (999)" (for files before the extension:
 * "photo (1).jpg"); nothing is ever overwritten.
 */
int file_copy_receive(int in_fd, int out_fd, const char *dest_dir, uint64_t max_bytes, FileCopyStats *stats,
                      GError **error);

/*
 * For vmfed.FileMove, once file_copy_send() returned 0: remove the paths
 * (a symlink given is removed itself, not what it points to, also as
 * "link/"; "." and ".." are the directories they name).  Anything
 * whose ctime is not older than sent->started_ns (changed or created while
 * it was being sent) is kept, and so are the directories holding it:
 * -EBUSY, naming the first.  Other failures go on with the rest and return
 * the first error.
 */
int file_copy_remove_sources(char *const *paths, const FileCopyStats *sent, GError **error);

/* Tests only: receive through named ".vmfed-partial.XXXXXX" files instead of O_TMPFILE. */
void file_copy_receive_set_tmpfile(bool use);
