/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/netvm-link.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker/client-firewall.h"
#include "common/bus-p2p.h"
#include "common/bus-source.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/domain-xml.h"

#define NETVM1_PATH "/org/vmfed/NetVM1"
#define NETVM1_INTERFACE "org.vmfed.NetVM1"

void netvm_link_drop_connection(NetvmLink *n, const char *why) {
        if (!n->bus)
                return;
        log_info("NetVM %s: vmfed-netd connection %" PRIu64 " closed: %s.", n->name, n->n_connections, why);
        g_clear_handle_id(&n->reap_id, g_source_remove);
        n->source = bus_source_free(n->source);
        /*
         * Never flush: a vmfed-netd that stalls in the handshake or does not
         * read would block the broker here (at shutdown, forever).  What was
         * still queued is not lost: a new connection gets the whole state.
         */
        n->bus = sd_bus_close_unref(n->bus);
}

void netvm_link_free(void *p) {
        NetvmLink *n = p;
        if (!n)
                return;
        netvm_link_drop_connection(n, "shutting down");
        g_clear_handle_id(&n->retry_id, g_source_remove);
        g_free(n->name);
        g_free(n->path);
        g_free(n->bridge);
        netvm_uplink_done(&n->up);
        g_free(n);
}
static char *bridge_of_netvm(NetvmLinks *n, const VmSpec *s) {
        if (s->default_netvm)
                return g_strdup(n->bridge);
        return g_strdup_printf("vmfbr-%.9s", s->name);
}

/* ---- talking to vmfed-netd ---------------------------------------------------- */

static int on_netd_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *what = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e)
                log_error("NetVM: %s failed: %s: %s", what, e->name, e->message);
        else
                log_info("NetVM: %s done.", what);
        return 0;
}

/*
 * Call vmfed-netd.  what (taken, also on failure) names the call in the log
 * line of its answer; the call's slot frees it, whether the call is
 * answered, times out or its connection goes first (a netvm that restarts
 * or never answers).
 */
static int netd_call(NetvmLink *n, char *what, const char *member, const char *types, ...) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        va_list ap;
        int r;

        va_start(ap, types);
        r = sd_bus_call_method_asyncv(n->bus, &slot, NULL, NETVM1_PATH, NETVM1_INTERFACE, member, on_netd_reply, what,
                                      types, ap);
        va_end(ap);
        if (r < 0) {
                g_free(what);
                return r;
        }
        (void) sd_bus_slot_set_destroy_callback(slot, g_free);
        return sd_bus_slot_set_floating(slot, 1);
}

static char *netvm_link_state(NetvmLink *n) {
        Addressing *a = n->links->addressing;
        g_autoptr(GString) s = g_string_new("# vmfedd: desired state of this netvm\n[Uplink]\n");
        g_autoptr(GList) names = NULL;

        g_string_append_printf(s, "Interface=%s\n", n->up.interface);
        for (char **p = n->up.addresses; *p; p++)
                g_string_append_printf(s, "Address=%s\n", *p);
        for (char **p = n->up.gateways; *p; p++)
                g_string_append_printf(s, "Gateway=%s\n", *p);
        for (char **p = n->up.dns; *p; p++)
                g_string_append_printf(s, "DNS=%s\n", *p);
        g_string_append_printf(s, "\n[Downstream]\nInterface=%s\nAddress=%s/%u\n", n->up.downstream,
                               addressing_gateway(a), addressing_prefixlen(a));
        if (addressing_gateway6(a))
                g_string_append_printf(s, "Address=%s/64\n", addressing_gateway6(a));
        g_string_append_printf(s, "DHCP=%s\n", n->up.dhcp ? "yes" : "no");
        names = g_hash_table_get_keys(n->links->clients);
        names = g_list_sort(names, (GCompareFunc) strcmp);
        for (GList *l = names; l; l = l->next) {
                ClientVm *c = g_hash_table_lookup(n->links->clients, l->data);
                if (strcmp(c->netvm, n->name) != 0)
                        continue;
                g_string_append_printf(s, "\n[Client %s]\nMAC=%s\nAddress=%s\n", c->name, c->mac, c->address);
                if (c->address6)
                        g_string_append_printf(s, "Address=%s\n", c->address6);
                if (c->rules)
                        client_firewall_append_state(s, c->rules);
        }
        return g_string_free(steal_pointer(&s), false);
}

static void netvm_link_send_state(NetvmLink *n) {
        g_autofree char *state = NULL;
        int r;

        if (!n->bus)
                return;
        state = netvm_link_state(n);
        r = netd_call(n, g_strdup_printf("SetState of %s", n->name), "SetState", "s", state);
        if (r < 0)
                log_warning_errno(r, "NetVM %s: cannot send SetState: %m", n->name);
        else
                log_info("NetVM %s: sent the whole state (%u client(s) of the federation known).", n->name,
                         g_hash_table_size(n->links->clients));
}

void netvm_link_add_client(NetvmLink *n, ClientVm *c) {
        g_autofree char *what = NULL;
        const char *rules = c->rules ? c->rules : "";
        int r;

        if (!n || !n->bus)
                return; /* sent with the whole state when vmfed-netd connects */
        what = g_strdup_printf("AddClient %s (%s, %s%s%s) on %s", c->name, c->mac, c->address,
                               c->address6 ? ", " : "", c->address6 ? c->address6 : "", n->name);
        if (c->address6)
                r = netd_call(n, steal_pointer(&what), "AddClient", "ssass", c->name, c->mac, 2, c->address,
                              c->address6, rules);
        else
                r = netd_call(n, steal_pointer(&what), "AddClient", "ssass", c->name, c->mac, 1, c->address, rules);
        if (r < 0)
                log_warning_errno(r, "NetVM %s: cannot send AddClient %s: %m", n->name, c->name);
}

void netvm_link_remove_client(NetvmLink *n, const char *name) {
        int r;

        if (!n || !n->bus)
                return;
        r = netd_call(n, g_strdup_printf("RemoveClient %s on %s", name, n->name), "RemoveClient", "s", name);
        if (r < 0)
                log_warning_errno(r, "NetVM %s: cannot send RemoveClient %s: %m", n->name, name);
}

static void netvm_link_schedule_connect(NetvmLink *n);

static gboolean netvm_link_reap(gpointer userdata) {
        NetvmLink *n = userdata;
        n->reap_id = 0;
        netvm_link_drop_connection(n, "peer gone");
        netvm_link_schedule_connect(n);
        return G_SOURCE_REMOVE;
}

static void netvm_link_closed(void *userdata, int error) {
        NetvmLink *n = userdata;
        /* Inside the source's dispatch: drop it from an idle. */
        if (!n->reap_id)
                n->reap_id = g_idle_add_full(G_PRIORITY_HIGH, netvm_link_reap, n, NULL);
}

/*
 * QEMU listens on the netvm's port socket (domain-xml.h); the broker
 * connects while the netvm runs and is the D-Bus server on that connection.
 * A connection that breaks (vmfed-netd restarted and spoke SASL into it, the
 * broker restarted) is made again a second later.
 */

static int netvm_link_connect(NetvmLink *n) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, r;

        if (n->bus)
                return 0;
        if (strlen(n->path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, n->path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0 && errno != EINPROGRESS) {
                r = negative_errno();
                safe_close(fd);
                return r;
        }
        return netvm_link_adopt(n, fd);
}

/* Serve fd as the link's connection to vmfed-netd and send it the whole state. */
int netvm_link_adopt(NetvmLink *n, int fd) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = bus_p2p_new(fd, /* server= */ true, /* accept_fds= */ false, n->name, &bus);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        r = bus_source_attach(bus, netvm_link_closed, n, &n->source);
        if (r < 0)
                return r;
        n->bus = steal_pointer(&bus);
        n->n_connections++;
        log_info("NetVM %s: connected to its port (connection %" PRIu64 "); vmfed-netd gets the whole state once "
                 "it speaks.", n->name, n->n_connections);
        netvm_link_send_state(n);
        return 0;
}

static gboolean netvm_link_on_retry(gpointer userdata) {
        NetvmLink *n = userdata;
        int r;

        n->retry_id = 0;
        if (!n->running || n->bus)
                return G_SOURCE_REMOVE;
        r = netvm_link_connect(n);
        if (r < 0) {
                log_debug_errno(r, "NetVM %s: cannot connect to %s yet: %m", n->name, n->path);
                netvm_link_schedule_connect(n);
        }
        return G_SOURCE_REMOVE;
}

static void netvm_link_schedule_connect(NetvmLink *n) {
        if (n->running && !n->bus && !n->retry_id)
                n->retry_id = g_timeout_add_seconds(1, netvm_link_on_retry, n);
}

void netvm_link_set_running(NetvmLink *n, bool running) {
        n->running = running;
        if (!running) {
                g_clear_handle_id(&n->retry_id, g_source_remove);
                netvm_link_drop_connection(n, "the netvm stopped");
                return;
        }
        if (!n->bus && !n->retry_id)
                n->retry_id = g_idle_add(netvm_link_on_retry, n);
}

NetvmLink *netvm_link_ensure(NetvmLinks *links, const VmSpec *s) {
        g_autofree char *agent_path = NULL;
        NetvmLink *n = g_hash_table_lookup(links->netvms, s->name);
        int r;

        if (n)
                return n;
        n = g_new0(NetvmLink, 1);
        n->links = links;
        n->name = g_strdup(s->name);
        agent_path = g_strdup_printf("%s/%s.sock", links->channel_dir, s->name);
        n->path = domain_xml_netvm_channel_path(agent_path);
        n->bridge = bridge_of_netvm(links, s);
        network_conf_uplink(links->conf, s->name, &n->up);
        if (links->host && !s->default_netvm) {
                r = hostnet_bridge_ensure(links->host, n->bridge);
                if (r < 0)
                        log_error_errno(r, "Cannot set up the bridge %s of %s: %m", n->bridge, s->name);
        }
        g_hash_table_insert(links->netvms, n->name, n);
        log_info("NetVM %s: vmfed-netd's port is %s (bridge %s).", n->name, n->path, n->bridge);
        return n;
}
