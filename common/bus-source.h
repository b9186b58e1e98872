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

#include <stdbool.h>

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

/*
 * Backpressure: a paused source neither reads nor dispatches (the peer's
 * messages wait in its socket, and the peer blocks once the socket buffer
 * is full); it only watches for the peer hanging up, which it reports as
 * closed.  Resuming dispatches at once (sd-bus may have read part of the
 * next message already).  May be called from inside the source's own
 * dispatch: the current message is the last one until resumed.
 */
void bus_source_set_paused(GSource *source, bool paused);
bool bus_source_is_paused(GSource *source);

/* Destroy and unref the source; NULL-safe; returns NULL. */
GSource *bus_source_free(GSource *s);
