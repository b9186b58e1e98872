/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * BusSource: a GSource that drives one sd_bus connection from a GLib main
 * loop.  prepare() asks sd-bus which poll events and which timeout it
 * needs, dispatch() runs sd_bus_process() a bounded number of times so one
 * busy connection cannot starve the others.
 *
 * When the connection fails or closes, on_closed(userdata, error) is called
 * once and the source stops dispatching; the owner then destroys it (and
 * may free the bus) — also from inside on_closed.
 */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

typedef void (*BusSourceClosedFunc)(void *userdata, int error);

/* Messages processed per dispatch before yielding to other sources. */
#define BUS_SOURCE_MAX_PER_DISPATCH 32

/*
 * Attach a new source for bus (which must be started) to the default
 * context.  The source holds a reference on bus.  Returns the source (one
 * reference for the caller: g_source_destroy() + g_source_unref() it).
 */
int bus_source_attach(sd_bus *bus, BusSourceClosedFunc on_closed, void *userdata, GSource **ret);

/* Destroy and unref the source; NULL-safe; returns NULL. */
GSource *bus_source_free(GSource *s);
