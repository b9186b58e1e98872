/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/hypervisor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "broker/lifecycle.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/virt.h"

#define HYPERVISOR_RECONNECT_SECONDS 3

/* A reconnection in a worker thread; h is NULL when the Hypervisor was freed meanwhile. */
typedef struct Reconnect {
        Hypervisor *h;
        char *uri;
        virConnectPtr conn;
        char *error;
        int r;
} Reconnect;

struct Hypervisor {
        Broker *broker;
        char *uri;
        virConnectPtr conn;
        guint reconnect_id;
        Reconnect *reconnecting; /* a virConnectOpen() under way in a thread */
        bool closing;
};

int hypervisor_init_event_loop(void) {
        g_autofree char *error = NULL;
        int r;

        /* libvirt prints errors to stderr by default; virt_error() reports them instead. */
        virt_quiet_errors();
        if (virInitialize() < 0) {
                r = virt_error("virInitialize", &error);
                return log_error_errno(r, "Failed to initialize libvirt: %s", error);
        }
        if (virEventRegisterDefaultImpl() < 0) {
                r = virt_error("virEventRegisterDefaultImpl", &error);
                return log_error_errno(r, "Failed to register libvirt's event loop: %s", error);
        }
        return 0;
}

bool hypervisor_is_connected(Hypervisor *h) {
        return h && h->conn && virConnectIsAlive(h->conn) == 1;
}

const char *hypervisor_domain_state(Hypervisor *h, const char *name) {
        return lifecycle_vm_state(h ? broker_lifecycle(h->broker) : NULL, name);
}

void hypervisor_refresh_states(Hypervisor *h) {
        lifecycle_refresh_states(broker_lifecycle(h->broker));
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
        /* The federation goes first: pending operations fail, VM states become "unknown". */
        lifecycle_detach(broker_lifecycle(h->broker));
        (void) virConnectUnregisterCloseCallback(h->conn, close_callback);
        (void) virConnectClose(h->conn);
        h->conn = NULL;
        h->closing = false;
}

/* A new connection: keepalive (remote drivers only; the test driver refuses it), close callback, federation. */
static void hypervisor_attach(Hypervisor *h, virConnectPtr conn) {
        g_autofree char *error = NULL;

        h->conn = conn;
        if (virConnectSetKeepAlive(h->conn, 5, 3) < 0)
                virResetLastError();
        if (virConnectRegisterCloseCallback(h->conn, close_callback, h, NULL) < 0) {
                (void) virt_error("virConnectRegisterCloseCallback", &error);
                log_debug("No close callback for %s: %s", h->uri, error);
        }
        log_info("Connected to %s.", h->uri);
        /* Lifecycle events and VM state belong to the federation. */
        lifecycle_attach(broker_lifecycle(h->broker), h->conn);
}

/* At start, before the bus is served: a synchronous first attempt. */
static int hypervisor_connect(Hypervisor *h) {
        g_autofree char *error = NULL;
        virConnectPtr conn;
        int r;

        conn = virConnectOpen(h->uri);
        if (!conn) {
                r = virt_error("virConnectOpen", &error);
                return log_warning_errno(r, "Failed to connect to %s: %s", h->uri, error);
        }
        hypervisor_attach(h, conn);
        return 0;
}

/*
 * Reconnections run in a thread: with libvirtd hung (not gone), virConnectOpen()
 * waits for its answer, and the main loop must not.
 */
static void reconnect_free(Reconnect *c) {
        if (c->conn)
                virConnectClose(c->conn);
        g_free(c->uri);
        g_free(c->error);
        g_free(c);
}

static void reconnect_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *cancel) {
        Reconnect *c = task_data;

        c->conn = virConnectOpen(c->uri);
        c->r = c->conn ? 0 : virt_error("virConnectOpen", &c->error);
        g_task_return_boolean(task, true);
}

static gboolean reconnect_timer(gpointer userdata);

static void reconnect_done(GObject *source, GAsyncResult *res, gpointer userdata) {
        Reconnect *c = g_task_get_task_data(G_TASK(res));
        Hypervisor *h = c->h;

        if (!h)
                return; /* freed meanwhile: the task data's free closes the connection */
        h->reconnecting = NULL;
        c->h = NULL;
        if (c->r < 0) {
                log_warning_errno(c->r, "Failed to connect to %s: %s", h->uri, c->error);
                h->reconnect_id = g_timeout_add_seconds(HYPERVISOR_RECONNECT_SECONDS, reconnect_timer, h);
                return;
        }
        hypervisor_attach(h, steal_pointer(&c->conn));
        hypervisor_refresh_states(h);
}

static gboolean reconnect_timer(gpointer userdata) {
        Hypervisor *h = userdata;
        g_autoptr(GTask) task = NULL;
        Reconnect *c;

        h->reconnect_id = 0;
        hypervisor_disconnect(h);
        if (h->reconnecting)
                return G_SOURCE_REMOVE;
        c = g_new0(Reconnect, 1);
        c->h = h;
        c->uri = g_strdup(h->uri);
        h->reconnecting = c;
        task = g_task_new(NULL, NULL, reconnect_done, NULL);
        g_task_set_task_data(task, c, (GDestroyNotify) reconnect_free);
        g_task_run_in_thread(task, reconnect_thread);
        return G_SOURCE_REMOVE;
}

static gboolean disconnect_idle(gpointer userdata) {
        Hypervisor *h = userdata;
        hypervisor_disconnect(h);
        hypervisor_refresh_states(h);
        return G_SOURCE_REMOVE;
}

static void hypervisor_schedule_reconnect(Hypervisor *h) {
        if (h->reconnect_id != 0 || h->reconnecting)
                return;
        g_idle_add(disconnect_idle, h);
        h->reconnect_id = g_timeout_add_seconds(HYPERVISOR_RECONNECT_SECONDS, reconnect_timer, h);
}

int hypervisor_new(Broker *b, const char *uri, Hypervisor **ret) {
        Hypervisor *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->broker = b;
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
        if (h->reconnecting)
                h->reconnecting->h = NULL; /* its answer is dropped */
        g_idle_remove_by_data(h);
        hypervisor_disconnect(h);
        free(h->uri);
        free(h);
        return NULL;
}
