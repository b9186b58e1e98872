/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/file-copy-partial.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "common/macro.h"

void file_copy_partial_abort(FileCopyPartial *p) {
        p->fd = safe_close(p->fd);
        if (p->tmp_name[0] && !p->linked)
                (void) unlinkat(p->dir_fd, p->tmp_name, 0);
        p->tmp_name[0] = 0;
        p->dir_fd = safe_close(p->dir_fd);
}

static int partial_open_named(FileCopyPartial *p, mode_t mode) {
        static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

        for (int tries = 0; tries < 100; tries++) {
                char *s = stpcpy(p->tmp_name, FILE_COPY_PARTIAL_PREFIX);
                for (int i = 0; i < 6; i++)
                        *s++ = chars[g_random_int_range(0, sizeof chars - 1)];
                *s = 0;
                p->fd = openat(p->dir_fd, p->tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
                if (p->fd >= 0)
                        return 0;
                if (errno != EEXIST)
                        break;
        }
        int k = -errno;
        p->tmp_name[0] = 0;
        return k;
}

int file_copy_partial_open(FileCopyPartial *p, int dir_fd, mode_t mode, bool *use_tmpfile) {
        p->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        if (p->dir_fd < 0)
                return -errno;
        if (*use_tmpfile) {
                p->fd = openat(dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
                if (p->fd >= 0)
                        return 0;
                if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
                        return -errno;
                *use_tmpfile = false; /* this file system has none */
        }
        return partial_open_named(p, mode);
}

int file_copy_partial_link(FileCopyPartial *p, int dir_fd, const char *name) {
        if (!p->tmp_name[0]) {
                char path[64];
                snprintf(path, sizeof path, "/proc/self/fd/%d", p->fd);
                if (linkat(AT_FDCWD, path, dir_fd, name, AT_SYMLINK_FOLLOW) < 0)
                        return -errno;
        } else if (renameat2(p->dir_fd, p->tmp_name, dir_fd, name, RENAME_NOREPLACE) < 0) {
                if (errno != EINVAL && errno != ENOSYS)
                        return -errno;
                /* no RENAME_NOREPLACE on this file system: link (never replaces) and unlink */
                if (linkat(p->dir_fd, p->tmp_name, dir_fd, name, 0) < 0)
                        return -errno;
                (void) unlinkat(p->dir_fd, p->tmp_name, 0);
        }
        p->linked = true;
        return 0;
}
