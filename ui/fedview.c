/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fedview.h"

#include "generations.h"
#include "notifier.h"
#include "safetext.h"

#define PROGRESS_LINES 10

typedef struct VmRow {
        FedView *view;
        GDBusProxy *proxy;   /* the VM object's VM interface */
        GtkWidget *row, *swatch, *name, *role, *state;
        char *last_state;
        gboolean stop_pending, force_pending;
} VmRow;

struct FedView {
        Panel *p;
        GtkWidget *window, *list, *active, *status, *progress;
        GtkWidget *start, *stop, *force, *sw, *generations;
        GHashTable *rows;          /* object path -> VmRow */
        GHashTable *ops;           /* "SENDER/COOKIE" -> what ("switch to gondor") */
        guint progress_sub, clipboard_sub;
        gboolean switching;
        Generations *gen;
};

typedef struct Call {
        FedView *view;
        char *what;   /* "switch to gondor" */
        char *op;     /* operation id */
        char *vm;     /* VM path, for stop/force stop */
} Call;

static void call_free(Call *c) {
        g_free(c->what);
        g_free(c->op);
        g_free(c->vm);
        g_free(c);
}

static char *vm_prop(GDBusProxy *proxy, const char *name) {
        g_autoptr(GVariant) v = g_dbus_proxy_get_cached_property(proxy, name);
        return v && g_variant_is_of_type(v, G_VARIANT_TYPE_STRING) ? g_variant_dup_string(v, NULL) : g_strdup("");
}

const char *panel_vm_role(Panel *p, const char *name) {
        if (!p->view)
                return "";
        GHashTableIter it;
        VmRow *r;
        g_hash_table_iter_init(&it, p->view->rows);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *) &r))
                if (g_strcmp0(gtk_label_get_text(GTK_LABEL(r->name)), name) == 0)
                        return gtk_label_get_text(GTK_LABEL(r->role));
        return "";
}

static void fedview_status(FedView *v, const char *text) {
        gtk_label_set_text(GTK_LABEL(v->status), text);
        panel_trace("status: %s", text);
}

static void fedview_progress(FedView *v, const char *line) {
        GtkWidget *l = gtk_label_new(NULL);
        gtk_label_set_text(GTK_LABEL(l), line);
        gtk_label_set_xalign(GTK_LABEL(l), 0);
        gtk_box_append(GTK_BOX(v->progress), l);
        GtkWidget *first = gtk_widget_get_first_child(v->progress);
        int n = 0;
        for (GtkWidget *c = first; c; c = gtk_widget_get_next_sibling(c))
                n++;
        if (n > PROGRESS_LINES)
                gtk_box_remove(GTK_BOX(v->progress), first);
        panel_trace("progress: %s", line);
}

static VmRow *fedview_selected(FedView *v) {
        GtkListBoxRow *row = gtk_list_box_get_selected_row(GTK_LIST_BOX(v->list));
        return row ? g_object_get_data(G_OBJECT(row), "vmrow") : NULL;
}

static char *fedview_active_persona(FedView *v) {
        g_autoptr(GVariant) a = g_dbus_proxy_get_cached_property(v->p->manager, "ActivePersona");
        return a ? g_variant_dup_string(a, NULL) : g_strdup("");
}

/* Which actions fit the selected VM's role and state. */
static void fedview_update_actions(FedView *v) {
        VmRow *r = fedview_selected(v);
        g_autofree char *active = fedview_active_persona(v);
        g_autofree char *name = r ? vm_prop(r->proxy, "Name") : NULL;
        g_autofree char *role = r ? vm_prop(r->proxy, "Role") : NULL;
        g_autofree char *state = r ? vm_prop(r->proxy, "State") : NULL;
        gboolean down = state && (g_str_equal(state, "stopped") || g_str_equal(state, "saved"));
        gboolean persona = role && g_str_equal(role, "persona");
        gboolean up = state && !down && !g_str_equal(state, "unknown");

        gtk_widget_set_sensitive(v->start, r && down && !r->stop_pending && (!persona || !*active) && !v->switching);
        gtk_widget_set_sensitive(v->stop, r && up && !r->stop_pending);
        gtk_widget_set_visible(v->force, r && r->stop_pending);
        gtk_widget_set_sensitive(v->force, r && r->stop_pending && !r->force_pending);
        gtk_widget_set_sensitive(v->sw, r && persona && !v->switching && g_strcmp0(name, active) != 0);
}

static void fedview_update_active(FedView *v) {
        g_autofree char *active = fedview_active_persona(v);
        g_autofree char *text = g_strdup_printf("Active persona: %s", *active ? active : "none");
        gtk_label_set_text(GTK_LABEL(v->active), text);
        panel_trace("active: %s", active);
        fedview_update_actions(v);
}

static void vmrow_update(VmRow *r) {
        g_autofree char *name = vm_prop(r->proxy, "Name");
        g_autofree char *role = vm_prop(r->proxy, "Role");
        g_autofree char *state = vm_prop(r->proxy, "State");
        g_autofree char *css = g_strdup_printf("role-%s", role);

        gtk_label_set_text(GTK_LABEL(r->name), name);
        gtk_label_set_text(GTK_LABEL(r->role), role);
        gtk_label_set_text(GTK_LABEL(r->state), state);
        gtk_widget_set_css_classes(r->swatch, (const char *[]) { "swatch", css, NULL });
        panel_trace("vm: %s %s %s", name, role, state);
        /* A VM that stops by itself (crash, power off inside) is news; one we stop is not. */
        if (r->last_state && g_str_equal(r->last_state, "running") && g_str_equal(state, "stopped") &&
            !r->stop_pending && !r->view->switching) {
                g_autofree char *body = g_strdup_printf("%s stopped without being asked to from this panel.", name);
                notifier_send(r->view->p->notifier, "VM stopped", body);
        }
        g_free(r->last_state);
        r->last_state = g_steal_pointer(&state);
}

static void vmrow_props_changed(GDBusProxy *proxy, GVariant *changed, GStrv invalidated, gpointer userdata) {
        VmRow *r = userdata;
        vmrow_update(r);
        fedview_update_actions(r->view);
}

static void vmrow_free(gpointer data) {
        VmRow *r = data;
        g_signal_handlers_disconnect_by_data(r->proxy, r);
        g_object_unref(r->proxy);
        g_free(r->last_state);
        g_free(r);
}

static GtkWidget *fedview_cell(const char *klass, int width) {
        GtkWidget *l = gtk_label_new(NULL);
        gtk_label_set_xalign(GTK_LABEL(l), 0);
        gtk_label_set_width_chars(GTK_LABEL(l), width);
        gtk_label_set_ellipsize(GTK_LABEL(l), PANGO_ELLIPSIZE_END);
        gtk_widget_add_css_class(l, klass);
        return l;
}

static void fedview_add_object(FedView *v, GDBusObject *obj) {
        GDBusInterface *iface = g_dbus_object_get_interface(obj, VM_IFACE);
        if (!iface)
                return;
        VmRow *r = g_new0(VmRow, 1);
        r->view = v;
        r->proxy = G_DBUS_PROXY(iface); /* (the reference from get_interface) */
        GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 12);
        r->swatch = gtk_label_new("●");
        r->name = fedview_cell("vm-name", 16);
        r->role = fedview_cell("vm-role", 18);
        r->state = fedview_cell("vm-state", 10);
        gtk_box_append(GTK_BOX(box), r->swatch);
        gtk_box_append(GTK_BOX(box), r->name);
        gtk_box_append(GTK_BOX(box), r->role);
        gtk_box_append(GTK_BOX(box), r->state);
        r->row = gtk_list_box_row_new();
        gtk_list_box_row_set_child(GTK_LIST_BOX_ROW(r->row), box);
        g_object_set_data(G_OBJECT(r->row), "vmrow", r);
        g_hash_table_replace(v->rows, g_strdup(g_dbus_object_get_object_path(obj)), r);
        g_signal_connect(r->proxy, "g-properties-changed", G_CALLBACK(vmrow_props_changed), r);
        vmrow_update(r);
        gtk_list_box_append(GTK_LIST_BOX(v->list), r->row);
        if (!gtk_list_box_get_selected_row(GTK_LIST_BOX(v->list)))
                gtk_list_box_select_row(GTK_LIST_BOX(v->list), GTK_LIST_BOX_ROW(r->row));
}

static void fedview_object_added(GDBusObjectManager *om, GDBusObject *obj, gpointer userdata) {
        fedview_add_object(userdata, obj);
}

static void fedview_object_removed(GDBusObjectManager *om, GDBusObject *obj, gpointer userdata) {
        FedView *v = userdata;
        VmRow *r = g_hash_table_lookup(v->rows, g_dbus_object_get_object_path(obj));
        if (!r)
                return;
        panel_trace("vm gone: %s", gtk_label_get_text(GTK_LABEL(r->name)));
        gtk_list_box_remove(GTK_LIST_BOX(v->list), r->row);
        g_hash_table_remove(v->rows, g_dbus_object_get_object_path(obj));
        fedview_update_actions(v);
}

static int fedview_sort(GtkListBoxRow *a, GtkListBoxRow *b, gpointer userdata) {
        VmRow *ra = g_object_get_data(G_OBJECT(a), "vmrow"), *rb = g_object_get_data(G_OBJECT(b), "vmrow");
        return g_strcmp0(gtk_label_get_text(GTK_LABEL(ra->name)), gtk_label_get_text(GTK_LABEL(rb->name)));
}

static void fedview_progress_signal(GDBusConnection *c, const char *sender, const char *path, const char *iface,
                                    const char *member, GVariant *params, gpointer userdata) {
        FedView *v = userdata;
        const char *op, *line;
        if (!g_variant_is_of_type(params, G_VARIANT_TYPE("(ss)")))
                return;
        g_variant_get(params, "(&s&s)", &op, &line);
        g_autofree char *safe = safetext_make(line, PANEL_TEXT_MAX);
        if (g_hash_table_contains(v->ops, op)) {
                fedview_progress(v, safe);
                return;
        }
        g_autofree char *other = g_strdup_printf("(%s) %s", op, safe);
        fedview_progress(v, other);
}

/* A copy into the clipboard (Clipboard.Owner set) is news: the person should know what a VM took. */
static void fedview_clipboard_signal(GDBusConnection *c, const char *sender, const char *path, const char *iface,
                                     const char *member, GVariant *params, gpointer userdata) {
        FedView *v = userdata;
        const char *name;
        g_autoptr(GVariant) changed = NULL;
        if (!g_variant_is_of_type(params, G_VARIANT_TYPE("(sa{sv}as)")))
                return;
        g_variant_get(params, "(&s@a{sv}@as)", &name, &changed, NULL);
        const char *owner = NULL, *mime = "";
        guint64 size = 0;
        if (!g_str_equal(name, CLIPBOARD_IFACE) || !g_variant_lookup(changed, "Owner", "&s", &owner) || !*owner)
                return;
        g_variant_lookup(changed, "Mime", "&s", &mime);
        g_variant_lookup(changed, "Size", "t", &size);
        g_autofree char *safe_owner = safetext_make(owner, 64), *safe_mime = safetext_make(mime, 64);
        g_autofree char *body = g_strdup_printf("%s copied %" G_GUINT64_FORMAT " bytes (%s).", safe_owner, size,
                                                safe_mime);
        notifier_send(v->p->notifier, "Clipboard", body);
}

/* A long call (answered when done), with its operation id known before it is sent. */
static void fedview_call(FedView *v, const char *path, const char *iface, const char *method, GVariant *args,
                         const char *what, const char *vm_path, GAsyncReadyCallback done) {
        g_autoptr(GDBusMessage) m = g_dbus_message_new_method_call(BROKER_NAME, path, iface, method);
        g_dbus_message_set_body(m, args);
        g_dbus_message_set_flags(m, G_DBUS_MESSAGE_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION);
        Call *c = g_new0(Call, 1);
        c->view = v;
        c->what = g_strdup(what);
        c->vm = g_strdup(vm_path);
        guint32 serial = 0;
        g_dbus_connection_send_message_with_reply(v->p->bus, m, G_DBUS_SEND_MESSAGE_FLAGS_NONE, G_MAXINT, &serial,
                                                  NULL, done, c);
        c->op = g_strdup_printf("%s/%u", g_dbus_connection_get_unique_name(v->p->bus), serial);
        g_hash_table_add(v->ops, g_strdup(c->op));
        g_autofree char *status = g_strdup_printf("%s…", what);
        fedview_status(v, status);
}

/* The reply of a long call; FALSE and the error in words when it failed. */
static gboolean fedview_call_finish(Call *c, GAsyncResult *res, char **error_text) {
        FedView *v = c->view;
        g_autoptr(GError) error = NULL;
        g_autoptr(GDBusMessage) reply =
                g_dbus_connection_send_message_with_reply_finish(v->p->bus, res, &error);
        g_hash_table_remove(v->ops, c->op);
        if (reply && g_dbus_message_to_gerror(reply, &error))
                g_clear_object(&reply);
        if (reply) {
                g_autofree char *status = g_strdup_printf("Done: %s.", c->what);
                fedview_status(v, status);
                return TRUE;
        }
        g_dbus_error_strip_remote_error(error);
        g_autofree char *safe = safetext_make(error->message, 2 * PANEL_TEXT_MAX);
        *error_text = g_strdup_printf("Could not %s: %s", c->what, safe);
        fedview_status(v, *error_text);
        return FALSE;
}

static void fedview_switch_done(GObject *src, GAsyncResult *res, gpointer userdata) {
        Call *c = userdata;
        g_autofree char *error = NULL;
        c->view->switching = FALSE;
        if (!fedview_call_finish(c, res, &error))
                notifier_send(c->view->p->notifier, "Persona switch failed", error);
        fedview_update_actions(c->view);
        call_free(c);
}

static void fedview_simple_done(GObject *src, GAsyncResult *res, gpointer userdata) {
        Call *c = userdata;
        g_autofree char *error = NULL;
        VmRow *r = c->vm ? g_hash_table_lookup(c->view->rows, c->vm) : NULL;
        if (r)
                r->stop_pending = r->force_pending = FALSE;
        fedview_call_finish(c, res, &error);
        fedview_update_actions(c->view);
        call_free(c);
}

static void fedview_on_switch(GtkButton *b, gpointer userdata) {
        FedView *v = userdata;
        VmRow *r = fedview_selected(v);
        if (!r)
                return;
        g_autofree char *name = vm_prop(r->proxy, "Name");
        g_autofree char *what = g_strdup_printf("switch to %s", name);
        v->switching = TRUE;
        fedview_call(v, BROKER_PATH, MANAGER_IFACE, "SwitchPersona", g_variant_new("(s)", name), what, NULL,
                     fedview_switch_done);
        fedview_update_actions(v);
}

static void fedview_on_start(GtkButton *b, gpointer userdata) {
        FedView *v = userdata;
        VmRow *r = fedview_selected(v);
        if (!r)
                return;
        g_autofree char *name = vm_prop(r->proxy, "Name");
        g_autofree char *what = g_strdup_printf("start %s", name);
        fedview_call(v, BROKER_PATH, MANAGER_IFACE, "StartVM", g_variant_new("(s)", name), what, NULL,
                     fedview_simple_done);
}

static void fedview_stop(FedView *v, gboolean force) {
        VmRow *r = fedview_selected(v);
        if (!r)
                return;
        g_autofree char *name = vm_prop(r->proxy, "Name");
        g_autofree char *what = g_strdup_printf("%s %s", force ? "force stop" : "stop", name);
        r->stop_pending = TRUE;
        r->force_pending = force;
        fedview_call(v, BROKER_PATH, MANAGER_IFACE, "StopVM", g_variant_new("(sb)", name, force), what,
                     g_dbus_proxy_get_object_path(r->proxy), fedview_simple_done);
        fedview_update_actions(v);
}

static void fedview_on_stop(GtkButton *b, gpointer userdata) {
        fedview_stop(userdata, FALSE);
}

static void fedview_on_force(GtkButton *b, gpointer userdata) {
        fedview_stop(userdata, TRUE);
}

static void fedview_on_generations(GtkButton *b, gpointer userdata) {
        FedView *v = userdata;
        generations_show(v->gen);
}

static void fedview_manager_changed(GDBusProxy *proxy, GVariant *changed, GStrv invalidated, gpointer userdata) {
        fedview_update_active(userdata);
}

static void fedview_selected_changed(GtkListBox *box, GtkListBoxRow *row, gpointer userdata) {
        VmRow *r = row ? g_object_get_data(G_OBJECT(row), "vmrow") : NULL;
        panel_trace("selected: %s", r ? gtk_label_get_text(GTK_LABEL(r->name)) : "");
        fedview_update_actions(userdata);
}

static GtkWidget *fedview_button(FedView *v, GtkWidget *bar, const char *label, GCallback cb) {
        GtkWidget *b = gtk_button_new_with_mnemonic(label);
        g_signal_connect(b, "clicked", cb, v);
        gtk_box_append(GTK_BOX(bar), b);
        return b;
}

static void fedview_css(void) {
        g_autoptr(GtkCssProvider) css = gtk_css_provider_new();
        const char *roles[] = { "persona", "service", "disposable-template", "app", NULL };
        g_autoptr(GString) s = g_string_new(".swatch { font-size: 18px; } .vm-name { font-weight: bold; }\n"
                                            ".progress { font-family: monospace; }\n");
        for (const char **r = roles; *r; r++)
                g_string_append_printf(s, ".role-%s { color: %s; }\n", *r, panel_role_colour(*r));
        gtk_css_provider_load_from_data(css, s->str, -1);
        gtk_style_context_add_provider_for_display(gdk_display_get_default(), GTK_STYLE_PROVIDER(css),
                                                   GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
}

static void fedview_focus_changed(GObject *w, GParamSpec *ps, gpointer userdata) {
        GtkWidget *f = gtk_window_get_focus(GTK_WINDOW(w));
        panel_trace("focus: %s", f ? G_OBJECT_TYPE_NAME(f) : "none");
}

/* Long: the window's widget tree, built in one place to read as a layout. */
static void fedview_build(FedView *v) {
        v->window = gtk_application_window_new(v->p->app);
        gtk_window_set_title(GTK_WINDOW(v->window), "vmfed");
        gtk_window_set_default_size(GTK_WINDOW(v->window), 640, 480);
        g_signal_connect(v->window, "notify::focus-widget", G_CALLBACK(fedview_focus_changed), v);
        GtkWidget *top = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
        gtk_widget_set_margin_start(top, 12);
        gtk_widget_set_margin_end(top, 12);
        gtk_widget_set_margin_top(top, 12);
        gtk_widget_set_margin_bottom(top, 12);
        gtk_window_set_child(GTK_WINDOW(v->window), top);

        v->active = gtk_label_new(NULL);
        gtk_label_set_xalign(GTK_LABEL(v->active), 0);
        gtk_widget_add_css_class(v->active, "title-3");
        gtk_box_append(GTK_BOX(top), v->active);

        v->list = gtk_list_box_new();
        gtk_list_box_set_selection_mode(GTK_LIST_BOX(v->list), GTK_SELECTION_BROWSE);
        gtk_list_box_set_sort_func(GTK_LIST_BOX(v->list), fedview_sort, NULL, NULL);
        g_signal_connect(v->list, "row-selected", G_CALLBACK(fedview_selected_changed), v);
        GtkWidget *scroll = gtk_scrolled_window_new();
        gtk_scrolled_window_set_child(GTK_SCROLLED_WINDOW(scroll), v->list);
        gtk_widget_set_vexpand(scroll, TRUE);
        gtk_box_append(GTK_BOX(top), scroll);

        GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
        v->start = fedview_button(v, bar, "_Start", G_CALLBACK(fedview_on_start));
        v->stop = fedview_button(v, bar, "S_top", G_CALLBACK(fedview_on_stop));
        v->force = fedview_button(v, bar, "_Force stop", G_CALLBACK(fedview_on_force));
        v->sw = fedview_button(v, bar, "S_witch to this persona", G_CALLBACK(fedview_on_switch));
        v->generations = fedview_button(v, bar, "_Generations…", G_CALLBACK(fedview_on_generations));
        gtk_box_append(GTK_BOX(top), bar);

        v->status = gtk_label_new(NULL);
        gtk_label_set_xalign(GTK_LABEL(v->status), 0);
        gtk_label_set_wrap(GTK_LABEL(v->status), TRUE);
        gtk_box_append(GTK_BOX(top), v->status);

        GtkWidget *frame = gtk_frame_new("Progress");
        v->progress = gtk_box_new(GTK_ORIENTATION_VERTICAL, 0);
        gtk_widget_add_css_class(v->progress, "progress");
        gtk_widget_set_size_request(v->progress, -1, 140);
        gtk_frame_set_child(GTK_FRAME(frame), v->progress);
        gtk_box_append(GTK_BOX(top), frame);
}

FedView *fedview_new(Panel *p) {
        FedView *v = g_new0(FedView, 1);
        v->p = p;
        v->rows = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, vmrow_free);
        v->ops = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        p->view = v;
        fedview_css();
        fedview_build(v);
        v->progress_sub = g_dbus_connection_signal_subscribe(
                p->bus, BROKER_NAME, MANAGER_IFACE, "Progress", BROKER_PATH, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                fedview_progress_signal, v, NULL);
        v->clipboard_sub = g_dbus_connection_signal_subscribe(
                p->bus, BROKER_NAME, "org.freedesktop.DBus.Properties", "PropertiesChanged", BROKER_PATH,
                CLIPBOARD_IFACE, G_DBUS_SIGNAL_FLAGS_NONE, fedview_clipboard_signal, v, NULL);
        g_signal_connect(p->objects, "object-added", G_CALLBACK(fedview_object_added), v);
        g_signal_connect(p->objects, "object-removed", G_CALLBACK(fedview_object_removed), v);
        g_signal_connect(p->manager, "g-properties-changed", G_CALLBACK(fedview_manager_changed), v);
        GList *objs = g_dbus_object_manager_get_objects(p->objects);
        for (GList *l = objs; l; l = l->next)
                fedview_add_object(v, l->data);
        g_list_free_full(objs, g_object_unref);
        v->gen = generations_new(p, GTK_WINDOW(v->window));
        fedview_update_active(v);
        return v;
}

void fedview_present(FedView *v) {
        GtkListBoxRow *row = gtk_list_box_get_selected_row(GTK_LIST_BOX(v->list));
        if (row)
                gtk_window_set_focus(GTK_WINDOW(v->window), GTK_WIDGET(row));
        gtk_window_present(GTK_WINDOW(v->window));
}

GtkWindow *fedview_window(FedView *v) {
        return GTK_WINDOW(v->window);
}

void fedview_free(FedView *v) {
        if (!v)
                return;
        generations_free(v->gen);
        g_dbus_connection_signal_unsubscribe(v->p->bus, v->progress_sub);
        g_dbus_connection_signal_unsubscribe(v->p->bus, v->clipboard_sub);
        g_signal_handlers_disconnect_by_data(v->p->objects, v);
        g_signal_handlers_disconnect_by_data(v->p->manager, v);
        g_hash_table_unref(v->rows);
        g_hash_table_unref(v->ops);
        g_free(v);
}
