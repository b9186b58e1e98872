/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "guestview.h"

#include "notifier.h"
#include "safetext.h"

#define GUEST_PATH "/org/vmfed/Guest1"
#define GUEST_IFACE "org.vmfed.Guest1"
#define GUEST_POLL_S 2

struct GuestView {
        Panel *p;
        GtkWidget *window, *list, *sw, *status;
        GHashTable *shown;   /* name -> "state" last traced */
        guint poll;
        gboolean switching;
        GCancellable *cancel;
};

static void guestview_status(GuestView *v, const char *text) {
        gtk_label_set_text(GTK_LABEL(v->status), text);
        panel_trace("status: %s", text);
}

static const char *guestview_selected(GuestView *v) {
        GtkListBoxRow *row = gtk_list_box_get_selected_row(GTK_LIST_BOX(v->list));
        return row ? g_object_get_data(G_OBJECT(row), "vm") : NULL;
}

static void guestview_update_actions(GuestView *v) {
        gtk_widget_set_sensitive(v->sw, guestview_selected(v) && !v->switching);
}

static GtkListBoxRow *guestview_row(GuestView *v, const char *name) {
        for (GtkWidget *c = gtk_widget_get_first_child(v->list); c; c = gtk_widget_get_next_sibling(c))
                if (g_strcmp0(g_object_get_data(G_OBJECT(c), "vm"), name) == 0)
                        return GTK_LIST_BOX_ROW(c);
        return NULL;
}

static void guestview_show_vm(GuestView *v, const char *untrusted_name, const char *untrusted_state) {
        g_autofree char *name = safetext_make(untrusted_name, 64), *state = safetext_make(untrusted_state, 32);
        GtkListBoxRow *row = guestview_row(v, untrusted_name);
        if (!row) {
                GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 12);
                GtkWidget *n = gtk_label_new(NULL), *s = gtk_label_new(NULL);
                gtk_label_set_text(GTK_LABEL(n), name);
                gtk_label_set_width_chars(GTK_LABEL(n), 20);
                gtk_label_set_xalign(GTK_LABEL(n), 0);
                gtk_widget_add_css_class(n, "vm-name");
                gtk_label_set_xalign(GTK_LABEL(s), 0);
                gtk_box_append(GTK_BOX(box), n);
                gtk_box_append(GTK_BOX(box), s);
                row = GTK_LIST_BOX_ROW(gtk_list_box_row_new());
                gtk_list_box_row_set_child(row, box);
                g_object_set_data_full(G_OBJECT(row), "vm", g_strdup(untrusted_name), g_free);
                g_object_set_data(G_OBJECT(row), "state-label", s);
                gtk_list_box_append(GTK_LIST_BOX(v->list), GTK_WIDGET(row));
        }
        gtk_label_set_text(GTK_LABEL(g_object_get_data(G_OBJECT(row), "state-label")), state);
        if (g_strcmp0(g_hash_table_lookup(v->shown, untrusted_name), untrusted_state) != 0) {
                panel_trace("vm: %s %s", name, state);
                g_hash_table_replace(v->shown, g_strdup(untrusted_name), g_strdup(untrusted_state));
        }
}

static void guestview_list_done(GObject *src, GAsyncResult *res, gpointer userdata) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &error);
        if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                return;
        GuestView *v = userdata;
        if (!r) {
                g_dbus_error_strip_remote_error(error);
                g_autofree char *safe = safetext_make(error->message, PANEL_TEXT_MAX);
                g_autofree char *text = g_strdup_printf("Cannot list the VMs: %s", safe);
                if (!v->switching)
                        guestview_status(v, text);
                return;
        }
        g_autoptr(GVariantIter) it = NULL;
        const char *name, *state;
        g_variant_get(r, "(a(ss))", &it);
        while (g_variant_iter_next(it, "(&s&s)", &name, &state))
                guestview_show_vm(v, name, state);
        if (!gtk_list_box_get_selected_row(GTK_LIST_BOX(v->list))) {
                GtkListBoxRow *first = gtk_list_box_get_row_at_index(GTK_LIST_BOX(v->list), 0);
                if (first) {
                        gtk_list_box_select_row(GTK_LIST_BOX(v->list), first);
                        gtk_window_set_focus(GTK_WINDOW(v->window), GTK_WIDGET(first));
                }
        }
        guestview_update_actions(v);
}

static gboolean guestview_poll(gpointer userdata) {
        GuestView *v = userdata;
        g_dbus_connection_call(v->p->bus, NULL, GUEST_PATH, GUEST_IFACE, "ListVMs", NULL, G_VARIANT_TYPE("(a(ss))"),
                               G_DBUS_CALL_FLAGS_NONE, 10000, v->cancel, guestview_list_done, v);
        return G_SOURCE_CONTINUE;
}

typedef struct Switch {
        GuestView *v;
        char *vm;
} Switch;

static void guestview_switch_done(GObject *src, GAsyncResult *res, gpointer userdata) {
        Switch *s = userdata;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) r = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &error);
        if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
                GuestView *v = s->v;
                v->switching = FALSE;
                if (r) {
                        g_autofree char *text = g_strdup_printf("Done: switch to %s.", s->vm);
                        guestview_status(v, text);
                } else {
                        g_dbus_error_strip_remote_error(error);
                        g_autofree char *safe = safetext_make(error->message, 2 * PANEL_TEXT_MAX);
                        g_autofree char *text = g_strdup_printf("Could not switch to %s: %s", s->vm, safe);
                        guestview_status(v, text);
                        notifier_send(v->p->notifier, "Persona switch refused or failed", text);
                }
                guestview_update_actions(v);
                guestview_poll(v);
        }
        g_free(s->vm);
        g_free(s);
}

static void guestview_on_switch(GtkButton *b, gpointer userdata) {
        GuestView *v = userdata;
        const char *vm = guestview_selected(v);
        if (!vm || v->switching)
                return;
        Switch *s = g_new0(Switch, 1);
        s->v = v;
        s->vm = safetext_make(vm, 64);
        v->switching = TRUE;
        g_autofree char *text = g_strdup_printf("Asked to switch to %s; the host decides (its console may ask)…", s->vm);
        guestview_status(v, text);
        /* Answered when the switch is done, or refused: no timeout of ours (an ask waits for a person). */
        g_dbus_connection_call(v->p->bus, NULL, GUEST_PATH, GUEST_IFACE, "SwitchPersona", g_variant_new("(s)", vm),
                               NULL, G_DBUS_CALL_FLAGS_NONE, G_MAXINT, v->cancel, guestview_switch_done, s);
        guestview_update_actions(v);
}

static void guestview_selected_changed(GtkListBox *box, GtkListBoxRow *row, gpointer userdata) {
        GuestView *v = userdata;
        panel_trace("selected: %s", row ? (const char *) g_object_get_data(G_OBJECT(row), "vm") : "");
        guestview_update_actions(v);
}

static int guestview_sort(GtkListBoxRow *a, GtkListBoxRow *b, gpointer userdata) {
        return g_strcmp0(g_object_get_data(G_OBJECT(a), "vm"), g_object_get_data(G_OBJECT(b), "vm"));
}

GuestView *guestview_new(Panel *p) {
        GuestView *v = g_new0(GuestView, 1);
        v->p = p;
        v->shown = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        v->cancel = g_cancellable_new();
        v->window = gtk_application_window_new(p->app);
        gtk_window_set_title(GTK_WINDOW(v->window), "vmfed (persona)");
        gtk_window_set_default_size(GTK_WINDOW(v->window), 480, 360);
        GtkWidget *top = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
        gtk_widget_set_margin_start(top, 12);
        gtk_widget_set_margin_end(top, 12);
        gtk_widget_set_margin_top(top, 12);
        gtk_widget_set_margin_bottom(top, 12);
        gtk_window_set_child(GTK_WINDOW(v->window), top);
        v->list = gtk_list_box_new();
        gtk_list_box_set_selection_mode(GTK_LIST_BOX(v->list), GTK_SELECTION_BROWSE);
        gtk_list_box_set_sort_func(GTK_LIST_BOX(v->list), guestview_sort, NULL, NULL);
        g_signal_connect(v->list, "row-selected", G_CALLBACK(guestview_selected_changed), v);
        GtkWidget *scroll = gtk_scrolled_window_new();
        gtk_scrolled_window_set_child(GTK_SCROLLED_WINDOW(scroll), v->list);
        gtk_widget_set_vexpand(scroll, TRUE);
        gtk_box_append(GTK_BOX(top), scroll);
        v->sw = gtk_button_new_with_mnemonic("S_witch to this persona");
        gtk_widget_set_halign(v->sw, GTK_ALIGN_START);
        g_signal_connect(v->sw, "clicked", G_CALLBACK(guestview_on_switch), v);
        gtk_box_append(GTK_BOX(top), v->sw);
        v->status = gtk_label_new(NULL);
        gtk_label_set_xalign(GTK_LABEL(v->status), 0);
        gtk_label_set_wrap(GTK_LABEL(v->status), TRUE);
        gtk_box_append(GTK_BOX(top), v->status);
        guestview_update_actions(v);
        guestview_poll(v);
        v->poll = g_timeout_add_seconds(GUEST_POLL_S, guestview_poll, v);
        return v;
}

void guestview_present(GuestView *v) {
        gtk_window_present(GTK_WINDOW(v->window));
}

void guestview_free(GuestView *v) {
        if (!v)
                return;
        g_cancellable_cancel(v->cancel);
        g_clear_object(&v->cancel);
        g_clear_handle_id(&v->poll, g_source_remove);
        g_hash_table_unref(v->shown);
        g_free(v);
}
