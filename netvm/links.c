/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/links.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/ip.h>
#include <linux/neighbour.h>
#include <linux/if_addr.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/inet.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>

#include "common/log.h"
#include "netvm/nl-errno.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_sock *, nl_socket_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_link *, rtnl_link_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_addr *, rtnl_addr_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_neigh *, rtnl_neigh_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_route *, rtnl_route_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_addr *, nl_addr_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_cache *, nl_cache_free)

struct Links {
        struct nl_sock *sk;
        /*
         * The permanent neighbours installed on the downstream interface
         * (key "ADDR MAC"), so that a change only touches the clients that
         * changed.  Reset (full ensure and prune) when the interface is new.
         */
        GHashTable *neighbours;         /* key -> NeighEntry* */
        int neighbours_ifindex;
};

typedef struct NeighEntry {
        NetAddr addr;
        uint8_t mac[6];
} NeighEntry;

int links_open(Links **ret) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        int r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0)
                return nl_error_to_errno(r);
        Links *l = g_new0(Links, 1);
        l->sk = steal_pointer(&sk);
        l->neighbours = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        *ret = l;
        return 0;
}

Links *links_free(Links *l) {
        if (!l)
                return NULL;
        nl_socket_free(l->sk);
        g_hash_table_unref(l->neighbours);
        g_free(l);
        return NULL;
}

/*
 * Sysctls that rtnetlink cannot set: "all" is not a link, and IPv6 devconf
 * (IFLA_INET6_CONF) is read-only over rtnetlink (inet6_set_link_af accepts
 * only the token and addr_gen_mode), so these go through /proc/sys.
 */
static int sysctl_write(const char *path, const char *value) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(negative_errno(), "Cannot open %s: %m", path);
        if (write(fd, value, strlen(value)) < 0)
                return log_error_errno(negative_errno(), "Cannot write %s: %m", path);
        return 0;
}

static bool has_family(GArray *addrs, int family) {
        for (guint i = 0; i < addrs->len; i++)
                if (g_array_index(addrs, NetAddr, i).family == family)
                        return true;
        return false;
}

static int link_prepare(Links *l, const char *name, bool downstream, int *ifindexp) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        _cleanup_(rtnl_link_putp) struct rtnl_link *change = rtnl_link_alloc();
        int r = rtnl_link_get_kernel(l->sk, 0, name, &link);
        if (r < 0)
                return log_error_errno(r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV ? -ENODEV : nl_error_to_errno(r),
                                       "Interface %s: %m", name);
        *ifindexp = rtnl_link_get_ifindex(link);

        rtnl_link_set_flags(change, IFF_UP);
        /* IPv4 forwarding is decided by the input interface's devconf. */
        rtnl_link_inet_set_conf(change, IPV4_DEVCONF_FORWARDING, 1);
        if (downstream) {
                rtnl_link_inet_set_conf(change, IPV4_DEVCONF_SEND_REDIRECTS, 0);
                rtnl_link_inet_set_conf(change, IPV4_DEVCONF_ACCEPT_REDIRECTS, 0);
        }
        r = rtnl_link_change(l->sk, link, change, 0);
        if (r < 0)
                return log_error_errno(nl_error_to_errno(r), "Interface %s: cannot configure: %m", name);
        return 0;
}

static int addr_ensure(Links *l, int ifindex, const NetAddr *a, const char *ifname) {
        _cleanup_(rtnl_addr_putp) struct rtnl_addr *ra = rtnl_addr_alloc();
        _cleanup_(nl_addr_putp) struct nl_addr *local = nl_addr_build(a->family, a->bytes, netaddr_len(a));
        char buf[NETADDR_STRLEN];

        if (!ra || !local)
                return -ENOMEM;
        nl_addr_set_prefixlen(local, a->prefixlen);
        rtnl_addr_set_ifindex(ra, ifindex);
        rtnl_addr_set_family(ra, a->family);
        rtnl_addr_set_local(ra, local);
        rtnl_addr_set_prefixlen(ra, a->prefixlen);
        if (a->family == AF_INET6)
                /* The gateway address must work right after a restart; it is ours by configuration. */
                rtnl_addr_set_flags(ra, IFA_F_NODAD);
        int r = rtnl_addr_add(l->sk, ra, NLM_F_REPLACE);
        if (r < 0 && r != -NLE_EXIST)
                return log_error_errno(nl_error_to_errno(r), "Cannot add address %s to %s: %m",
                                       netaddr_format_cidr(a, buf), ifname);
        return 0;
}

static int route_ensure(Links *l, int ifindex, const NetAddr *gw) {
        _cleanup_(rtnl_route_putp) struct rtnl_route *route = rtnl_route_alloc();
        _cleanup_(nl_addr_putp) struct nl_addr *dst = nl_addr_alloc(16);
        struct nl_addr *via = nl_addr_build(gw->family, gw->bytes, netaddr_len(gw));
        char buf[NETADDR_STRLEN];

        if (!route || !dst || !via)
                return -ENOMEM;
        nl_addr_set_family(dst, gw->family);
        nl_addr_set_prefixlen(dst, 0);
        rtnl_route_set_family(route, (uint8_t) gw->family);
        rtnl_route_set_dst(route, dst);
        rtnl_route_set_table(route, RT_TABLE_MAIN);
        rtnl_route_set_protocol(route, RTPROT_STATIC);
        rtnl_route_set_scope(route, RT_SCOPE_UNIVERSE);
        rtnl_route_set_type(route, RTN_UNICAST);
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
        rtnl_route_nh_set_ifindex(nh, ifindex);
        rtnl_route_nh_set_gateway(nh, via);
        nl_addr_put(via);
        rtnl_route_add_nexthop(route, nh);
        int r = rtnl_route_add(l->sk, route, NLM_F_CREATE | NLM_F_REPLACE);
        if (r < 0)
                return log_error_errno(nl_error_to_errno(r), "Cannot add default route via %s: %m",
                                       netaddr_format(gw, buf));
        return 0;
}

static int neigh_ensure(Links *l, int ifindex, const NetAddr *a, const uint8_t mac[6]) {
        _cleanup_(rtnl_neigh_putp) struct rtnl_neigh *n = rtnl_neigh_alloc();
        _cleanup_(nl_addr_putp) struct nl_addr *dst = nl_addr_build(a->family, a->bytes, netaddr_len(a));
        _cleanup_(nl_addr_putp) struct nl_addr *ll = nl_addr_build(AF_LLC, mac, 6);
        char buf[NETADDR_STRLEN];

        if (!n || !dst || !ll)
                return -ENOMEM;
        rtnl_neigh_set_ifindex(n, ifindex);
        rtnl_neigh_set_family(n, a->family);
        rtnl_neigh_set_dst(n, dst);
        rtnl_neigh_set_lladdr(n, ll);
        rtnl_neigh_set_state(n, NUD_PERMANENT);
        int r = rtnl_neigh_add(l->sk, n, NLM_F_CREATE | NLM_F_REPLACE);
        if (r < 0)
                return log_error_errno(nl_error_to_errno(r), "Cannot add neighbour %s: %m", netaddr_format(a, buf));
        return 0;
}

typedef struct StaleCtx {
        Links *l;
        int ifindex;
        GHashTable *wanted;     /* formatted addresses */
        int r;
} StaleCtx;

static void neigh_stale_cb(struct nl_object *obj, void *data) {
        StaleCtx *ctx = data;
        struct rtnl_neigh *n = (struct rtnl_neigh *) obj;
        char buf[INET6_ADDRSTRLEN + 8];

        if (rtnl_neigh_get_ifindex(n) != ctx->ifindex || !(rtnl_neigh_get_state(n) & NUD_PERMANENT))
                return;
        struct nl_addr *dst = rtnl_neigh_get_dst(n);
        if (!dst)
                return;
        nl_addr2str(dst, buf, sizeof buf);
        if (g_hash_table_contains(ctx->wanted, buf))
                return;
        int r = rtnl_neigh_delete(ctx->l->sk, n, 0);
        if (r < 0 && r != -NLE_OBJ_NOTFOUND && ctx->r == 0)
                ctx->r = log_error_errno(nl_error_to_errno(r), "Cannot remove stale neighbour %s: %m", buf);
        else
                log_debug("Removed stale neighbour %s", buf);
}

static int neighbours_prune(Links *l, int ifindex, const NetState *s) {
        _cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
        g_autoptr(GHashTable) wanted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

        for (guint i = 0; i < s->clients->len; i++) {
                NetClient *c = s->clients->pdata[i];
                for (guint j = 0; j < c->addrs->len; j++) {
                        const NetAddr *a = &g_array_index(c->addrs, NetAddr, j);
                        _cleanup_(nl_addr_putp) struct nl_addr *na = nl_addr_build(a->family, a->bytes, netaddr_len(a));
                        char buf[INET6_ADDRSTRLEN + 8];
                        nl_addr2str(na, buf, sizeof buf);
                        g_hash_table_add(wanted, g_strdup(buf));
                }
        }
        int r = rtnl_neigh_alloc_cache(l->sk, &cache);
        if (r < 0)
                return log_error_errno(nl_error_to_errno(r), "Cannot list neighbours: %m");
        StaleCtx ctx = { .l = l, .ifindex = ifindex, .wanted = wanted };
        nl_cache_foreach(cache, neigh_stale_cb, &ctx);
        return ctx.r;
}

static int neigh_remove(Links *l, int ifindex, const NetAddr *a) {
        _cleanup_(rtnl_neigh_putp) struct rtnl_neigh *n = rtnl_neigh_alloc();
        _cleanup_(nl_addr_putp) struct nl_addr *dst = nl_addr_build(a->family, a->bytes, netaddr_len(a));
        char buf[NETADDR_STRLEN];
        if (!n || !dst)
                return -ENOMEM;
        rtnl_neigh_set_ifindex(n, ifindex);
        rtnl_neigh_set_family(n, a->family);
        rtnl_neigh_set_dst(n, dst);
        int r = rtnl_neigh_delete(l->sk, n, 0);
        if (r < 0 && r != -NLE_OBJ_NOTFOUND)
                return log_error_errno(nl_error_to_errno(r), "Cannot remove neighbour %s: %m", netaddr_format(a, buf));
        return 0;
}

static char *neigh_key(const NetAddr *a, const uint8_t mac[6]) {
        char buf[NETADDR_STRLEN], m[MAC_STRLEN];
        return g_strdup_printf("%s %s", netaddr_format(a, buf), mac_format(mac, m));
}

/* Permanent neighbours for every client address; only differences once the interface is known. */
static int neighbours_apply(Links *l, int ifindex, const NetState *s) {
        bool full = ifindex != l->neighbours_ifindex;
        g_autoptr(GHashTable) want = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        int r;

        for (guint i = 0; i < s->clients->len; i++) {
                NetClient *c = s->clients->pdata[i];
                for (guint j = 0; j < c->addrs->len; j++) {
                        NeighEntry *e = g_new0(NeighEntry, 1);
                        e->addr = g_array_index(c->addrs, NetAddr, j);
                        memcpy(e->mac, c->mac, 6);
                        g_hash_table_replace(want, neigh_key(&e->addr, e->mac), e);
                }
        }

        if (full) {
                g_hash_table_remove_all(l->neighbours);
                l->neighbours_ifindex = ifindex;
        } else {
                GHashTableIter it;
                const char *key;
                NeighEntry *e;
                g_hash_table_iter_init(&it, l->neighbours);
                while (g_hash_table_iter_next(&it, (gpointer *) &key, (gpointer *) &e)) {
                        if (g_hash_table_contains(want, key))
                                continue;
                        r = neigh_remove(l, ifindex, &e->addr);
                        if (r < 0)
                                return r;
                        g_hash_table_iter_remove(&it);
                }
        }

        GHashTableIter it;
        char *key;
        NeighEntry *e;
        g_hash_table_iter_init(&it, want);
        while (g_hash_table_iter_next(&it, (gpointer *) &key, (gpointer *) &e)) {
                if (g_hash_table_contains(l->neighbours, key))
                        continue;
                r = neigh_ensure(l, ifindex, &e->addr, e->mac);
                if (r < 0)
                        return r;
                g_hash_table_iter_steal(&it);
                g_hash_table_replace(l->neighbours, key, e);
        }
        /* The first time: permanent entries left from before (a restart) that are not clients any more. */
        return full ? neighbours_prune(l, ifindex, s) : 0;
}

int links_apply(Links *l, const NetState *s) {
        int up_index, down_index, r;

        r = link_prepare(l, s->uplink, false, &up_index);
        if (r < 0)
                return r;
        r = link_prepare(l, s->downstream, true, &down_index);
        if (r < 0)
                return r;

        /* The kernel ORs "all" with the interface: redirects must be off in both. */
        r = sysctl_write("/proc/sys/net/ipv4/conf/all/send_redirects", "0");
        if (r < 0)
                return r;
        if (has_family(s->downstream_addrs, AF_INET6)) {
                /* Forwarding on: keep taking router advertisements on the uplink. */
                g_autofree char *ra = g_strdup_printf("/proc/sys/net/ipv6/conf/%s/accept_ra", s->uplink);
                r = sysctl_write(ra, "2");
                if (r < 0)
                        return r;
                r = sysctl_write("/proc/sys/net/ipv6/conf/all/forwarding", "1");
                if (r < 0)
                        return r;
        }

        for (guint i = 0; i < s->uplink_addrs->len; i++) {
                r = addr_ensure(l, up_index, &g_array_index(s->uplink_addrs, NetAddr, i), s->uplink);
                if (r < 0)
                        return r;
        }
        for (guint i = 0; i < s->downstream_addrs->len; i++) {
                r = addr_ensure(l, down_index, &g_array_index(s->downstream_addrs, NetAddr, i), s->downstream);
                if (r < 0)
                        return r;
        }
        for (guint i = 0; i < s->gateways->len; i++) {
                r = route_ensure(l, up_index, &g_array_index(s->gateways, NetAddr, i));
                if (r < 0)
                        return r;
        }
        return neighbours_apply(l, down_index, s);
}
