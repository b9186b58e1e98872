/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/netvm-link.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "broker/addressing.h"
#include "broker/client-firewall.h"
#include "common/bus-p2p.h"
#include "common/bus-source.h"
#include "broker/lifecycle.h"
#include "broker/route.h"
#include "broker/vm-events.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/domain-xml.h"
#include "federation/netvm-query.h"
#include "netvm/hostnet.h"

#define NETVM1_PATH "/org/vmfed/NetVM1"
#define NETVM1_INTERFACE "org.vmfed.NetVM1"
#define NETVM_CALL_TIMEOUT_USEC (30 * G_USEC_PER_SEC)
#define SET_NETWORK_TIMEOUT_USEC (15 * G_USEC_PER_SEC)
#define CLIENT_INTERFACE "eth0"

typedef struct NetvmLink NetvmLink;

/* A running client VM, as sent to its netvm. */
typedef struct ClientVm {
        char *name;
        char *netvm;
        char *mac;
        char *address;
        char *rules;      /* vmfed.firewall(5) text; NULL: no firewall */
        char *tap;
        bool transient;   /* a disposable: its address index is not kept */
        bool network_pending; /* a SetNetwork to its agent is queued or in flight */
} ClientVm;

struct NetvmLink {
        NetvmLinks *links;
        char *name;
        char *path;
        char *bridge;
        bool running;       /* the netvm runs: keep (re)connecting */
        guint retry_id;
        sd_bus *bus;        /* vmfed-netd's connection, NULL: none */
        GSource *source;
        guint reap_id;
        uint64_t n_connections;
        /* network.conf */
        char *uplink;
        char **uplink_addresses;
        char **uplink_gateways;
        char **dns;
        char *downstream;
};

struct NetvmLinks {
        Broker *broker;
        GKeyFile *conf;
        Addressing *addressing;
        HostNet *host;          /* NULL: no host plumbing (no --bridge, or not root) */
        GHashTable *netvms;     /* name → NetvmLink* */
        GHashTable *clients;    /* name → ClientVm* */
        unsigned watch;         /* on broker/vm-events.h */
};

static void client_vm_free(void *p) {
        ClientVm *c = p;
        if (!c)
                return;
        g_free(c->name);
        g_free(c->netvm);
        g_free(c->mac);
        g_free(c->address);
        g_free(c->rules);
        g_free(c->tap);
        g_free(c);
}

static void netvm_link_drop_connection(NetvmLink *n, const char *why) {
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

static void netvm_link_free(void *p) {
        NetvmLink *n = p;
        if (!n)
                return;
        netvm_link_drop_connection(n, "shutting down");
        g_clear_handle_id(&n->retry_id, g_source_remove);
        g_free(n->name);
        g_free(n->path);
        g_free(n->bridge);
        g_free(n->uplink);
        g_strfreev(n->uplink_addresses);
        g_strfreev(n->uplink_gateways);
        g_strfreev(n->dns);
        g_free(n->downstream);
        g_free(n);
}

/* ---- configuration -------------------------------------------------------- */

static char **conf_list(GKeyFile *kf, const char *group, const char *key) {
        char **v = kf ? g_key_file_get_string_list(kf, group, key, NULL, NULL) : NULL;
        if (!v)
                v = g_new0(char *, 1);
        for (char **p = v; *p; p++)
                g_strstrip(*p);
        return v;
}

static char *conf_string(GKeyFile *kf, const char *group, const char *key, const char *def) {
        char *v = kf ? g_key_file_get_string(kf, group, key, NULL) : NULL;
        if (v)
                g_strstrip(v);
        if (!v || !*v) {
                g_free(v);
                return g_strdup(def);
        }
        return v;
}

static void netvm_links_on_vm_event(const VmEvent *e, void *userdata);

int netvm_links_new(Broker *b, NetvmLinks **ret) {
        g_autofree char *path = g_build_filename(b->config_dir, "network.conf", NULL);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) e = NULL;
        g_autofree char *subnet = NULL;
        NetvmLinks *n;
        int r;

        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &e)) {
                if (!g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                        log_error("%s: %s; using defaults.", path, e->message);
                g_clear_pointer(&kf, g_key_file_free);
        }
        n = g_new0(NetvmLinks, 1);
        n->broker = b;
        n->conf = steal_pointer(&kf);
        n->netvms = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, netvm_link_free);
        n->clients = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, client_vm_free);
        n->watch = vm_events_watch_add(b->vm_events, netvm_links_on_vm_event, n, NULL);
        subnet = conf_string(n->conf, "Network", "Subnet", NULL);
        r = addressing_new(b->state_dir, subnet, &n->addressing);
        if (r < 0) {
                log_error("%s: [Network] Subnet=%s is not a /24 (A.B.C.0/24); using 10.137.0.0/24.", path, subnet);
                (void) addressing_new(b->state_dir, NULL, &n->addressing);
        }
        if (b->bridge) {
                r = hostnet_open(&n->host);
                if (r < 0)
                        log_warning_errno(r, "No host network plumbing (bridges, anti-spoofing): %m");
                else {
                        r = hostnet_bridge_ensure(n->host, b->bridge);
                        if (r < 0)
                                log_error_errno(r, "Cannot set up the host bridge %s: %m", b->bridge);
                        else
                                log_info("Host bridge %s is up (isolated client ports, table bridge vmfed-host).",
                                         b->bridge);
                }
        }
        *ret = n;
        return 0;
}

NetvmLinks *netvm_links_free(NetvmLinks *n) {
        if (!n)
                return NULL;
        vm_events_watch_remove(n->broker->vm_events, n->watch);
        g_hash_table_unref(n->netvms);
        g_hash_table_unref(n->clients);
        addressing_free(n->addressing);
        hostnet_free(n->host);
        if (n->conf)
                g_key_file_free(n->conf);
        g_free(n);
        return NULL;
}

/* ---- who is what ------------------------------------------------------------ */

static Federation *links_federation(NetvmLinks *n) {
        return n->broker->lifecycle ? lifecycle_federation(n->broker->lifecycle, NULL) : NULL;
}

static bool spec_is_netvm(Federation *f, const VmSpec *s) {
        g_auto(GStrv) names = NULL;

        if (s->role != VM_ROLE_SERVICE)
                return false;
        if (s->default_netvm)
                return true;
        names = federation_list_vms(f);
        for (char **p = names; p && *p; p++) {
                const VmSpec *o = federation_vm_spec(f, *p);
                if (o && o->netvm && strcmp(o->netvm, s->name) == 0)
                        return true;
        }
        return false;
}

static char *bridge_of_netvm(NetvmLinks *n, const VmSpec *s) {
        if (s->default_netvm)
                return g_strdup(n->broker->bridge);
        return g_strdup_printf("vmfbr-%.9s", s->name);
}

/* A disposable's template: the federation keeps it (no libvirt call on the loop). */
static char *disposable_template(Federation *f, const char *vm) {
        return g_strdup(federation_vm_template(f, vm));
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

        g_string_append_printf(s, "Interface=%s\n", n->uplink);
        for (char **p = n->uplink_addresses; *p; p++)
                g_string_append_printf(s, "Address=%s\n", *p);
        for (char **p = n->uplink_gateways; *p; p++)
                g_string_append_printf(s, "Gateway=%s\n", *p);
        for (char **p = n->dns; *p; p++)
                g_string_append_printf(s, "DNS=%s\n", *p);
        g_string_append_printf(s, "\n[Downstream]\nInterface=%s\nAddress=%s/%u\n", n->downstream,
                               addressing_gateway(a), addressing_prefixlen(a));
        names = g_hash_table_get_keys(n->links->clients);
        names = g_list_sort(names, (GCompareFunc) strcmp);
        for (GList *l = names; l; l = l->next) {
                ClientVm *c = g_hash_table_lookup(n->links->clients, l->data);
                if (strcmp(c->netvm, n->name) != 0)
                        continue;
                g_string_append_printf(s, "\n[Client %s]\nMAC=%s\nAddress=%s\n", c->name, c->mac, c->address);
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

static void netvm_link_add_client(NetvmLink *n, ClientVm *c) {
        int r;

        if (!n || !n->bus)
                return; /* sent with the whole state when vmfed-netd connects */
        r = netd_call(n, g_strdup_printf("AddClient %s (%s, %s) on %s", c->name, c->mac, c->address, n->name),
                      "AddClient", "ssass", c->name, c->mac, 1, c->address, c->rules ? c->rules : "");
        if (r < 0)
                log_warning_errno(r, "NetVM %s: cannot send AddClient %s: %m", n->name, c->name);
}

static void netvm_link_remove_client(NetvmLink *n, const char *name) {
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
static int netvm_link_adopt(NetvmLink *n, int fd);

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
static int netvm_link_adopt(NetvmLink *n, int fd) {
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

static void netvm_link_set_running(NetvmLink *n, bool running) {
        n->running = running;
        if (!running) {
                g_clear_handle_id(&n->retry_id, g_source_remove);
                netvm_link_drop_connection(n, "the netvm stopped");
                return;
        }
        if (!n->bus && !n->retry_id)
                n->retry_id = g_idle_add(netvm_link_on_retry, n);
}

static NetvmLink *netvm_link_ensure(NetvmLinks *links, const VmSpec *s) {
        g_autofree char *group = g_strdup_printf("NetVM %s", s->name);
        g_autofree char *agent_path = NULL;
        NetvmLink *n = g_hash_table_lookup(links->netvms, s->name);
        int r;

        if (n)
                return n;
        n = g_new0(NetvmLink, 1);
        n->links = links;
        n->name = g_strdup(s->name);
        agent_path = g_strdup_printf("%s/%s.sock", links->broker->channel_dir, s->name);
        n->path = domain_xml_netvm_channel_path(agent_path);
        n->bridge = bridge_of_netvm(links, s);
        n->uplink = conf_string(links->conf, group, "Uplink", "eth1");
        n->uplink_addresses = conf_list(links->conf, group, "UplinkAddress");
        n->uplink_gateways = conf_list(links->conf, group, "UplinkGateway");
        n->dns = conf_list(links->conf, group, "DNS");
        n->downstream = conf_string(links->conf, group, "Downstream", "eth0");
        if (links->host && !s->default_netvm) {
                r = hostnet_bridge_ensure(links->host, n->bridge);
                if (r < 0)
                        log_error_errno(r, "Cannot set up the bridge %s of %s: %m", n->bridge, s->name);
        }
        g_hash_table_insert(links->netvms, n->name, n);
        log_info("NetVM %s: vmfed-netd's port is %s (bridge %s).", n->name, n->path, n->bridge);
        return n;
}

/* ---- VMs coming and going -------------------------------------------------------- */

static void on_set_network_done(Broker *b, sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        char *vm = userdata;
        ClientVm *c = b->netvm_links ? g_hash_table_lookup(b->netvm_links->clients, vm) : NULL;

        if (c)
                c->network_pending = false;
        if (error)
                log_warning("SetNetwork in %s failed: %s: %s%s", vm, error->name, error->message,
                            c ? " (sent again when its agent says Hello)" : "");
        else
                log_info("%s: network configured by its agent.", vm);
        g_free(vm);
}

static void client_send_network(NetvmLinks *n, ClientVm *c) {
        Broker *b = n->broker;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *args = NULL;
        g_autofree char *cidr = g_strdup_printf("%s/%u", c->address, addressing_prefixlen(n->addressing));
        const char *gw = addressing_gateway(n->addressing);
        int r;

        if (!b->bus)
                return;
        r = route_new_args(b, &args);
        if (r >= 0)
                r = sd_bus_message_append(args, "sssas", CLIENT_INTERFACE, cidr, gw, 1, gw);
        if (r >= 0)
                r = route_call(b, c->name, "SetNetwork", steal_pointer(&args), SET_NETWORK_TIMEOUT_USEC,
                               on_set_network_done, g_strdup(c->name));
        if (r < 0)
                log_warning_errno(r, "Cannot send the network configuration to %s: %m", c->name);
        else
                c->network_pending = true;
}

void netvm_links_agent_ready(Broker *b, const char *vm) {
        ClientVm *c = b->netvm_links ? g_hash_table_lookup(b->netvm_links->clients, vm) : NULL;

        /*
         * An agent that said Hello after the SetNetwork waiting for it timed out,
         * or that restarted inside its VM: (re)configure it.  SetNetwork replaces
         * addresses and routes, so sending it again is harmless.  One already
         * queued reaches this agent through route_agent_ready().
         */
        if (c && !c->network_pending)
                client_send_network(b->netvm_links, c);
}

static void client_running(NetvmLinks *n, Federation *f, const char *vm) {
        const VmSpec *s = federation_vm_spec(f, vm);
        g_autofree char *tmpl = NULL;
        const char *domain = federation_vm_domain_name(f, vm);
        char mac[DOMAIN_XML_MAC_MAX], tap[DOMAIN_XML_TAP_MAX];
        bool transient = false;
        NetvmLink *link;
        ClientVm *c;
        int r;

        if (!s) {
                tmpl = disposable_template(f, vm);
                s = tmpl ? federation_vm_spec(f, tmpl) : NULL;
                transient = true;
        }
        if (!s || !s->netvm)
                return;
        link = g_hash_table_lookup(n->netvms, s->netvm);
        if (!link) {
                const VmSpec *ns = federation_vm_spec(f, s->netvm);
                link = ns ? netvm_link_ensure(n, ns) : NULL;
                if (!link)
                        return;
        }

        c = g_new0(ClientVm, 1);
        c->name = g_strdup(vm);
        c->netvm = g_strdup(s->netvm);
        c->transient = transient;
        domain_xml_vm_mac(vm, mac);
        c->mac = g_strdup(mac);
        r = addressing_lookup(n->addressing, vm, !transient, &c->address);
        if (r < 0) {
                client_vm_free(c);
                return;
        }
        c->rules = client_firewall_rules(n->broker->config_dir, s, tmpl ? tmpl : vm);
        if (domain) {
                domain_xml_tap_name(domain, tap);
                c->tap = g_strdup(tap);
        }
        g_hash_table_replace(n->clients, c->name, c);
        log_info("%s: client of %s, MAC %s, address %s, %s.", vm, s->netvm, c->mac, c->address,
                 c->rules ? "its own firewall" : "no firewall");

        if (n->host && c->tap) {
                const char *addrs[] = { c->address, NULL };
                r = hostnet_port_attach(n->host, link->bridge, c->tap, c->mac, addrs);
                if (r < 0)
                        log_warning_errno(r, "Cannot attach %s's tap %s to %s with anti-spoofing: %m", vm, c->tap,
                                          link->bridge);
        }
        netvm_link_add_client(link, c);
        client_send_network(n, c);
}

static void client_stopped(NetvmLinks *n, const char *vm) {
        ClientVm *c = g_hash_table_lookup(n->clients, vm);

        if (!c) {
                /* Not a client of ours, yet it may have a port: a broker killed while it stopped
                 * attached it, and this one adopted it stopped.  Detaching is idempotent. */
                Federation *f = links_federation(n);
                const char *domain = f ? federation_vm_domain_name(f, vm) : NULL;
                char tap[DOMAIN_XML_TAP_MAX];

                if (n->host && domain) {
                        domain_xml_tap_name(domain, tap);
                        (void) hostnet_port_detach(n->host, tap);
                }
                return;
        }
        if (n->host && c->tap) {
                int r = hostnet_port_detach(n->host, c->tap);
                if (r < 0)
                        log_warning_errno(r, "Cannot remove the anti-spoofing of %s's tap %s: %m", vm, c->tap);
        }
        netvm_link_remove_client(g_hash_table_lookup(n->netvms, c->netvm), vm);
        if (c->transient)
                addressing_release(n->addressing, vm);
        log_info("%s: no longer a client of %s.", vm, c->netvm);
        g_hash_table_remove(n->clients, vm);
}

static void netvm_running(NetvmLinks *n, Federation *f, const VmSpec *s) {
        NetvmLink *link = netvm_link_ensure(n, s);
        const char *domain = federation_vm_domain_name(f, s->name);
        char tap[DOMAIN_XML_TAP_MAX];
        int r;

        if (!link)
                return;
        netvm_link_set_running(link, true);
        if (!n->host || !domain)
                return;
        domain_xml_tap_name(domain, tap);
        r = hostnet_netvm_attach(n->host, link->bridge, tap);
        if (r < 0)
                log_warning_errno(r, "Cannot attach the netvm %s's tap %s to %s: %m", s->name, tap, link->bridge);
}

/* The watch of broker/vm-events.h: netvm clients, host ports, the agent's network. */
static void netvm_links_on_vm_event(const VmEvent *e, void *userdata) {
        NetvmLinks *n = userdata;
        Broker *b = n->broker;
        Federation *f = links_federation(n);
        const char *vm = e->vm;
        FederationVmState s = e->state;
        const VmSpec *spec;

        if (!f || !b->bridge)
                return;
        spec = federation_vm_spec(f, vm);
        if (s == FEDERATION_VM_RUNNING) {
                if (spec && spec_is_netvm(f, spec))
                        netvm_running(n, f, spec);
                if (!g_hash_table_contains(n->clients, vm))
                        client_running(n, f, vm);
        } else if (federation_vm_state_is_down(s)) {
                NetvmLink *link = g_hash_table_lookup(n->netvms, vm);
                if (link)
                        netvm_link_set_running(link, false);
                client_stopped(n, vm);
        }
}

int netvm_links_prepare(Broker *b, const char *vm) {
        NetvmLinks *n = b->netvm_links;
        Federation *f = n ? links_federation(n) : NULL;
        const VmSpec *s = f ? federation_vm_spec(f, vm) : NULL;

        if (!s || !b->bridge || !spec_is_netvm(f, s))
                return 0;
        return netvm_link_ensure(n, s) ? 0 : -EIO;
}

int netvm_links_adopt_connection(Broker *b, const VmSpec *netvm, int fd) {
        NetvmLink *n = b->netvm_links ? netvm_link_ensure(b->netvm_links, netvm) : NULL;

        if (!n) {
                safe_close(fd);
                return -ENXIO;
        }
        netvm_link_drop_connection(n, "replaced by a new connection");
        return netvm_link_adopt(n, fd);
}

/* Whether a VM in state s (negative: not in the federation) is a client of its netvm. */
static bool state_has_network(FederationVmState s) {
        return s == FEDERATION_VM_RUNNING || s == FEDERATION_VM_PAUSED || s == FEDERATION_VM_STOPPING;
}

static void links_forget_stopped(NetvmLinks *n, Federation *f) {
        g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
        GHashTableIter it;
        gpointer key, value;

        g_hash_table_iter_init(&it, n->clients);
        while (g_hash_table_iter_next(&it, &key, NULL))
                if (!state_has_network(federation_vm_state(f, key)))
                        g_ptr_array_add(gone, g_strdup(key));
        for (guint i = 0; i < gone->len; i++)
                client_stopped(n, gone->pdata[i]);

        g_hash_table_iter_init(&it, n->netvms);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                NetvmLink *link = value;
                if (link->running && federation_vm_state_is_down(federation_vm_state(f, link->name)))
                        netvm_link_set_running(link, false);
        }
}

void netvm_links_federation_ready(Broker *b) {
        NetvmLinks *n = b->netvm_links;
        Federation *f = n ? links_federation(n) : NULL;
        g_auto(GStrv) names = NULL;

        if (!f || !b->bridge)
                return;
        names = federation_list_vms(f);
        /* Netvms first (connections, router ports), then the clients that exist (adopted). */
        for (char **p = names; p && *p; p++) {
                const VmSpec *s = federation_vm_spec(f, *p);
                if (s && spec_is_netvm(f, s)) {
                        (void) netvm_link_ensure(n, s);
                        if (federation_vm_state(f, *p) == FEDERATION_VM_RUNNING)
                                netvm_running(n, f, s);
                }
        }
        /*
         * The federation is new after libvirt came back (lifecycle.c): what stopped
         * while libvirt was away never reported a transition to stopped.  A client
         * or netvm known from before that no longer runs is dropped here, as
         * netvm_links_on_vm_event() would have (else the netvm keeps its chains).
         */
        links_forget_stopped(n, f);
        /*
         * A paused or stopping VM has its tap and keeps its address as it would
         * have under this broker (vm_state() removes a client only once stopped).
         */
        for (char **p = names; p && *p; p++) {
                if (state_has_network(federation_vm_state(f, *p)) && !g_hash_table_contains(n->clients, *p))
                        client_running(n, f, *p);
        }
        /* Ports of VMs that stopped while no broker watched. */
        if (n->host)
                (void) hostnet_port_sweep(n->host);
}
