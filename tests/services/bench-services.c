/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Services benchmarks (started by bench.py with a real vmfedd and real
 * agents), one JSON line on stdout each:
 *
 *   bench-services routed STATE_DIR FROM TO GUEST1_SOCKET_OF_FROM_OR_-
 *       Guest.PingVM(TO) on FROM's channel: guest -> broker (policy) ->
 *       TO's vmfed-agent (Agent1.Ping) -> broker -> guest.  Beside it, in the
 *       same run and alternating call by call, a raw sd-bus peer-to-peer
 *       echo on a socketpair (forked server).  p50/p99 of single calls, and
 *       calls per second with 1 and 8 calls in flight.  Target: p50 at most
 *       2.5x the raw round trip.
 *
 *   bench-services paste STATE_DIR FROM GUEST1_SOCKET_OF_TO SIZE
 *       Copy SIZE bytes on FROM's channel, then time Guest1.Paste in TO
 *       (app -> TO's agent -> broker -> back with the data).  Median of
 *       rounds, beside the same bytes through a socketpair from a writer
 *       thread into a mapped buffer (median, same run).  Target: 16 MiB at most 10x the
 *       socketpair.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>

#include "common/macro.h"
#include "tests/lib/bench-echo.h"

#define ROOT "/org/vmfed/Federation1"
#define GUEST "org.vmfed.Federation1.Guest"
#define SINGLE_CALLS 2000
#define WARMUP 200
#define THROUGHPUT_CALLS 4000

typedef struct Target {
        sd_bus *bus;
        const char *path, *iface, *member, *arg;
} Target;

static int call_once(const Target *t) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(t->bus, NULL, t->path, t->iface, t->member, &e, &reply, "s", t->arg);
        if (r < 0) {
                fprintf(stderr, "bench-services: %s: %s\n", t->member, e.message ? e.message : strerror(-r));
                exit(1);
        }
        return r;
}

static unsigned in_flight_done;
static int on_async(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        if (sd_bus_message_is_method_error(m, NULL)) {
                fprintf(stderr, "bench-services: async call failed: %s\n", sd_bus_message_get_error(m)->message);
                exit(1);
        }
        in_flight_done++;
        return 0;
}

/* Calls per second with `depth` calls in flight. */
static double throughput(const Target *t, unsigned depth, unsigned total) {
        unsigned sent = 0;
        in_flight_done = 0;
        double t0 = bench_now_us();
        while (in_flight_done < total) {
                while (sent < total && sent - in_flight_done < depth) {
                        int r = sd_bus_call_method_async(t->bus, NULL, NULL, t->path, t->iface, t->member, on_async, NULL,
                                                         "s", t->arg);
                        if (r < 0)
                                bench_die("async call", r);
                        sent++;
                }
                int r = sd_bus_process(t->bus, NULL);
                if (r < 0)
                        bench_die("process", r);
                if (r == 0 && sd_bus_wait(t->bus, UINT64_MAX) < 0)
                        bench_die("wait", -EIO);
        }
        return total / ((bench_now_us() - t0) / 1e6);
}

static int bench_routed(const char *state_dir, const char *from, const char *to, const char *guest1) {
        char path[4200];
        pid_t child;
        snprintf(path, sizeof path, "%s/channels/%s.sock", state_dir, from);
        sd_bus *chan = bench_connect_p2p(path, false, 0);
        sd_bus *raw = bench_raw_echo(&child);
        Target routed = { chan, ROOT, GUEST, "PingVM", to };
        Target echo = { raw, BENCH_ECHO_PATH, BENCH_ECHO_IFACE, "Echo", "x" };
        static double a[SINGLE_CALLS], b[SINGLE_CALLS], c[SINGLE_CALLS];

        /* Hello first: the broker knows this connection as FROM either way, but be a good agent. */
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        if (sd_bus_call_method(chan, NULL, ROOT, GUEST, "Hello", &e, NULL, "s", "bench") < 0)
                bench_die("Hello", -EIO);

        for (int i = 0; i < WARMUP; i++) {
                call_once(&routed);
                call_once(&echo);
        }
        for (int i = 0; i < SINGLE_CALLS; i++) {
                double t0 = bench_now_us();
                call_once(&routed);
                double t1 = bench_now_us();
                call_once(&echo);
                double t2 = bench_now_us();
                a[i] = t1 - t0;
                b[i] = t2 - t1;
        }
        qsort(a, SINGLE_CALLS, sizeof a[0], bench_cmp_double);
        qsort(b, SINGLE_CALLS, sizeof b[0], bench_cmp_double);

        /* Through the Guest1 socket of FROM's agent: what an app sees (one more hop). */
        double via_p50 = 0;
        if (strcmp(guest1, "-") != 0) {
                sd_bus *g = bench_connect_p2p(guest1, true, 0);
                Target via = { g, "/org/vmfed/Guest1", "org.vmfed.Guest1", "PingVM", to };
                for (int i = 0; i < WARMUP; i++)
                        call_once(&via);
                for (int i = 0; i < SINGLE_CALLS / 4; i++) {
                        double t0 = bench_now_us();
                        call_once(&via);
                        c[i] = bench_now_us() - t0;
                }
                qsort(c, SINGLE_CALLS / 4, sizeof c[0], bench_cmp_double);
                via_p50 = c[SINGLE_CALLS / 8];
                sd_bus_flush_close_unref(g);
        }

        double routed_cps1 = throughput(&routed, 1, THROUGHPUT_CALLS);
        double routed_cps8 = throughput(&routed, 8, THROUGHPUT_CALLS);
        double raw_cps1 = throughput(&echo, 1, THROUGHPUT_CALLS);
        double raw_cps8 = throughput(&echo, 8, THROUGHPUT_CALLS);

        double p50 = a[SINGLE_CALLS / 2], p99 = a[SINGLE_CALLS * 99 / 100];
        double raw50 = b[SINGLE_CALLS / 2], raw99 = b[SINGLE_CALLS * 99 / 100];
        printf("{\"benchmark\":\"services-routed-call\",\"routed_p50_us\":%.1f,\"routed_p99_us\":%.1f,"
               "\"raw_p2p_p50_us\":%.1f,\"raw_p2p_p99_us\":%.1f,\"ratio_p50\":%.3f,\"target_ratio\":2.5,"
               "\"routed_calls_per_s_1\":%.0f,\"routed_calls_per_s_8\":%.0f,"
               "\"raw_calls_per_s_1\":%.0f,\"raw_calls_per_s_8\":%.0f,\"via_guest1_p50_us\":%.1f,\"calls\":%d}\n",
               p50, p99, raw50, raw99, p50 / raw50, routed_cps1, routed_cps8, raw_cps1, raw_cps8, via_p50,
               SINGLE_CALLS);
        sd_bus_flush_close_unref(chan);
        sd_bus_flush_close_unref(raw);
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);
        return 0;
}

typedef struct Writer {
        int fd;
        const char *data;
        size_t size;
} Writer;

static void *writer_run(void *userdata) {
        Writer *w = userdata;
        for (size_t off = 0; off < w->size;) {
                ssize_t k = write(w->fd, w->data + off, w->size - off);
                if (k <= 0)
                        break;
                off += (size_t) k;
        }
        return NULL;
}

/* The same bytes through a socketpair from a writer thread into a buffer already mapped: the floor. */
static double socketpair_copy_us(const char *data, char *buf, size_t size) {
        int sv[2];
        pthread_t th;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                bench_die("socketpair", -errno);
        Writer w = { .fd = sv[1], .data = data, .size = size };
        double t0 = bench_now_us();
        if (pthread_create(&th, NULL, writer_run, &w) != 0)
                bench_die("pthread_create", -EAGAIN);
        for (size_t off = 0; off < size;) {
                ssize_t k = read(sv[0], buf + off, size - off);
                if (k <= 0)
                        bench_die("socketpair read", k < 0 ? -errno : -EPIPE);
                off += (size_t) k;
        }
        double t = bench_now_us() - t0;
        pthread_join(th, NULL);
        close(sv[0]);
        close(sv[1]);
        return t;
}

static int bench_paste(const char *state_dir, const char *from, const char *guest1_to, size_t size) {
        char path[4200];
        enum { ROUNDS = 11 };
        double t[ROUNDS];
        snprintf(path, sizeof path, "%s/channels/%s.sock", state_dir, from);
        sd_bus *chan = bench_connect_p2p(path, false, 0);
        sd_bus *to = bench_connect_p2p(guest1_to, true, 0);
        char *data = malloc(size);
        if (!data)
                bench_die("malloc", -ENOMEM);
        for (size_t i = 0; i < size; i++)
                data[i] = (char) ('a' + i % 26);

        for (int i = 0; i < ROUNDS; i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                int r = sd_bus_message_new_method_call(chan, &m, NULL, ROOT, GUEST, "Copy");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "text/plain");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', data, size);
                if (r >= 0)
                        r = sd_bus_call(chan, m, 0, &e, NULL);
                if (r < 0)
                        bench_die(e.message ? e.message : "Copy", r);

                const void *got;
                size_t got_size;
                const char *src, *mime;
                double t0 = bench_now_us();
                r = sd_bus_call_method(to, NULL, "/org/vmfed/Guest1", "org.vmfed.Guest1", "Paste", &e, &reply, NULL);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "ss", &src, &mime);
                if (r >= 0)
                        r = sd_bus_message_read_array(reply, 'y', &got, &got_size);
                t[i] = bench_now_us() - t0;
                if (r < 0 || got_size != size || memcmp(got, data, size) != 0)
                        bench_die(e.message ? e.message : "Paste", r < 0 ? r : -EBADMSG);
        }
        /* The floor, in the same run. */
        double sp[ROUNDS];
        char *buf = malloc(size);
        if (!buf)
                bench_die("malloc", -ENOMEM);
        memset(buf, 0, size);
        for (int i = 0; i < ROUNDS; i++)
                sp[i] = socketpair_copy_us(data, buf, size);
        if (memcmp(buf, data, size) != 0)
                bench_die("socketpair copy", -EBADMSG);
        qsort(t, ROUNDS, sizeof t[0], bench_cmp_double);
        qsort(sp, ROUNDS, sizeof sp[0], bench_cmp_double);
        printf("{\"benchmark\":\"services-paste\",\"size\":%zu,\"paste_ms_median\":%.2f,\"paste_ms_min\":%.2f,"
               "\"paste_ms_max\":%.2f,\"socketpair_ms_median\":%.2f,\"ratio_to_socketpair\":%.2f,"
               "\"target_ratio\":%s,\"rounds\":%d}\n",
               size, t[ROUNDS / 2] / 1e3, t[0] / 1e3, t[ROUNDS - 1] / 1e3, sp[ROUNDS / 2] / 1e3,
               t[ROUNDS / 2] / sp[ROUNDS / 2], size >= 16u << 20 ? "10" : "null", ROUNDS);
        free(buf);
        free(data);
        sd_bus_flush_close_unref(chan);
        sd_bus_flush_close_unref(to);
        return 0;
}

int main(int argc, char **argv) {
        signal(SIGPIPE, SIG_IGN);
        if (argc == 6 && strcmp(argv[1], "routed") == 0)
                return bench_routed(argv[2], argv[3], argv[4], argv[5]);
        if (argc == 6 && strcmp(argv[1], "paste") == 0)
                return bench_paste(argv[2], argv[3], argv[4], strtoull(argv[5], NULL, 10));
        fprintf(stderr, "usage: bench-services routed STATE_DIR FROM TO GUEST1_SOCKET|- | "
                        "paste STATE_DIR FROM GUEST1_SOCKET_OF_TO SIZE\n");
        return 2;
}
