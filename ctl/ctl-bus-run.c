/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfedctl run VM SERVICE[+ARG]: a stream from the host to a service
 * handler in VM (Manager.RunService, docs/streams.md), wired to stdin and
 * stdout; exits with the handler's status.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "common/macro.h"
#include "common/stdio-stream.h"
#include "ctl/ctl.h"

#define RUN_EXIT_ERROR 125 /* vmfedctl could not run the service (the service's own statuses are 0-255) */

int ctl_run(int argc, char **argv) {
        static const char usage[] = "run [--address ADDR] VM SERVICE[+ARG]\n"
                                    "  stdin and stdout are the service's; exits with its status (125: not run)";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL, *done = NULL;
        _cleanup_close_ int fd = -1;
        CtlBusOptions o;
        uint64_t id;
        int32_t status;
        const char *message;
        int rfd, r;

        r = ctl_bus_start(argc, argv, usage, 0, 2, &o, &bus);
        if (r != CTL_CONTINUE)
                return r == CTL_EXIT_OK ? r : r == CTL_EXIT_USAGE ? r : RUN_EXIT_ERROR;
        g_autofree char *service = g_strdup(o.args[1]);
        char *plus = strchr(service, '+');
        const char *arg = "";
        if (plus) {
                *plus = 0;
                arg = plus + 1;
        }
        if (ctl_bus_call(bus, CTL_MANAGER_IFACE, "RunService", "cannot run the service", &reply, "sss", o.args[0],
                         service, arg) < 0)
                return RUN_EXIT_ERROR;
        r = sd_bus_message_read(reply, "ht", &rfd, &id);
        if (r >= 0)
                fd = fcntl(rfd, F_DUPFD_CLOEXEC, 3);
        if (r < 0 || fd < 0) {
                fprintf(stderr, "vmfedctl: run: the broker's answer is unusable: %s\n", strerror(r < 0 ? -r : errno));
                return RUN_EXIT_ERROR;
        }
        signal(SIGPIPE, SIG_IGN);
        r = stdio_stream_copy(fd);
        if (r < 0)
                fprintf(stderr, "vmfedctl: run: %s\n", strerror(-r));
        fd = safe_close(fd);
        if (ctl_bus_call(bus, CTL_MANAGER_IFACE, "WaitStream", "cannot learn how the service ended", &done, "t", id) <
                    0 ||
            sd_bus_message_read(done, "is", &status, &message) < 0)
                return RUN_EXIT_ERROR;
        if (status < 0) {
                fprintf(stderr, "vmfedctl: run: %s in %s did not run to its end: %s\n", o.args[1], o.args[0], message);
                return RUN_EXIT_ERROR;
        }
        return r < 0 ? RUN_EXIT_ERROR : status > 255 ? 255 : status;
}
