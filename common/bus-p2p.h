/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A peer-to-peer sd-bus connection (no bus daemon): anonymous
 * authentication, and file descriptors only where the caller accepts them.
 * The broker's guest channels and NetVM links, and the agent's connection
 * to the broker and its Guest1 clients are all such connections.
 */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>

/*
 * Configure bus (whose fd or address is set, not yet started) as a
 * peer-to-peer connection: the server end with a fresh random id if server,
 * anonymous authentication, fd passing only if accept_fds, and description
 * (if not NULL) for logs.
 */
int bus_p2p_setup(sd_bus *bus, bool server, bool accept_fds, const char *description);

/*
 * A new, not yet started peer-to-peer bus on fd (used for reading and
 * writing), set up as bus_p2p_setup() does.  Takes fd in every case: on
 * failure it is closed.
 */
int bus_p2p_new(int fd, bool server, bool accept_fds, const char *description, sd_bus **ret);
