/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/netvm-links.h"

#include "broker/netvm-link.h"

#include <errno.h>
#include <string.h>

#include "broker/client-firewall.h"
#include "broker/route.h"
#include "broker/vm-events.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/domain-xml.h"
#include "federation/netvm-query.h"

#define SET_NETWORK_TIMEOUT_USEC (15 * G_USEC_PER_SEC)
#define CLIENT_INTERFACE "eth0"

static void client_vm_free(void *p) {
        ClientVm *c = p;
        if (!c)
                return;
        g_free(c->name);
        g_free(c->netvm);
        g_free(c->mac);
        g_free(c->address);
        g_free(c->address6);
        g_free(c->rules);
        g_free(c->tap);
        g_free(c);
}

static void netvm_links_on_vm_event(const VmEvent *e, void *userdata);
static void netvm_links_on_broker_event(Broker *b, const BrokerEvent *e, void *userdata);
static void netvm_links_federation_ready(NetvmLinks *n);

int netvm_links_new(Broker *b, NetvmLinks **ret) {
        g_autofree char *subnet = NULL, *subnet6 = NULL;
        NetvmLinks *n;
        int r;

        n = g_new0(NetvmLinks, 1);
        n->broker = b;
        n->channel_dir = g_strdup(broker_channel_dir(b));
        n->bridge = g_strdup(broker_bridge(b));
        n->conf = network_conf_load(broker_config_dir(b));
        n->netvms = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, netvm_link_free);
        n->clients = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, client_vm_free);
        n->watch = vm_events_watch_add(broker_vm_events(b), netvm_links_on_vm_event, n, NULL);
        n->broker_watch = broker_watch_add(b, netvm_links_on_broker_event, n, NULL);
        subnet = network_conf_subnet(n->conf);
        r = addressing_new(broker_config_dir(b), broker_state_dir(b), subnet, &n->addressing);
        if (r < 0) {
                log_error("%s: [Network] Subnet=%s is not a /24 (A.B.C.0/24); using 10.137.0.0/24.", network_conf_path(n->conf),
                          subnet);
                (void) addressing_new(broker_config_dir(b), broker_state_dir(b), NULL, &n->addressing);
        }
        subnet6 = network_conf_subnet6(n->conf);
        if (addressing_set_subnet6(n->addressing, subnet6) < 0)
                log_error("%s: [Network] Subnet6=%s is not a /64 (PREFIX::/64) nor \"none\"; using the default, "
                          "gateway %s.", network_conf_path(n->conf), subnet6, addressing_gateway6(n->addressing));
        if (broker_bridge(b)) {
                r = hostnet_open(&n->host);
                if (r < 0)
                        log_warning_errno(r, "No host network plumbing (bridges, anti-spoofing): %m");
                else {
                        r = hostnet_bridge_ensure(n->host, broker_bridge(b));
                        if (r < 0)
                                log_error_errno(r, "Cannot set up the host bridge %s: %m", broker_bridge(b));
                        else
                                log_info("Host bridge %s is up (isolated client ports, table bridge vmfed-host).",
                                         broker_bridge(b));
                }
        }
        *ret = n;
        return 0;
}

NetvmLinks *netvm_links_free(NetvmLinks *n) {
        if (!n)
                return NULL;
        vm_events_watch_remove(broker_vm_events(n->broker), n->watch);
        broker_watch_remove(n->broker, n->broker_watch);
        g_hash_table_unref(n->netvms);
        g_hash_table_unref(n->clients);
        addressing_free(n->addressing);
        hostnet_free(n->host);
        network_conf_free(n->conf);
        g_free(n->channel_dir);
        g_free(n->bridge);
        g_free(n);
        return NULL;
}
/* ---- who is what ------------------------------------------------------------ */

static Federation *links_federation(NetvmLinks *n) {
        return broker_federation(n->broker);
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
/* A disposable's template: the federation keeps it (no libvirt call on the loop). */
static char *disposable_template(Federation *f, const char *vm) {
        return g_strdup(federation_vm_template(f, vm));
}

/* ---- VMs coming and going -------------------------------------------------------- */

static void on_set_network_done(Broker *b, sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        char *vm = userdata;
        ClientVm *c = broker_netvm_links(b) ? g_hash_table_lookup(broker_netvm_links(b)->clients, vm) : NULL;

        if (c && c->network_pending > 0)
                c->network_pending--;
        if (error)
                log_warning("SetNetwork in %s failed: %s: %s%s", vm, error->name, error->message,
                            c ? " (sent again when its agent says Hello)" : "");
        else
                log_info("%s: network configured by its agent.", vm);
        g_free(vm);
}

/* One Agent1.SetNetwork: cidr, its gateway, dns (NULL: none, resolv.conf left as it is). */
static int client_set_network(Broker *b, ClientVm *c, const char *cidr, const char *gw, const char *dns) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *args = NULL;
        int r;

        r = route_new_args(b, &args);
        if (r >= 0)
                r = dns ? sd_bus_message_append(args, "sssas", CLIENT_INTERFACE, cidr, gw, 1, dns)
                        : sd_bus_message_append(args, "sssas", CLIENT_INTERFACE, cidr, gw, 0);
        if (r >= 0)
                r = route_call(b, c->name, "SetNetwork", steal_pointer(&args), SET_NETWORK_TIMEOUT_USEC,
                               on_set_network_done, g_strdup(c->name));
        if (r >= 0)
                c->network_pending++;
        return r;
}

/*
 * The agent's netconfig takes one address per call and replaces only the
 * addresses of that family: IPv4 (with the gateway as DNS server), then
 * IPv6 (without DNS, so resolv.conf keeps the IPv4 one).
 */
static void client_send_network(NetvmLinks *n, ClientVm *c) {
        Broker *b = n->broker;
        g_autofree char *cidr = g_strdup_printf("%s/%u", c->address, addressing_prefixlen(n->addressing));
        const char *gw = addressing_gateway(n->addressing), *gw6 = addressing_gateway6(n->addressing);
        int r;

        if (!broker_bus(b))
                return;
        r = client_set_network(b, c, cidr, gw, gw);
        if (r >= 0 && c->address6 && gw6) {
                g_autofree char *cidr6 = g_strdup_printf("%s/64", c->address6);
                r = client_set_network(b, c, cidr6, gw6, NULL);
        }
        if (r < 0)
                log_warning_errno(r, "Cannot send the network configuration to %s: %m", c->name);
}

static void netvm_links_agent_ready(NetvmLinks *n, const char *vm) {
        ClientVm *c = g_hash_table_lookup(n->clients, vm);

        /*
         * An agent that said Hello after the SetNetwork waiting for it timed out,
         * or that restarted inside its VM: (re)configure it.  SetNetwork replaces
         * addresses and routes, so sending it again is harmless.  One already
         * queued reaches this agent through route_agent_ready().
         */
        if (c && !c->network_pending)
                client_send_network(n, c);
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
        c->address6 = addressing_address6(n->addressing, c->address);
        c->rules = client_firewall_rules(broker_config_dir(n->broker), s, tmpl ? tmpl : vm);
        if (domain) {
                domain_xml_tap_name(domain, tap);
                c->tap = g_strdup(tap);
        }
        g_hash_table_replace(n->clients, c->name, c);
        log_info("%s: client of %s, MAC %s, address %s%s%s, %s.", vm, s->netvm, c->mac, c->address,
                 c->address6 ? " and " : "", c->address6 ? c->address6 : "",
                 c->rules ? "its own firewall" : "no firewall");

        if (n->host && c->tap) {
                const char *addrs[] = { c->address, c->address6, NULL };
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
        addressing_release(n->addressing, vm); /* a disposable's index goes; a VM's is no longer in use */
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

/* The broker's events: the federation was (re)created, an agent said Hello. */
static void netvm_links_on_broker_event(Broker *b, const BrokerEvent *e, void *userdata) {
        NetvmLinks *n = userdata;

        if (e->kind == BROKER_EVENT_FEDERATION_READY)
                netvm_links_federation_ready(n);
        else if (e->kind == BROKER_EVENT_AGENT_READY)
                netvm_links_agent_ready(n, e->vm);
}

/* The watch of broker/vm-events.h: netvm clients, host ports, the agent's network. */
static void netvm_links_on_vm_event(const VmEvent *e, void *userdata) {
        NetvmLinks *n = userdata;
        Broker *b = n->broker;
        Federation *f = links_federation(n);
        const char *vm = e->vm;
        FederationVmState s = e->state;
        const VmSpec *spec;

        if (!f || !broker_bridge(b))
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
        NetvmLinks *n = broker_netvm_links(b);
        Federation *f = n ? links_federation(n) : NULL;
        const VmSpec *s = f ? federation_vm_spec(f, vm) : NULL;

        if (!s || !broker_bridge(b) || !spec_is_netvm(f, s))
                return 0;
        return netvm_link_ensure(n, s) ? 0 : -EIO;
}

int netvm_links_adopt_connection(Broker *b, const VmSpec *netvm, int fd) {
        NetvmLink *n = broker_netvm_links(b) ? netvm_link_ensure(broker_netvm_links(b), netvm) : NULL;

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

static void netvm_links_federation_ready(NetvmLinks *n) {
        Federation *f = links_federation(n);
        g_auto(GStrv) names = NULL;

        if (!f || !n->bridge)
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

