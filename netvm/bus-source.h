/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An sd-bus connection on a GLib main loop: a GSource that polls the bus fd
 * with the events and timeout sd-bus asks for and runs sd_bus_process()
 * until it has nothing left to do.
 *
 * (netvm's own copy; once broker/bus-source.c exists the two should merge
 * into common/.)
 */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

/*
 * Called once when the connection is closed or fails; the source is
 * destroyed right after the callback returns, the bus is not unreffed.
 */
typedef void (*BusSourceClosed)(sd_bus *bus, int error, gpointer userdata);

/* Attach bus to the thread-default main context.  Returns a borrowed pointer. */
GSource *bus_source_attach(sd_bus *bus, BusSourceClosed closed, gpointer userdata);
