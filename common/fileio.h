/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading and atomically replacing small configuration files.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/*
 * Read a whole regular file (at most max_size bytes, else -EFBIG) into a
 * NUL-terminated buffer.  *sizep (optional) gets the length without the NUL.
 */
int read_full_file(const char *path, size_t max_size, char **ret, size_t *sizep);

/*
 * Replace dir_fd/name with data, atomically: write a temporary file in the
 * same directory, fsync it, rename it over the target and fsync the
 * directory.  Readers see either the old or the new content, never a mix,
 * also across a crash.  dir_fd may be AT_FDCWD.
 */
int write_file_atomic_at(int dir_fd, const char *name, const void *data, size_t size, mode_t mode);
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);

/* unlinkat() followed by an fsync of the directory. */
int unlink_durable_at(int dir_fd, const char *name);

/* mkdir -p with the given mode for the directories it creates. */
int mkdir_parents(const char *path, mode_t mode);
