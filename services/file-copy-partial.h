/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FileCopyPartial: a file being received, before it has its name.  An
 * O_TMPFILE in its directory (it vanishes with its fd, whatever happens to
 * the receiver), or where the file system has none a
 * ".vmfed-partial.XXXXXX" file that file_copy_partial_abort() unlinks.
 * Linking never replaces an existing name.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <sys/types.h>

#include "services/file-copy-wire.h"

typedef struct FileCopyPartial {
        int fd;
        int dir_fd;             /* owned: the directory it goes into */
        char tmp_name[sizeof FILE_COPY_PARTIAL_PREFIX + 12];
        bool linked;
} FileCopyPartial;

#define FILE_COPY_PARTIAL_INIT ((FileCopyPartial) { .fd = -EBADF, .dir_fd = -EBADF })

/*
 * Create a partial file in dir_fd (duplicated) with mode (the umask
 * applies).  *use_tmpfile: try O_TMPFILE; cleared when the file system
 * has none, so later files go straight to named partials.
 */
int file_copy_partial_open(FileCopyPartial *p, int dir_fd, mode_t mode, bool *use_tmpfile);
/* Give the complete file name in dir_fd: -EEXIST when it is taken. */
int file_copy_partial_link(FileCopyPartial *p, int dir_fd, const char *name);
/* Close it; unlink a named partial that was not linked.  Idempotent. */
void file_copy_partial_abort(FileCopyPartial *p);
