/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "common/fileio.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"

int read_full_file(const char *path, size_t max_size, char **ret, size_t *sizep) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t size = 0, alloc;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((size_t) st.st_size > max_size)
                return -EFBIG;

        /* The size may change under us; read until EOF but never past max. */
        alloc = (size_t) st.st_size + 1;
        buf = malloc(alloc);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (size + 1 >= alloc) {
                        if (alloc > max_size) {
                                /* Full at the limit: only EOF may follow. */
                                char probe;
                                ssize_t k = read(fd, &probe, 1);
                                if (k < 0 && errno == EINTR)
                                        continue;
                                if (k < 0)
                                        return negative_errno();
                                if (k > 0)
                                        return -EFBIG;
                                break;
                        }
                        alloc = alloc * 2 > max_size + 1 ? max_size + 1 : alloc * 2;
                        char *n = realloc(buf, alloc);
                        if (!n)
                                return -ENOMEM;
                        buf = n;
                }
                ssize_t k = read(fd, buf + size, alloc - 1 - size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                size += (size_t) k;
                if (size > max_size)
                        return -EFBIG;
        }
        buf[size] = 0;
        *ret = steal_pointer(&buf);
        if (sizep)
                *sizep = size;
        return 0;
}

static int write_all(int fd, const void *data, size_t size) {
        const char *p = data;
        while (size > 0) {
                ssize_t k = write(fd, p, size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += k;
                size -= (size_t) k;
        }
        return 0;
}

static int fsync_dir_at(int dir_fd) {
        _cleanup_close_ int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

int write_file_atomic_at(int dir_fd, const char *name, const void *data, size_t size, mode_t mode) {
        char tmp[PATH_MAX];
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (strchr(name, '/'))
                return -EINVAL;
        if ((size_t) snprintf(tmp, sizeof tmp, ".#%s.%ld.%08x", name, (long) getpid(),
                              (unsigned) random()) >= sizeof tmp)
                return -ENAMETOOLONG;

        fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();

        r = write_all(fd, data, size);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = negative_errno();
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlinkat(dir_fd, tmp, 0);
                return r;
        }
        return fsync_dir_at(dir_fd);
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) {
        const char *slash = strrchr(path, '/');
        _cleanup_close_ int dir_fd = -EBADF;

        if (!slash)
                return write_file_atomic_at(AT_FDCWD, path, data, size, mode);

        _cleanup_free_ char *dir = strndup(path, slash == path ? 1 : (size_t) (slash - path));
        if (!dir)
                return -ENOMEM;
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return negative_errno();
        return write_file_atomic_at(dir_fd, slash + 1, data, size, mode);
}

bool file_is_atomic_temp(const char *name, pid_t *ret_pid) {
        const char *rnd, *pid;
        char *end;
        long v;

        if (strncmp(name, ".#", 2) != 0)
                return false;
        rnd = strrchr(name, '.');
        if (!rnd || rnd - name < 3 || strlen(rnd + 1) != 8)
                return false;
        for (pid = rnd - 1; pid > name + 2 && *pid != '.'; pid--)
                ;
        if (*pid != '.' || pid == rnd - 1)
                return false;
        errno = 0;
        v = strtol(pid + 1, &end, 10);
        if (errno != 0 || end != rnd || v <= 0)
                return false;
        if (ret_pid)
                *ret_pid = (pid_t) v;
        return true;
}

int remove_stale_atomic_temps(const char *dir) {
        _cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        struct dirent *de;
        int n = 0;

        if (dir_fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        d = fdopendir(fcntl(dir_fd, F_DUPFD_CLOEXEC, 3));
        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                pid_t pid;

                if (!file_is_atomic_temp(de->d_name, &pid))
                        continue;
                if (kill(pid, 0) == 0 || errno != ESRCH)
                        continue; /* its writer may still be at it */
                if (unlinkat(dir_fd, de->d_name, 0) == 0)
                        n++;
        }
        closedir(d);
        if (n > 0)
                (void) fsync_dir_at(dir_fd);
        return n;
}

int unlink_durable_at(int dir_fd, const char *name) {
        if (unlinkat(dir_fd, name, 0) < 0)
                return negative_errno();
        return fsync_dir_at(dir_fd);
}

int mkdir_parents(const char *path, mode_t mode) {
        char buf[PATH_MAX];

        if (strlen(path) >= sizeof buf)
                return -ENAMETOOLONG;
        strcpy(buf, path);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}
