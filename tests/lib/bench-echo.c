/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests/lib/bench-echo.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-id128.h>

void bench_die(const char *what, int r) {
        fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(r < 0 ? -r : r));
        exit(1);
}

double bench_now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int bench_cmp_double(const void *a, const void *b) {
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

const sd_bus_vtable bench_echo_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Echo", SD_BUS_ARGS("s", text), SD_BUS_RESULT("s", text), method_echo,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

void bench_serve_forever(sd_bus *bus) {
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

sd_bus *bench_raw_echo(pid_t *ret_child) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                bench_die("socketpair", -errno);
        pid_t child = fork();
        if (child < 0)
                bench_die("fork", -errno);
        if (child == 0) {
                sd_bus *server = NULL;
                sd_id128_t id;
                close(sv[0]);
                if (sd_id128_randomize(&id) < 0 || sd_bus_new(&server) < 0 ||
                    sd_bus_set_fd(server, sv[1], sv[1]) < 0 || sd_bus_set_server(server, 1, id) < 0 ||
                    sd_bus_set_anonymous(server, 1) < 0 ||
                    sd_bus_add_object_vtable(server, NULL, BENCH_ECHO_PATH, BENCH_ECHO_IFACE, bench_echo_vtable,
                                             NULL) < 0 ||
                    sd_bus_start(server) < 0)
                        _exit(1);
                bench_serve_forever(server);
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
                bench_die("socketpair client", r);
        *ret_child = child;
        return p2p;
}

sd_bus *bench_connect_p2p(const char *path, bool fds, uint64_t timeout_usec) {
        char address[4200];
        sd_bus *bus = NULL;

        snprintf(address, sizeof address, "unix:path=%s", path);
        for (int attempt = 0; attempt < 500; attempt++) {
                int r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, address);
                if (r >= 0)
                        r = sd_bus_set_anonymous(bus, 1);
                if (r >= 0)
                        r = sd_bus_negotiate_fds(bus, fds);
                if (r >= 0 && timeout_usec > 0)
                        r = sd_bus_set_method_call_timeout(bus, timeout_usec);
                if (r >= 0)
                        r = sd_bus_start(bus);
                if (r >= 0)
                        return bus;
                bus = sd_bus_unref(bus);
                usleep(10000);
        }
        bench_die(path, -ECONNREFUSED);
}
