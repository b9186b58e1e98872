/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading and atomically replacing small configuration files.
 */
#pragma once

#include <stddef.h>
#include <stdbool.h>
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

/* Is name a temporary file of write_file_atomic_at() (".#NAME.PID.RANDOM")?  Sets *ret_pid. */
bool file_is_atomic_temp(const char *name, pid_t *ret_pid);

/*
 * Remove the temporary files write_file_atomic_at() left in dir when its
 * process died between creating and renaming them (kill -9, power loss):
 * those whose process no longer runs.  Returns how many, or -errno.
 */
int remove_stale_atomic_temps(const char *dir);

/* unlinkat() followed by an fsync of the directory. */
int unlink_durable_at(int dir_fd, const char *name);

/* mkdir -p with the given mode for the directories it creates. */
int mkdir_parents(const char *path, mode_t mode);
