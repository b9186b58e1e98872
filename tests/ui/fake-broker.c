/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A stand-in broker for the one thing the real vmfedd never sends: an ask
 * whose text is hostile (the real broker validates every argument it
 * relays).  Owns org.vmfed.Federation1 on the bus at argv[1] with the
 * little the panel reads at start (ObjectManager with one VM, Manager's
 * ActivePersona, ListAsks); each line "ask" on stdin emits AskRequested
 * with markup, 64 KiB and bidi controls; DenyAsk/AnswerAsk print
 * "DENY ID" / "ANSWER ID TARGET" on stdout and emit AskFinished.
 */
#include <gio/gio.h>
#include <stdio.h>
#include <string.h>

#define ROOT "/org/vmfed/Federation1"

static const char xml[] =
        "<node>"
        "<interface name='org.freedesktop.DBus.ObjectManager'>"
        " <method name='GetManagedObjects'><arg type='a{oa{sa{sv}}}' direction='out'/></method></interface>"
        "<interface name='org.vmfed.Federation1.Manager'>"
        " <property name='ActivePersona' type='s' access='read'/></interface>"
        "<interface name='org.vmfed.Federation1.Ask'>"
        " <method name='ListAsks'><arg type='a(tssass)' direction='out'/></method>"
        " <method name='AnswerAsk'><arg type='t' direction='in'/><arg type='s' direction='in'/></method>"
        " <method name='DenyAsk'><arg type='t' direction='in'/></method>"
        " <signal name='AskRequested'><arg type='t'/><arg type='s'/><arg type='s'/><arg type='as'/><arg type='s'/>"
        " </signal><signal name='AskFinished'><arg type='t'/><arg type='s'/><arg type='s'/></signal></interface>"
        "</node>";

static GDBusConnection *bus;
static guint64 next_id = 1;

static GVariant *managed_objects(void) {
        GVariantBuilder props, ifaces, objs;
        g_variant_builder_init(&props, G_VARIANT_TYPE("a{sv}"));
        g_variant_builder_add(&props, "{sv}", "Name", g_variant_new_string("alice"));
        g_variant_builder_add(&props, "{sv}", "Role", g_variant_new_string("app"));
        g_variant_builder_add(&props, "{sv}", "Tags", g_variant_new_strv(NULL, 0));
        g_variant_builder_add(&props, "{sv}", "State", g_variant_new_string("running"));
        g_variant_builder_init(&ifaces, G_VARIANT_TYPE("a{sa{sv}}"));
        g_variant_builder_add(&ifaces, "{sa{sv}}", "org.vmfed.Federation1.VM", &props);
        g_variant_builder_init(&objs, G_VARIANT_TYPE("a{oa{sa{sv}}}"));
        g_variant_builder_add(&objs, "{oa{sa{sv}}}", ROOT "/vm/alice", &ifaces);
        return g_variant_new("(a{oa{sa{sv}}})", &objs);
}

static void finished(guint64 id, const char *outcome, const char *target) {
        g_dbus_connection_emit_signal(bus, NULL, ROOT, "org.vmfed.Federation1.Ask", "AskFinished",
                                      g_variant_new("(tss)", id, outcome, target), NULL);
}

static void method_call(GDBusConnection *c, const char *sender, const char *path, const char *iface,
                        const char *method, GVariant *params, GDBusMethodInvocation *inv, gpointer userdata) {
        guint64 id;
        const char *target;
        if (g_str_equal(method, "GetManagedObjects")) {
                g_dbus_method_invocation_return_value(inv, managed_objects());
        } else if (g_str_equal(method, "ListAsks")) {
                g_dbus_method_invocation_return_value(inv, g_variant_new_parsed("(@a(tssass) [],)"));
        } else if (g_str_equal(method, "DenyAsk")) {
                g_variant_get(params, "(t)", &id);
                printf("DENY %" G_GUINT64_FORMAT "\n", id);
                fflush(stdout);
                g_dbus_method_invocation_return_value(inv, NULL);
                finished(id, "denied", "");
        } else {
                g_variant_get(params, "(t&s)", &id, &target);
                printf("ANSWER %" G_GUINT64_FORMAT " %s\n", id, target);
                fflush(stdout);
                g_dbus_method_invocation_return_value(inv, NULL);
                finished(id, "allowed", target);
        }
}

static GVariant *get_property(GDBusConnection *c, const char *sender, const char *path, const char *iface,
                              const char *name, GError **error, gpointer userdata) {
        return g_variant_new_string("");
}

static const GDBusInterfaceVTable vtable = { method_call, get_property, NULL, { 0 } };

static void emit_hostile(void) {
        GString *s = g_string_new("vmfed.Launch+<b>bold</b>&amp;<span foreground='red'>x</span>\u202Egnp.exe\u2066");
        for (int i = 0; i < 65536; i++)
                g_string_append_c(s, 'A');
        const char *cands[] = { "bob", "<i>carol</i>\u202E", NULL };
        g_dbus_connection_emit_signal(bus, NULL, ROOT, "org.vmfed.Federation1.Ask", "AskRequested",
                                      g_variant_new("(tss^ass)", next_id++, "alice", s->str, cands, ""), NULL);
        g_dbus_connection_flush_sync(bus, NULL, NULL);
        g_string_free(s, TRUE);
}

static gboolean on_stdin(GIOChannel *ch, GIOCondition cond, gpointer userdata) {
        g_autofree char *line = NULL;
        if (g_io_channel_read_line(ch, &line, NULL, NULL, NULL) != G_IO_STATUS_NORMAL) {
                g_main_loop_quit(userdata);
                return G_SOURCE_REMOVE;
        }
        if (g_str_has_prefix(line, "ask"))
                emit_hostile();
        return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv) {
        g_autoptr(GError) error = NULL;
        if (argc != 2) {
                fprintf(stderr, "usage: fake-broker BUS-ADDRESS\n");
                return 2;
        }
        bus = g_dbus_connection_new_for_address_sync(
                argv[1], G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                NULL, NULL, &error);
        g_autoptr(GDBusNodeInfo) node = bus ? g_dbus_node_info_new_for_xml(xml, &error) : NULL;
        for (int i = 0; node && node->interfaces[i]; i++)
                if (!g_dbus_connection_register_object(bus, ROOT, node->interfaces[i], &vtable, NULL, NULL, &error))
                        break;
        g_autoptr(GVariant) r = error ? NULL : g_dbus_connection_call_sync(
                bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName",
                g_variant_new("(su)", "org.vmfed.Federation1", 4u), G_VARIANT_TYPE("(u)"), G_DBUS_CALL_FLAGS_NONE,
                -1, NULL, &error);
        if (!r) {
                fprintf(stderr, "fake-broker: %s\n", error->message);
                return 1;
        }
        puts("READY");
        fflush(stdout);
        g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
        GIOChannel *ch = g_io_channel_unix_new(0);
        g_io_add_watch(ch, G_IO_IN | G_IO_HUP, on_stdin, loop);
        g_main_loop_run(loop);
        g_io_channel_unref(ch);
        g_object_unref(bus);
        return 0;
}
