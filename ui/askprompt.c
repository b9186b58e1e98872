/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "askprompt.h"

#include "fedview.h"
#include "notifier.h"
#include "safetext.h"

#define ASK_ARMING_MS 1000

typedef struct Prompt Prompt;

struct AskPrompts {
        Panel *p;
        GHashTable *prompts;   /* id (guint64*) -> Prompt */
        GHashTable *known;     /* id -> "SOURCE asked for SERVICE" (to notify denials of asks not shown) */
        guint requested_sub, finished_sub;
};

struct Prompt {
        AskPrompts *a;
        guint64 id;
        GtkWidget *window, *allow, *deny, *left;
        GPtrArray *choices;     /* GtkCheckButton per candidate */
        char **candidates;
        gint64 deadline;        /* monotonic µs; 0 = unknown (pending before we started) */
        guint arm_timer, tick_timer;
        gboolean armed, answered;
};

void askprompt_split_service(const char *service, char **name, char **arg) {
        const char *plus = strchr(service, '+');
        *name = plus ? g_strndup(service, plus - service) : g_strdup(service);
        *arg = g_strdup(plus ? plus + 1 : "");
}

static const char *prompt_target(Prompt *q) {
        for (guint i = 0; i < q->choices->len; i++)
                if (gtk_check_button_get_active(q->choices->pdata[i]))
                        return q->candidates[i];
        return NULL;
}

static void prompt_update(Prompt *q) {
        gboolean ok = q->armed && prompt_target(q) && !q->answered;
        gtk_widget_set_sensitive(q->allow, ok);
}

static gboolean prompt_tick(gpointer userdata) {
        Prompt *q = userdata;
        if (!q->deadline) {
                g_autofree char *t = g_strdup_printf("Denied automatically within %u s.", q->a->p->ask_timeout);
                gtk_label_set_text(GTK_LABEL(q->left), t);
                return G_SOURCE_CONTINUE;
        }
        gint64 left = (q->deadline - g_get_monotonic_time() + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC;
        g_autofree char *t = g_strdup_printf("Denied automatically in %" G_GINT64_FORMAT " s.", MAX(left, 0));
        gtk_label_set_text(GTK_LABEL(q->left), t);
        return G_SOURCE_CONTINUE;
}

static gboolean prompt_arm(gpointer userdata) {
        Prompt *q = userdata;
        q->arm_timer = 0;
        q->armed = TRUE;
        panel_trace("ask %" G_GUINT64_FORMAT ": allow armed", q->id);
        prompt_update(q);
        return G_SOURCE_REMOVE;
}

/* Each time the window gains focus, Allow waits ASK_ARMING_MS (qubes-issues#1166). */
static void prompt_active_changed(GObject *w, GParamSpec *ps, gpointer userdata) {
        Prompt *q = userdata;
        g_clear_handle_id(&q->arm_timer, g_source_remove);
        q->armed = FALSE;
        if (gtk_window_is_active(GTK_WINDOW(w))) {
                q->arm_timer = g_timeout_add(ASK_ARMING_MS, prompt_arm, q);
                panel_trace("ask %" G_GUINT64_FORMAT ": focused, allow disarmed for %d ms", q->id, ASK_ARMING_MS);
        }
        prompt_update(q);
}

static void prompt_remove(Prompt *q) {
        g_hash_table_remove(q->a->prompts, &q->id); /* prompt_free */
}

static void prompt_call_done(GObject *src, GAsyncResult *res, gpointer userdata) {
        AskPrompts *a = userdata;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) v = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &error);
        if (v)
                return;
        g_dbus_error_strip_remote_error(error);
        g_autofree char *safe = safetext_make(error->message, 2 * PANEL_TEXT_MAX);
        notifier_send(a->p->notifier, "The answer was not taken", safe);
}

static void prompt_answer(Prompt *q, const char *target) {
        if (q->answered)
                return;
        q->answered = TRUE;
        AskPrompts *a = q->a;
        if (target) {
                panel_trace("ask %" G_GUINT64_FORMAT ": allow %s", q->id, target);
                g_dbus_connection_call(a->p->bus, BROKER_NAME, BROKER_PATH, ASK_IFACE, "AnswerAsk",
                                       g_variant_new("(ts)", q->id, target), NULL,
                                       G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION, -1, NULL,
                                       prompt_call_done, a);
        } else {
                panel_trace("ask %" G_GUINT64_FORMAT ": deny", q->id);
                g_dbus_connection_call(a->p->bus, BROKER_NAME, BROKER_PATH, ASK_IFACE, "DenyAsk",
                                       g_variant_new("(t)", q->id), NULL,
                                       G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION, -1, NULL,
                                       prompt_call_done, a);
        }
        prompt_remove(q);
}

static void prompt_on_allow(GtkButton *b, gpointer userdata) {
        Prompt *q = userdata;
        const char *t = prompt_target(q);
        if (q->armed && t)
                prompt_answer(q, t);
}

static void prompt_on_deny(GtkButton *b, gpointer userdata) {
        prompt_answer(userdata, NULL);
}

static gboolean prompt_close_request(GtkWindow *w, gpointer userdata) {
        prompt_answer(userdata, NULL);
        return TRUE; /* (prompt_answer destroyed it) */
}

static gboolean prompt_key(GtkEventControllerKey *k, guint keyval, guint keycode, GdkModifierType state,
                           gpointer userdata) {
        Prompt *q = userdata;
        if (keyval == GDK_KEY_Escape) {
                panel_trace("ask %" G_GUINT64_FORMAT ": Escape", q->id);
                prompt_answer(q, NULL);
                return TRUE;
        }
        gboolean enter = keyval == GDK_KEY_Return || keyval == GDK_KEY_KP_Enter || keyval == GDK_KEY_ISO_Enter;
        if (!q->armed && (enter || keyval == GDK_KEY_space || keyval == GDK_KEY_KP_Space)) {
                panel_trace("ask %" G_GUINT64_FORMAT ": key ignored, allow not armed yet", q->id);
                return TRUE;
        }
        /* Enter is Allow (when it may be pressed), wherever the focus is: a focused
         * radio would otherwise take it for itself. */
        if (enter) {
                if (gtk_widget_is_sensitive(q->allow))
                        prompt_on_allow(GTK_BUTTON(q->allow), q);
                else
                        panel_trace("ask %" G_GUINT64_FORMAT ": Enter: no target chosen", q->id);
                return TRUE;
        }
        return FALSE;
}

static void prompt_toggled(GtkCheckButton *b, gpointer userdata) {
        Prompt *q = userdata;
        if (gtk_check_button_get_active(b))
                panel_trace("ask %" G_GUINT64_FORMAT ": chose %s", q->id,
                            (const char *) g_object_get_data(G_OBJECT(b), "target"));
        prompt_update(q);
}

static void prompt_free(gpointer data) {
        Prompt *q = data;
        g_clear_handle_id(&q->arm_timer, g_source_remove);
        g_clear_handle_id(&q->tick_timer, g_source_remove);
        g_signal_handlers_disconnect_by_data(q->window, q);
        gtk_window_destroy(GTK_WINDOW(q->window));
        panel_trace("ask %" G_GUINT64_FORMAT ": closed", q->id);
        g_ptr_array_unref(q->choices);
        g_strfreev(q->candidates);
        g_free(q);
}

static GtkWidget *prompt_line(GtkWidget *grid, int row, const char *key, const char *text) {
        GtkWidget *k = gtk_label_new(key);
        gtk_label_set_xalign(GTK_LABEL(k), 1);
        gtk_widget_add_css_class(k, "dim-label");
        GtkWidget *v = gtk_label_new(NULL);
        gtk_label_set_text(GTK_LABEL(v), text); /* never markup */
        gtk_label_set_xalign(GTK_LABEL(v), 0);
        gtk_label_set_wrap(GTK_LABEL(v), TRUE);
        gtk_label_set_wrap_mode(GTK_LABEL(v), PANGO_WRAP_WORD_CHAR);
        gtk_label_set_max_width_chars(GTK_LABEL(v), 50);
        /* At least as wide as a short text, so the window is not sized for it wrapped narrow. */
        gtk_label_set_width_chars(GTK_LABEL(v), (int) MIN(g_utf8_strlen(text, -1), 50));
        gtk_grid_attach(GTK_GRID(grid), k, 0, row, 1, 1);
        gtk_grid_attach(GTK_GRID(grid), v, 1, row, 1, 1);
        return v;
}

/* The chooser: one radio per candidate, in the broker's order; default_target chosen, else none. */
static void prompt_targets(Prompt *q, GtkWidget *grid, int row, const char *default_target) {
        GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 2);
        GtkCheckButton *group = NULL;
        for (guint i = 0; q->candidates[i]; i++) {
                g_autofree char *label = safetext_make(q->candidates[i], 64);
                GtkWidget *b = gtk_check_button_new_with_label(label);
                g_object_set_data_full(G_OBJECT(b), "target", g_strdup(q->candidates[i]), g_free);
                if (group)
                        gtk_check_button_set_group(GTK_CHECK_BUTTON(b), group);
                else
                        group = GTK_CHECK_BUTTON(b);
                if (default_target && *default_target && g_str_equal(default_target, q->candidates[i]))
                        gtk_check_button_set_active(GTK_CHECK_BUTTON(b), TRUE);
                g_signal_connect(b, "toggled", G_CALLBACK(prompt_toggled), q);
                g_ptr_array_add(q->choices, b);
                gtk_box_append(GTK_BOX(box), b);
        }
        GtkWidget *k = gtk_label_new("Target");
        gtk_label_set_xalign(GTK_LABEL(k), 1);
        gtk_widget_set_valign(k, GTK_ALIGN_START);
        gtk_widget_add_css_class(k, "dim-label");
        gtk_grid_attach(GTK_GRID(grid), k, 0, row, 1, 1);
        gtk_grid_attach(GTK_GRID(grid), box, 1, row, 1, 1);
}

static GtkWidget *prompt_source_line(Prompt *q, GtkWidget *grid, const char *source) {
        g_autofree char *safe = safetext_make(source, 64);
        const char *role = panel_vm_role(q->a->p, source);
        g_autofree char *text = g_strdup_printf("%s%s%s%s", safe, *role ? " (" : "", role, *role ? ")" : "");
        GtkWidget *l = prompt_line(grid, 0, "From", text);
        g_autofree char *css = g_strdup_printf("role-%s", role);
        gtk_widget_add_css_class(l, css);
        gtk_widget_add_css_class(l, "vm-name");
        return l;
}

/* Long: the dialog's widget tree, built in one place to read as a layout. */
static Prompt *prompt_new(AskPrompts *a, guint64 id, const char *source, const char *service,
                          const char *const *candidates, const char *default_target, gboolean fresh) {
        Prompt *q = g_new0(Prompt, 1);
        q->a = a;
        q->id = id;
        q->choices = g_ptr_array_new();
        q->candidates = g_strdupv((char **) candidates);
        q->deadline = fresh ? g_get_monotonic_time() + (gint64) a->p->ask_timeout * G_USEC_PER_SEC : 0;
        g_autofree char *name = NULL, *arg = NULL;
        askprompt_split_service(service, &name, &arg);
        g_autofree char *safe_name = safetext_make(name, PANEL_TEXT_MAX);
        g_autofree char *safe_arg = safetext_make(arg, PANEL_TEXT_MAX);
        g_autofree char *safe_source = safetext_make(source, 64);

        q->window = gtk_window_new();
        g_autofree char *title = g_strdup_printf("vmfed: %s asks", safe_source);
        gtk_window_set_title(GTK_WINDOW(q->window), title);
        gtk_window_set_transient_for(GTK_WINDOW(q->window), fedview_window(a->p->view));
        gtk_window_set_resizable(GTK_WINDOW(q->window), FALSE);
        GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 12);
        gtk_widget_set_margin_start(box, 18);
        gtk_widget_set_margin_end(box, 18);
        gtk_widget_set_margin_top(box, 18);
        gtk_widget_set_margin_bottom(box, 18);
        gtk_window_set_child(GTK_WINDOW(q->window), box);
        GtkWidget *grid = gtk_grid_new();
        gtk_grid_set_row_spacing(GTK_GRID(grid), 8);
        gtk_grid_set_column_spacing(GTK_GRID(grid), 12);
        gtk_box_append(GTK_BOX(box), grid);
        prompt_source_line(q, grid, source);
        prompt_line(grid, 1, "Asks for", safe_name);
        prompt_line(grid, 2, "Argument", *arg ? safe_arg : "(none)");
        prompt_targets(q, grid, 3, default_target);
        q->left = gtk_label_new(NULL);
        gtk_label_set_xalign(GTK_LABEL(q->left), 0);
        gtk_box_append(GTK_BOX(box), q->left);

        GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
        gtk_widget_set_halign(bar, GTK_ALIGN_END);
        q->deny = gtk_button_new_with_mnemonic("_Deny");
        q->allow = gtk_button_new_with_mnemonic("_Allow");
        gtk_widget_add_css_class(q->allow, "suggested-action");
        gtk_box_append(GTK_BOX(bar), q->deny);
        gtk_box_append(GTK_BOX(bar), q->allow);
        gtk_box_append(GTK_BOX(box), bar);
        gtk_window_set_default_widget(GTK_WINDOW(q->window), q->allow);
        g_signal_connect(q->allow, "clicked", G_CALLBACK(prompt_on_allow), q);
        g_signal_connect(q->deny, "clicked", G_CALLBACK(prompt_on_deny), q);
        g_signal_connect(q->window, "close-request", G_CALLBACK(prompt_close_request), q);
        g_signal_connect(q->window, "notify::is-active", G_CALLBACK(prompt_active_changed), q);
        GtkEventController *keys = gtk_event_controller_key_new();
        gtk_event_controller_set_propagation_phase(keys, GTK_PHASE_CAPTURE);
        g_signal_connect(keys, "key-pressed", G_CALLBACK(prompt_key), q);
        gtk_widget_add_controller(q->window, keys);

        g_autoptr(GString) cands = g_string_new(NULL); /* the labels, as shown */
        for (guint i = 0; i < q->choices->len; i++)
                g_string_append_printf(cands, "%s%s", i ? "," : "",
                                       gtk_check_button_get_label(q->choices->pdata[i]));
        panel_trace("ask %" G_GUINT64_FORMAT ": shown: source=%s service=%s arg=%s candidates=%s selected=%s",
                    id, safe_source, safe_name, safe_arg, cands->str, prompt_target(q) ? prompt_target(q) : "");
        prompt_update(q);
        prompt_tick(q);
        q->tick_timer = g_timeout_add_seconds(1, prompt_tick, q);
        /* Focus on the first target, never on a button: a stray key cannot answer. */
        if (q->choices->len)
                gtk_window_set_focus(GTK_WINDOW(q->window), q->choices->pdata[0]);
        gtk_window_present(GTK_WINDOW(q->window));
        return q;
}

static void askprompt_show(AskPrompts *a, guint64 id, const char *source, const char *service,
                           const char *const *cands, const char *def, gboolean fresh) {
        if (g_hash_table_contains(a->prompts, &id))
                return;
        g_autofree char *safe_source = safetext_make(source, 64), *safe_service = safetext_make(service, 64);
        guint64 *key = g_memdup2(&id, sizeof id);
        g_hash_table_replace(a->known, g_memdup2(&id, sizeof id),
                             g_strdup_printf("%s asked for %s", safe_source, safe_service));
        Prompt *q = prompt_new(a, id, source, service, cands, def, fresh);
        g_hash_table_replace(a->prompts, key, q);
}

static void askprompt_requested(GDBusConnection *c, const char *sender, const char *path, const char *iface,
                                const char *member, GVariant *params, gpointer userdata) {
        if (!g_variant_is_of_type(params, G_VARIANT_TYPE("(tssass)")))
                return;
        guint64 id;
        const char *source, *service, *def;
        g_autofree const char **cands = NULL;
        g_variant_get(params, "(t&s&s^a&s&s)", &id, &source, &service, &cands, &def);
        askprompt_show(userdata, id, source, service, cands, def, TRUE);
}

static void askprompt_finished(GDBusConnection *c, const char *sender, const char *path, const char *iface,
                               const char *member, GVariant *params, gpointer userdata) {
        AskPrompts *a = userdata;
        if (!g_variant_is_of_type(params, G_VARIANT_TYPE("(tss)")))
                return;
        guint64 id;
        const char *outcome, *target;
        g_variant_get(params, "(t&s&s)", &id, &outcome, &target);
        panel_trace("ask %" G_GUINT64_FORMAT ": finished %s %s", id, outcome, target);
        g_hash_table_remove(a->prompts, &id);
        const char *what = g_hash_table_lookup(a->known, &id);
        if (what && !g_str_equal(outcome, "allowed")) {
                g_autofree char *body = g_strdup_printf("%s: %s.", what,
                                                        g_str_equal(outcome, "timeout") ? "nobody answered in time"
                                                                                        : "denied");
                notifier_send(a->p->notifier, "Request refused", body);
        }
        g_hash_table_remove(a->known, &id);
}

static void askprompt_list_done(GObject *src, GAsyncResult *res, gpointer userdata) {
        AskPrompts *a = userdata;
        g_autoptr(GError) error = NULL;
        g_autoptr(GVariant) v = g_dbus_connection_call_finish(G_DBUS_CONNECTION(src), res, &error);
        if (!v)
                return;
        g_autoptr(GVariantIter) it = NULL;
        g_variant_get(v, "(a(tssass))", &it);
        guint64 id;
        const char *source, *service, *def;
        const char **cands;
        while (g_variant_iter_next(it, "(t&s&s^a&s&s)", &id, &source, &service, &cands, &def)) {
                askprompt_show(a, id, source, service, cands, def, FALSE);
                g_free(cands);
        }
}

AskPrompts *askprompt_new(Panel *p) {
        AskPrompts *a = g_new0(AskPrompts, 1);
        a->p = p;
        a->prompts = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, prompt_free);
        a->known = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
        /* Only the broker's own signals count: the sender is matched against the name's owner. */
        a->requested_sub = g_dbus_connection_signal_subscribe(p->bus, BROKER_NAME, ASK_IFACE, "AskRequested",
                                                              BROKER_PATH, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                                              askprompt_requested, a, NULL);
        a->finished_sub = g_dbus_connection_signal_subscribe(p->bus, BROKER_NAME, ASK_IFACE, "AskFinished",
                                                             BROKER_PATH, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                                             askprompt_finished, a, NULL);
        g_dbus_connection_call(p->bus, BROKER_NAME, BROKER_PATH, ASK_IFACE, "ListAsks", NULL,
                               G_VARIANT_TYPE("(a(tssass))"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                               askprompt_list_done, a);
        return a;
}

void askprompt_free(AskPrompts *a) {
        if (!a)
                return;
        g_dbus_connection_signal_unsubscribe(a->p->bus, a->requested_sub);
        g_dbus_connection_signal_unsubscribe(a->p->bus, a->finished_sub);
        g_hash_table_unref(a->prompts);
        g_hash_table_unref(a->known);
        g_free(a);
}
