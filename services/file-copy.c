/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sending end of a file copy (docs/file-copy.md) and, for a move, the
 * removal of what was sent.  The walk opens every entry relative to its
 * directory with O_NOFOLLOW and checks that what it opened is what it
 * stat'ed, so a tree changed under it is refused, not misread; names and
 * targets get the receiver's own checks (file-copy-wire.c) before they are
 * sent, so a refusal names the local path instead of coming back from the
 * other VM.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "services/file-copy-wire.h"
#include "services/file-copy.h"

#define TX_BUF_SIZE (256u * 1024)

typedef struct Sender {
        int out_fd;
        uint8_t *buf;
        size_t len;
        uint64_t entries;
        FileCopyStats stats;
        GString *name;          /* the entry's name in the stream */
        const char *root;       /* the path given for the current top-level entry */
        size_t top_len;         /* length of its name in the stream */
        char *message;
        bool peer_gone;         /* a write failed: the receiver stopped reading */
} Sender;

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

static void sender_done(Sender *s) {
        g_free(s->buf);
        if (s->name)
                g_string_free(s->name, TRUE);
        g_free(s->message);
}

static int tx_fail(Sender *s, int err, const char *format, ...) G_GNUC_PRINTF(3, 4);
static int tx_fail(Sender *s, int err, const char *format, ...) {
        if (!s->message) {
                va_list ap;
                va_start(ap, format);
                s->message = g_strdup_vprintf(format, ap);
                va_end(ap);
        }
        return err;
}

/* The local path of the current entry, for messages. */
static char *tx_local(const Sender *s) {
        return g_strconcat(s->root, s->name->str + s->top_len, NULL);
}

static int tx_flush(Sender *s) {
        int k = s->len ? file_copy_write_all(s->out_fd, s->buf, s->len) : 0;
        s->len = 0;
        if (k == -EPIPE || k == -ECONNRESET) {
                s->peer_gone = true;
                return tx_fail(s, k, "The receiver stopped reading.");
        }
        return k < 0 ? tx_fail(s, k, "Cannot write the stream: %s", g_strerror(-k)) : 0;
}

static int tx_put(Sender *s, const void *p, size_t n) {
        if (n > TX_BUF_SIZE - s->len) {
                int k = tx_flush(s);
                if (k < 0)
                        return k;
        }
        memcpy(s->buf + s->len, p, n); /* n is at most a header plus a name or target */
        s->len += n;
        return 0;
}

static int tx_header(Sender *s, uint8_t type, const struct stat *st, uint64_t size) {
        uint8_t raw[FILE_COPY_HEADER_SIZE];
        FileCopyHeader h = {
                .type = type,
                .name_len = (uint16_t) s->name->len,
                .mode = st->st_mode & 0777,
                .size = size,
                .mtime_sec = st->st_mtim.tv_sec,
                .mtime_nsec = (uint32_t) st->st_mtim.tv_nsec,
        };

        s->entries++;
        file_copy_header_encode(&h, raw);
        int k = tx_put(s, raw, sizeof raw);
        return k < 0 ? k : tx_put(s, s->name->str, s->name->len);
}

static int tx_file(Sender *s, int fd, const struct stat *st) {
        uint64_t left = (uint64_t) st->st_size;
        int k = tx_header(s, FILE_COPY_FILE, st, left);
        if (k < 0)
                return k;

        while (left > 0) {
                if (s->len == TX_BUF_SIZE && (k = tx_flush(s)) < 0)
                        return k;
                ssize_t n = read(fd, s->buf + s->len, (size_t) MIN(left, (uint64_t) (TX_BUF_SIZE - s->len)));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        g_autofree char *path = tx_local(s);
                        return n < 0 ? tx_fail(s, -errno, "Cannot read %s: %s", path, g_strerror(errno))
                                     : tx_fail(s, -EIO, "%s shrank while it was being sent.", path);
                }
                s->len += (size_t) n;
                left -= (uint64_t) n;
        }
        char probe;
        if (read(fd, &probe, 1) != 0) {
                g_autofree char *path = tx_local(s);
                return tx_fail(s, -EIO, "%s grew while it was being sent.", path);
        }
        s->stats.files++;
        s->stats.bytes += (uint64_t) st->st_size;
        return 0;
}

static int tx_symlink(Sender *s, int dir_fd, const char *child, const struct stat *st, unsigned depth) {
        char target[FILE_COPY_TARGET_MAX + 1];
        g_autofree char *path = tx_local(s);
        const char *why;

        ssize_t n = readlinkat(dir_fd, child, target, sizeof target);
        if (n < 0)
                return tx_fail(s, -errno, "Cannot read the symlink %s: %s", path, g_strerror(errno));
        if (file_copy_target_check(target, (size_t) n, depth, &why) < 0)
                return tx_fail(s, -EINVAL, "Cannot send %s: %s (only relative symlinks that stay inside the copied "
                               "directory are copied).", path, why);
        int k = tx_header(s, FILE_COPY_SYMLINK, st, (uint64_t) n);
        if (k < 0)
                return k;
        s->stats.symlinks++;
        return tx_put(s, target, (size_t) n);
}

static const char *type_name(mode_t mode) {
        return S_ISFIFO(mode) ? "a FIFO" : S_ISSOCK(mode) ? "a socket" : S_ISCHR(mode) || S_ISBLK(mode) ? "a device" : "special";
}

static int tx_dir(Sender *s, int fd, const struct stat *st, unsigned depth);

/* Open what fstatat() saw and check it is still that; -ESTALE when not. */
static int tx_open_same(Sender *s, int dir_fd, const char *child, int flags, const struct stat *st, struct stat *ret) {
        _cleanup_close_ int fd = openat(dir_fd, child, flags | O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        g_autofree char *path = tx_local(s);

        if (fd < 0)
                return tx_fail(s, -errno, "Cannot open %s: %s", path, g_strerror(errno));
        if (fstat(fd, ret) < 0)
                return tx_fail(s, -errno, "Cannot stat %s: %s", path, g_strerror(errno));
        if (ret->st_dev != st->st_dev || ret->st_ino != st->st_ino || (ret->st_mode & S_IFMT) != (st->st_mode & S_IFMT))
                return tx_fail(s, -ESTALE, "%s changed while it was being sent.", path);
        return steal_fd(&fd);
}

/* The entry child of dir_fd, whose name in the stream is s->name. */
static int tx_child(Sender *s, int dir_fd, const char *child, unsigned depth) {
        struct stat st, st2;
        const char *why;

        g_autofree char *path = tx_local(s);
        if (fstatat(dir_fd, child, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return tx_fail(s, -errno, "Cannot stat %s: %s", path, g_strerror(errno));
        if (file_copy_name_check(s->name->str, s->name->len, NULL, &why) < 0)
                return tx_fail(s, -EINVAL, "Cannot send %s: %s.", path, why);
        if (S_ISLNK(st.st_mode))
                return tx_symlink(s, dir_fd, child, &st, depth);
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
                return tx_fail(s, -EOPNOTSUPP, "%s is %s: only files, directories and symlinks can be copied.", path,
                               type_name(st.st_mode));

        int fd = tx_open_same(s, dir_fd, child, S_ISDIR(st.st_mode) ? O_DIRECTORY : O_NONBLOCK, &st, &st2);
        if (fd < 0)
                return fd;
        if (S_ISDIR(st.st_mode))
                return tx_dir(s, fd, &st2, depth);
        int k = tx_file(s, fd, &st2);
        safe_close(fd);
        return k;
}

static gint compare_names(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Send the directory fd (taken) of depth components and what is in it, in name order. */
static int tx_dir(Sender *s, int fd, const struct stat *st, unsigned depth) {
        g_autoptr(GPtrArray) children = g_ptr_array_new_with_free_func(g_free);
        _cleanup_(closedirp) DIR *d = fdopendir(fd);
        struct dirent *de;

        if (!d) {
                int k = -errno;
                safe_close(fd);
                return tx_fail(s, k, "Cannot read a directory: %s", g_strerror(-k));
        }
        int k = tx_header(s, FILE_COPY_DIR, st, 0);
        if (k < 0)
                return k;
        s->stats.dirs++;
        errno = 0;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        g_ptr_array_add(children, g_strdup(de->d_name));
        if (errno != 0) {
                g_autofree char *path = tx_local(s);
                return tx_fail(s, -errno, "Cannot read %s: %s", path, g_strerror(errno));
        }
        g_ptr_array_sort(children, compare_names);
        size_t len = s->name->len;
        for (guint i = 0; i < children->len; i++) {
                g_string_append_c(s->name, '/');
                g_string_append(s->name, children->pdata[i]);
                k = tx_child(s, dirfd(d), children->pdata[i], depth + 1);
                g_string_truncate(s->name, len);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* A path given: followed if it is a symlink, sent as top. */
static int tx_top(Sender *s, const char *path, const char *top) {
        struct stat st, st2;

        s->root = path;
        g_string_assign(s->name, top);
        s->top_len = s->name->len;
        if (stat(path, &st) < 0)
                return tx_fail(s, -errno, "Cannot stat %s: %s", path, g_strerror(errno));
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
                return tx_fail(s, -EOPNOTSUPP, "%s is %s: only files, directories and symlinks can be copied.", path,
                               type_name(st.st_mode));
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return tx_fail(s, -errno, "Cannot open %s: %s", path, g_strerror(errno));
        if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino)
                return tx_fail(s, -ESTALE, "%s changed while it was being sent.", path);
        if (S_ISDIR(st2.st_mode))
                return tx_dir(s, steal_fd(&fd), &st2, 1);
        return tx_file(s, fd, &st2);
}

/* The name each path gets in the stream: its base name, checked, all of them different. */
static int tx_top_names(Sender *s, char *const *paths, GPtrArray *names) {
        g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
        const char *why;

        for (size_t i = 0; paths[i]; i++) {
                char *base = g_path_get_basename(paths[i]);
                g_ptr_array_add(names, base);
                if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
                        g_autofree char *real = realpath(paths[i], NULL);
                        if (!real)
                                return tx_fail(s, -errno, "Cannot resolve %s: %s", paths[i], g_strerror(errno));
                        g_free(base);
                        names->pdata[i] = base = g_path_get_basename(real);
                }
                if (strcmp(base, "/") == 0)
                        return tx_fail(s, -EINVAL, "Cannot send the root directory, name what is in it.");
                if (file_copy_name_check(base, strlen(base), NULL, &why) < 0)
                        return tx_fail(s, -EINVAL, "Cannot send %s: %s.", paths[i], why);
                if (!g_hash_table_add(seen, base))
                        return tx_fail(s, -EINVAL, "Two of the paths have the same name \"%s\": send them one by one.", base);
        }
        return 0;
}

/* The receiver's status line, after the end record (or once it stopped reading). */
static int tx_status(Sender *s, bool compare) {
        char line[FILE_COPY_STATUS_MAX + 1];
        size_t len = 0;
        uint64_t entries = 0, bytes = 0;
        g_autofree char *msg = NULL;

        if (shutdown(s->out_fd, SHUT_WR) < 0 && errno != ENOTSOCK && errno != ENOTCONN)
                return tx_fail(s, -errno, "Cannot end the stream: %s", g_strerror(errno));
        while (len < sizeof line && !memchr(line, '\n', len)) {
                ssize_t n = read(s->out_fd, line + len, sizeof line - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return tx_fail(s, -errno, "Cannot read the receiver's answer: %s", g_strerror(errno));
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        char *nl = memchr(line, '\n', len);
        if (!nl)
                return tx_fail(s, -EPIPE, "The receiver ended the stream without an answer.");
        int k = file_copy_status_parse(line, (size_t) (nl - line), &entries, &bytes, &msg);
        if (k == -EREMOTEIO) {
                g_free(s->message);
                s->message = g_strdup_printf("The receiver refused the copy: %s", msg);
                return k;
        }
        if (k < 0)
                return tx_fail(s, -EBADMSG, "The receiver's answer is garbled.");
        if (compare && (entries != s->entries || bytes != s->stats.bytes))
                return tx_fail(s, -EBADMSG, "The receiver counted %" PRIu64 " entries and %" PRIu64 " bytes, %" PRIu64
                               " and %" PRIu64 " were sent.", entries, bytes, s->entries, s->stats.bytes);
        return 0;
}

static int tx_run(Sender *s, char *const *paths) {
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        uint8_t raw[FILE_COPY_HEADER_SIZE];
        int k;

        if (!paths || !paths[0])
                return tx_fail(s, -EINVAL, "Nothing to send.");
        k = tx_top_names(s, paths, names);
        if (k < 0)
                return k;
        k = tx_put(s, FILE_COPY_MAGIC, FILE_COPY_MAGIC_LEN);
        for (size_t i = 0; k >= 0 && paths[i]; i++)
                k = tx_top(s, paths[i], names->pdata[i]);
        if (k < 0)
                return k;
        file_copy_header_encode(&(FileCopyHeader) { .type = FILE_COPY_END, .size = s->stats.bytes,
                                                    .mtime_sec = (int64_t) s->entries }, raw);
        k = tx_put(s, raw, sizeof raw);
        if (k >= 0)
                k = tx_flush(s);
        return k < 0 ? k : tx_status(s, true);
}

int file_copy_send(int out_fd, char *const *paths, FileCopyStats *stats, GError **error) {
        _cleanup_(sender_done) Sender s = {
                .out_fd = out_fd,
                .buf = g_malloc(TX_BUF_SIZE),
                .name = g_string_new(NULL),
        };
        struct timespec now;

        clock_gettime(CLOCK_REALTIME_COARSE, &now);
        s.stats.started_ns = (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
        int k = tx_run(&s, paths);
        if (k < 0 && s.peer_gone && tx_status(&s, false) == -EREMOTEIO)
                k = -EREMOTEIO; /* the receiver said why it stopped reading */
        if (stats)
                *stats = s.stats;
        if (k < 0)
                g_set_error_literal(error, FILE_COPY_ERROR, -k, s.message ? s.message : g_strerror(-k));
        return k;
}

typedef struct Remover {
        int64_t started_ns;
        unsigned kept;
        char *first_kept;
        int error;
        char *message;
} Remover;

static void rm_error(Remover *m, int err, const char *path) {
        if (m->error == 0) {
                m->error = err;
                m->message = g_strdup_printf("Cannot remove %s: %s", path, g_strerror(-err));
        }
}

static void rm_keep(Remover *m, const char *path) {
        if (m->kept++ == 0)
                m->first_kept = g_strdup(path);
}

static void rm_tree(Remover *m, int dir_fd, const char *name, const char *path, unsigned depth);

static void rm_children(Remover *m, int fd, const char *path, unsigned depth) {
        _cleanup_(closedirp) DIR *d = fdopendir(fd);
        struct dirent *de;

        if (!d) {
                rm_error(m, -errno, path);
                safe_close(fd);
                return;
        }
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                g_autofree char *child = g_build_filename(path, de->d_name, NULL);
                rm_tree(m, dirfd(d), de->d_name, child, depth + 1);
        }
}

static void rm_tree(Remover *m, int dir_fd, const char *name, const char *path, unsigned depth) {
        struct stat st;

        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return rm_error(m, -errno, path);
        if (!S_ISDIR(st.st_mode)) {
                int64_t ctime_ns = (int64_t) st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
                if (ctime_ns >= m->started_ns)
                        return rm_keep(m, path); /* changed (or new) since the copy began */
                if (unlinkat(dir_fd, name, 0) < 0)
                        rm_error(m, -errno, path);
                return;
        }
        if (depth > FILE_COPY_DEPTH_MAX)
                return rm_keep(m, path); /* deeper than anything that was sent */
        int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return rm_error(m, -errno, path);
        rm_children(m, fd, path, depth);
        if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && !(errno == ENOTEMPTY && m->kept > 0))
                rm_error(m, -errno, path);
}

/*
 * The path to remove for a path given: without trailing slashes (so that
 * a symlink given is removed itself), "." and ".." resolved as the sender
 * named them.  NULL with errno.
 */
static char *rm_path(const char *given) {
        g_autofree char *base = g_path_get_basename(given);
        if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
                return realpath(given, NULL);
        size_t n = strlen(given);
        while (n > 1 && given[n - 1] == '/')
                n--;
        if (n == 1 && given[0] == '/') {
                errno = EINVAL;
                return NULL;
        }
        return g_strndup(given, n);
}

int file_copy_remove_sources(char *const *paths, const FileCopyStats *sent, GError **error) {
        Remover m = { .started_ns = sent->started_ns };

        for (size_t i = 0; paths && paths[i]; i++) {
                g_autofree char *path = rm_path(paths[i]);
                if (!path)
                        rm_error(&m, -errno, paths[i]);
                else
                        rm_tree(&m, AT_FDCWD, path, path, 1);
        }
        if (m.kept > 0) {
                g_set_error(error, FILE_COPY_ERROR, EBUSY,
                            "%u entries changed since the copy began and were kept, with the directories holding them "
                            "(the first: %s).", m.kept, m.first_kept);
                m.error = -EBUSY;
        } else if (m.error < 0)
                g_set_error_literal(error, FILE_COPY_ERROR, -m.error, m.message);
        g_free(m.first_kept);
        g_free(m.message);
        return m.error;
}
