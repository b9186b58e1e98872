/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/netconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include "common/fileio.h"
#include "common/macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_sock *, nl_socket_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_link *, rtnl_link_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_addr *, rtnl_addr_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_route *, rtnl_route_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_addr *, nl_addr_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_cache *, nl_cache_free)

/* libnl's -NLE_* as a negative errno: here, at the boundary, only here. */
static int nl_to_errno(int nlerr) {
        switch (nlerr < 0 ? -nlerr : nlerr) {
        case 0:
                return 0;
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_EXIST:
                return -EEXIST;
        case NLE_OBJ_NOTFOUND:
        case NLE_NODEV:
                return -ENODEV;
        case NLE_PERM:
                return -EPERM;
        case NLE_INVAL:
                return -EINVAL;
        case NLE_AF_NOSUPPORT:
                return -EAFNOSUPPORT;
        default:
                return -EIO;
        }
}

static bool parse_ip(const char *s, int *family, unsigned char *out) {
        if (inet_pton(AF_INET, s, out) == 1) {
                *family = AF_INET;
                return true;
        }
        if (inet_pton(AF_INET6, s, out) == 1) {
                *family = AF_INET6;
                return true;
        }
        return false;
}

int net_config_parse(const char *ifname, const char *address, const char *gateway, const char *const *dns,
                     NetConfig *ret, char **why) {
        NetConfig c = {};
        char ip[64];

        if (strlen(ifname) == 0 || strlen(ifname) >= IF_NAMESIZE || strchr(ifname, '/')) {
                *why = g_strdup("Bad interface name.");
                return -EINVAL;
        }
        strcpy(c.ifname, ifname);

        const char *slash = strchr(address, '/');
        if (!slash || (size_t) (slash - address) >= sizeof ip) {
                *why = g_strdup("The address must be ADDRESS/PREFIX.");
                return -EINVAL;
        }
        memcpy(ip, address, slash - address);
        ip[slash - address] = 0;
        char *end;
        unsigned long prefix = strtoul(slash + 1, &end, 10);
        if (!parse_ip(ip, &c.family, c.address) || *end || end == slash + 1 ||
            prefix > (c.family == AF_INET ? 32u : 128u)) {
                *why = g_strdup("The address must be ADDRESS/PREFIX.");
                return -EINVAL;
        }
        c.prefixlen = (unsigned) prefix;

        if (gateway && *gateway) {
                int fam;
                if (!parse_ip(gateway, &fam, c.gateway) || fam != c.family) {
                        *why = g_strdup("The gateway must be an address of the same family.");
                        return -EINVAL;
                }
                c.have_gateway = true;
        }
        for (size_t i = 0; dns && dns[i]; i++) {
                unsigned char buf[16];
                int fam;
                if (i >= NET_CONFIG_DNS_MAX || strlen(dns[i]) >= sizeof c.dns[0] || !parse_ip(dns[i], &fam, buf)) {
                        *why = g_strdup_printf("At most %d DNS servers, each an IP address.", NET_CONFIG_DNS_MAX);
                        return -EINVAL;
                }
                inet_ntop(fam, buf, c.dns[i], sizeof c.dns[i]);
                c.n_dns++;
        }
        *ret = c;
        return 0;
}

static int set_dns(const NetConfig *c, const char *resolv_conf, char **why) {
        g_autoptr(GString) s = g_string_new("# written by vmfed-agent from the broker's configuration\n");
        for (size_t i = 0; i < c->n_dns; i++)
                g_string_append_printf(s, "nameserver %s\n", c->dns[i]);
        int r = write_file_atomic(resolv_conf, s->str, s->len, 0644);
        if (r < 0)
                *why = g_strdup_printf("Cannot write %s: %s", resolv_conf, strerror(-r));
        return r;
}

static int link_set_up(struct nl_sock *sk, const NetConfig *c, struct rtnl_link *link, char **why) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *change = rtnl_link_alloc();
        if (!change)
                return -ENOMEM;
        rtnl_link_set_flags(change, IFF_UP);
        int r = rtnl_link_change(sk, link, change, 0);
        if (r < 0) {
                *why = g_strdup_printf("Cannot set %s up: %s", c->ifname, nl_geterror(r));
                return nl_to_errno(r);
        }
        return 0;
}

/* c's address on ifindex, replacing other global addresses of the same family there. */
static int address_replace(struct nl_sock *sk, const NetConfig *c, int ifindex, char **why) {
        _cleanup_(nl_addr_putp) struct nl_addr *local = NULL;
        _cleanup_(nl_cache_freep) struct nl_cache *addrs = NULL;
        _cleanup_(rtnl_addr_putp) struct rtnl_addr *addr = NULL;
        int r;

        local = nl_addr_build(c->family, c->address, c->family == AF_INET ? 4 : 16);
        if (!local)
                return -ENOMEM;
        nl_addr_set_prefixlen(local, (int) c->prefixlen);
        r = rtnl_addr_alloc_cache(sk, &addrs);
        if (r < 0) {
                *why = g_strdup_printf("Cannot list addresses: %s", nl_geterror(r));
                return nl_to_errno(r);
        }
        bool have = false;
        for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
                struct rtnl_addr *a = (struct rtnl_addr *) o;
                if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != c->family ||
                    rtnl_addr_get_scope(a) != RT_SCOPE_UNIVERSE)
                        continue;
                struct nl_addr *l = rtnl_addr_get_local(a);
                if (l && nl_addr_cmp(l, local) == 0 && rtnl_addr_get_prefixlen(a) == (int) c->prefixlen) {
                        have = true;
                        continue;
                }
                r = rtnl_addr_delete(sk, a, 0);
                if (r < 0 && r != -NLE_OBJ_NOTFOUND) {
                        *why = g_strdup_printf("Cannot remove an old address: %s", nl_geterror(r));
                        return nl_to_errno(r);
                }
        }
        if (have)
                return 0;
        addr = rtnl_addr_alloc();
        if (!addr)
                return -ENOMEM;
        rtnl_addr_set_ifindex(addr, ifindex);
        rtnl_addr_set_family(addr, c->family);
        r = rtnl_addr_set_local(addr, local);
        if (r >= 0)
                r = rtnl_addr_add(sk, addr, NLM_F_REPLACE);
        if (r < 0) {
                *why = g_strdup_printf("Cannot add the address: %s", nl_geterror(r));
                return nl_to_errno(r);
        }
        return 0;
}

static int default_route_set(struct nl_sock *sk, const NetConfig *c, int ifindex, char **why) {
        _cleanup_(rtnl_route_putp) struct rtnl_route *route = rtnl_route_alloc();
        _cleanup_(nl_addr_putp) struct nl_addr *dst = nl_addr_build(c->family, NULL, 0);
        _cleanup_(nl_addr_putp) struct nl_addr *gw = nl_addr_build(c->family, c->gateway, c->family == AF_INET ? 4 : 16);
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
        if (!route || !dst || !gw || !nh) {
                if (nh)
                        rtnl_route_nh_free(nh);
                return -ENOMEM;
        }
        nl_addr_set_prefixlen(dst, 0);
        rtnl_route_set_family(route, (uint8_t) c->family);
        rtnl_route_set_dst(route, dst);
        rtnl_route_set_table(route, RT_TABLE_MAIN);
        rtnl_route_set_protocol(route, RTPROT_STATIC);
        rtnl_route_set_scope(route, RT_SCOPE_UNIVERSE);
        rtnl_route_set_type(route, RTN_UNICAST);
        rtnl_route_nh_set_ifindex(nh, ifindex);
        rtnl_route_nh_set_gateway(nh, gw);
        rtnl_route_add_nexthop(route, nh); /* the route owns nh from here */
        int r = rtnl_route_add(sk, route, NLM_F_CREATE | NLM_F_REPLACE);
        if (r < 0) {
                *why = g_strdup_printf("Cannot set the default route: %s", nl_geterror(r));
                return nl_to_errno(r);
        }
        return 0;
}

int net_config_apply(const NetConfig *c, const char *resolv_conf, char **why) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = nl_socket_alloc();
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        int r, ifindex;

        if (!sk)
                return -ENOMEM;
        r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0) {
                *why = g_strdup_printf("rtnetlink: %s", nl_geterror(r));
                return nl_to_errno(r);
        }
        r = rtnl_link_get_kernel(sk, 0, c->ifname, &link);
        if (r < 0) {
                *why = g_strdup_printf("No interface %s in this VM.", c->ifname);
                return -ENODEV;
        }
        ifindex = rtnl_link_get_ifindex(link);

        r = link_set_up(sk, c, link, why);
        if (r >= 0)
                r = address_replace(sk, c, ifindex, why);
        if (r >= 0 && c->have_gateway)
                r = default_route_set(sk, c, ifindex, why);
        if (r >= 0 && c->n_dns > 0)
                r = set_dns(c, resolv_conf, why);
        return r;
}
