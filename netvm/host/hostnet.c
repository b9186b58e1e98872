/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/host/hostnet.h"

#include <errno.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/if_bridge.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <libnftnl/udata.h>

#include <glib.h>

#include "common/log.h"
#include "netvm/ifname.h"
#include "netvm/netaddr.h"
#include "netvm/netstate.h"
#include "netvm/nft-batch.h"
#include "netvm/nft-rule.h"
#include "netvm/nl-errno.h"

#define HOST_TABLE "vmfed-host"
#define HOST_MAP "ports"
#define HOST_BASE "prerouting"
#define PORT_PREFIX "port-"
#define TYPE_IFNAME 41          /* nft's ifname datatype */

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_sock *, nl_socket_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rtnl_link *, rtnl_link_put)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nl_msg *, nlmsg_free)

struct HostNet {
        struct nl_sock *sk;
        NftSocket *nft;
};

int hostnet_open(HostNet **ret) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = nl_socket_alloc();
        _cleanup_(nft_socket_freep) NftSocket *nft = NULL;
        if (!sk)
                return -ENOMEM;
        int r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0)
                return nl_error_to_errno(r);
        r = nft_socket_open(&nft);
        if (r < 0)
                return r;
        HostNet *h = g_new0(HostNet, 1);
        h->sk = steal_pointer(&sk);
        h->nft = steal_pointer(&nft);
        *ret = h;
        return 0;
}

HostNet *hostnet_free(HostNet *h) {
        if (!h)
                return NULL;
        nl_socket_free(h->sk);
        nft_socket_free(h->nft);
        g_free(h);
        return NULL;
}

/* ---- links ------------------------------------------------------------ */

static int link_get(HostNet *h, const char *name, struct rtnl_link **ret) {
        if (!ifname_is_valid(name))
                return -EINVAL;
        int r = rtnl_link_get_kernel(h->sk, 0, name, ret);
        if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
                return -ENODEV;
        return nl_error_to_errno(r);
}

typedef enum LinkUp {
        LINK_KEEP,
        LINK_UP,
        LINK_DOWN,
} LinkUp;

static int link_set(HostNet *h, struct rtnl_link *link, int master, LinkUp up) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *change = rtnl_link_alloc();
        if (!change)
                return -ENOMEM;
        if (master >= 0)
                rtnl_link_set_master(change, master);
        if (up == LINK_UP)
                rtnl_link_set_flags(change, IFF_UP);
        else if (up == LINK_DOWN)
                rtnl_link_unset_flags(change, IFF_UP);
        return nl_error_to_errno(rtnl_link_change(h->sk, link, change, 0));
}

/*
 * libnl 3.7 has no setter for IFLA_BRPORT_ISOLATED (rtnl_link_bridge_set_flags
 * knows hairpin, BPDU guard, fast leave, root block, flood, learning only),
 * so the RTM_SETLINK for the bridge port is built with libnl's nl_msg API.
 */
static int port_set_isolated(HostNet *h, int ifindex, bool isolated) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK);
        struct ifinfomsg ifi = { .ifi_family = AF_BRIDGE, .ifi_index = ifindex };
        if (!msg)
                return -ENOMEM;
        if (nlmsg_append(msg, &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0)
                return -ENOMEM;
        struct nlattr *nest = nla_nest_start(msg, IFLA_PROTINFO | NLA_F_NESTED);
        if (!nest || nla_put_u8(msg, IFLA_BRPORT_ISOLATED, isolated ? 1 : 0) < 0)
                return -ENOMEM;
        nla_nest_end(msg, nest);
        int r = nl_send_sync(h->sk, steal_pointer(&msg));
        return nl_error_to_errno(r);
}

int hostnet_bridge_ensure(HostNet *h, const char *bridge) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        int r = link_get(h, bridge, &link);
        if (r == -ENODEV) {
                _cleanup_(rtnl_link_putp) struct rtnl_link *br = rtnl_link_bridge_alloc();
                if (!br)
                        return -ENOMEM;
                rtnl_link_set_name(br, bridge);
                r = rtnl_link_add(h->sk, br, NLM_F_CREATE);
                if (r < 0 && r != -NLE_EXIST)
                        return log_error_errno(nl_error_to_errno(r), "Cannot create bridge %s: %m", bridge);
                r = link_get(h, bridge, &link);
        }
        if (r < 0)
                return log_error_errno(r, "Bridge %s: %m", bridge);
        const char *type = rtnl_link_get_type(link);
        if (!type || strcmp(type, "bridge") != 0)
                return log_error_errno(-EEXIST, "%s exists and is not a bridge", bridge);
        r = link_set(h, link, -1, LINK_UP);
        if (r < 0)
                return log_error_errno(r, "Cannot set bridge %s up: %m", bridge);

        /* The table, once. */
        _cleanup_(nft_batch_freep) NftBatch *b = nft_batch_new();
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = nftnl_table_alloc();
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_BRIDGE);
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, HOST_TABLE);
        nft_batch_add_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, t);

        _cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();
        nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_BRIDGE);
        nftnl_set_set_str(s, NFTNL_SET_TABLE, HOST_TABLE);
        nftnl_set_set_str(s, NFTNL_SET_NAME, HOST_MAP);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, TYPE_IFNAME);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, IFNAMSIZ);
        nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
        nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
        nftnl_set_set_u32(s, NFTNL_SET_ID, 1);
        /* Tell nft(8) the key is a host-order string, so that `nft list` shows names. */
        struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
        nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, 1 /* BYTEORDER_HOST_ENDIAN */);
        nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
        nftnl_udata_buf_free(ud);
        nft_batch_add_set(b, NFT_MSG_NEWSET, NLM_F_CREATE, s);

        /* EXCL: if the base chain exists, the whole transaction (its rule too) is refused below. */
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();
        nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_BRIDGE);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, HOST_TABLE);
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, HOST_BASE);
        /* The bridge family numbers its hooks like inet (NF_BR_PRE_ROUTING == 0). */
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, -200);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
        nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
        nft_batch_add_chain(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL, c);

        _cleanup_(nftnl_rule_freep) struct nftnl_rule *rule = nr_new(NFPROTO_BRIDGE, HOST_TABLE, HOST_BASE);
        nr_meta(rule, NFT_META_IIFNAME, NFT_REG_1);
        nr_lookup(rule, NFT_REG_1, HOST_MAP, true);
        nr_comment(rule, "vmfed: ports of client VMs");
        nft_batch_add_rule(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, rule);

        int saved = log_get_max_level();
        log_set_max_level(LOG_CRIT); /* "exists" is the expected answer on every call but the first */
        r = nft_socket_commit(h->nft, b);
        log_set_max_level(saved);
        if (r == -EEXIST)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Cannot create table bridge %s: %m", HOST_TABLE);
        return 0;
}

int hostnet_bridge_remove(HostNet *h, const char *bridge) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        int r = link_get(h, bridge, &link);
        if (r == -ENODEV)
                return 0;
        if (r < 0)
                return r;
        const char *type = rtnl_link_get_type(link);
        if (!type || strcmp(type, "bridge") != 0)
                return -EEXIST;
        return nl_error_to_errno(rtnl_link_delete(h->sk, link));
}

/* ---- anti-spoofing ---------------------------------------------------- */

static void match_ether_type(struct nftnl_rule *r, uint16_t type) {
        uint16_t be = htons(type);
        nr_payload(r, NFT_PAYLOAD_LL_HEADER, 12, 2, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, &be, 2);
}

static void build_port_rules(const char *chain, const uint8_t mac[6], const NetAddr *addrs, size_t n,
                             GPtrArray *out) {
        struct nftnl_rule *r;

        /* ether saddr != MAC drop */
        r = nr_new(NFPROTO_BRIDGE, HOST_TABLE, chain);
        nr_payload(r, NFT_PAYLOAD_LL_HEADER, 6, 6, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_NEQ, mac, 6);
        nr_counter(r);
        nr_verdict(r, NF_DROP, NULL);
        g_ptr_array_add(out, r);

        for (size_t i = 0; i < n; i++) {
                const NetAddr *a = &addrs[i];
                if (a->family == AF_INET) {
                        /* ARP: sender hardware and protocol address must be the VM's. */
                        r = nr_new(NFPROTO_BRIDGE, HOST_TABLE, chain);
                        match_ether_type(r, ETH_P_ARP);
                        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 8, 6, NFT_REG_1);
                        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, mac, 6);
                        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 14, 4, NFT_REG_1);
                        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, a->bytes, 4);
                        nr_verdict(r, NF_ACCEPT, NULL);
                        g_ptr_array_add(out, r);

                        r = nr_new(NFPROTO_BRIDGE, HOST_TABLE, chain);
                        match_ether_type(r, ETH_P_IP);
                        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG_1);
                        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, a->bytes, 4);
                        nr_verdict(r, NF_ACCEPT, NULL);
                        g_ptr_array_add(out, r);
                } else {
                        r = nr_new(NFPROTO_BRIDGE, HOST_TABLE, chain);
                        match_ether_type(r, ETH_P_IPV6);
                        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 8, 16, NFT_REG_1);
                        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, a->bytes, 16);
                        nr_verdict(r, NF_ACCEPT, NULL);
                        g_ptr_array_add(out, r);
                }
        }

        /*
         * A DHCP client before it has its address: UDP broadcast from
         * 0.0.0.0 (DHCPDISCOVER, DHCPREQUEST) and ARP probes from 0.0.0.0
         * (RFC 5227), with the VM's own MAC (checked above).  Isolated, the
         * port reaches only the netvm, which answers the VM's MAC alone.
         */
        static const uint8_t any4[4] = {}, bcast4[4] = { 255, 255, 255, 255 }, udp = IPPROTO_UDP;
        r = nr_new(NFPROTO_BRIDGE, HOST_TABLE, chain);
        match_ether_type(r, ETH_P_IP);
        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, any4, 4);
        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, bcast4, 4);
        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 9, 1, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, &udp, 1);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        r = nr_new(NFPROTO_BRIDGE, HOST_TABLE, chain);
        match_ether_type(r, ETH_P_ARP);
        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 8, 6, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, mac, 6);
        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 14, 4, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, any4, 4);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);

        /* Neighbour discovery from link-local addresses and "::" (DAD). */
        static const uint8_t ll[16] = { 0xfe, 0x80 }, llmask[16] = { 0xff, 0xc0 };
        static const uint8_t unspec[16] = {};
        r = nr_new(NFPROTO_BRIDGE, HOST_TABLE, chain);
        match_ether_type(r, ETH_P_IPV6);
        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 8, 16, NFT_REG_1);
        nr_bitwise_mask(r, NFT_REG_1, llmask, 16);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, ll, 16);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        r = nr_new(NFPROTO_BRIDGE, HOST_TABLE, chain);
        match_ether_type(r, ETH_P_IPV6);
        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 8, 16, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, unspec, 16);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);

        r = nr_new(NFPROTO_BRIDGE, HOST_TABLE, chain);
        nr_counter(r);
        nr_verdict(r, NF_DROP, NULL);
        g_ptr_array_add(out, r);
}

static int chain_exists_cb(const struct nlmsghdr *nlh, void *data) {
        const char **want = data;
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();
        if (nftnl_chain_nlmsg_parse(nlh, c) < 0)
                return MNL_CB_ERROR;
        if (strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), HOST_TABLE) == 0 &&
            strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME), want[0]) == 0)
                want[1] = "yes";
        return MNL_CB_OK;
}

static int port_chain_exists(HostNet *h, const char *chain) {
        const char *ctx[2] = { chain, NULL };
        int r = nft_socket_dump(h->nft, NFT_MSG_GETCHAIN, NFPROTO_BRIDGE, NULL, NULL, chain_exists_cb, ctx);
        if (r < 0)
                return r;
        return ctx[1] != NULL;
}

static struct nftnl_set *port_elem(const char *tap, const char *chain) {
        char key[IFNAMSIZ] = {};
        strncpy(key, tap, IFNAMSIZ - 1);
        struct nftnl_set *s = nftnl_set_alloc();
        nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_BRIDGE);
        nftnl_set_set_str(s, NFTNL_SET_TABLE, HOST_TABLE);
        nftnl_set_set_str(s, NFTNL_SET_NAME, HOST_MAP);
        struct nftnl_set_elem *e = nftnl_set_elem_alloc();
        nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, IFNAMSIZ);
        if (chain) {
                nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, (uint32_t) NFT_GOTO);
                nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, chain);
        }
        nftnl_set_elem_add(s, e);
        return s;
}

static void rule_destroy(gpointer p) {
        nftnl_rule_free(p);
}

int hostnet_port_attach(HostNet *h, const char *bridge, const char *tap, const char *mac,
                        const char *const *addresses) {
        uint8_t m[6];
        NetAddr addrs[NETSTATE_ADDRS_MAX];
        size_t n = 0;

        if (!ifname_is_valid(tap) || mac_parse(mac, m) < 0)
                return -EINVAL;
        for (const char *const *a = addresses; a && *a; a++) {
                if (n >= G_N_ELEMENTS(addrs) || netaddr_parse(*a, false, false, &addrs[n]) < 0)
                        return -EINVAL;
                n++;
        }
        if (n == 0)
                return -EINVAL;

        _cleanup_(rtnl_link_putp) struct rtnl_link *br = NULL, *link = NULL;
        int r = link_get(h, bridge, &br);
        if (r < 0)
                return log_error_errno(r, "Bridge %s: %m", bridge);
        r = link_get(h, tap, &link);
        if (r < 0)
                return log_error_errno(r, "Tap %s: %m", tap);

        /* Filter first, then join the bridge: never a moment without anti-spoofing. */
        g_autofree char *chain = g_strconcat(PORT_PREFIX, tap, NULL);
        int exists = port_chain_exists(h, chain);
        if (exists < 0)
                return log_error_errno(exists, "Cannot list table bridge %s (call hostnet_bridge_ensure first): %m",
                                       HOST_TABLE);
        _cleanup_(nft_batch_freep) NftBatch *b = nft_batch_new();
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();
        nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_BRIDGE);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, HOST_TABLE);
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chain);
        if (exists) {
                _cleanup_(nftnl_rule_freep) struct nftnl_rule *flush = nr_new(NFPROTO_BRIDGE, HOST_TABLE, chain);
                nft_batch_add_rule(b, NFT_MSG_DELRULE, 0, flush);
        } else
                nft_batch_add_chain(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, c);
        g_autoptr(GPtrArray) rules = g_ptr_array_new_with_free_func(rule_destroy);
        build_port_rules(chain, m, addrs, n, rules);
        for (guint i = 0; i < rules->len; i++)
                nft_batch_add_rule(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, rules->pdata[i]);
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = port_elem(tap, chain);
        nft_batch_add_elems(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, s);
        r = nft_socket_commit(h->nft, b);
        if (r < 0)
                return log_error_errno(r, "Cannot install anti-spoofing for %s: %m", tap);

        /*
         * Join the bridge with the tap down, isolate the port, then bring it up:
         * the port is never forwarding before it is isolated.  (Re-attaching
         * a tap already on this bridge keeps it up and isolated.)
         */
        int br_index = rtnl_link_get_ifindex(br);
        bool already = rtnl_link_get_master(link) == br_index;
        r = link_set(h, link, br_index, already ? LINK_KEEP : LINK_DOWN);
        if (r < 0)
                return log_error_errno(r, "Cannot attach %s to %s: %m", tap, bridge);
        r = port_set_isolated(h, rtnl_link_get_ifindex(link), true);
        if (r < 0)
                return log_error_errno(r, "Cannot isolate bridge port %s: %m", tap);
        r = link_set(h, link, -1, LINK_UP);
        if (r < 0)
                return log_error_errno(r, "Cannot set %s up: %m", tap);
        return 0;
}

int hostnet_netvm_attach(HostNet *h, const char *bridge, const char *tap) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *br = NULL, *link = NULL;
        int r = link_get(h, bridge, &br);
        if (r < 0)
                return log_error_errno(r, "Bridge %s: %m", bridge);
        r = link_get(h, tap, &link);
        if (r < 0)
                return log_error_errno(r, "Tap %s: %m", tap);
        r = link_set(h, link, rtnl_link_get_ifindex(br), LINK_UP);
        if (r < 0)
                return log_error_errno(r, "Cannot attach %s to %s: %m", tap, bridge);
        r = port_set_isolated(h, rtnl_link_get_ifindex(link), false);
        if (r < 0)
                return log_error_errno(r, "Cannot set bridge port %s: %m", tap);
        return 0;
}

int hostnet_port_detach(HostNet *h, const char *tap) {
        if (!ifname_is_valid(tap))
                return -EINVAL;

        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        int r = link_get(h, tap, &link);
        if (r < 0 && r != -ENODEV)
                return r;
        if (r >= 0 && rtnl_link_get_master(link) > 0) {
                /* Off the bridge first, then drop the filter: never unfiltered on the bridge. */
                r = link_set(h, link, 0, LINK_KEEP);
                if (r < 0)
                        return log_error_errno(r, "Cannot detach %s: %m", tap);
        }

        g_autofree char *chain = g_strconcat(PORT_PREFIX, tap, NULL);
        int exists = port_chain_exists(h, chain);
        if (exists <= 0)
                return exists == -ENOENT ? 0 : exists;
        _cleanup_(nft_batch_freep) NftBatch *b = nft_batch_new();
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = port_elem(tap, NULL);
        nft_batch_add_elems(b, NFT_MSG_DELSETELEM, 0, s);
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();
        nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_BRIDGE);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, HOST_TABLE);
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chain);
        nft_batch_add_chain(b, NFT_MSG_DELCHAIN, 0, c);
        r = nft_socket_commit(h->nft, b);
        if (r == -ENOENT) {
                /* The element was already gone: remove the chain alone. */
                _cleanup_(nft_batch_freep) NftBatch *b2 = nft_batch_new();
                nft_batch_add_chain(b2, NFT_MSG_DELCHAIN, 0, c);
                r = nft_socket_commit(h->nft, b2);
        }
        if (r < 0)
                return log_error_errno(r, "Cannot remove anti-spoofing of %s: %m", tap);
        return 0;
}

static int stale_port_cb(const struct nlmsghdr *nlh, void *data) {
        GPtrArray *stale = data;
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();
        const char *name;

        if (nftnl_chain_nlmsg_parse(nlh, c) < 0)
                return MNL_CB_ERROR;
        name = nftnl_chain_get_str(c, NFTNL_CHAIN_NAME);
        if (strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), HOST_TABLE) != 0 || !g_str_has_prefix(name, PORT_PREFIX))
                return MNL_CB_OK;
        name += strlen(PORT_PREFIX);
        if (ifname_is_valid(name) && if_nametoindex(name) == 0)
                g_ptr_array_add(stale, g_strdup(name));
        return MNL_CB_OK;
}

int hostnet_port_sweep(HostNet *h) {
        g_autoptr(GPtrArray) stale = g_ptr_array_new_with_free_func(g_free);
        int r, ret = 0;

        r = nft_socket_dump(h->nft, NFT_MSG_GETCHAIN, NFPROTO_BRIDGE, NULL, NULL, stale_port_cb, stale);
        if (r < 0)
                return r == -ENOENT ? 0 : r;
        for (guint i = 0; i < stale->len; i++) {
                const char *tap = stale->pdata[i];
                r = hostnet_port_detach(h, tap);
                if (r < 0)
                        ret = r;
                else
                        log_info("Removed the anti-spoofing chain of %s: that tap is gone.", tap);
        }
        return ret;
}
