/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A test notification server: owns org.freedesktop.Notifications on the bus
 * at argv[1] and prints each Notify as one line "NOTIFY\tapp\tsummary\tbody"
 * on stdout (tabs and newlines in the strings become spaces).
 */
#include <gio/gio.h>
#include <stdio.h>

static const char xml[] =
        "<node><interface name='org.freedesktop.Notifications'>"
        "<method name='GetCapabilities'><arg type='as' direction='out'/></method>"
        "<method name='GetServerInformation'><arg type='s' direction='out'/><arg type='s' direction='out'/>"
        "<arg type='s' direction='out'/><arg type='s' direction='out'/></method>"
        "<method name='Notify'><arg type='s' direction='in'/><arg type='u' direction='in'/>"
        "<arg type='s' direction='in'/><arg type='s' direction='in'/><arg type='s' direction='in'/>"
        "<arg type='as' direction='in'/><arg type='a{sv}' direction='in'/><arg type='i' direction='in'/>"
        "<arg type='u' direction='out'/></method>"
        "<method name='CloseNotification'><arg type='u' direction='in'/></method>"
        "</interface></node>";

static void print_field(const char *s) {
        putchar('\t');
        for (; *s; s++)
                putchar(*s == '\t' || *s == '\n' ? ' ' : *s);
}

static void method_call(GDBusConnection *c, const char *sender, const char *path, const char *iface,
                        const char *method, GVariant *params, GDBusMethodInvocation *inv, gpointer userdata) {
        static guint32 next_id = 1;
        if (g_str_equal(method, "GetCapabilities")) {
                const char *caps[] = { "body", NULL };
                g_dbus_method_invocation_return_value(inv, g_variant_new("(^as)", caps));
        } else if (g_str_equal(method, "GetServerInformation")) {
                g_dbus_method_invocation_return_value(inv, g_variant_new("(ssss)", "vmfed-test", "vmfed", "1", "1.2"));
        } else if (g_str_equal(method, "Notify")) {
                const char *app, *icon, *summary, *body;
                guint32 replaces;
                g_variant_get(params, "(&su&s&s&s@as@a{sv}i)", &app, &replaces, &icon, &summary, &body, NULL, NULL,
                              NULL);
                fputs("NOTIFY", stdout);
                print_field(app);
                print_field(summary);
                print_field(body);
                putchar('\n');
                fflush(stdout);
                g_dbus_method_invocation_return_value(inv, g_variant_new("(u)", next_id++));
        } else {
                g_dbus_method_invocation_return_value(inv, NULL);
        }
}

static const GDBusInterfaceVTable vtable = { method_call, NULL, NULL, { 0 } };

int main(int argc, char **argv) {
        g_autoptr(GError) error = NULL;
        if (argc != 2) {
                fprintf(stderr, "usage: notify-server BUS-ADDRESS\n");
                return 2;
        }
        g_autoptr(GDBusConnection) c = g_dbus_connection_new_for_address_sync(
                argv[1], G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                NULL, NULL, &error);
        g_autoptr(GDBusNodeInfo) node = c ? g_dbus_node_info_new_for_xml(xml, &error) : NULL;
        if (!node || !g_dbus_connection_register_object(c, "/org/freedesktop/Notifications", node->interfaces[0],
                                                        &vtable, NULL, NULL, &error)) {
                fprintf(stderr, "notify-server: %s\n", error->message);
                return 1;
        }
        g_autoptr(GVariant) r = g_dbus_connection_call_sync(
                c, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName",
                g_variant_new("(su)", "org.freedesktop.Notifications", 4u), G_VARIANT_TYPE("(u)"),
                G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
        if (!r) {
                fprintf(stderr, "notify-server: %s\n", error->message);
                return 1;
        }
        puts("READY");
        fflush(stdout);
        g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
        g_main_loop_run(loop); /* until killed */
        return 0;
}
