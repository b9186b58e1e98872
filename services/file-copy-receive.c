/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The receiving end of a file copy (docs/file-copy.md).  Everything read
 * from the stream is the sender's word: each header, name and target is
 * checked (file-copy-wire.c) before it is used, and everything is created
 * relative to a directory fd, walking only directories this stream created
 * with O_NOFOLLOW, with calls that never follow or replace the last
 * component (mkdirat, symlinkat, linkat, renameat2 RENAME_NOREPLACE).
 * A file's data goes into an O_TMPFILE (or, where the file system has
 * none, a ".vmfed-partial.XXXXXX" file) that gets its name only once it is
 * complete and on disk; on any failure the partial file is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "services/file-copy-wire.h"
#include "services/file-copy.h"

#define RX_BUF_SIZE (256u * 1024)
#define RX_CLASH_MAX 999

static bool tmpfile_allowed = true;

void file_copy_receive_set_tmpfile(bool use) {
        tmpfile_allowed = use;
}

typedef struct Receiver {
        int in_fd;
        int root_fd;
        uint64_t max_bytes;
        uint64_t bytes;
        uint64_t entries;
        FileCopyStats stats;
        GHashTable *tops;       /* the stream's top-level names -> the names they got here */
        char *parent_name;      /* the stream's name of the directory parent_fd is */
        int parent_fd;
        uint8_t *buf;
        size_t have, off;
        bool use_tmpfile;
        char *message;          /* the first failure, for the user */
} Receiver;

static void receiver_done(Receiver *r) {
        safe_close(r->root_fd);
        safe_close(r->parent_fd);
        g_clear_pointer(&r->tops, g_hash_table_unref);
        g_free(r->parent_name);
        g_free(r->buf);
        g_free(r->message);
}

static int rx_fail(Receiver *r, int err, const char *format, ...) G_GNUC_PRINTF(3, 4);
static int rx_fail(Receiver *r, int err, const char *format, ...) {
        if (!r->message) {
                va_list ap;
                va_start(ap, format);
                r->message = g_strdup_vprintf(format, ap);
                va_end(ap);
        }
        return err;
}

/* Bytes from the stream: 0 at its end. */
static ssize_t rx_fill(Receiver *r) {
        r->off = r->have = 0;
        for (;;) {
                ssize_t n = read(r->in_fd, r->buf, RX_BUF_SIZE);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return rx_fail(r, -errno, "Cannot read the stream: %s", g_strerror(errno));
                r->have = (size_t) n;
                return n;
        }
}

static int rx_read(Receiver *r, void *dst, size_t n, const char *what) {
        uint8_t *d = dst;

        while (n > 0) {
                if (r->off == r->have) {
                        ssize_t k = rx_fill(r);
                        if (k < 0)
                                return (int) k;
                        if (k == 0)
                                return rx_fail(r, -EPIPE, "The stream ended in the middle of %s.", what);
                }
                size_t m = MIN(n, r->have - r->off);
                memcpy(d, r->buf + r->off, m);
                r->off += m;
                d += m;
                n -= m;
        }
        return 0;
}

static int rx_data_to_fd(Receiver *r, int fd, uint64_t size, const char *name) {
        while (size > 0) {
                if (r->off == r->have) {
                        ssize_t k = rx_fill(r);
                        if (k < 0)
                                return (int) k;
                        if (k == 0)
                                return rx_fail(r, -EPIPE, "The stream ended in the middle of \"%s\".", name);
                }
                size_t m = (size_t) MIN(size, (uint64_t) (r->have - r->off));
                ssize_t w = write(fd, r->buf + r->off, m);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return rx_fail(r, w < 0 ? -errno : -EIO, "Cannot write \"%s\": %s", name,
                                       g_strerror(w < 0 ? errno : EIO));
                r->off += (size_t) w;
                size -= (uint64_t) w;
        }
        return 0;
}

/* A file being received: unnamed (O_TMPFILE) or under tmp_name in dir_fd (borrowed). */
typedef struct Partial {
        int fd;
        int dir_fd;
        char tmp_name[sizeof FILE_COPY_PARTIAL_PREFIX + 12];
        bool linked;
} Partial;

static void partial_abort(Partial *p) {
        p->fd = safe_close(p->fd);
        if (p->tmp_name[0] && !p->linked)
                (void) unlinkat(p->dir_fd, p->tmp_name, 0);
}

static int partial_open_named(Partial *p, mode_t mode) {
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

static int partial_open(Receiver *r, Partial *p, int dir_fd, mode_t mode) {
        p->dir_fd = dir_fd;
        if (r->use_tmpfile) {
                p->fd = openat(dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
                if (p->fd >= 0)
                        return 0;
                if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
                        return -errno;
                r->use_tmpfile = false; /* this file system has none: named partial files from now on */
        }
        return partial_open_named(p, mode);
}

/* Give the complete file its name; -EEXIST when the name is taken (nothing replaced). */
static int partial_link(Partial *p, int dir_fd, const char *name) {
        if (!p->tmp_name[0]) {
                char path[64];
                snprintf(path, sizeof path, "/proc/self/fd/%d", p->fd);
                if (linkat(AT_FDCWD, path, dir_fd, name, AT_SYMLINK_FOLLOW) < 0)
                        return -errno;
        } else if (renameat2(p->dir_fd, p->tmp_name, dir_fd, name, RENAME_NOREPLACE) < 0) {
                if (errno != EINVAL && errno != ENOSYS)
                        return -errno;
                /* no RENAME_NOREPLACE here: link (never replaces) and unlink */
                if (linkat(p->dir_fd, p->tmp_name, dir_fd, name, 0) < 0)
                        return -errno;
                (void) unlinkat(p->dir_fd, p->tmp_name, 0);
        }
        p->linked = true;
        return 0;
}

/*
 * The name a top-level entry gets when its own is taken: "NAME (n)", for
 * files before the extension ("photo (1).jpg").
 */
static int clash_name(const char *name, unsigned n, bool file, char out[FILE_COPY_COMPONENT_MAX + 1]) {
        const char *dot = file ? strrchr(name, '.') : NULL;
        int k;

        if (n == 0)
                k = snprintf(out, FILE_COPY_COMPONENT_MAX + 1, "%s", name);
        else if (dot && dot != name)
                k = snprintf(out, FILE_COPY_COMPONENT_MAX + 1, "%.*s (%u)%s", (int) (dot - name), name, n, dot);
        else
                k = snprintf(out, FILE_COPY_COMPONENT_MAX + 1, "%s (%u)", name, n);
        return k > FILE_COPY_COMPONENT_MAX ? -ENAMETOOLONG : 0;
}

typedef int (*TopCreate)(Receiver *r, void *ctx, const char *name);

/* Create a top-level entry under its name or the first free "NAME (n)" and remember which. */
static int rx_top_create(Receiver *r, const char *name, bool file, TopCreate create, void *ctx) {
        char cand[FILE_COPY_COMPONENT_MAX + 1];

        if (g_hash_table_contains(r->tops, name))
                return rx_fail(r, -EEXIST, "The sender sent \"%s\" twice.", name);
        for (unsigned n = 0; n <= RX_CLASH_MAX; n++) {
                if (clash_name(name, n, file, cand) < 0)
                        return rx_fail(r, -ENAMETOOLONG, "\"%s\" exists here, and a name for a copy is too long.", name);
                int k = create(r, ctx, cand);
                if (k == -EEXIST)
                        continue;
                if (k < 0)
                        return rx_fail(r, k, "Cannot create \"%s\": %s", cand, g_strerror(-k));
                g_hash_table_insert(r->tops, g_strdup(name), g_strdup(cand));
                return 0;
        }
        return rx_fail(r, -EEXIST, "\"%s\" and %d copies of it exist here already.", name, RX_CLASH_MAX);
}

static int rx_open_dir(Receiver *r, int at_fd, const char *comp, const char *name) {
        int fd = openat(at_fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
                return fd;
        if (errno == ENOENT)
                return rx_fail(r, -ENOENT, "The sender sent \"%s\" before its directory.", name);
        if (errno == ENOTDIR || errno == ELOOP)
                return rx_fail(r, -ENOTDIR, "The sender sent \"%s\" inside something that is not a directory.", name);
        return rx_fail(r, -errno, "Cannot open the directory of \"%s\": %s", name, g_strerror(errno));
}

/* The fd of the directory the entry name (validated, with a '/' at parent_len) goes into. */
static int rx_parent(Receiver *r, const char *name, size_t parent_len, int *ret_fd) {
        if (r->parent_name && strlen(r->parent_name) == parent_len && memcmp(r->parent_name, name, parent_len) == 0) {
                *ret_fd = r->parent_fd;
                return 0;
        }
        g_autofree char *parent = g_strndup(name, parent_len);
        g_auto(GStrv) comps = g_strsplit(parent, "/", -1);
        const char *top = g_hash_table_lookup(r->tops, comps[0]);
        if (!top)
                return rx_fail(r, -ENOENT, "The sender sent \"%s\" before its directory.", name);

        _cleanup_close_ int fd = rx_open_dir(r, r->root_fd, top, name);
        if (fd < 0)
                return fd;
        for (size_t i = 1; comps[i]; i++) {
                int next = rx_open_dir(r, fd, comps[i], name);
                if (next < 0)
                        return next;
                safe_close(fd);
                fd = next;
        }
        safe_close(r->parent_fd);
        g_free(r->parent_name);
        r->parent_fd = steal_fd(&fd);
        r->parent_name = steal_pointer(&parent);
        *ret_fd = r->parent_fd;
        return 0;
}

static int top_mkdir(Receiver *r, void *ctx, const char *name) {
        return mkdirat(r->root_fd, name, *(mode_t *) ctx) < 0 ? -errno : 0;
}

static int top_link(Receiver *r, void *ctx, const char *name) {
        return partial_link(ctx, r->root_fd, name);
}

static int rx_dir(Receiver *r, const FileCopyHeader *h, const char *name, const char *base, int dir_fd) {
        mode_t mode = (h->mode | 0700) & 0777; /* the receiver must write into it, the user remove it */

        r->stats.dirs++;
        if (dir_fd < 0)
                return rx_top_create(r, name, false, top_mkdir, &mode);
        if (mkdirat(dir_fd, base, mode) < 0)
                return errno == EEXIST ? rx_fail(r, -EEXIST, "The sender sent \"%s\" twice.", name)
                                       : rx_fail(r, -errno, "Cannot create \"%s\": %s", name, g_strerror(errno));
        return 0;
}

static int rx_file(Receiver *r, const FileCopyHeader *h, const char *name, const char *base, int dir_fd) {
        _cleanup_(partial_abort) Partial p = { .fd = -EBADF };
        const struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { h->mtime_sec, h->mtime_nsec } };
        int k;

        if (h->size > r->max_bytes - r->bytes)
                return rx_fail(r, -EFBIG, "\"%s\" (%" PRIu64 " bytes) is over the limit: %" PRIu64 " of %" PRIu64
                               " bytes were left.", name, h->size, r->max_bytes - r->bytes, r->max_bytes);
        k = partial_open(r, &p, dir_fd < 0 ? r->root_fd : dir_fd, h->mode);
        if (k < 0)
                return rx_fail(r, k, "Cannot create a file for \"%s\": %s", name, g_strerror(-k));
        k = rx_data_to_fd(r, p.fd, h->size, name);
        if (k < 0)
                return k;
        if (futimens(p.fd, times) < 0 || fdatasync(p.fd) < 0)
                return rx_fail(r, -errno, "Cannot write \"%s\": %s", name, g_strerror(errno));
        r->bytes += h->size;
        r->stats.files++;
        r->stats.bytes += h->size;
        if (dir_fd < 0)
                return rx_top_create(r, name, true, top_link, &p);
        k = partial_link(&p, dir_fd, base);
        if (k == -EEXIST)
                return rx_fail(r, k, "The sender sent \"%s\" twice.", name);
        if (k < 0)
                return rx_fail(r, k, "Cannot create \"%s\": %s", name, g_strerror(-k));
        return 0;
}

static int rx_symlink(Receiver *r, const FileCopyHeader *h, const char *name, unsigned depth, const char *base,
                      int dir_fd) {
        char untrusted_target[FILE_COPY_TARGET_MAX + 1];
        const struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { h->mtime_sec, h->mtime_nsec } };
        const char *why;
        int k;

        k = rx_read(r, untrusted_target, h->size, "a symlink");
        if (k < 0)
                return k;
        untrusted_target[h->size] = 0;
        if (file_copy_target_check(untrusted_target, h->size, depth, &why) < 0)
                return rx_fail(r, -EINVAL, "The sender sent \"%s\", %s.", name, why);
        const char *target = untrusted_target;

        if (symlinkat(target, dir_fd, base) < 0)
                return errno == EEXIST ? rx_fail(r, -EEXIST, "The sender sent \"%s\" twice.", name)
                                       : rx_fail(r, -errno, "Cannot create \"%s\": %s", name, g_strerror(errno));
        if (utimensat(dir_fd, base, times, AT_SYMLINK_NOFOLLOW) < 0)
                return rx_fail(r, -errno, "Cannot set the time of \"%s\": %s", name, g_strerror(errno));
        r->stats.symlinks++;
        return 0;
}

static int rx_entry(Receiver *r, const FileCopyHeader *h) {
        char untrusted_name[FILE_COPY_NAME_MAX + 1];
        const char *why;
        unsigned depth;
        int k, dir_fd = -EBADF;

        k = rx_read(r, untrusted_name, h->name_len, "a name");
        if (k < 0)
                return k;
        untrusted_name[h->name_len] = 0;
        if (file_copy_name_check(untrusted_name, h->name_len, &depth, &why) < 0)
                return rx_fail(r, -EINVAL, "The sender sent %s.", why);
        const char *name = untrusted_name;

        if (++r->entries > FILE_COPY_ENTRIES_MAX)
                return rx_fail(r, -E2BIG, "The sender sent more than %u entries.", FILE_COPY_ENTRIES_MAX);
        const char *slash = strrchr(name, '/');
        const char *base = slash ? slash + 1 : name;
        if (slash) {
                k = rx_parent(r, name, (size_t) (slash - name), &dir_fd);
                if (k < 0)
                        return k;
        }
        switch (h->type) {
        case FILE_COPY_DIR:
                return rx_dir(r, h, name, base, dir_fd);
        case FILE_COPY_FILE:
                return rx_file(r, h, name, base, dir_fd);
        default:
                return rx_symlink(r, h, name, depth, base, dir_fd < 0 ? r->root_fd : dir_fd);
        }
}

static int rx_run(Receiver *r, const char *dest_dir) {
        uint8_t magic[FILE_COPY_MAGIC_LEN], raw[FILE_COPY_HEADER_SIZE];
        FileCopyHeader h;
        const char *why;
        int k;

        r->root_fd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r->root_fd < 0)
                return rx_fail(r, -errno, "Cannot open %s: %s", dest_dir, g_strerror(errno));
        k = rx_read(r, magic, sizeof magic, "its start");
        if (k < 0)
                return k;
        if (memcmp(magic, FILE_COPY_MAGIC, FILE_COPY_MAGIC_LEN) != 0)
                return rx_fail(r, -EBADMSG, "The sender does not speak the file-copy protocol (version 1).");
        for (;;) {
                k = rx_read(r, raw, sizeof raw, "an entry's header");
                if (k < 0)
                        return k;
                if (file_copy_header_decode(raw, &h, &why) < 0)
                        return rx_fail(r, -EBADMSG, "The sender sent %s.", why);
                if (h.type == FILE_COPY_END)
                        break;
                k = rx_entry(r, &h);
                if (k < 0)
                        return k;
        }
        if (h.size != r->bytes || (uint64_t) h.mtime_sec != r->entries)
                return rx_fail(r, -EBADMSG, "The sender's end record says %" PRId64 " entries and %" PRIu64
                               " bytes, it sent %" PRIu64 " and %" PRIu64 ".", h.mtime_sec, h.size, r->entries, r->bytes);
        if (syncfs(r->root_fd) < 0)
                return rx_fail(r, -errno, "Cannot write the files to disk: %s", g_strerror(errno));
        return 0;
}

GQuark file_copy_error_quark(void) {
        return g_quark_from_static_string("vmfed-file-copy-error-quark");
}

int file_copy_receive(int in_fd, int out_fd, const char *dest_dir, uint64_t max_bytes, FileCopyStats *stats,
                      GError **error) {
        _cleanup_(receiver_done) Receiver r = {
                .in_fd = in_fd,
                .root_fd = -EBADF,
                .parent_fd = -EBADF,
                .max_bytes = max_bytes,
                .tops = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
                .buf = g_malloc(RX_BUF_SIZE),
                .use_tmpfile = tmpfile_allowed && access("/proc/self/fd", X_OK) == 0,
        };
        char line[FILE_COPY_STATUS_MAX + 1];

        int k = rx_run(&r, dest_dir);
        if (k < 0 && !r.message)
                r.message = g_strdup(g_strerror(-k));
        file_copy_status_format(line, k, r.message, r.entries, r.bytes);
        (void) file_copy_write_all(out_fd, line, strlen(line)); /* the sender may be gone */
        if (stats)
                *stats = r.stats;
        if (k < 0)
                g_set_error_literal(error, FILE_COPY_ERROR, -k, r.message);
        return k;
}
