/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/bus-source.h"

#include <errno.h>
#include <stdint.h>
#include <time.h>

typedef struct BusSource {
        GSource source;
        sd_bus *bus;
        gpointer tag;
        GIOCondition events;
        BusSourceClosed closed;
        gpointer userdata;
} BusSource;

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static gboolean bus_prepare(GSource *s, gint *timeout) {
        BusSource *b = (BusSource *) s;
        uint64_t until;

        int events = sd_bus_get_events(b->bus);
        if (events < 0) {
                *timeout = 0;
                return TRUE; /* closed: let dispatch report it */
        }
        /* Only on change: g_source_modify_unix_fd() wakes the context up every time. */
        GIOCondition want = (GIOCondition) events | G_IO_ERR | G_IO_HUP;
        if (want != b->events) {
                g_source_modify_unix_fd(s, b->tag, want);
                b->events = want;
        }

        *timeout = -1;
        if (sd_bus_get_timeout(b->bus, &until) < 0 || until == UINT64_MAX)
                return FALSE;
        uint64_t now = now_usec();
        if (until <= now) {
                *timeout = 0;
                return TRUE;
        }
        *timeout = (gint) MIN((until - now + 999) / 1000, (uint64_t) G_MAXINT);
        return FALSE;
}

static gboolean bus_check(GSource *s) {
        BusSource *b = (BusSource *) s;
        uint64_t until;
        if (g_source_query_unix_fd(s, b->tag) != 0)
                return TRUE;
        return sd_bus_get_timeout(b->bus, &until) >= 0 && until != UINT64_MAX && until <= now_usec();
}

static gboolean bus_dispatch(GSource *s, GSourceFunc callback, gpointer user_data) {
        BusSource *b = (BusSource *) s;
        for (;;) {
                int r = sd_bus_process(b->bus, NULL);
                if (r < 0 || sd_bus_is_open(b->bus) <= 0) {
                        if (b->closed)
                                b->closed(b->bus, r < 0 ? r : -ECONNRESET, b->userdata);
                        return G_SOURCE_REMOVE;
                }
                if (r == 0)
                        return G_SOURCE_CONTINUE;
        }
}

static void bus_finalize(GSource *s) {
        BusSource *b = (BusSource *) s;
        sd_bus_unref(b->bus);
}

static GSourceFuncs bus_source_funcs = {
        .prepare = bus_prepare,
        .check = bus_check,
        .dispatch = bus_dispatch,
        .finalize = bus_finalize,
};

GSource *bus_source_attach(sd_bus *bus, BusSourceClosed closed, gpointer userdata) {
        BusSource *b = (BusSource *) g_source_new(&bus_source_funcs, sizeof(BusSource));
        b->bus = sd_bus_ref(bus);
        b->closed = closed;
        b->userdata = userdata;
        b->events = G_IO_IN | G_IO_ERR | G_IO_HUP;
        b->tag = g_source_add_unix_fd(&b->source, sd_bus_get_fd(bus), b->events);
        g_source_set_name(&b->source, "sd-bus");
        g_source_attach(&b->source, NULL);
        g_source_unref(&b->source);
        return &b->source;
}
