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
#include "tests/lib/bench-echo.h"

#define ROUNDS 41
#define CALLS_PER_ROUND 200
#define WARMUP 200

typedef int (*CallFunc)(sd_bus *bus, void *userdata);

static double time_one(CallFunc f, sd_bus *bus, void *userdata) {
        double t0 = bench_now_us();
        int r = f(bus, userdata);
        if (r < 0)
                bench_die("call", r);
        return bench_now_us() - t0;
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
        qsort(a, N, sizeof(double), bench_cmp_double);
        qsort(b, N, sizeof(double), bench_cmp_double);
        *ret_a = a[N / 2];
        *ret_b = b[N / 2];
}

static int call_echo(sd_bus *bus, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        return sd_bus_call_method(bus, userdata, BENCH_ECHO_PATH, BENCH_ECHO_IFACE, "Echo", NULL, &reply, "s", "hello");
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
                bench_die(address, r);
        return bus;
}

static int bench_bus(const char *address) {
        pid_t child = fork();
        if (child < 0)
                bench_die("fork", -errno);
        if (child == 0) {
                sd_bus *bus = bus_connect(address, true);
                if (sd_bus_add_object_vtable(bus, NULL, BENCH_ECHO_PATH, BENCH_ECHO_IFACE, bench_echo_vtable, NULL) < 0 ||
                    sd_bus_request_name(bus, BENCH_ECHO_NAME, 0) < 0)
                        _exit(1);
                bench_serve_forever(bus);
        }

        sd_bus *bus = bus_connect(address, true);
        /* Wait for the echo server to own its name. */
        for (int i = 0; i < 500; i++) {
                if (call_echo(bus, BENCH_ECHO_NAME) >= 0)
                        break;
                usleep(10000);
        }
        double evaluate_us, echo_us;
        measure(call_evaluate, bus, NULL, call_echo, bus, BENCH_ECHO_NAME, &evaluate_us, &echo_us);
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);
        sd_bus_flush_close_unref(bus);

        printf("{\"benchmark\":\"policy-evaluate-vs-bus-echo\",\"evaluate_us\":%.1f,\"echo_us\":%.1f,"
               "\"ratio\":%.3f,\"target_ratio\":1.2,\"calls\":%d}\n",
               evaluate_us, echo_us, evaluate_us / echo_us, ROUNDS * CALLS_PER_ROUND);
        return 0;
}

static int bench_channel(const char *state_dir, const char *vm) {
        pid_t child;
        sd_bus *p2p = bench_raw_echo(&child);

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
