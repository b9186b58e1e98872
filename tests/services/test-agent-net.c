/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Plays the broker for one vmfed-agent: listens on SOCKET (the agent's
 * --channel), answers its Hello, then calls org.vmfed.Agent1.SetNetwork:
 * a valid configuration (twice: idempotent), bad arguments (InvalidArgs),
 * an interface that does not exist (NotFound).  test_netconfig.sh checks
 * the kernel's state afterwards.
 *
 * Usage: test-agent-net SOCKET IFNAME
 *        test-agent-net SOCKET --introspect   (print the agent's Agent1 introspection)
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>

#include "common/macro.h"

static int hello_seen;

static int method_hello(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        hello_seen = 1;
        return sd_bus_reply_method_return(m, "ss", "client", "test");
}

static const sd_bus_vtable guest_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Hello", "s", "ss", method_hello, 0),
        SD_BUS_VTABLE_END,
};

static void fail(const char *what) {
        fprintf(stderr, "test-agent-net: %s\n", what);
        exit(1);
}

static int set_network(sd_bus *bus, const char *ifname, const char *addr, const char *gw, char **dns,
                       sd_bus_error *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(bus, &m, NULL, "/org/vmfed/Agent1", "org.vmfed.Agent1", "SetNetwork");
        if (r >= 0)
                r = sd_bus_message_append(m, "sss", ifname, addr, gw);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, dns);
        if (r < 0)
                fail("build");
        return sd_bus_call(bus, m, 10 * 1000000ULL, e, NULL);
}

int main(int argc, char **argv) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        sd_bus *bus = NULL;
        sd_id128_t id;

        if (argc != 3)
                fail("usage: test-agent-net SOCKET IFNAME");
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        strncpy(sa.sun_path, argv[1], sizeof sa.sun_path - 1);
        unlink(argv[1]);
        if (lfd < 0 || bind(lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(lfd, 1) < 0)
                fail("listen");
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        if (poll(&p, 1, 15000) <= 0)
                fail("the agent did not connect");
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0 || sd_id128_randomize(&id) < 0 || sd_bus_new(&bus) < 0 || sd_bus_set_fd(bus, fd, fd) < 0 ||
            sd_bus_set_server(bus, 1, id) < 0 || sd_bus_set_anonymous(bus, 1) < 0 ||
            sd_bus_add_object_vtable(bus, NULL, "/org/vmfed/Federation1", "org.vmfed.Federation1.Guest",
                                     guest_vtable, NULL) < 0 ||
            sd_bus_start(bus) < 0)
                fail("server");
        while (!hello_seen) {
                int r = sd_bus_process(bus, NULL);
                if (r < 0)
                        fail("process");
                if (r == 0 && sd_bus_wait(bus, 10 * 1000000ULL) <= 0)
                        fail("no Hello");
        }

        if (strcmp(argv[2], "--introspect") == 0) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *xml;
                if (sd_bus_call_method(bus, NULL, "/org/vmfed/Agent1", "org.freedesktop.DBus.Introspectable",
                                       "Introspect", &e, &reply, NULL) < 0 ||
                    sd_bus_message_read(reply, "s", &xml) < 0)
                        fail("Introspect");
                fputs(xml, stdout);
                sd_bus_flush_close_unref(bus);
                return 0;
        }

        char *dns[] = { (char *) "10.137.0.1", (char *) "2001:db8::53", NULL };
        for (int i = 0; i < 2; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                if (set_network(bus, "", "10.137.0.5/24", "10.137.0.1", dns, &e) < 0) {
                        fprintf(stderr, "SetNetwork: %s\n", e.message);
                        fail("SetNetwork failed");
                }
        }
        /* A new address from the broker replaces the old one. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                if (set_network(bus, argv[2], "10.137.0.6/24", "10.137.0.1", dns, &e) < 0) {
                        fprintf(stderr, "SetNetwork: %s\n", e.message);
                        fail("SetNetwork (new address) failed");
                }
        }
        struct {
                const char *ifname, *addr, *gw, *err;
        } bad[] = {
                { "", "10.137.0.5", "", "org.vmfed.Federation1.Error.InvalidArgs" },
                { "", "10.137.0.5/33", "", "org.vmfed.Federation1.Error.InvalidArgs" },
                { "", "10.137.0.5/24", "2001:db8::1", "org.vmfed.Federation1.Error.InvalidArgs" },
                { "", "10.137.0.5/24; reboot", "", "org.vmfed.Federation1.Error.InvalidArgs" },
                { "../eth0", "10.137.0.5/24", "", "org.vmfed.Federation1.Error.InvalidArgs" },
                { "nosuch0", "10.137.0.5/24", "", "org.vmfed.Federation1.Error.NotFound" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                char *nodns[] = { NULL };
                if (set_network(bus, bad[i].ifname, bad[i].addr, bad[i].gw, nodns, &e) >= 0 ||
                    !sd_bus_error_has_name(&e, bad[i].err)) {
                        fprintf(stderr, "case %zu: got %s\n", i, e.name ? e.name : "success");
                        fail("bad arguments not refused as expected");
                }
        }
        sd_bus_flush_close_unref(bus);
        printf("ok\n");
        return 0;
}
