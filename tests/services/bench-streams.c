/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Streams benchmark (started by bench.py with a real vmfedd and real
 * agents that emulate the stream ports), one JSON line on stdout:
 *
 *   bench-streams GUEST1_SOCKET_OF_FROM TO VMFEDD_PID SIZE
 *
 * - setup: Guest1.OpenStream(TO, test.True) until the fd is there, p50 of
 *   rounds, beside Guest1.PingVM(TO) (a routed call on the same path) in
 *   the same run, alternating.  Target: setup <= 2x the routed call.
 * - throughput: SIZE bytes into TO's test.Sink (cat > /dev/null) through
 *   app -> agent -> broker (splice) -> agent -> handler, until WaitStream
 *   answers; the broker's CPU time per MB from /proc/VMFEDD_PID/stat.
 * - floor: the same bytes socketpair -> splice(2) through a pipe ->
 *   socketpair in this process (what the broker's hop costs at best).
 * The raw virtio-serial port is only there in a real VM (docs/streams.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "common/macro.h"
#include "tests/lib/bench-echo.h"

#define GUEST1_PATH "/org/vmfed/Guest1"
#define GUEST1 "org.vmfed.Guest1"
#define ROUNDS 60
#define CHUNK (256 * 1024)
#define MIN_SIZE(a, b) ((a) < (b) ? (a) : (b))

static int open_stream(sd_bus *g, const char *to, const char *service, uint64_t *ret_id) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int fd;
        int r = sd_bus_call_method(g, NULL, GUEST1_PATH, GUEST1, "OpenStream", &e, &reply, "sssa{sv}", to, service,
                                   "", 0);
        if (r >= 0)
                r = sd_bus_message_read(reply, "ht", &fd, ret_id);
        if (r < 0) {
                fprintf(stderr, "bench-streams: OpenStream %s: %s\n", service, e.message ? e.message : strerror(-r));
                exit(1);
        }
        return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static int wait_stream(sd_bus *g, uint64_t id) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int status;
        const char *msg;
        int r = sd_bus_call_method(g, NULL, GUEST1_PATH, GUEST1, "WaitStream", &e, &reply, "t", id);
        if (r >= 0)
                r = sd_bus_message_read(reply, "is", &status, &msg);
        if (r < 0 || status != 0) {
                fprintf(stderr, "bench-streams: WaitStream: %s\n", r < 0 ? e.message : msg);
                exit(1);
        }
        return status;
}

static void drain(int fd) {
        char buf[4096];
        while (read(fd, buf, sizeof buf) > 0)
                ;
}

static void ping(sd_bus *g, const char *to) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        if (sd_bus_call_method(g, NULL, GUEST1_PATH, GUEST1, "PingVM", &e, NULL, "s", to) < 0) {
                fprintf(stderr, "bench-streams: PingVM: %s\n", e.message);
                exit(1);
        }
}

static double cpu_seconds(const char *pid) {
        char path[64], buf[2048];
        snprintf(path, sizeof path, "/proc/%s/stat", pid);
        FILE *f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof buf, f)) {
                if (f)
                        fclose(f);
                return 0;
        }
        fclose(f);
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
                return 0;
        return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
}

static void write_all(int fd, const char *buf, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, buf, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        bench_die("write", -errno);
                buf += k;
                n -= (size_t) k;
        }
}

typedef struct Splicer {
        int in, out;
} Splicer;

static void *splicer_run(void *userdata) {
        Splicer *s = userdata;
        int p[2];
        if (pipe(p) < 0)
                bench_die("pipe", -errno);
        for (;;) {
                ssize_t n = splice(s->in, NULL, p[1], NULL, CHUNK, SPLICE_F_MOVE);
                if (n <= 0)
                        break;
                while (n > 0) {
                        ssize_t m = splice(p[0], NULL, s->out, NULL, (size_t) n, SPLICE_F_MOVE);
                        if (m <= 0)
                                bench_die("splice out", -errno);
                        n -= m;
                }
        }
        shutdown(s->out, SHUT_WR);
        close(p[0]);
        close(p[1]);
        return NULL;
}

static void *reader_run(void *userdata) {
        drain(*(int *) userdata);
        return NULL;
}

/* MB/s of socketpair -> splice -> socketpair, SIZE bytes. */
static double floor_mbps(const char *buf, size_t size) {
        int a[2], b[2];
        pthread_t ts, tr;
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, a) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, b) < 0)
                bench_die("socketpair", -errno);
        Splicer s = { a[1], b[0] };
        double t0 = bench_now_us();
        pthread_create(&ts, NULL, splicer_run, &s);
        pthread_create(&tr, NULL, reader_run, &b[1]);
        for (size_t off = 0; off < size; off += CHUNK)
                write_all(a[0], buf, MIN_SIZE((size_t) CHUNK, size - off));
        shutdown(a[0], SHUT_WR);
        pthread_join(ts, NULL);
        pthread_join(tr, NULL);
        double us = bench_now_us() - t0;
        for (int i = 0; i < 2; i++) {
                close(a[i]);
                close(b[i]);
        }
        return (double) size / us; /* bytes per µs = MB/s */
}

int main(int argc, char **argv) {
        static double setup[ROUNDS], routed[ROUNDS];
        signal(SIGPIPE, SIG_IGN);
        if (argc != 5) {
                fprintf(stderr, "usage: bench-streams GUEST1_SOCKET TO VMFEDD_PID SIZE\n");
                return 2;
        }
        const char *to = argv[2], *pid = argv[3];
        size_t size = strtoull(argv[4], NULL, 10);
        sd_bus *g = bench_connect_p2p(argv[1], true, 0);

        for (int i = 0; i < 5; i++)
                ping(g, to);
        for (int i = 0; i < ROUNDS; i++) {
                uint64_t id;
                double t0 = bench_now_us();
                int fd = open_stream(g, to, "test.True", &id);
                double t1 = bench_now_us();
                shutdown(fd, SHUT_WR);
                drain(fd);
                close(fd);
                wait_stream(g, id);
                double t2 = bench_now_us();
                ping(g, to);
                double t3 = bench_now_us();
                setup[i] = t1 - t0;
                routed[i] = t3 - t2;
        }
        qsort(setup, ROUNDS, sizeof setup[0], bench_cmp_double);
        qsort(routed, ROUNDS, sizeof routed[0], bench_cmp_double);

        char *buf = malloc(CHUNK);
        if (!buf)
                bench_die("malloc", -ENOMEM);
        for (size_t i = 0; i < CHUNK; i++)
                buf[i] = (char) (i * 31);
        uint64_t id;
        double cpu0 = cpu_seconds(pid), t0 = bench_now_us();
        int fd = open_stream(g, to, "test.Sink", &id);
        for (size_t off = 0; off < size; off += CHUNK)
                write_all(fd, buf, MIN_SIZE((size_t) CHUNK, size - off));
        shutdown(fd, SHUT_WR);
        drain(fd);
        close(fd);
        wait_stream(g, id);
        double us = bench_now_us() - t0, cpu = cpu_seconds(pid) - cpu0;
        double mbps = (double) size / us, floor = floor_mbps(buf, size);
        double mb = (double) size / 1e6;

        printf("{\"benchmark\":\"services-streams\",\"size\":%zu,\"stream_mb_per_s\":%.1f,"
               "\"floor_splice_mb_per_s\":%.1f,\"ratio_to_floor\":%.3f,\"broker_cpu_ms_per_mb\":%.3f,"
               "\"setup_p50_us\":%.1f,\"setup_p99_us\":%.1f,\"routed_call_p50_us\":%.1f,\"setup_ratio\":%.3f,"
               "\"target_setup_ratio\":2.0,\"raw_port_mb_per_s\":null,\"rounds\":%d}\n",
               size, mbps, floor, mbps / floor, cpu * 1e3 / mb, setup[ROUNDS / 2], setup[ROUNDS * 99 / 100],
               routed[ROUNDS / 2], setup[ROUNDS / 2] / routed[ROUNDS / 2], ROUNDS);
        free(buf);
        sd_bus_flush_close_unref(g);
        return 0;
}
