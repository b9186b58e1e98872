/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfed-panel [--address ADDR] [--config-dir DIR]
 * vmfed-panel --guest-socket PATH        (in a persona: the agent's Guest1)
 *
 * Connects to the broker's bus, builds the federation view, the ask prompts
 * and the notifier, and runs GTK's main loop.  In a persona it talks to the
 * agent instead, and shows the guest view (no asks: they go to the host).
 */
#include "askprompt.h"
#include "fedview.h"
#include "guestview.h"
#include "notifier.h"
#include "panel.h"

#include <stdlib.h>

static char *arg_address;
static char *arg_config_dir;
static char *arg_guest_socket;

static const GOptionEntry options[] = {
        { "address", 0, 0, G_OPTION_ARG_STRING, &arg_address, "Bus address of the broker (default: system bus)", "ADDR" },
        { "config-dir", 0, 0, G_OPTION_ARG_FILENAME, &arg_config_dir, "vmfed's CONFIG (for [Ask] Timeout=)", "DIR" },
        { "guest-socket", 0, 0, G_OPTION_ARG_FILENAME, &arg_guest_socket,
          "In a persona: the agent's Guest1 socket (/run/vmfed/guest.sock)", "PATH" },
        { NULL },
};

const char *panel_role_colour(const char *role) {
        if (g_strcmp0(role, "persona") == 0)
                return "#3465a4";
        if (g_strcmp0(role, "service") == 0)
                return "#888a85";
        if (g_strcmp0(role, "disposable-template") == 0)
                return "#f57900";
        if (g_strcmp0(role, "app") == 0)
                return "#4e9a06";
        return "#cc0000";
}

/* [Ask] Timeout= as the broker reads it (services.conf); 60 when absent. */
static unsigned panel_read_ask_timeout(const char *config_dir) {
        g_autofree char *path = g_build_filename(config_dir, "services.conf", NULL);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) error = NULL;
        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL))
                return 60;
        g_autofree char *v = g_key_file_get_string(kf, "Ask", "Timeout", &error);
        if (!v)
                return 60;
        guint64 n = 0;
        if (!g_ascii_string_to_unsigned(g_strstrip(v), 10, 1, 3600, &n, NULL))
                return 60;
        return (unsigned) n;
}

static GDBusConnection *panel_connect(GError **error) {
        if (!arg_address)
                return g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, error);
        return g_dbus_connection_new_for_address_sync(
                arg_address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION, NULL, NULL, error);
}

static void panel_activate_guest(Panel *p) {
        g_autoptr(GError) error = NULL;
        g_autofree char *escaped = g_dbus_address_escape_value(arg_guest_socket);
        g_autofree char *address = g_strdup_printf("unix:path=%s", escaped);
        p->bus = g_dbus_connection_new_for_address_sync(address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
                                                        NULL, NULL, &error);
        if (!p->bus) {
                g_printerr("vmfed-panel: cannot reach the agent: %s\n", error->message);
                g_application_quit(G_APPLICATION(p->app));
                return;
        }
        p->notifier = notifier_new();
        p->guest = guestview_new(p);
        guestview_present(p->guest);
}

/* Start-up only: the few synchronous calls here happen before any window shows. */
static void panel_activate(GtkApplication *app, gpointer userdata) {
        Panel *p = userdata;
        g_autoptr(GError) error = NULL;

        if (p->guest) {
                guestview_present(p->guest);
                return;
        }
        if (p->view) {
                fedview_present(p->view);
                return;
        }
        if (arg_guest_socket) {
                panel_activate_guest(p);
                return;
        }
        p->bus = panel_connect(&error);
        if (p->bus)
                p->objects = g_dbus_object_manager_client_new_sync(
                        p->bus, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_NONE, BROKER_NAME, BROKER_PATH,
                        NULL, NULL, NULL, NULL, &error);
        if (p->objects)
                p->manager = g_dbus_proxy_new_sync(p->bus, G_DBUS_PROXY_FLAGS_NONE, NULL, BROKER_NAME,
                                                   BROKER_PATH, MANAGER_IFACE, NULL, &error);
        if (!p->manager) {
                g_printerr("vmfed-panel: cannot reach the broker: %s\n", error->message);
                g_application_quit(G_APPLICATION(app));
                return;
        }
        p->notifier = notifier_new();
        p->view = fedview_new(p);
        p->asks = askprompt_new(p);
        fedview_present(p->view);
}

int main(int argc, char **argv) {
        g_autoptr(GOptionContext) ctx = g_option_context_new("- vmfed's controls");
        g_autoptr(GError) error = NULL;
        Panel panel = { 0 };

        g_option_context_add_main_entries(ctx, options, NULL);
        if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
                g_printerr("vmfed-panel: %s\n", error->message);
                return 2;
        }
        panel.ask_timeout = panel_read_ask_timeout(arg_config_dir ? arg_config_dir : VMFED_CONFIG_DIR);
        panel.app = gtk_application_new("org.vmfed.Panel", G_APPLICATION_NON_UNIQUE);
        g_signal_connect(panel.app, "activate", G_CALLBACK(panel_activate), &panel);
        int rc = g_application_run(G_APPLICATION(panel.app), 1, argv);
        guestview_free(panel.guest);
        askprompt_free(panel.asks);
        fedview_free(panel.view);
        notifier_free(panel.notifier);
        g_clear_object(&panel.manager);
        g_clear_object(&panel.objects);
        g_clear_object(&panel.bus);
        g_clear_object(&panel.app);
        return rc;
}
