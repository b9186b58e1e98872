/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests/services/file-copy-fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "services/file-copy-wire.h"

void copy_run_clear(CopyRun *c) {
        g_clear_error(&c->tx_error);
        g_clear_error(&c->rx_error);
}

typedef struct RxJob {
        int fd;
        const char *dest;
        uint64_t max_bytes;
        CopyRun *run;
} RxJob;

static gpointer rx_thread(gpointer data) {
        RxJob *j = data;
        j->run->rx_r = file_copy_receive(j->fd, j->fd, j->dest, j->max_bytes, &j->run->rx, &j->run->rx_error);
        close(j->fd); /* as the handler's exit does */
        return NULL;
}

void copy_run(char *const *paths, const char *dest, uint64_t max_bytes, CopyRun *ret) {
        int sv[2];

        *ret = (CopyRun) {};
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
        RxJob job = { .fd = sv[1], .dest = dest, .max_bytes = max_bytes, .run = ret };
        GThread *t = g_thread_new("rx", rx_thread, &job);
        ret->tx_r = file_copy_send(sv[0], paths, &ret->tx, &ret->tx_error);
        close(sv[0]);
        g_thread_join(t);
        g_assert_true((ret->tx_r < 0) == (ret->tx_error != NULL));
        g_assert_true((ret->rx_r < 0) == (ret->rx_error != NULL));
}

typedef struct FeedJob {
        int fd;
        const uint8_t *bytes;
        size_t len;
} FeedJob;

static gpointer feed_thread(gpointer data) {
        FeedJob *j = data;
        size_t off = 0;

        while (off < j->len) {
                ssize_t n = send(j->fd, j->bytes + off, j->len - off, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        break; /* the receiver stopped reading */
                off += (size_t) n;
        }
        (void) shutdown(j->fd, SHUT_WR);
        return NULL;
}

int copy_feed(const void *bytes, size_t len, const char *dest, uint64_t max_bytes, char **ret_status,
              char **ret_error) {
        g_autoptr(GError) e = NULL;
        char status[FILE_COPY_STATUS_MAX + 1];
        int sv[2];
        ssize_t n, got = 0;

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
        FeedJob job = { .fd = sv[0], .bytes = bytes, .len = len };
        GThread *t = g_thread_new("feed", feed_thread, &job);
        int r = file_copy_receive(sv[1], sv[1], dest, max_bytes, NULL, &e);
        close(sv[1]);
        g_thread_join(t);
        while ((n = read(sv[0], status + got, sizeof status - 1 - (size_t) got)) > 0)
                got += n;
        close(sv[0]);
        status[got] = 0;
        g_assert_true((r < 0) == (e != NULL));
        /* the sender always gets the verdict, and a refusal says why */
        g_assert_nonnull(strchr(status, '\n'));
        g_assert_true(g_str_has_prefix(status, r < 0 ? "ERROR " : "OK "));
        if (ret_status)
                *ret_status = g_strdup(status);
        if (ret_error)
                *ret_error = e ? g_strdup(e->message) : NULL;
        return r;
}

GByteArray *stream_new(void) {
        GByteArray *s = g_byte_array_new();
        g_byte_array_append(s, (const guint8 *) FILE_COPY_MAGIC, FILE_COPY_MAGIC_LEN);
        return s;
}

void stream_raw_header(GByteArray *s, const uint8_t raw[32]) {
        g_byte_array_append(s, raw, FILE_COPY_HEADER_SIZE);
}

void stream_entry(GByteArray *s, char type, const char *name, uint32_t mode, uint64_t size, const void *data,
                  size_t data_len) {
        uint8_t raw[FILE_COPY_HEADER_SIZE];
        FileCopyHeader h = { .type = (uint8_t) type, .name_len = (uint16_t) strlen(name), .mode = mode, .size = size };

        file_copy_header_encode(&h, raw);
        stream_raw_header(s, raw);
        g_byte_array_append(s, (const guint8 *) name, (guint) strlen(name));
        if (data)
                g_byte_array_append(s, data, (guint) data_len);
        else
                for (size_t i = 0; i < data_len; i++)
                        g_byte_array_append(s, (const guint8 *) "x", 1);
}

void stream_end(GByteArray *s, uint64_t entries, uint64_t bytes) {
        uint8_t raw[FILE_COPY_HEADER_SIZE];
        file_copy_header_encode(&(FileCopyHeader) { .type = 'E', .size = bytes, .mtime_sec = (int64_t) entries }, raw);
        stream_raw_header(s, raw);
}

char *tree_tmpdir(void) {
        g_autoptr(GError) e = NULL;
        char *d = g_dir_make_tmp("vmfed-file-copy-XXXXXX", &e);
        g_assert_no_error(e);
        return d;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 ? -1 : 0;
}

static int chmod_dir(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_D || flag == FTW_DNR)
                (void) chmod(path, 0700);
        return 0;
}

void tree_rm(const char *path) {
        (void) nftw(path, chmod_dir, 32, FTW_PHYS);
        (void) nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

void tree_write(const char *path, const void *data, size_t len, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(write(fd, data, len), ==, (ssize_t) len);
        g_assert_cmpint(fchmod(fd, mode), ==, 0); /* no umask, setuid kept */
        close(fd);
}

void tree_write_pattern(const char *path, uint64_t size, uint32_t seed, mode_t mode) {
        g_autofree uint32_t *buf = g_malloc(1 << 20);
        uint32_t x = seed | 1;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        g_assert_cmpint(fd, >=, 0);
        for (uint64_t left = size; left > 0;) {
                size_t n = (size_t) MIN(left, (uint64_t) (1 << 20));
                for (size_t i = 0; i < (1 << 20) / 4; i++) {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        buf[i] = x;
                }
                g_assert_cmpint(write(fd, buf, n), ==, (ssize_t) n);
                left -= n;
        }
        g_assert_cmpint(fchmod(fd, mode), ==, 0);
        close(fd);
}

static void assert_same_contents(const char *a, const char *b) {
        g_autofree char *ba = g_malloc(1 << 20), *bb = g_malloc(1 << 20);
        int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
        ssize_t na, nb;

        g_assert_cmpint(fa, >=, 0);
        g_assert_cmpint(fb, >=, 0);
        do {
                na = read(fa, ba, 1 << 20);
                nb = read(fb, bb, 1 << 20);
                g_assert_cmpint(na, ==, nb);
                g_assert_true(na <= 0 || memcmp(ba, bb, (size_t) na) == 0);
        } while (na > 0);
        close(fa);
        close(fb);
}

static gint compare_names(gconstpointer x, gconstpointer y) {
        return strcmp(*(char *const *) x, *(char *const *) y);
}

static GPtrArray *dir_names(const char *dir) {
        GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
        DIR *d = opendir(dir);
        struct dirent *de;

        g_assert_nonnull(d);
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        g_ptr_array_add(names, g_strdup(de->d_name));
        closedir(d);
        g_ptr_array_sort(names, compare_names);
        return names;
}

void tree_assert_equal(const char *a, const char *b, mode_t mask) {
        struct stat sa, sb;

        g_assert_cmpint(lstat(a, &sa), ==, 0);
        g_assert_cmpint(lstat(b, &sb), ==, 0);
        g_assert_cmphex(sa.st_mode & S_IFMT, ==, sb.st_mode & S_IFMT);
        if (S_ISLNK(sa.st_mode)) {
                char ta[4096] = "", tb[4096] = "";
                g_assert_cmpint(readlink(a, ta, sizeof ta - 1), >, 0);
                g_assert_cmpint(readlink(b, tb, sizeof tb - 1), >, 0);
                g_assert_cmpstr(ta, ==, tb);
                g_assert_cmpint(sa.st_mtim.tv_sec, ==, sb.st_mtim.tv_sec);
                return;
        }
        if (S_ISREG(sa.st_mode)) {
                g_assert_cmphex(sb.st_mode & 07777, ==, sa.st_mode & mask);
                g_assert_cmpint(sa.st_size, ==, sb.st_size);
                g_assert_cmpint(sa.st_mtim.tv_sec, ==, sb.st_mtim.tv_sec);
                g_assert_cmpint(sa.st_mtim.tv_nsec, ==, sb.st_mtim.tv_nsec);
                assert_same_contents(a, b);
                return;
        }
        g_assert_true(S_ISDIR(sa.st_mode));
        g_assert_cmphex(sb.st_mode & 07777, ==, (sa.st_mode | 0700) & mask);
        g_autoptr(GPtrArray) na = dir_names(a), nb = dir_names(b);
        g_assert_cmpuint(na->len, ==, nb->len);
        for (guint i = 0; i < na->len; i++) {
                g_assert_cmpstr(na->pdata[i], ==, nb->pdata[i]);
                g_autofree char *ca = g_build_filename(a, na->pdata[i], NULL);
                g_autofree char *cb = g_build_filename(b, nb->pdata[i], NULL);
                tree_assert_equal(ca, cb, mask);
        }
}

char *tree_list(const char *dir) {
        g_autoptr(GPtrArray) names = dir_names(dir);
        g_ptr_array_add(names, NULL);
        return g_strjoinv(" ", (char **) names->pdata);
}

static void list_all(const char *dir, const char *prefix, GPtrArray *out) {
        g_autoptr(GPtrArray) names = dir_names(dir);
        struct stat st;

        for (guint i = 0; i < names->len; i++) {
                g_autofree char *rel = prefix ? g_strconcat(prefix, "/", names->pdata[i], NULL) : g_strdup(names->pdata[i]);
                g_autofree char *full = g_build_filename(dir, names->pdata[i], NULL);
                g_ptr_array_add(out, g_strdup(rel));
                if (lstat(full, &st) == 0 && S_ISDIR(st.st_mode))
                        list_all(full, rel, out);
        }
}

char *tree_list_all(const char *dir) {
        g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(g_free);
        list_all(dir, NULL, all);
        g_ptr_array_add(all, NULL);
        return g_strjoinv(" ", (char **) all->pdata);
}
