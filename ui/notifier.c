/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "notifier.h"

#define NOTIFY_NAME "org.freedesktop.Notifications"
#define NOTIFY_PATH "/org/freedesktop/Notifications"

struct Notifier {
        GDBusConnection *session;
        gboolean body_markup; /* the server's GetCapabilities has "body-markup" */
        gboolean got_caps;
        GPtrArray *queued;    /* (summary, body) pairs sent before the bus was there */
        GCancellable *cancel;
};

static void notifier_notify(Notifier *n, const char *summary, const char *body) {
        g_autofree char *escaped = n->body_markup ? g_markup_escape_text(body, -1) : g_strdup(body);
        GVariantBuilder hints;
        g_variant_builder_init(&hints, G_VARIANT_TYPE("a{sv}"));
        g_variant_builder_add(&hints, "{sv}", "urgency", g_variant_new_byte(1));
        g_dbus_connection_call(n->session, NOTIFY_NAME, NOTIFY_PATH, NOTIFY_NAME, "Notify",
                               g_variant_new("(susssasa{sv}i)", "vmfed", 0, "dialog-information", summary,
                                             escaped, NULL, &hints, -1),
                               NULL, G_DBUS_CALL_FLAGS_NONE, 5000, NULL, NULL, NULL);
}

static void notifier_flush(Notifier *n) {
        for (guint i = 0; i + 1 < n->queued->len; i += 2)
                notifier_notify(n, n->queued->pdata[i], n->queued->pdata[i + 1]);
        g_ptr_array_set_size(n->queued, 0);
}

static void notifier_caps_done(GObject *src, GAsyncResult *res, gpointer userdata) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) v = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &error);
        if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                return;
        Notifier *n = userdata;
        if (v) {
                g_autofree const char **caps = NULL;
                g_variant_get(v, "(^a&s)", &caps);
                n->body_markup = caps && g_strv_contains(caps, "body-markup");
        }
        n->got_caps = TRUE;
        notifier_flush(n);
}

static void notifier_bus_done(GObject *src, GAsyncResult *res, gpointer userdata) {
        g_autoptr(GError) error = NULL;
        GDBusConnection *c = g_bus_get_finish(res, &error);
        if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                return;
        Notifier *n = userdata;
        if (!c) {
                g_message("no session bus for notifications: %s", error->message);
                return;
        }
        n->session = c;
        g_dbus_connection_call(c, NOTIFY_NAME, NOTIFY_PATH, NOTIFY_NAME, "GetCapabilities", NULL,
                               G_VARIANT_TYPE("(as)"), G_DBUS_CALL_FLAGS_NONE, 5000, n->cancel,
                               notifier_caps_done, n);
}

Notifier *notifier_new(void) {
        Notifier *n = g_new0(Notifier, 1);
        n->queued = g_ptr_array_new_with_free_func(g_free);
        n->cancel = g_cancellable_new();
        g_bus_get(G_BUS_TYPE_SESSION, n->cancel, notifier_bus_done, n);
        return n;
}

void notifier_free(Notifier *n) {
        if (!n)
                return;
        g_cancellable_cancel(n->cancel);
        g_clear_object(&n->cancel);
        if (n->session)
                g_dbus_connection_flush_sync(n->session, NULL, NULL);
        g_clear_object(&n->session);
        g_ptr_array_unref(n->queued);
        g_free(n);
}

void notifier_send(Notifier *n, const char *summary, const char *body) {
        panel_trace("notify: %s: %s", summary, body);
        if (!n->got_caps) {
                if (n->queued->len < 64) {
                        g_ptr_array_add(n->queued, g_strdup(summary));
                        g_ptr_array_add(n->queued, g_strdup(body));
                }
                return;
        }
        notifier_notify(n, summary, body);
}
