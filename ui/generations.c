/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "generations.h"

#include "notifier.h"
#include "safetext.h"

struct Generations {
        Panel *p;
        GtkWindow *parent;
        GtkWidget *window, *list, *status;
        guint32 current;
        char *current_text;
};

typedef struct Gen {
        Generations *g;
        guint32 number;
        char *text; /* "7 (2026-12-02 05:40, AddVM office)" */
} Gen;

static void gen_free(gpointer data, GClosure *closure) {
        Gen *e = data;
        g_free(e->text);
        g_free(e);
}

static void generations_set_status(Generations *g, const char *text) {
        gtk_label_set_text(GTK_LABEL(g->status), text);
        panel_trace("generations: %s", text);
}

static void generations_rollback_done(GObject *src, GAsyncResult *res, gpointer userdata) {
        Generations *g = userdata;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) v = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &error);
        if (!v) {
                g_dbus_error_strip_remote_error(error);
                g_autofree char *safe = safetext_make(error->message, 2 * PANEL_TEXT_MAX);
                g_autofree char *text = g_strdup_printf("Rollback failed: %s", safe);
                generations_set_status(g, text);
                notifier_send(g->p->notifier, "Rollback failed", text);
                return;
        }
        guint32 n = 0;
        g_variant_get(v, "(u)", &n);
        g_autofree char *text = g_strdup_printf("Rolled back; recorded as generation %u.", n);
        generations_set_status(g, text);
        generations_show(g);
}

static void generations_confirmed(GtkDialog *d, int response, gpointer userdata) {
        Gen *e = userdata;
        gtk_window_destroy(GTK_WINDOW(d));
        if (response != GTK_RESPONSE_ACCEPT)
                return;
        g_dbus_connection_call(e->g->p->bus, BROKER_NAME, BROKER_PATH, MANAGER_IFACE, "Rollback",
                               g_variant_new("(u)", e->number), G_VARIANT_TYPE("(u)"),
                               G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION, G_MAXINT, NULL,
                               generations_rollback_done, e->g);
}

static void generations_on_rollback(GtkButton *b, gpointer userdata) {
        Gen *e = userdata;
        Generations *g = e->g;
        GtkWidget *d = gtk_message_dialog_new(GTK_WINDOW(g->window), GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                              GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE, "Roll back to generation %u?",
                                              e->number);
        gtk_message_dialog_format_secondary_text(
                GTK_MESSAGE_DIALOG(d),
                "vms.d/ and policy.d/ become exactly what they were in generation %s, replacing generation %s. "
                "VMs defined since then disappear and removed ones come back; the policy of then is in force at "
                "once. Running VMs keep their current definition until they restart. The rollback is itself "
                "recorded, so it can be undone the same way.",
                e->text, g->current_text ? g->current_text : "?");
        gtk_dialog_add_button(GTK_DIALOG(d), "_Cancel", GTK_RESPONSE_CANCEL);
        gtk_dialog_add_button(GTK_DIALOG(d), "_Roll back", GTK_RESPONSE_ACCEPT);
        gtk_dialog_set_default_response(GTK_DIALOG(d), GTK_RESPONSE_CANCEL);
        g_signal_connect(d, "response", G_CALLBACK(generations_confirmed), e);
        panel_trace("generations: confirm rollback to %u", e->number);
        gtk_window_present(GTK_WINDOW(d));
}

static void generations_add_row(Generations *g, guint32 number, guint64 usec, const char *untrusted_desc,
                                gboolean current) {
        g_autoptr(GDateTime) t = g_date_time_new_from_unix_local((gint64) (usec / G_USEC_PER_SEC));
        g_autofree char *when = t ? g_date_time_format(t, "%Y-%m-%d %H:%M:%S") : g_strdup("?");
        g_autofree char *desc = safetext_make(untrusted_desc, PANEL_TEXT_MAX);
        Gen *e = g_new0(Gen, 1);
        e->g = g;
        e->number = number;
        e->text = g_strdup_printf("%u (%s, %s)", number, when, desc);
        GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 12);
        GtkWidget *l = gtk_label_new(NULL);
        g_autofree char *line = g_strdup_printf("%s%s", e->text, current ? " — current" : "");
        gtk_label_set_text(GTK_LABEL(l), line);
        gtk_label_set_xalign(GTK_LABEL(l), 0);
        gtk_widget_set_hexpand(l, TRUE);
        gtk_box_append(GTK_BOX(box), l);
        GtkWidget *b = gtk_button_new_with_label("Roll back…");
        gtk_widget_set_sensitive(b, !current);
        g_signal_connect_data(b, "clicked", G_CALLBACK(generations_on_rollback), e, gen_free, 0);
        gtk_box_append(GTK_BOX(box), b);
        gtk_list_box_append(GTK_LIST_BOX(g->list), box);
        if (current) {
                g->current = number;
                g_free(g->current_text);
                g->current_text = g_strdup(e->text);
        }
        panel_trace("generation: %s", line);
}

static void generations_list_done(GObject *src, GAsyncResult *res, gpointer userdata) {
        Generations *g = userdata;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) v = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &error);
        GtkWidget *c;
        while ((c = gtk_widget_get_first_child(g->list)))
                gtk_list_box_remove(GTK_LIST_BOX(g->list), c);
        if (!v) {
                g_dbus_error_strip_remote_error(error);
                generations_set_status(g, error->message);
                return;
        }
        g_autoptr(GVariantIter) it = NULL;
        guint32 n;
        guint64 usec;
        const char *desc;
        gboolean current;
        g_variant_get(v, "(a(utsb))", &it);
        /* Newest first: the likely targets of a rollback are at the top. */
        GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify) g_variant_unref);
        GVariant *child;
        while ((child = g_variant_iter_next_value(it)))
                g_ptr_array_add(rows, child);
        for (guint i = rows->len; i-- > 0;) {
                g_variant_get(rows->pdata[i], "(ut&sb)", &n, &usec, &desc, &current);
                generations_add_row(g, n, usec, desc, current);
        }
        g_ptr_array_unref(rows);
}

Generations *generations_new(Panel *p, GtkWindow *parent) {
        Generations *g = g_new0(Generations, 1);
        g->p = p;
        g->parent = parent;
        g->window = gtk_window_new();
        gtk_window_set_title(GTK_WINDOW(g->window), "vmfed: generations");
        gtk_window_set_transient_for(GTK_WINDOW(g->window), parent);
        gtk_window_set_hide_on_close(GTK_WINDOW(g->window), TRUE);
        gtk_window_set_default_size(GTK_WINDOW(g->window), 560, 400);
        GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
        gtk_widget_set_margin_start(box, 12);
        gtk_widget_set_margin_end(box, 12);
        gtk_widget_set_margin_top(box, 12);
        gtk_widget_set_margin_bottom(box, 12);
        g->list = gtk_list_box_new();
        gtk_list_box_set_selection_mode(GTK_LIST_BOX(g->list), GTK_SELECTION_NONE);
        GtkWidget *scroll = gtk_scrolled_window_new();
        gtk_scrolled_window_set_child(GTK_SCROLLED_WINDOW(scroll), g->list);
        gtk_widget_set_vexpand(scroll, TRUE);
        gtk_box_append(GTK_BOX(box), scroll);
        g->status = gtk_label_new(NULL);
        gtk_label_set_wrap(GTK_LABEL(g->status), TRUE);
        gtk_box_append(GTK_BOX(box), g->status);
        gtk_window_set_child(GTK_WINDOW(g->window), box);
        GtkEventController *keys = gtk_shortcut_controller_new();
        gtk_shortcut_controller_add_shortcut(GTK_SHORTCUT_CONTROLLER(keys),
                                             gtk_shortcut_new(gtk_keyval_trigger_new(GDK_KEY_Escape, 0),
                                                              gtk_named_action_new("window.close")));
        gtk_widget_add_controller(g->window, keys);
        return g;
}

void generations_show(Generations *g) {
        g_dbus_connection_call(g->p->bus, BROKER_NAME, BROKER_PATH, MANAGER_IFACE, "ListGenerations", NULL,
                               G_VARIANT_TYPE("(a(utsb))"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                               generations_list_done, g);
        gtk_window_present(GTK_WINDOW(g->window));
}

void generations_free(Generations *g) {
        if (!g)
                return;
        g_free(g->current_text);
        g_free(g);
}
