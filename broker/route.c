/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/route.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker/channel.h"
#include "broker/errors.h"
#include "broker/guest-services.h"
#include "common/log.h"
#include "common/macro.h"
#include "services/bus-copy.h"

typedef struct Route {
        RouteTable *table;
        char *vm;
        char *member;
        sd_bus_message *args; /* sealed, NULL for none */
        uint64_t timeout_usec;
        sd_bus_slot *slot;    /* sent: waiting for the answer */
        guint wait_id;        /* not sent yet: waiting for the agent */
        RouteDoneFn done;
        void *userdata;
        Broker *broker;
        bool sent;            /* counted in table->sent */
} Route;

struct RouteTable {
        unsigned agent_timeout_sec;
        GHashTable *routes; /* Route* set */
        GHashTable *sent;   /* VM name → calls sent to its agent and not answered yet (GUINT_TO_POINTER) */
};

static void route_count_sent(Route *r, bool sent) {
        GHashTable *h = r->table->sent;
        if (r->sent == sent)
                return;
        r->sent = sent;
        unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(h, r->vm));
        n = sent ? n + 1 : n - 1;
        if (n == 0)
                g_hash_table_remove(h, r->vm);
        else
                g_hash_table_insert(h, g_strdup(r->vm), GUINT_TO_POINTER(n));
}

static void route_free(void *p) {
        Route *r = p;
        if (!r)
                return;
        if (r->wait_id)
                g_source_remove(r->wait_id);
        route_count_sent(r, false);
        r->slot = sd_bus_slot_unref(r->slot);
        sd_bus_message_unref(r->args);
        g_free(r->vm);
        g_free(r->member);
        g_free(r);
}

RouteTable *route_table_new(unsigned agent_timeout_sec) {
        RouteTable *t = g_new0(RouteTable, 1);
        t->agent_timeout_sec = agent_timeout_sec;
        t->sent = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        t->routes = g_hash_table_new_full(g_direct_hash, g_direct_equal, route_free, NULL);
        return t;
}

RouteTable *route_table_free(RouteTable *t) {
        if (!t)
                return NULL;
        g_hash_table_unref(t->routes);
        g_hash_table_unref(t->sent);
        g_free(t);
        return NULL;
}

static RouteTable *route_table_of(Broker *b) {
        return guest_services_routes(b);
}

/* Call done once and forget the route. */
static void route_finish(Route *r, sd_bus_message *reply, const sd_bus_error *error) {
        RouteDoneFn done = r->done;
        void *userdata = r->userdata;
        Broker *b = r->broker;

        _cleanup_(sd_bus_message_unrefp) _unused_ sd_bus_message *keep = sd_bus_message_ref(reply);
        g_hash_table_remove(r->table->routes, r);
        done(b, reply, error, userdata);
}

static void route_fail(Route *r, const char *name, const char *fmt, ...) _printf_(3, 4);
static void route_fail(Route *r, const char *name, const char *fmt, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        sd_bus_error_set(&e, name, errors_utf8_cut(buf));
        route_finish(r, NULL, &e);
}

static int route_on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Route *r = userdata;

        r->slot = sd_bus_slot_unref(r->slot);
        route_count_sent(r, false);
        if (sd_bus_message_is_method_error(reply, NULL))
                route_finish(r, NULL, sd_bus_message_get_error(reply));
        else
                route_finish(r, reply, NULL);
        return 0;
}

static int route_send(Route *r, sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int k;

        k = sd_bus_message_new_method_call(bus, &call, NULL, AGENT1_PATH, AGENT1_INTERFACE, r->member);
        if (k >= 0 && r->args) {
                k = sd_bus_message_rewind(r->args, true);
                if (k >= 0)
                        k = bus_copy_args(call, r->args);
        }
        if (k >= 0)
                k = sd_bus_call_async(bus, &r->slot, call, route_on_reply, r, r->timeout_usec);
        if (k >= 0) {
                route_count_sent(r, true);
                /* The answer comes on vm's channel: it must be read, throttled or not. */
                channel_agent_call_sent(r->broker, r->vm);
        }
        return k;
}

static gboolean route_on_wait_timeout(gpointer userdata) {
        Route *r = userdata;
        r->wait_id = 0;
        route_fail(r, VMFED_ERROR_FAILED, "The agent of VM %s did not connect in time; nothing was done there.",
                   r->vm);
        return G_SOURCE_REMOVE;
}

static gboolean route_on_send_failed(gpointer userdata) {
        Route *r = userdata;
        r->wait_id = 0;
        route_fail(r, VMFED_ERROR_FAILED, "Cannot send the request to the agent of VM %s.", r->vm);
        return G_SOURCE_REMOVE;
}

int route_new_args(Broker *b, sd_bus_message **ret) {
        return sd_bus_message_new_method_call(broker_bus(b), ret, NULL, "/", "org.vmfed.Route", "Args");
}

int route_call(Broker *b, const char *vm, const char *member, sd_bus_message *args, uint64_t timeout_usec,
               RouteDoneFn done, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *a = args;
        RouteTable *t = route_table_of(b);
        int k;

        if (!t)
                return -ESHUTDOWN;
        if (a) {
                k = sd_bus_message_seal(a, 1, 0);
                if (k < 0)
                        return k;
        }
        Route *r = g_new0(Route, 1);
        r->table = t;
        r->broker = b;
        r->vm = g_strdup(vm);
        r->member = g_strdup(member);
        r->args = steal_pointer(&a);
        r->timeout_usec = timeout_usec;
        r->done = done;
        r->userdata = userdata;
        g_hash_table_add(t->routes, r);

        sd_bus *bus = channel_agent_bus(b, vm);
        if (bus) {
                k = route_send(r, bus);
                if (k < 0) /* done must run later, never from inside the call */
                        r->wait_id = g_idle_add(route_on_send_failed, r);
                return 0;
        }
        log_debug("Route %s.%s waits for the agent of %s.", vm, member, vm);
        r->wait_id = g_timeout_add_seconds(t->agent_timeout_sec, route_on_wait_timeout, r);
        return 0;
}

unsigned route_n_sent(Broker *b, const char *vm) {
        RouteTable *t = route_table_of(b);
        return t ? GPOINTER_TO_UINT(g_hash_table_lookup(t->sent, vm)) : 0;
}

void route_agent_ready(Broker *b, const char *vm) {
        RouteTable *t = route_table_of(b);
        g_autoptr(GPtrArray) ready = g_ptr_array_new();
        GHashTableIter it;
        gpointer key;

        if (!t)
                return;
        sd_bus *bus = channel_agent_bus(b, vm);
        if (!bus)
                return;
        g_hash_table_iter_init(&it, t->routes);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                Route *r = key;
                if (!r->slot && r->wait_id && strcmp(r->vm, vm) == 0)
                        g_ptr_array_add(ready, r);
        }
        for (guint i = 0; i < ready->len; i++) {
                Route *r = g_ptr_array_index(ready, i);
                g_source_remove(r->wait_id);
                r->wait_id = 0;
                if (route_send(r, bus) < 0)
                        r->wait_id = g_idle_add(route_on_send_failed, r);
        }
}

void route_agent_lost(Broker *b, const char *vm) {
        RouteTable *t = route_table_of(b);
        g_autoptr(GPtrArray) lost = g_ptr_array_new();
        GHashTableIter it;
        gpointer key;

        if (!t)
                return;
        g_hash_table_iter_init(&it, t->routes);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                Route *r = key;
                if (r->slot && strcmp(r->vm, vm) == 0)
                        g_ptr_array_add(lost, r);
        }
        for (guint i = 0; i < lost->len; i++) {
                Route *r = g_ptr_array_index(lost, i);
                if (!g_hash_table_contains(t->routes, r))
                        continue; /* gone with an earlier callback */
                r->slot = sd_bus_slot_unref(r->slot);
                route_fail(r, VMFED_ERROR_FAILED,
                           "The agent of VM %s disconnected before it answered; the request may not have been "
                           "carried out.",
                           r->vm);
        }
}

void route_cancel_all(Broker *b) {
        RouteTable *t = route_table_of(b);
        if (!t)
                return;
        g_autoptr(GList) routes = g_hash_table_get_keys(t->routes);
        for (GList *l = routes; l; l = l->next) {
                Route *r = l->data;
                if (!g_hash_table_contains(t->routes, r))
                        continue; /* gone with an earlier callback */
                r->slot = sd_bus_slot_unref(r->slot);
                route_fail(r, VMFED_ERROR_FAILED, "The broker is shutting down; the request to %s may not have been carried out.",
                           r->vm);
        }
}
