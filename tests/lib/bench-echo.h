/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What vmfed's benchmarks share: a monotonic clock in µs, a comparator for
 * sorting samples, and the floor they compare against — a trivial
 * org.vmfed.BenchEcho.Echo(s) → s served by a plain sd-bus loop, either
 * through a bus daemon or peer-to-peer on a socketpair.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

#define BENCH_ECHO_NAME "org.vmfed.BenchEcho"
#define BENCH_ECHO_PATH "/org/vmfed/BenchEcho"
#define BENCH_ECHO_IFACE "org.vmfed.BenchEcho"

extern const sd_bus_vtable bench_echo_vtable[];

/* Print "PROGRAM: what: strerror(r)" and exit(1). */
_Noreturn void bench_die(const char *what, int r);

double bench_now_us(void);

/* qsort() comparator for doubles. */
int bench_cmp_double(const void *a, const void *b);

/* Run bus's event loop until the connection ends, then _exit(0). */
_Noreturn void bench_serve_forever(sd_bus *bus);

/*
 * Fork an echo server on one end of a socketpair (D-Bus server side,
 * ANONYMOUS auth) and return a started peer-to-peer client on the other.
 * The caller kills and reaps *ret_child.
 */
sd_bus *bench_raw_echo(pid_t *ret_child);

/*
 * Connect to the peer-to-peer D-Bus server listening on the unix socket
 * path (a guest channel, an agent's socket) with ANONYMOUS auth, retrying
 * for 5 s while it is not there yet; fds: negotiate fd passing;
 * timeout_usec: the method call timeout, 0 for sd-bus's default.  Dies on
 * failure.
 */
sd_bus *bench_connect_p2p(const char *path, bool fds, uint64_t timeout_usec);
