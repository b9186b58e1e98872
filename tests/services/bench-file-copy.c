/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark file-copy: file_copy_send() | file_copy_receive() of a 64 MiB
 * tree (one 32 MiB file, 256 files of 128 KiB in 16 directories) over a
 * socketpair, against `cp -r` of the same tree on the same disk, and
 * `cp -r` followed by syncfs() (the durability the receiver gives before
 * it answers OK).  The source is in the page cache for all of them; each
 * run starts with the previous copy removed and synced.  Median of 3 runs.
 * Where: $VMFED_BENCH_DIR, else /var/tmp (a disk, where /tmp may be tmpfs).
 * One JSON line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include "tests/lib/bench-echo.h"
#include "tests/services/file-copy-fixture.h"

#define RUNS 3
#define BIG (32u << 20)
#define SMALL (128u << 10)
#define N_SMALL 256

static void make_tree(const char *top) {
        g_assert_cmpint(mkdir(top, 0755), ==, 0);
        g_autofree char *big = g_build_filename(top, "big.bin", NULL);
        tree_write_pattern(big, BIG, 1, 0644);
        for (int d = 0; d < 16; d++) {
                g_autofree char *dir = g_strdup_printf("%s/d%02d", top, d);
                g_assert_cmpint(mkdir(dir, 0755), ==, 0);
                for (int f = 0; f < N_SMALL / 16; f++) {
                        g_autofree char *p = g_strdup_printf("%s/f%02d.dat", dir, f);
                        tree_write_pattern(p, SMALL, (uint32_t) (d * 100 + f + 2), 0644);
                }
        }
}

static void sync_dir(const char *dir) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(syncfs(fd), ==, 0);
        close(fd);
}

/* A fresh, synced, empty destination. */
static void fresh(const char *dest) {
        tree_rm(dest);
        g_assert_cmpint(mkdir(dest, 0755), ==, 0);
        sync_dir(dest);
}

typedef struct Rx {
        int fd;
        const char *dest;
        int r;
} Rx;

static gpointer rx_thread(gpointer data) {
        Rx *rx = data;
        g_autoptr(GError) e = NULL;
        rx->r = file_copy_receive(rx->fd, rx->fd, rx->dest, FILE_COPY_DEFAULT_MAX_BYTES, NULL, &e);
        if (rx->r < 0)
                fprintf(stderr, "receive: %s\n", e->message);
        close(rx->fd);
        return NULL;
}

static double run_file_copy(const char *top, const char *dest) {
        g_autoptr(GError) e = NULL;
        char *paths[] = { (char *) top, NULL };
        int sv[2];

        fresh(dest);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
        Rx rx = { .fd = sv[1], .dest = dest };
        double t0 = bench_now_us();
        GThread *t = g_thread_new("rx", rx_thread, &rx);
        int r = file_copy_send(sv[0], paths, NULL, &e);
        close(sv[0]);
        g_thread_join(t);
        double t1 = bench_now_us();
        if (r < 0 || rx.r < 0)
                bench_die(e ? e->message : "file copy", r < 0 ? r : rx.r);
        return t1 - t0;
}

static void run_cp(const char *top, const char *dest, double *ret_cp, double *ret_cp_sync) {
        g_autofree char *target = g_build_filename(dest, "top", NULL);
        const char *argv[] = { "cp", "-r", top, target, NULL };
        g_autoptr(GError) e = NULL;
        int status;

        fresh(dest);
        double t0 = bench_now_us();
        if (!g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, &e) ||
            !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                bench_die("cp -r", -EIO);
        double t1 = bench_now_us();
        sync_dir(dest);
        double t2 = bench_now_us();
        *ret_cp = t1 - t0;
        *ret_cp_sync = t2 - t0;
}

static double median(double *v) {
        qsort(v, RUNS, sizeof v[0], bench_cmp_double);
        return v[RUNS / 2];
}

int main(void) {
        const char *base = getenv("VMFED_BENCH_DIR") ? getenv("VMFED_BENCH_DIR") : "/var/tmp";
        g_autofree char *tmpl = g_build_filename(base, "vmfed-bench-file-copy-XXXXXX", NULL);
        char *root = g_mkdtemp(tmpl);
        double fc[RUNS], cp[RUNS], cps[RUNS];
        const double mb = (double) (BIG + (uint64_t) N_SMALL * SMALL) / (1 << 20);

        if (!root)
                bench_die("mkdtemp", -errno);
        umask(022);
        g_autofree char *top = g_build_filename(root, "top", NULL), *dest = g_build_filename(root, "dest", NULL);
        make_tree(top);
        sync_dir(root);
        for (int i = 0; i < RUNS; i++) {
                fc[i] = run_file_copy(top, dest);
                run_cp(top, dest, &cp[i], &cps[i]);
        }
        tree_rm(root);
        printf("{\"benchmark\":\"file-copy\",\"size\":%.0f,\"files\":%d,\"dirs\":%d,\"runs\":%d,"
               "\"file_copy_mb_per_s\":%.1f,\"cp_r_mb_per_s\":%.1f,\"cp_r_sync_mb_per_s\":%.1f,\"dir\":\"%s\"}\n",
               mb * (1 << 20), 1 + N_SMALL, 17, RUNS, mb / (median(fc) / 1e6), mb / (median(cp) / 1e6),
               mb / (median(cps) / 1e6), base);
        return 0;
}
