/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "common/bus-p2p.h"

#include <systemd/sd-id128.h>

#include "common/macro.h"

int bus_p2p_setup(sd_bus *bus, bool server, bool accept_fds, const char *description) {
        int r;

        if (server) {
                sd_id128_t id;

                r = sd_id128_randomize(&id);
                if (r < 0)
                        return r;
                r = sd_bus_set_server(bus, 1, id);
                if (r < 0)
                        return r;
        }
        r = sd_bus_set_anonymous(bus, 1);
        if (r < 0)
                return r;
        r = sd_bus_negotiate_fds(bus, accept_fds);
        if (r < 0)
                return r;
        if (description)
                (void) sd_bus_set_description(bus, description);
        return 0;
}

int bus_p2p_new(int fd, bool server, bool accept_fds, const char *description, sd_bus **ret) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        r = sd_bus_set_fd(bus, fd, fd);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        /* From here on the fd belongs to the bus (closed with it on failure). */
        r = bus_p2p_setup(bus, server, accept_fds, description);
        if (r < 0)
                return r;
        *ret = steal_pointer(&bus);
        return 0;
}
