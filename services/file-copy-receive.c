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
 * Complete files wait in a batch (up to 64 files or 64 MiB) so that one
 * syncfs() makes them all durable before they get their names: one
 * journal commit and cache flush instead of one per file (an fdatasync()
 * per file made a tree of 128 KiB files half as fast).
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
#include "services/file-copy-partial.h"
#include "services/file-copy-wire.h"
#include "services/file-copy.h"

#define RX_BUF_SIZE (256u * 1024)
#define RX_CLASH_MAX 999
#define RX_PENDING_MAX 64               /* complete files waiting for their names */
#define RX_PENDING_BYTES (64ULL << 20)

static bool tmpfile_allowed = true;

void file_copy_receive_set_tmpfile(bool use) {
        tmpfile_allowed = use;
}

/* A complete file, written but not yet on disk for sure: no name yet. */
typedef struct Pending {
        FileCopyPartial p;
        char *name;             /* the stream's name, checked */
        const char *base;       /* in name */
        bool top;
} Pending;

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
        Pending pending[RX_PENDING_MAX];
        size_t n_pending;
        uint64_t pending_bytes;
        char *message;          /* the first failure, for the user */
} Receiver;

static void receiver_done(Receiver *r) {
        for (size_t i = 0; i < r->n_pending; i++) {
                file_copy_partial_abort(&r->pending[i].p);
                g_free(r->pending[i].name);
        }
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

/* After mkdirat() or symlinkat() failed: EEXIST is a duplicate (our tree was empty). */
static int rx_fail_create(Receiver *r, const char *name) {
        if (errno == EEXIST)
                return rx_fail(r, -EEXIST, "The sender sent \"%s\" twice.", name);
        return rx_fail(r, -errno, "Cannot create \"%s\": %s", name, g_strerror(errno));
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

/* Claim a top-level name of the stream; NULL until it has its name here. */
static int rx_top_reserve(Receiver *r, const char *name) {
        if (g_hash_table_contains(r->tops, name))
                return rx_fail(r, -EEXIST, "The sender sent \"%s\" twice.", name);
        g_hash_table_insert(r->tops, g_strdup(name), NULL);
        return 0;
}

/* Create a reserved top-level entry under its name or the first free "NAME (n)" and remember which. */
static int rx_top_create(Receiver *r, const char *name, bool file, TopCreate create, void *ctx) {
        char cand[FILE_COPY_COMPONENT_MAX + 1];

        for (unsigned n = 0; n <= RX_CLASH_MAX; n++) {
                if (clash_name(name, n, file, cand) < 0)
                        return rx_fail(r, -ENAMETOOLONG, "\"%s\" exists here, and a name for a copy is too long.", name);
                int k = create(r, ctx, cand);
                if (k == -EEXIST)
                        continue;
                if (k < 0)
                        return rx_fail(r, k, "Cannot create \"%s\": %s", cand, g_strerror(-k));
                g_hash_table_replace(r->tops, g_strdup(name), g_strdup(cand));
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
        for (size_t i = 0; i < r->n_pending; i++) {
                const char *p = r->pending[i].name;
                size_t n = p ? strlen(p) : 0;
                if (p && n <= parent_len && memcmp(p, name, n) == 0 && (n == parent_len || name[n] == '/'))
                        return rx_fail(r, -ENOTDIR, "The sender sent \"%s\" inside something that is not a directory.", name);
        }
        g_autofree char *parent = g_strndup(name, parent_len);
        g_auto(GStrv) comps = g_strsplit(parent, "/", -1);
        const char *top = NULL;
        if (!g_hash_table_lookup_extended(r->tops, comps[0], NULL, (gpointer *) &top))
                return rx_fail(r, -ENOENT, "The sender sent \"%s\" before its directory.", name);
        if (!top) /* a file still waiting for its name */
                return rx_fail(r, -ENOTDIR, "The sender sent \"%s\" inside something that is not a directory.", name);

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
        return file_copy_partial_link(ctx, r->root_fd, name);
}

/*
 * Make the pending files durable (one syncfs() for all of them: the
 * destination's file system, where each one's writeback was started by
 * sync_file_range()) and give them their names, in order.
 */
static int rx_flush(Receiver *r) {
        if (r->n_pending > 0 && syncfs(r->root_fd) < 0)
                return rx_fail(r, -errno, "Cannot write the files to disk: %s", g_strerror(errno));
        for (size_t i = 0; i < r->n_pending; i++) {
                Pending *q = &r->pending[i];
                if (!q->name)
                        continue; /* linked by an earlier, failed flush */
                int k = q->top ? rx_top_create(r, q->name, true, top_link, &q->p)
                               : file_copy_partial_link(&q->p, q->p.dir_fd, q->base);
                if (k == -EEXIST && !q->top)
                        return rx_fail(r, k, "The sender sent \"%s\" twice.", q->name);
                if (k < 0)
                        return rx_fail(r, k, "Cannot create \"%s\": %s", q->name, g_strerror(-k));
                file_copy_partial_abort(&q->p);
                g_clear_pointer(&q->name, g_free);
        }
        r->n_pending = 0;
        r->pending_bytes = 0;
        return 0;
}

static bool rx_pending_has(Receiver *r, const char *name) {
        for (size_t i = 0; i < r->n_pending; i++)
                if (r->pending[i].name && strcmp(r->pending[i].name, name) == 0)
                        return true;
        return false;
}

/* An entry of the stream that is there already: on disk in our tree, or pending. */
static bool rx_exists(Receiver *r, int dir_fd, const char *name, const char *base) {
        if (faccessat(dir_fd, base, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return true;
        return rx_pending_has(r, name);
}

static int rx_dir(Receiver *r, const FileCopyHeader *h, const char *name, const char *base, int dir_fd) {
        mode_t mode = (h->mode | 0700) & 0777; /* the receiver must write into it, the user remove it */

        int k;

        if (dir_fd < 0) {
                k = rx_top_reserve(r, name);
                if (k >= 0)
                        k = rx_top_create(r, name, false, top_mkdir, &mode);
        } else if (rx_pending_has(r, name))
                k = rx_fail(r, -EEXIST, "The sender sent \"%s\" twice.", name);
        else if (mkdirat(dir_fd, base, mode) < 0)
                k = rx_fail_create(r, name);
        else
                k = 0;
        if (k >= 0)
                r->stats.dirs++;
        return k;
}

static int rx_file(Receiver *r, const FileCopyHeader *h, const char *name, const char *base, int dir_fd) {
        _cleanup_(file_copy_partial_abort) FileCopyPartial p = FILE_COPY_PARTIAL_INIT;
        const struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { h->mtime_sec, h->mtime_nsec } };
        int k;

        if (h->size > r->max_bytes - r->bytes)
                return rx_fail(r, -EFBIG, "\"%s\" (%" PRIu64 " bytes) is over the limit: %" PRIu64 " of %" PRIu64
                               " bytes were left.", name, h->size, r->max_bytes - r->bytes, r->max_bytes);
        if (dir_fd < 0 && (k = rx_top_reserve(r, name)) < 0)
                return k;
        if (dir_fd >= 0 && rx_exists(r, dir_fd, name, base))
                return rx_fail(r, -EEXIST, "The sender sent \"%s\" twice.", name);
        k = file_copy_partial_open(&p, dir_fd < 0 ? r->root_fd : dir_fd, h->mode, &r->use_tmpfile);
        if (k < 0)
                return rx_fail(r, k, "Cannot create a file for \"%s\": %s", name, g_strerror(-k));
        k = rx_data_to_fd(r, p.fd, h->size, name);
        if (k < 0)
                return k;
        if (futimens(p.fd, times) < 0)
                return rx_fail(r, -errno, "Cannot write \"%s\": %s", name, g_strerror(errno));
        (void) sync_file_range(p.fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* start writing it out */
        r->bytes += h->size;
        r->stats.files++;
        r->stats.bytes += h->size;

        Pending *q = &r->pending[r->n_pending++];
        q->p = p;
        p = FILE_COPY_PARTIAL_INIT;
        q->name = g_strdup(name);
        q->base = q->name + (base - name);
        q->top = dir_fd < 0;
        r->pending_bytes += h->size;
        if (r->n_pending == RX_PENDING_MAX || r->pending_bytes >= RX_PENDING_BYTES)
                return rx_flush(r);
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

        if (rx_pending_has(r, name))
                return rx_fail(r, -EEXIST, "The sender sent \"%s\" twice.", name);
        if (symlinkat(target, dir_fd, base) < 0)
                return rx_fail_create(r, name);
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
        k = rx_flush(r);
        if (k < 0)
                return k;
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
        if (k < 0)
                (void) rx_flush(&r); /* what came complete before the failure keeps its name */
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
