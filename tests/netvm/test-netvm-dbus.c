/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.vmfed.NetVM1 over the agent channel, with this test as the broker:
 * it listens on a unix socket, runs the real vmfed-netd --channel SOCKET in
 * a private network namespace, and is the sd-bus server (anonymous auth) on
 * the accepted connection.  Checks every method against the kernel's
 * nftables state, the documented introspection, reconnection, and restart
 * from the persisted state.
 *
 * Usage: test-netvm-dbus VMFED_NETD DOCS_XML
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>
#include <systemd/sd-bus.h>

static const char *netd_path, *docs_xml;
static char *tmpdir, *sock_path, *state_dir, *log_path;
static int listen_fd = -1;
static pid_t netd_pid = -1;

#define STATE \
        "[Uplink]\nInterface=up0\nAddress=192.0.2.2/24\nDNS=192.0.2.53\n" \
        "[Downstream]\nInterface=down0\nAddress=10.200.0.1/24\n" \
        "[Client a]\nMAC=52:54:00:00:00:0a\nAddress=10.200.0.10\nRule=accept dns\n"

static void start_netd(void) {
        netd_pid = fork();
        g_assert_cmpint(netd_pid, >=, 0);
        if (netd_pid == 0) {
                /* Never outlive the test, also when an assertion aborts it. */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
                dup2(fd, 1);
                dup2(fd, 2);
                execl(netd_path, netd_path, "--channel", sock_path, "--state-dir", state_dir, NULL);
                _exit(127);
        }
}

static void stop_netd(void) {
        if (netd_pid > 0) {
                kill(netd_pid, SIGTERM);
                int status;
                waitpid(netd_pid, &status, 0);
                g_assert_true(WIFEXITED(status));
                g_assert_cmpint(WEXITSTATUS(status), ==, 0);
                netd_pid = -1;
        }
}

/* Accept vmfed-netd's connection and be the D-Bus server on it. */
static sd_bus *accept_broker(void) {
        struct pollfd p = { .fd = listen_fd, .events = POLLIN };
        g_assert_cmpint(poll(&p, 1, 10000), ==, 1);
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        g_assert_cmpint(fd, >=, 0);

        sd_bus *bus = NULL;
        sd_id128_t id;
        g_assert_cmpint(sd_id128_randomize(&id), >=, 0);
        g_assert_cmpint(sd_bus_new(&bus), >=, 0);
        g_assert_cmpint(sd_bus_set_fd(bus, fd, fd), >=, 0);
        g_assert_cmpint(sd_bus_set_server(bus, 1, id), >=, 0);
        g_assert_cmpint(sd_bus_set_anonymous(bus, 1), >=, 0);
        g_assert_cmpint(sd_bus_negotiate_fds(bus, 0), >=, 0);
        g_assert_cmpint(sd_bus_start(bus), >=, 0);
        return bus;
}

static char *nft_table(void) {
        g_autofree char *out = NULL;
        gint status = 0;
        g_assert_true(g_spawn_command_line_sync("nft list table inet vmfed", &out, NULL, &status, NULL));
        return g_steal_pointer(&out);
}

static int call(sd_bus *bus, const char *method, sd_bus_error *error, sd_bus_message **reply,
                const char *types, ...) {
        sd_bus_message *m = NULL;
        va_list ap;
        int r = sd_bus_message_new_method_call(bus, &m, NULL, "/org/vmfed/NetVM1", "org.vmfed.NetVM1", method);
        g_assert_cmpint(r, >=, 0);
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                g_assert_cmpint(r, >=, 0);
        }
        r = sd_bus_call(bus, m, 10 * 1000000, error, reply);
        sd_bus_message_unref(m);
        return r;
}

static char *get_state(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *s;
        g_assert_cmpint(call(bus, "GetState", &e, &reply, NULL), >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "s", &s), >=, 0);
        char *copy = g_strdup(s);
        sd_bus_message_unref(reply);
        return copy;
}

static void assert_error(int r, sd_bus_error *e, const char *name, const char *substring) {
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(e->name, ==, name);
        if (substring && !strstr(e->message, substring))
                g_error("error \"%s\" lacks \"%s\"", e->message, substring);
        sd_bus_error_free(e);
}

/* The interface as the daemon introspects it equals the documented one. */
static void check_introspection(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *xml;
        int r = sd_bus_call_method(bus, NULL, "/org/vmfed/NetVM1", "org.freedesktop.DBus.Introspectable",
                                   "Introspect", &e, &reply, NULL);
        g_assert_cmpint(r, >=, 0);
        g_assert_cmpint(sd_bus_message_read(reply, "s", &xml), >=, 0);

        g_autoptr(GError) error = NULL;
        g_autofree char *doc = NULL;
        g_assert_true(g_file_get_contents(docs_xml, &doc, NULL, &error));
        GDBusNodeInfo *live = g_dbus_node_info_new_for_xml(xml, &error);
        g_assert_no_error(error);
        GDBusNodeInfo *documented = g_dbus_node_info_new_for_xml(doc, &error);
        g_assert_no_error(error);
        GDBusInterfaceInfo *li = g_dbus_node_info_lookup_interface(live, "org.vmfed.NetVM1");
        GDBusInterfaceInfo *di = g_dbus_node_info_lookup_interface(documented, "org.vmfed.NetVM1");
        g_assert_nonnull(li);
        g_assert_nonnull(di);

        guint n = 0;
        for (GDBusMethodInfo **m = di->methods; m && *m; m++, n++) {
                GDBusMethodInfo *lm = g_dbus_interface_info_lookup_method(li, (*m)->name);
                if (!lm)
                        g_error("documented method %s missing", (*m)->name);
                for (int dir = 0; dir < 2; dir++) {
                        GDBusArgInfo **da = dir ? (*m)->out_args : (*m)->in_args;
                        GDBusArgInfo **la = dir ? lm->out_args : lm->in_args;
                        guint i = 0;
                        for (; da && da[i]; i++) {
                                g_assert_nonnull(la);
                                g_assert_nonnull(la[i]);
                                g_assert_cmpstr(da[i]->name, ==, la[i]->name);
                                g_assert_cmpstr(da[i]->signature, ==, la[i]->signature);
                        }
                        g_assert_true(!la || !la[i]);
                }
        }
        guint ln = 0;
        for (GDBusMethodInfo **m = li->methods; m && *m; m++)
                ln++;
        g_assert_cmpuint(n, ==, ln);
        for (GDBusPropertyInfo **p = di->properties; p && *p; p++) {
                GDBusPropertyInfo *lp = g_dbus_interface_info_lookup_property(li, (*p)->name);
                g_assert_nonnull(lp);
                g_assert_cmpstr(lp->signature, ==, (*p)->signature);
                g_assert_cmpint(lp->flags, ==, (*p)->flags);
        }
        g_dbus_node_info_unref(live);
        g_dbus_node_info_unref(documented);
        sd_bus_message_unref(reply);
}

/* The state: none at first, refused when invalid, applied, a no-op when the same. */
static void channel_set_state(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        g_autofree char *empty = get_state(bus);
        g_assert_cmpstr(empty, ==, "");

        const char *a_addrs[] = { "10.200.0.10", NULL };
        r = call(bus, "AddClient", &e, NULL, "ssass", "b", "52:54:00:00:00:0b", 1, "10.200.0.11", "");
        assert_error(r, &e, "org.vmfed.Federation1.Error.Failed", "SetState first");

        r = call(bus, "SetState", &e, NULL, "s", "[Uplink]\nInterface=up0\nColor=blue\n");
        assert_error(r, &e, "org.vmfed.Federation1.Error.InvalidArgs", "state:3: unknown key \"Color\"");

        r = call(bus, "SetState", &e, NULL, "s", STATE);
        g_assert_cmpint(r, >=, 0);
        g_autofree char *t1 = nft_table();
        g_assert_nonnull(strstr(t1, "chain fwd-a"));
        g_assert_nonnull(strstr(t1, "10.200.0.10 : goto fwd-a"));
        g_autofree char *s1 = get_state(bus);
        g_assert_nonnull(strstr(s1, "[Client a]\nMAC=52:54:00:00:00:0a\nAddress=10.200.0.10\nRule=accept dns\n"));

        /* The same state again is a no-op. */
        g_assert_cmpint(call(bus, "SetState", &e, NULL, "s", STATE), >=, 0);

        (void) a_addrs;
}

/* Clients added and replaced (their rules compiled to sets), refused on conflicts, broken rules fail closed. */
static void channel_add_clients(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = call(bus, "AddClient", &e, NULL, "ssass", "b", "52:54:00:00:00:0b", 1, "10.200.0.11",
                 "default drop\naccept 192.0.2.0/24 proto tcp port 443\n");
        g_assert_cmpint(r, >=, 0);
        g_autofree char *t2 = nft_table();
        g_assert_nonnull(strstr(t2, "chain fwd-b"));
        /* Address/port rules are compiled into an interval set of the client (netvm/fwplan.h). */
        g_assert_nonnull(strstr(t2, "elements = { 192.0.2.0/24 . tcp . 443 }"));
        g_assert_nonnull(strstr(t2, "ip daddr . meta l4proto . th dport @c-b-"));
        g_assert_nonnull(strstr(t2, "52:54:00:00:00:0b . 10.200.0.11"));

        /* Replacing b with other rules swaps its chain's rules and sets in one transaction. */
        char *old_set = g_strndup(strstr(t2, "set c-b-"), strlen("set c-b-") + 16);
        r = call(bus, "AddClient", &e, NULL, "ssass", "b", "52:54:00:00:00:0b", 1, "10.200.0.11",
                 "default drop\naccept 198.51.100.0/24 proto udp port 500-600\n");
        g_assert_cmpint(r, >=, 0);
        g_autofree char *t2b = nft_table();
        g_assert_null(strstr(t2b, old_set));
        g_assert_nonnull(strstr(t2b, "elements = { 198.51.100.0/24 . udp . 500-600 }"));
        g_assert_null(strstr(t2b, "192.0.2.0/24 . tcp . 443"));
        g_assert_nonnull(strstr(t2b, "52:54:00:00:00:0b . 10.200.0.11"));
        g_free(old_set);

        r = call(bus, "AddClient", &e, NULL, "ssass", "c", "52:54:00:00:00:0b", 1, "10.200.0.12", "");
        assert_error(r, &e, "org.vmfed.Federation1.Error.Conflict", "already client b's");
        r = call(bus, "AddClient", &e, NULL, "ssass", "c", "52:54:00:00:00:0c", 1, "10.200.0.11", "");
        assert_error(r, &e, "org.vmfed.Federation1.Error.Conflict", "10.200.0.11 is already client b's");
        r = call(bus, "AddClient", &e, NULL, "ssass", "c", "52:54:00:00:00:0c", 1, "10.99.0.1", "");
        assert_error(r, &e, "org.vmfed.Federation1.Error.InvalidArgs", "outside every [Downstream] subnet");
        r = call(bus, "AddClient", &e, NULL, "ssass", "../x", "52:54:00:00:00:0c", 1, "10.200.0.12", "");
        assert_error(r, &e, "org.vmfed.Federation1.Error.InvalidArgs", "invalid client name");

        /* Broken rules: installed fail closed, reported with NAME.rules:LINE. */
        r = call(bus, "AddClient", &e, NULL, "ssass", "d", "52:54:00:00:00:0d", 1, "10.200.0.13",
                 "accept dns\naccept 192.0.2.1 proto tcp port 99999\n");
        assert_error(r, &e, "org.vmfed.Federation1.Error.InvalidArgs", "d.rules:2: invalid port \"99999\"");
        g_autofree char *t3 = nft_table();
        char *d = strstr(t3, "chain fwd-d {");
        g_assert_nonnull(d);
        g_assert_nonnull(strstr(d, "counter packets 0 bytes 0 drop comment \"vmfed:"));
        g_assert_null(strstr(d, "udp dport 53"));
}

/* A client removed with its chain and set; Clients lists the rest. */
static void channel_remove_client(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        g_assert_cmpint(call(bus, "RemoveClient", &e, NULL, "s", "b"), >=, 0);
        g_autofree char *t4 = nft_table();
        g_assert_null(strstr(t4, "fwd-b"));
        g_assert_null(strstr(t4, "@c-b-"));
        g_assert_null(strstr(t4, "set c-b-"));
        g_assert_null(strstr(t4, "10.200.0.11"));
        g_assert_nonnull(strstr(t4, "chain fwd-a"));
        r = call(bus, "RemoveClient", &e, NULL, "s", "b");
        assert_error(r, &e, "org.vmfed.Federation1.Error.NotFound", "no client b");

        char **clients = NULL;
        r = sd_bus_get_property_strv(bus, NULL, "/org/vmfed/NetVM1", "org.vmfed.NetVM1", "Clients", &e, &clients);
        g_assert_cmpint(r, >=, 0);
        g_assert_cmpuint(g_strv_length(clients), ==, 2);
        g_assert_cmpstr(clients[0], ==, "a");
        g_assert_cmpstr(clients[1], ==, "d");
        g_strfreev(clients);
}

static void test_channel(void) {
        sd_bus *bus;

        start_netd();
        bus = accept_broker();

        channel_set_state(bus);
        channel_add_clients(bus);
        channel_remove_client(bus);

        check_introspection(bus);

        /* The broker goes away: the network stays, vmfed-netd reconnects. */
        sd_bus_flush_close_unref(bus);
        g_autofree char *t5 = nft_table();
        g_assert_nonnull(strstr(t5, "chain fwd-a"));
        bus = accept_broker();
        g_autofree char *s2 = get_state(bus);
        g_assert_nonnull(strstr(s2, "[Client d]"));
        sd_bus_flush_close_unref(bus);

        /* vmfed-netd restarts: it re-applies the persisted state before the broker is back. */
        stop_netd();
        g_autofree char *persisted = g_build_filename(state_dir, "netd.state", NULL);
        g_assert_true(g_file_test(persisted, G_FILE_TEST_EXISTS));
        start_netd();
        bus = accept_broker();
        g_autofree char *s3 = get_state(bus);
        g_assert_nonnull(strstr(s3, "[Client a]"));
        g_assert_nonnull(strstr(s3, "[Client d]"));
        g_autofree char *log = NULL;
        g_assert_true(g_file_get_contents(log_path, &log, NULL, NULL));
        g_assert_nonnull(strstr(log, "nftables: 0 message(s)"));
        sd_bus_flush_close_unref(bus);
        stop_netd();
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        if (argc < 3) {
                fprintf(stderr, "usage: %s VMFED_NETD DOCS_XML\n", argv[0]);
                return 2;
        }
        netd_path = argv[1];
        docs_xml = argv[2];
        if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0) {
                printf("1..0 # SKIP needs root for a private network namespace\n");
                return 77;
        }
        /* Only this process's namespace: interfaces and the table vanish with it. */
        if (system("ip link set lo up && ip link add up0 type veth peer name down0") != 0)
                return 1;

        tmpdir = g_dir_make_tmp("vmfed-netvm-dbus-XXXXXX", NULL);
        sock_path = g_build_filename(tmpdir, "channel.sock", NULL);
        state_dir = g_build_filename(tmpdir, "state", NULL);
        log_path = g_build_filename(tmpdir, "netd.log", NULL);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        g_strlcpy(sa.sun_path, sock_path, sizeof sa.sun_path);
        if (bind(listen_fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(listen_fd, 4) < 0)
                return 1;

        g_test_add_func("/netvm-dbus/channel", test_channel);
        int r = g_test_run();

        if (netd_pid > 0) {
                kill(netd_pid, SIGKILL);
                waitpid(netd_pid, NULL, 0);
        }
        if (r != 0) {
                g_autofree char *log = NULL;
                if (g_file_get_contents(log_path, &log, NULL, NULL))
                        fprintf(stderr, "---- vmfed-netd log\n%s", log);
        }
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
        (void) system(cmd);
        return r;
}
