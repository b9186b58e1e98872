/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Broker benchmarks, each beside its floor measured in the same run, one
 * JSON line on stdout:
 *
 *   bench-broker bus ADDRESS
 *       Policy.Evaluate round trips through the bus daemon, beside a trivial
 *       Echo served through the same bus daemon by this benchmark (a forked
 *       child running a plain sd-bus loop).  Target: at most 1.2x.
 *
 *   bench-broker channel STATE_DIR VM
 *       Guest.Hello round trips on VM's channel, beside a raw sd-bus
 *       peer-to-peer Echo on a socketpair (forked server, ANONYMOUS auth).
 *       Target: at most 1.5x.
 *
 * Calls alternate one by one between the measured path and its floor so
 * both see the same machine noise; each figure is the median call.
 */
#include <errno.h>
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

#define ROUNDS 41
#define CALLS_PER_ROUND 200
#define WARMUP 200

#define ECHO_NAME "org.vmfed.BenchEcho"
#define ECHO_PATH "/org/vmfed/BenchEcho"
#define ECHO_IFACE "org.vmfed.BenchEcho"

static void die(const char *what, int r) {
        fprintf(stderr, "bench-broker: %s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(1);
}

static double now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static int method_echo(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *s;
        int r = sd_bus_message_read(m, "s", &s);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "s", s);
}

static const sd_bus_vtable echo_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Echo", SD_BUS_ARGS("s", text), SD_BUS_RESULT("s", text), method_echo,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static void serve_forever(sd_bus *bus) {
        for (;;) {
                int r = sd_bus_process(bus, NULL);
                if (r < 0)
                        _exit(0);
                if (r > 0)
                        continue;
                if (sd_bus_wait(bus, UINT64_MAX) < 0)
                        _exit(0);
        }
}

typedef int (*CallFunc)(sd_bus *bus, void *userdata);

static double time_one(CallFunc f, sd_bus *bus, void *userdata) {
        double t0 = now_us();
        int r = f(bus, userdata);
        if (r < 0)
                die("call", r);
        return now_us() - t0;
}

/*
 * Alternate single calls of both paths, so bursts of machine noise hit both
 * alike, and report the median call of each.
 */
static void measure(CallFunc fa, sd_bus *ba, void *ua, CallFunc fb, sd_bus *bb, void *ub, double *ret_a,
                    double *ret_b) {
        enum { N = ROUNDS * CALLS_PER_ROUND };
        static double a[N], b[N];
        for (unsigned i = 0; i < WARMUP; i++) {
                (void) time_one(fa, ba, ua);
                (void) time_one(fb, bb, ub);
        }
        for (unsigned i = 0; i < N; i++) {
                a[i] = time_one(fa, ba, ua);
                b[i] = time_one(fb, bb, ub);
        }
        qsort(a, N, sizeof(double), cmp_double);
        qsort(b, N, sizeof(double), cmp_double);
        *ret_a = a[N / 2];
        *ret_b = b[N / 2];
}

static int call_echo(sd_bus *bus, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        return sd_bus_call_method(bus, userdata, ECHO_PATH, ECHO_IFACE, "Echo", NULL, &reply, "s", "hello");
}

static int call_evaluate(sd_bus *bus, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        return sd_bus_call_method(bus, "org.vmfed.Federation1", "/org/vmfed/Federation1",
                                  "org.vmfed.Federation1.Policy", "Evaluate", NULL, &reply, "sss", "rivendale",
                                  "gondor", "vmfed.Clipboard.Paste");
}

static int call_hello(sd_bus *bus, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        return sd_bus_call_method(bus, NULL, "/org/vmfed/Federation1", "org.vmfed.Federation1.Guest", "Hello",
                                  NULL, &reply, "s", "bench");
}

static sd_bus *bus_connect(const char *address, bool bus_client) {
        sd_bus *bus = NULL;
        int r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, bus_client);
        if (r >= 0 && !bus_client)
                r = sd_bus_set_anonymous(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0)
                die(address, r);
        return bus;
}

static int bench_bus(const char *address) {
        pid_t child = fork();
        if (child < 0)
                die("fork", -errno);
        if (child == 0) {
                sd_bus *bus = bus_connect(address, true);
                if (sd_bus_add_object_vtable(bus, NULL, ECHO_PATH, ECHO_IFACE, echo_vtable, NULL) < 0 ||
                    sd_bus_request_name(bus, ECHO_NAME, 0) < 0)
                        _exit(1);
                serve_forever(bus);
        }

        sd_bus *bus = bus_connect(address, true);
        /* Wait for the echo server to own its name. */
        for (int i = 0; i < 500; i++) {
                if (call_echo(bus, ECHO_NAME) >= 0)
                        break;
                usleep(10000);
        }
        double evaluate_us, echo_us;
        measure(call_evaluate, bus, NULL, call_echo, bus, ECHO_NAME, &evaluate_us, &echo_us);
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);
        sd_bus_flush_close_unref(bus);

        printf("{\"benchmark\":\"policy-evaluate-vs-bus-echo\",\"evaluate_us\":%.1f,\"echo_us\":%.1f,"
               "\"ratio\":%.3f,\"target_ratio\":1.2,\"calls\":%d}\n",
               evaluate_us, echo_us, evaluate_us / echo_us, ROUNDS * CALLS_PER_ROUND);
        return 0;
}

static int bench_channel(const char *state_dir, const char *vm) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair", -errno);
        pid_t child = fork();
        if (child < 0)
                die("fork", -errno);
        if (child == 0) {
                sd_bus *server = NULL;
                sd_id128_t id;
                close(sv[0]);
                if (sd_id128_randomize(&id) < 0 || sd_bus_new(&server) < 0 ||
                    sd_bus_set_fd(server, sv[1], sv[1]) < 0 || sd_bus_set_server(server, 1, id) < 0 ||
                    sd_bus_set_anonymous(server, 1) < 0 ||
                    sd_bus_add_object_vtable(server, NULL, ECHO_PATH, ECHO_IFACE, echo_vtable, NULL) < 0 ||
                    sd_bus_start(server) < 0)
                        _exit(1);
                serve_forever(server);
        }
        close(sv[1]);
        sd_bus *p2p = NULL;
        int r = sd_bus_new(&p2p);
        if (r >= 0)
                r = sd_bus_set_fd(p2p, sv[0], sv[0]);
        if (r >= 0)
                r = sd_bus_set_anonymous(p2p, 1);
        if (r >= 0)
                r = sd_bus_start(p2p);
        if (r < 0)
                die("socketpair client", r);

        char address[4200];
        snprintf(address, sizeof address, "unix:path=%s/channels/%s.sock", state_dir, vm);
        sd_bus *guest = bus_connect(address, false);

        double hello_us, echo_us;
        measure(call_hello, guest, NULL, call_echo, p2p, NULL, &hello_us, &echo_us);
        sd_bus_flush_close_unref(p2p);
        sd_bus_flush_close_unref(guest);
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);

        printf("{\"benchmark\":\"guest-hello-vs-p2p-echo\",\"hello_us\":%.1f,\"echo_us\":%.1f,"
               "\"ratio\":%.3f,\"target_ratio\":1.5,\"calls\":%d}\n",
               hello_us, echo_us, hello_us / echo_us, ROUNDS * CALLS_PER_ROUND);
        return 0;
}

int main(int argc, char **argv) {
        signal(SIGPIPE, SIG_IGN);
        if (argc == 3 && strcmp(argv[1], "bus") == 0)
                return bench_bus(argv[2]);
        if (argc == 4 && strcmp(argv[1], "channel") == 0)
                return bench_channel(argv[2], argv[3]);
        fprintf(stderr, "usage: bench-broker bus ADDRESS | channel STATE_DIR VM\n");
        return 2;
}
