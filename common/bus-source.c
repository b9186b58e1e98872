/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "common/bus-source.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>

#include "common/log.h"
#include "common/macro.h"

typedef struct BusSource {
        GSource source;
        sd_bus *bus;
        gpointer fd_tag;
        GIOCondition events; /* what fd_tag currently polls for */
        BusSourceClosedFunc on_closed;
        void *userdata;
        bool closed;
        bool paused; /* bus_source_set_paused(): nothing is read or dispatched */
        bool kick;   /* resumed: dispatch once, sd-bus may hold bytes already read */
} BusSource;

static GIOCondition poll_to_gio(int events) {
        GIOCondition c = 0;
        if (events & POLLIN)
                c |= G_IO_IN;
        if (events & POLLOUT)
                c |= G_IO_OUT;
        if (events & POLLPRI)
                c |= G_IO_PRI;
        return c;
}

/* Milliseconds until the bus' absolute CLOCK_MONOTONIC deadline, or -1. */
static gint bus_source_timeout_ms(BusSource *s) {
        uint64_t until;
        int r = sd_bus_get_timeout(s->bus, &until);
        if (r <= 0 || until == UINT64_MAX)
                return -1;
        /* g_source_get_time() is g_get_monotonic_time(): CLOCK_MONOTONIC µs, like sd-bus. */
        uint64_t now = (uint64_t) g_source_get_time(&s->source);
        if (until <= now)
                return 0;
        uint64_t ms = (until - now + 999) / 1000;
        return ms > G_MAXINT ? G_MAXINT : (gint) ms;
}

static gboolean bus_source_prepare(GSource *source, gint *timeout) {
        BusSource *s = (BusSource *) source;

        *timeout = -1;
        if (s->closed)
                return FALSE;
        if (s->paused) {
                /*
                 * Poll for nothing but the peer hanging up.  Replies already queued in
                 * sd-bus wait until we resume: they are not what throttling is about.
                 */
                if (s->events != (G_IO_ERR | G_IO_HUP)) {
                        s->events = G_IO_ERR | G_IO_HUP;
                        g_source_modify_unix_fd(source, s->fd_tag, s->events);
                }
                return FALSE;
        }
        if (s->kick) {
                *timeout = 0;
                return TRUE;
        }

        int events = sd_bus_get_events(s->bus);
        if (events < 0) {
                /* Not connected any more: let dispatch() report it. */
                *timeout = 0;
                return TRUE;
        }
        /* Only when it changes: g_source_modify_unix_fd() wakes the context up every time. */
        GIOCondition want = poll_to_gio(events) | G_IO_ERR | G_IO_HUP;
        if (want != s->events) {
                g_source_modify_unix_fd(source, s->fd_tag, want);
                s->events = want;
        }

        *timeout = bus_source_timeout_ms(s);
        return *timeout == 0;
}

static gboolean bus_source_check(GSource *source) {
        BusSource *s = (BusSource *) source;

        if (s->closed)
                return FALSE;
        if (s->paused) /* only hang-up; G_IO_IN may still be reported if paused since prepare() */
                return (g_source_query_unix_fd(source, s->fd_tag) & (G_IO_ERR | G_IO_HUP)) != 0;
        if (s->kick)
                return TRUE;
        if (g_source_query_unix_fd(source, s->fd_tag) != 0)
                return TRUE;
        return bus_source_timeout_ms(s) == 0;
}

static void bus_source_report_closed(BusSource *s, int error) {
        if (s->closed)
                return;
        s->closed = true;
        if (s->on_closed)
                s->on_closed(s->userdata, error);
}

static gboolean bus_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data) {
        BusSource *s = (BusSource *) source;

        if (s->paused) {
                /*
                 * Paused after check() found it ready (by another source's dispatch in this
                 * iteration): nothing to do.  Hang-up: the peer is gone, what it left unread
                 * goes with it.
                 */
                if (!(g_source_query_unix_fd(source, s->fd_tag) & (G_IO_ERR | G_IO_HUP)))
                        return G_SOURCE_CONTINUE;
                bus_source_report_closed(s, -ECONNRESET);
                return G_SOURCE_REMOVE;
        }
        s->kick = false;
        for (unsigned i = 0; i < BUS_SOURCE_MAX_PER_DISPATCH && !s->closed && !s->paused; i++) {
                int r = sd_bus_process(s->bus, NULL);
                if (r < 0) {
                        bus_source_report_closed(s, r);
                        return G_SOURCE_REMOVE;
                }
                if (!sd_bus_is_open(s->bus)) {
                        bus_source_report_closed(s, -ECONNRESET);
                        return G_SOURCE_REMOVE;
                }
                if (r == 0)
                        break;
        }
        return s->closed ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

static void bus_source_finalize(GSource *source) {
        BusSource *s = (BusSource *) source;
        s->bus = sd_bus_unref(s->bus);
}

static GSourceFuncs bus_source_funcs = {
        .prepare = bus_source_prepare,
        .check = bus_source_check,
        .dispatch = bus_source_dispatch,
        .finalize = bus_source_finalize,
};

int bus_source_attach(sd_bus *bus, BusSourceClosedFunc on_closed, void *userdata, GSource **ret) {
        int fd = sd_bus_get_fd(bus);
        if (fd < 0)
                return fd;

        GSource *source = g_source_new(&bus_source_funcs, sizeof(BusSource));
        BusSource *s = (BusSource *) source;
        s->bus = sd_bus_ref(bus);
        s->on_closed = on_closed;
        s->userdata = userdata;
        s->events = G_IO_IN | G_IO_ERR | G_IO_HUP;
        s->fd_tag = g_source_add_unix_fd(source, fd, s->events);
        g_source_set_name(source, "sd-bus");
        /*
         * GLib (2.74) blocks a source while it dispatches, and unblocking re-adds its fd,
         * which wakes the loop: one extra eventfd write, read and poll per message.  Our
         * dispatch never iterates the loop (sd-bus calls made from a handler are
         * asynchronous), so the source may recurse instead.
         */
        g_source_set_can_recurse(source, TRUE);
        g_source_attach(source, NULL);
        *ret = source;
        return 0;
}

void bus_source_set_paused(GSource *source, bool paused) {
        BusSource *s = (BusSource *) source;

        if (!s || s->paused == paused)
                return;
        s->paused = paused;
        if (!paused) {
                s->kick = true;
                /* From outside the source's own dispatch the context may be asleep in poll(). */
                g_main_context_wakeup(g_source_get_context(source));
        }
}

bool bus_source_is_paused(GSource *source) {
        return source && ((BusSource *) source)->paused;
}

GSource *bus_source_free(GSource *s) {
        if (!s)
                return NULL;
        g_source_destroy(s);
        g_source_unref(s);
        return NULL;
}
