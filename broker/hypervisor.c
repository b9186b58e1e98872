/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/hypervisor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/log.h"
#include "common/macro.h"

#define HYPERVISOR_RECONNECT_SECONDS 3

struct Hypervisor {
        Broker *broker;
        char *uri;
        virConnectPtr conn;
        int lifecycle_id;
        guint reconnect_id;
        bool closing;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(virDomainPtr, virDomainFree)

static const char *libvirt_error(void) {
        const virError *e = virGetLastError();
        return e && e->message ? e->message : "unknown libvirt error";
}

/* libvirt prints errors to stderr by default; we log them ourselves. */
static void libvirt_error_func(void *userdata, virErrorPtr error) {
}

int hypervisor_init_event_loop(void) {
        if (virInitialize() < 0)
                return log_error_errno(-EIO, "Failed to initialize libvirt: %s", libvirt_error());
        virSetErrorFunc(NULL, libvirt_error_func);
        if (virEventRegisterDefaultImpl() < 0)
                return log_error_errno(-EIO, "Failed to register libvirt's event loop: %s",
                                       libvirt_error());
        return 0;
}

static const char *state_to_string(int state) {
        switch (state) {
        case VIR_DOMAIN_RUNNING:
        case VIR_DOMAIN_BLOCKED:
                return "running";
        case VIR_DOMAIN_PAUSED:
                return "paused";
        case VIR_DOMAIN_SHUTDOWN:
                return "stopping";
        case VIR_DOMAIN_SHUTOFF:
                return "stopped";
        case VIR_DOMAIN_CRASHED:
                return "crashed";
        case VIR_DOMAIN_PMSUSPENDED:
                return "suspended";
        default:
                return "unknown";
        }
}

static const char *event_to_state(int event) {
        switch (event) {
        case VIR_DOMAIN_EVENT_STARTED:
        case VIR_DOMAIN_EVENT_RESUMED:
                return "running";
        case VIR_DOMAIN_EVENT_SUSPENDED:
                return "paused";
        case VIR_DOMAIN_EVENT_SHUTDOWN:
                return "stopping";
        case VIR_DOMAIN_EVENT_STOPPED:
        case VIR_DOMAIN_EVENT_DEFINED:
                return "stopped";
        case VIR_DOMAIN_EVENT_UNDEFINED:
                return "undefined";
        case VIR_DOMAIN_EVENT_CRASHED:
                return "crashed";
        case VIR_DOMAIN_EVENT_PMSUSPENDED:
                return "suspended";
        default:
                return NULL;
        }
}

bool hypervisor_is_connected(Hypervisor *h) {
        return h && h->conn && virConnectIsAlive(h->conn) == 1;
}

const char *hypervisor_domain_state(Hypervisor *h, const char *name) {
        _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
        int state, reason;

        if (!h || !h->conn)
                return "unknown";
        dom = virDomainLookupByName(h->conn, name);
        if (!dom) {
                const virError *e = virGetLastError();
                if (e && e->code == VIR_ERR_NO_DOMAIN)
                        return "undefined";
                return "unknown";
        }
        if (virDomainGetState(dom, &state, &reason, 0) < 0)
                return "unknown";
        return state_to_string(state);
}

void hypervisor_refresh_states(Hypervisor *h) {
        GHashTableIter it;
        gpointer key, value;

        g_hash_table_iter_init(&it, h->broker->vm_objects);
        while (g_hash_table_iter_next(&it, &key, &value))
                broker_set_vm_state(h->broker, key, hypervisor_domain_state(h, key));
}

static int lifecycle_event(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        Hypervisor *h = opaque;
        const char *name = virDomainGetName(dom);
        const char *state = event_to_state(event);

        log_debug("libvirt: domain %s event %d detail %d", name ? name : "?", event, detail);
        if (name && state)
                broker_set_vm_state(h->broker, name, state);
        return 0;
}

static void hypervisor_schedule_reconnect(Hypervisor *h);

static void close_callback(virConnectPtr conn, int reason, void *opaque) {
        Hypervisor *h = opaque;

        if (h->closing)
                return;
        log_warning("Connection to %s closed (reason %d); reconnecting every %d s.", h->uri, reason,
                    HYPERVISOR_RECONNECT_SECONDS);
        /* The connection is dead; drop it from outside libvirt's callback. */
        hypervisor_schedule_reconnect(h);
}

static void hypervisor_disconnect(Hypervisor *h) {
        if (!h->conn)
                return;
        h->closing = true;
        if (h->lifecycle_id >= 0)
                (void) virConnectDomainEventDeregisterAny(h->conn, h->lifecycle_id);
        h->lifecycle_id = -1;
        (void) virConnectUnregisterCloseCallback(h->conn, close_callback);
        (void) virConnectClose(h->conn);
        h->conn = NULL;
        h->closing = false;
}

static int hypervisor_connect(Hypervisor *h) {
        h->conn = virConnectOpen(h->uri);
        if (!h->conn)
                return log_warning_errno(-ECONNREFUSED, "Failed to connect to %s: %s", h->uri,
                                         libvirt_error());

        /* Remote drivers only; the test driver refuses keepalive, which is fine. */
        (void) virConnectSetKeepAlive(h->conn, 5, 3);
        if (virConnectRegisterCloseCallback(h->conn, close_callback, h, NULL) < 0)
                log_debug("No close callback for %s: %s", h->uri, libvirt_error());
        h->lifecycle_id = virConnectDomainEventRegisterAny(
                h->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(lifecycle_event), h,
                NULL);
        if (h->lifecycle_id < 0)
                log_warning("No lifecycle events from %s: %s", h->uri, libvirt_error());

        log_info("Connected to %s.", h->uri);
        return 0;
}

static gboolean reconnect_timer(gpointer userdata) {
        Hypervisor *h = userdata;

        hypervisor_disconnect(h);
        if (hypervisor_connect(h) < 0)
                return G_SOURCE_CONTINUE;
        h->reconnect_id = 0;
        hypervisor_refresh_states(h);
        return G_SOURCE_REMOVE;
}

static gboolean disconnect_idle(gpointer userdata) {
        Hypervisor *h = userdata;
        hypervisor_disconnect(h);
        hypervisor_refresh_states(h);
        return G_SOURCE_REMOVE;
}

static void hypervisor_schedule_reconnect(Hypervisor *h) {
        if (h->reconnect_id != 0)
                return;
        g_idle_add(disconnect_idle, h);
        h->reconnect_id = g_timeout_add_seconds(HYPERVISOR_RECONNECT_SECONDS, reconnect_timer, h);
}

int hypervisor_new(Broker *b, const char *uri, Hypervisor **ret) {
        Hypervisor *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->broker = b;
        h->lifecycle_id = -1;
        h->uri = strdup(uri);
        if (!h->uri) {
                free(h);
                return -ENOMEM;
        }
        /* Not being able to reach libvirt is not fatal: retry in the background. */
        if (hypervisor_connect(h) < 0)
                h->reconnect_id = g_timeout_add_seconds(HYPERVISOR_RECONNECT_SECONDS, reconnect_timer, h);
        *ret = h;
        return 0;
}

Hypervisor *hypervisor_free(Hypervisor *h) {
        if (!h)
                return NULL;
        if (h->reconnect_id)
                g_source_remove(h->reconnect_id);
        g_idle_remove_by_data(h);
        hypervisor_disconnect(h);
        free(h->uri);
        free(h);
        return NULL;
}
