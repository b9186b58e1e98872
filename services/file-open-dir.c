/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/file-open-dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "common/log.h"
#include "common/macro.h"

#define PREFIX "open-"
#define DEPTH_MAX 32 /* what a viewer makes in there; deeper is left (and logged) */

/* Everything inside the directory fd (consumed), depth-first, never following a symlink. */
static void remove_children(int fd, unsigned depth) {
        DIR *d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) == 0 || (errno != EISDIR && errno != EPERM))
                        continue;
                int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0)
                        continue;
                if (depth >= DEPTH_MAX) {
                        log_warning("Not removing %s: more than %d directories deep.", de->d_name, DEPTH_MAX);
                        safe_close(sub);
                        continue;
                }
                remove_children(sub, depth + 1);
                (void) unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
        }
        closedir(d);
}

/* BASE/NAME and all in it. */
static void remove_at(int base_fd, const char *name) {
        int fd = openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
                remove_children(fd, 0);
        if (unlinkat(base_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                log_warning("Cannot remove %s: %s", name, g_strerror(errno));
}

/* open-* directories nobody holds: their handlers were killed. */
static void sweep(int base_fd) {
        int fd = openat(base_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                safe_close(fd);
                return;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, PREFIX, strlen(PREFIX)) != 0)
                        continue;
                _cleanup_close_ int sub = openat(base_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0 || flock(sub, LOCK_EX | LOCK_NB) < 0)
                        continue; /* in use (or not a directory of ours) */
                log_info("Removing %s, left by a handler that was stopped.", de->d_name);
                remove_at(base_fd, de->d_name);
        }
        closedir(d);
}

int file_open_dir_new(const char *base, FileOpenDir **ret) {
        if (g_mkdir_with_parents(base, 0700) < 0)
                return -errno;
        _cleanup_close_ int base_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        /* BASE locked while sweeping and making ours: a directory made but not locked yet is not stale. */
        if (base_fd < 0 || flock(base_fd, LOCK_EX) < 0)
                return -errno;
        sweep(base_fd);
        g_autofree char *path = g_build_filename(base, PREFIX "XXXXXX", NULL);
        if (!g_mkdtemp_full(path, 0700))
                return -errno;
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || flock(fd, LOCK_EX) < 0) {
                int err = errno;
                safe_close(fd);
                (void) rmdir(path);
                return -err;
        }
        FileOpenDir *d = g_new(FileOpenDir, 1);
        d->fd = fd;
        d->path = steal_pointer(&path);
        *ret = d;
        return 0;
}

FileOpenDir *file_open_dir_free(FileOpenDir *d) {
        if (!d)
                return NULL;
        g_autofree char *parent = g_path_get_dirname(d->path), *name = g_path_get_basename(d->path);
        _cleanup_close_ int base_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (base_fd >= 0)
                remove_at(base_fd, name);
        safe_close(d->fd); /* unlocked once it is gone */
        g_free(d->path);
        g_free(d);
        return NULL;
}
