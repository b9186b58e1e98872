/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * BusSource backpressure: a paused source dispatches nothing (the peer's
 * messages stay in the socket), resuming dispatches what waited, pausing
 * from inside a handler makes that message the last one, and a peer that
 * hangs up while the source is paused is reported closed.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>

#include "common/bus-source.h"

typedef struct Fixture {
        sd_bus *server, *client;
        GSource *source;
        unsigned handled;
        unsigned pause_at; /* pause from inside the handler of this call (1-based), 0: never */
        GSource *pause_other; /* pause this one (another connection's) from the handler instead */
        int closed;        /* on_closed error, 1 while open */
} Fixture;

static int method_ping(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Fixture *f = userdata;
        f->handled++;
        if (f->pause_at && f->handled == f->pause_at)
                bus_source_set_paused(f->pause_other ? f->pause_other : f->source, true);
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Ping", "", "", method_ping, 0),
        SD_BUS_VTABLE_END,
};

static void on_closed(void *userdata, int error) {
        Fixture *f = userdata;
        f->closed = error;
}

static void fixture_setup(Fixture *f) {
        int sv[2];
        sd_id128_t id;

        *f = (Fixture) { .closed = 1 };
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), ==, 0);
        g_assert_cmpint(sd_id128_randomize(&id), >=, 0);
        g_assert_cmpint(sd_bus_new(&f->server), >=, 0);
        g_assert_cmpint(sd_bus_set_fd(f->server, sv[0], sv[0]), >=, 0);
        g_assert_cmpint(sd_bus_set_server(f->server, 1, id), >=, 0);
        g_assert_cmpint(sd_bus_set_anonymous(f->server, 1), >=, 0);
        g_assert_cmpint(sd_bus_add_object_vtable(f->server, NULL, "/t", "org.vmfed.Test", vtable, f), >=, 0);
        g_assert_cmpint(sd_bus_start(f->server), >=, 0);
        g_assert_cmpint(bus_source_attach(f->server, on_closed, f, &f->source), >=, 0);

        g_assert_cmpint(sd_bus_new(&f->client), >=, 0);
        g_assert_cmpint(sd_bus_set_fd(f->client, sv[1], sv[1]), >=, 0);
        g_assert_cmpint(sd_bus_set_anonymous(f->client, 1), >=, 0);
        g_assert_cmpint(sd_bus_start(f->client), >=, 0);
        /* Finish the handshake: the server answers from the main loop. */
        while (sd_bus_is_ready(f->client) <= 0) {
                g_main_context_iteration(NULL, FALSE);
                g_assert_cmpint(sd_bus_process(f->client, NULL), >=, 0);
        }
}

static void fixture_teardown(Fixture *f) {
        f->source = bus_source_free(f->source);
        f->server = sd_bus_close_unref(f->server);
        f->client = sd_bus_flush_close_unref(f->client);
}

static void send_pings(Fixture *f, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                g_assert_cmpint(sd_bus_call_method_async(f->client, NULL, NULL, "/t", "org.vmfed.Test", "Ping", NULL,
                                                         NULL, NULL), >=, 0);
        g_assert_cmpint(sd_bus_flush(f->client), >=, 0);
}

/* Run the loop without blocking until nothing is left to do (and a bit more). */
static void spin(void) {
        for (unsigned i = 0; i < 200; i++)
                g_main_context_iteration(NULL, FALSE);
}

static void test_paused_reads_nothing(void) {
        Fixture f;
        fixture_setup(&f);

        bus_source_set_paused(f.source, true);
        g_assert_true(bus_source_is_paused(f.source));
        send_pings(&f, 10);
        spin();
        g_assert_cmpuint(f.handled, ==, 0);
        g_assert_cmpint(f.closed, ==, 1);

        bus_source_set_paused(f.source, false);
        spin();
        g_assert_cmpuint(f.handled, ==, 10);
        fixture_teardown(&f);
}

static void test_pause_from_handler(void) {
        Fixture f;
        fixture_setup(&f);

        /* 20 calls in the socket, fewer than one dispatch takes: the third pauses, nothing after it runs. */
        f.pause_at = 3;
        send_pings(&f, 20);
        spin();
        g_assert_cmpuint(f.handled, ==, 3);
        g_assert_true(bus_source_is_paused(f.source));

        /* Resumed from outside any dispatch: the rest, including what sd-bus had read already. */
        bus_source_set_paused(f.source, false);
        spin();
        g_assert_cmpuint(f.handled, ==, 20);
        fixture_teardown(&f);
}

static void test_hangup_while_paused(void) {
        Fixture f;
        fixture_setup(&f);

        bus_source_set_paused(f.source, true);
        send_pings(&f, 5);
        f.client = sd_bus_flush_close_unref(f.client);
        for (unsigned i = 0; i < 200 && f.closed == 1; i++)
                g_main_context_iteration(NULL, FALSE);
        g_assert_cmpint(f.closed, <, 0);
        g_assert_cmpuint(f.handled, ==, 0);
        fixture_teardown(&f);
}

/*
 * The broker pauses a VM's channel from the dispatch of another one (a target's answer
 * completes a request).  If the paused source was found ready in the same iteration, it
 * is dispatched while paused: that must do nothing, not count as a hang-up.
 */
static void test_paused_by_another_source(void) {
        Fixture a, b;
        fixture_setup(&a);
        fixture_setup(&b);

        a.pause_at = 1;
        a.pause_other = b.source;
        send_pings(&b, 3);
        send_pings(&a, 1);
        spin();
        g_assert_cmpuint(a.handled, ==, 1);
        g_assert_true(bus_source_is_paused(b.source));
        g_assert_cmpint(b.closed, ==, 1);

        bus_source_set_paused(b.source, false);
        spin();
        g_assert_cmpuint(b.handled, ==, 3);
        g_assert_cmpint(b.closed, ==, 1);
        fixture_teardown(&b);
        fixture_teardown(&a);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/bus-source/paused-reads-nothing", test_paused_reads_nothing);
        g_test_add_func("/bus-source/pause-from-handler", test_pause_from_handler);
        g_test_add_func("/bus-source/hangup-while-paused", test_hangup_while_paused);
        g_test_add_func("/bus-source/paused-by-another-source", test_paused_by_another_source);
        return g_test_run();
}
