/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/chains.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>

#include "netvm/nft-rule.h"

/*
 * An existing chain is kept and only its rules are rewritten (by digest), so
 * changing a chain's hook, type or priority needs a new chain name; the old
 * one is then removed as unknown.
 */
const BaseChainDef chains_base[CHAIN_CLIENT] = {
        [CHAIN_ANTISPOOF] = { "antispoof", "filter", NF_INET_PRE_ROUTING, -300 },
        [CHAIN_FORWARD]   = { "forward",   "filter", NF_INET_FORWARD,       0 },
        [CHAIN_INPUT]     = { "input",     "filter", NF_INET_LOCAL_IN,      0 },
        [CHAIN_DNAT]      = { "dns-path",  "nat",    NF_INET_PRE_ROUTING, -100 },
        [CHAIN_MASQ]      = { "uplink-masq", "nat",    NF_INET_POST_ROUTING, 100 },
};

const SetDef chains_sets[_SET_MAX] = {
        [SET_ALLOWED4] = { "allowed4", CONCAT(TYPE_ETHER, TYPE_IPV4), 8 + 4, false },
        [SET_ALLOWED6] = { "allowed6", CONCAT(TYPE_ETHER, TYPE_IPV6), 8 + 16, false },
        [SET_FWD4]     = { "fwd4", TYPE_IPV4, 4, true },
        [SET_FWD6]     = { "fwd6", TYPE_IPV6, 16, true },
        [SET_DNS4]     = { "dns4", TYPE_IPV4, 4, false },
        [SET_DNS6]     = { "dns6", TYPE_IPV6, 16, false },
};


bool chains_has_dns(const NetState *s, int family) {
        for (guint i = 0; i < s->dns->len; i++)
                if (g_array_index(s->dns, NetAddr, i).family == family)
                        return true;
        return false;
}

const FwPlan *chains_client_plan(const NetClient *c) {
        if (!c->plan)
                ((NetClient *) c)->plan = fwplan_new(c->firewall); /* a cache, like the digest */
        return c->plan;
}

char *chains_client_set_name(const NetClient *c, const char *digest, guint index) {
        char num[16];
        snprintf(num, sizeof num, "-%u", index);
        return g_strconcat(CLIENT_SET_PREFIX, c->name, "-", digest, num, NULL);
}

static struct nftnl_rule *rule_in(const char *chain) {
        return nr_new(NFPROTO_INET, RULESET_TABLE, chain);
}

#define CT_EST_REL (NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED))
#define CT_INVALID NF_CT_STATE_INVALID_BIT

static void lookup_addr_in_set(struct nftnl_rule *r, bool v6, bool source, const char *set, bool map) {
        nr_match_nfproto(r, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v6 ? (source ? 8 : 24) : (source ? 12 : 16),
                   v6 ? 16 : 4, NFT_REG_1);
        nr_lookup(r, NFT_REG_1, set, map);
}

/* Downstream traffic must come from a client's own MAC and address (ND excepted). */
static void build_antispoof(const NetState *s, const char *chain, GPtrArray *out) {
        struct nftnl_rule *r;

        r = rule_in(chain);
        nr_match_ifname(r, true, false, s->downstream);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        for (int v6 = 0; v6 <= 1; v6++) {
                r = rule_in(chain);
                nr_match_nfproto(r, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
                /* ether saddr . ip(6) saddr @allowed4/6 */
                uint16_t ether = 1; /* ARPHRD_ETHER */
                nr_meta(r, NFT_META_IIFTYPE, NFT_REG_1);
                nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, &ether, 2);
                nr_payload(r, NFT_PAYLOAD_LL_HEADER, 6, 6, NFT_REG32_00);
                nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v6 ? 8 : 12, v6 ? 16 : 4, NFT_REG32_02);
                nr_lookup(r, NFT_REG32_00, chains_sets[v6 ? SET_ALLOWED6 : SET_ALLOWED4].name, false);
                nr_verdict(r, NF_ACCEPT, NULL);
                g_ptr_array_add(out, r);
        }
        /* Neighbour discovery from link-local or unspecified sources (never forwarded). */
        static const uint8_t nd_types[] = { 133, 135, 136 };
        NetAddr ll, unspec;
        (void) netaddr_parse("fe80::/10", true, true, &ll);
        (void) netaddr_parse("::", false, false, &unspec);
        for (size_t i = 0; i < G_N_ELEMENTS(nd_types); i++) {
                r = rule_in(chain);
                nr_match_addr(r, true, &ll);
                nr_match_l4proto(r, IPPROTO_ICMPV6);
                nr_match_icmp_type(r, nd_types[i]);
                nr_verdict(r, NF_ACCEPT, NULL);
                g_ptr_array_add(out, r);
        }
        if (s->dhcp) {
                /* DHCPDISCOVER/REQUEST before the client has its address (to the netvm only: input). */
                NetAddr any4;
                (void) netaddr_parse("0.0.0.0", false, false, &any4);
                r = rule_in(chain);
                nr_match_addr(r, true, &any4);
                nr_match_l4proto(r, IPPROTO_UDP);
                nr_match_dport(r, 67, 67);
                nr_verdict(r, NF_ACCEPT, NULL);
                g_ptr_array_add(out, r);
                /* DHCPv6 from the client's link-local address. */
                r = rule_in(chain);
                nr_match_addr(r, true, &ll);
                nr_match_l4proto(r, IPPROTO_UDP);
                nr_match_dport(r, 547, 547);
                nr_verdict(r, NF_ACCEPT, NULL);
                g_ptr_array_add(out, r);
        }
        r = rule_in(chain);
        nr_match_addr(r, true, &unspec);        /* duplicate address detection */
        nr_match_l4proto(r, IPPROTO_ICMPV6);
        nr_match_icmp_type(r, 135);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        r = rule_in(chain);
        nr_counter(r);
        nr_verdict(r, NF_DROP, NULL);
        g_ptr_array_add(out, r);
}

/* Downstream traffic goes to its client's chain (vmap fwd4/fwd6); replies come back. */
static void build_forward(const NetState *s, const char *chain, GPtrArray *out) {
        struct nftnl_rule *r;

        for (int v6 = 0; v6 <= 1; v6++) {
                r = rule_in(chain);
                nr_match_ifname(r, true, true, s->downstream);
                lookup_addr_in_set(r, v6, true, chains_sets[v6 ? SET_FWD6 : SET_FWD4].name, true);
                g_ptr_array_add(out, r);
        }
        r = rule_in(chain);
        nr_match_ifname(r, true, true, s->downstream);
        nr_counter(r);
        nr_verdict(r, NF_DROP, NULL);
        g_ptr_array_add(out, r);
        r = rule_in(chain);
        nr_match_ifname(r, false, true, s->downstream);
        nr_match_ct_state(r, CT_EST_REL);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        r = rule_in(chain);
        nr_match_ifname(r, false, true, s->downstream);
        nr_counter(r);
        nr_verdict(r, NF_DROP, NULL);
        g_ptr_array_add(out, r);
}

/* What clients and the uplink may send the netvm itself. */
static void build_input(const NetState *s, const char *chain, GPtrArray *out) {
        struct nftnl_rule *r;

        r = rule_in(chain);
        nr_match_ifname(r, true, false, s->downstream);
        nr_match_ifname(r, true, false, s->uplink);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        r = rule_in(chain);
        nr_match_ct_state(r, CT_EST_REL);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        r = rule_in(chain);
        nr_match_ct_state(r, CT_INVALID);
        nr_verdict(r, NF_DROP, NULL);
        g_ptr_array_add(out, r);
        r = rule_in(chain);
        nr_match_nfproto(r, NFPROTO_IPV4);
        nr_match_l4proto(r, IPPROTO_ICMP);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        r = rule_in(chain);
        nr_match_nfproto(r, NFPROTO_IPV6);
        nr_match_l4proto(r, IPPROTO_ICMPV6);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        /* DHCP for the clients (dnsmasq, netvm/dhcp.h): requests from downstream only. */
        for (int v6 = 0; s->dhcp && v6 <= 1; v6++) {
                r = rule_in(chain);
                nr_match_ifname(r, true, true, s->downstream);
                nr_match_nfproto(r, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
                nr_match_l4proto(r, IPPROTO_UDP);
                nr_match_dport(r, v6 ? 547 : 67, v6 ? 547 : 67);
                nr_verdict(r, NF_ACCEPT, NULL);
                g_ptr_array_add(out, r);
        }
        /* DHCP and DHCPv6 client replies on the uplink. */
        for (int v6 = 0; v6 <= 1; v6++) {
                r = rule_in(chain);
                nr_match_ifname(r, true, true, s->uplink);
                nr_match_nfproto(r, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
                nr_match_l4proto(r, IPPROTO_UDP);
                nr_match_dport(r, v6 ? 546 : 68, v6 ? 546 : 68);
                nr_verdict(r, NF_ACCEPT, NULL);
                g_ptr_array_add(out, r);
        }
        r = rule_in(chain);
        nr_counter(r);
        nr_verdict(r, NF_DROP, NULL);
        g_ptr_array_add(out, r);
}

/* DNS to the gateway's address goes to the first upstream resolver of its family. */
static void build_dnat(const NetState *s, const char *chain, GPtrArray *out) {
        struct nftnl_rule *r;

        r = rule_in(chain);
        nr_match_ifname(r, true, false, s->downstream);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        for (guint i = 0; i < s->downstream_addrs->len; i++) {
                NetAddr gw = g_array_index(s->downstream_addrs, NetAddr, i);
                gw.prefixlen = (uint8_t) (netaddr_len(&gw) * 8);
                const NetAddr *to = NULL;
                for (guint j = 0; j < s->dns->len && !to; j++)
                        if (g_array_index(s->dns, NetAddr, j).family == gw.family)
                                to = &g_array_index(s->dns, NetAddr, j);
                if (!to)
                        continue;
                static const uint8_t protos[] = { IPPROTO_UDP, IPPROTO_TCP };
                for (size_t p = 0; p < 2; p++) {
                        r = rule_in(chain);
                        nr_match_ifname(r, true, true, s->downstream);
                        nr_match_addr(r, false, &gw);
                        nr_match_l4proto(r, protos[p]);
                        nr_match_dport(r, 53, 53);
                        nr_dnat(r, to);
                        g_ptr_array_add(out, r);
                }
        }
}

/* Masquerade downstream traffic to the uplink. */
static void build_masq(const NetState *s, const char *chain, GPtrArray *out) {
        struct nftnl_rule *r;

        r = rule_in(chain);
        nr_match_ifname(r, true, true, s->downstream);
        nr_match_ifname(r, false, true, s->uplink);
        nr_masquerade(r);
        g_ptr_array_add(out, r);
}

void chains_build_base(const NetState *s, ChainKind kind, GPtrArray *out) {
        const char *chain = chains_base[kind].name;

        switch (kind) {
        case CHAIN_ANTISPOOF:
                build_antispoof(s, chain, out);
                break;
        case CHAIN_FORWARD:
                build_forward(s, chain, out);
                break;
        case CHAIN_INPUT:
                build_input(s, chain, out);
                break;
        case CHAIN_DNAT:
                build_dnat(s, chain, out);
                break;
        case CHAIN_MASQ:
                build_masq(s, chain, out);
                break;
        default:
                g_assert_not_reached();
        }
}

typedef struct RuleMatch {
        struct nftnl_rule *(*build)(const void *ctx);   /* a new rule in its chain, with its matches */
        const void *ctx;
} RuleMatch;

/*
 * Emit m's rule ending in action: a verdict; for reject the rule twice,
 * "meta l4proto tcp reject with tcp reset" and "reject with icmpx
 * admin-prohibited" (only the first when it matches TCP already, only the
 * second when it matches another protocol: proto says which).
 */
static void emit_rule(const RuleMatch *m, FwAction action, FwProto proto, GPtrArray *out) {
        struct nftnl_rule *r;
        if (action != FW_ACTION_REJECT) {
                r = m->build(m->ctx);
                nr_verdict(r, action == FW_ACTION_ACCEPT ? NF_ACCEPT : NF_DROP, NULL);
                g_ptr_array_add(out, r);
                return;
        }
        if (proto == FW_PROTO_ANY) {
                r = m->build(m->ctx);
                nr_match_l4proto(r, IPPROTO_TCP);
                nr_reject(r, true);
                g_ptr_array_add(out, r);
        }
        r = m->build(m->ctx);
        nr_reject(r, proto == FW_PROTO_TCP);
        g_ptr_array_add(out, r);
}

typedef struct FwRuleCtx {
        const NetState *s;
        const FwRule *fr;
        const char *chain;
        int v6;                 /* dns: the family */
        uint8_t proto;          /* dns: IPPROTO_UDP or _TCP */
} FwRuleCtx;

static struct nftnl_rule *dns_rule_match(const void *ctx) {
        const FwRuleCtx *c = ctx;
        struct nftnl_rule *r = rule_in(c->chain);
        lookup_addr_in_set(r, c->v6, false, chains_sets[c->v6 ? SET_DNS6 : SET_DNS4].name, false);
        nr_match_l4proto(r, c->proto);
        nr_match_dport(r, 53, 53);
        return r;
}

static struct nftnl_rule *fw_rule_match(const void *ctx) {
        const FwRuleCtx *c = ctx;
        const FwRule *fr = c->fr;
        struct nftnl_rule *r = rule_in(c->chain);
        if (fr->has_dst)
                nr_match_addr(r, false, &fr->dst);
        else if (fr->action == FW_ACTION_ACCEPT)
                /* Without a destination an accept reaches the uplink only, never other clients. */
                nr_match_ifname(r, false, true, c->s->uplink);
        switch (fr->proto) {
        case FW_PROTO_TCP:
        case FW_PROTO_UDP:
                nr_match_l4proto(r, fr->proto == FW_PROTO_TCP ? IPPROTO_TCP : IPPROTO_UDP);
                if (fr->port_min)
                        nr_match_dport(r, fr->port_min, fr->port_max);
                break;
        case FW_PROTO_ICMP:
        case FW_PROTO_ICMPV6:
                if (!fr->has_dst)
                        nr_match_nfproto(r, fr->proto == FW_PROTO_ICMP ? NFPROTO_IPV4 : NFPROTO_IPV6);
                nr_match_l4proto(r, fr->proto == FW_PROTO_ICMP ? IPPROTO_ICMP : IPPROTO_ICMPV6);
                if (fr->icmp_type >= 0)
                        nr_match_icmp_type(r, (uint8_t) fr->icmp_type);
                break;
        case FW_PROTO_ANY:
                break;
        }
        return r;
}

static void build_fw_rule(const NetState *s, const FwRule *fr, const char *chain, GPtrArray *out) {
        FwRuleCtx c = { s, fr, chain, 0, 0 };

        if (fr->dns) {
                for (c.v6 = 0; c.v6 <= 1; c.v6++) {
                        if (!chains_has_dns(s, c.v6 ? AF_INET6 : AF_INET))
                                continue;
                        static const uint8_t protos[] = { IPPROTO_UDP, IPPROTO_TCP };
                        for (size_t p = 0; p < 2; p++) {
                                c.proto = protos[p];
                                RuleMatch m = { dns_rule_match, &c };
                                emit_rule(&m, fr->action, c.proto == IPPROTO_TCP ? FW_PROTO_TCP : FW_PROTO_UDP, out);
                        }
                }
                return;
        }
        RuleMatch m = { fw_rule_match, &c };
        emit_rule(&m, fr->action, fr->proto, out);
}

typedef struct SetRuleCtx {
        const FwSetPlan *sp;
        const char *set, *chain;
} SetRuleCtx;

/* ip daddr . meta l4proto . th dport @set */
static struct nftnl_rule *set_rule_match(const void *ctx) {
        const SetRuleCtx *c = ctx;
        bool v6 = c->sp->family == AF_INET6;
        struct nftnl_rule *r = rule_in(c->chain);
        nr_match_nfproto(r, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, v6 ? 24 : 16, v6 ? 16 : 4, NFT_REG32_00);
        nr_meta(r, NFT_META_L4PROTO, v6 ? NFT_REG32_04 : NFT_REG32_01);
        nr_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, v6 ? NFT_REG32_05 : NFT_REG32_02);
        nr_lookup(r, NFT_REG32_00, c->set, false);
        return r;
}

static void build_set_rule(const FwSetPlan *sp, const char *set, const char *chain, GPtrArray *out) {
        SetRuleCtx c = { sp, set, chain };
        RuleMatch m = { set_rule_match, &c };
        emit_rule(&m, sp->action, FW_PROTO_ANY, out);
}

static struct nftnl_rule *counter_match(const void *ctx) {
        struct nftnl_rule *r = rule_in(ctx);
        nr_counter(r);
        return r;
}

void chains_build_client(const NetState *s, const NetClient *c, const char *chain, const char *digest,
                         GPtrArray *out) {
        const Firewall *fw = c->firewall;
        struct nftnl_rule *r;

        if (firewall_is_broken(fw)) {
                /* Fail closed: not even established flows pass. */
                r = rule_in(chain);
                nr_counter(r);
                nr_verdict(r, NF_DROP, NULL);
                g_ptr_array_add(out, r);
                return;
        }

        r = rule_in(chain);
        nr_match_ct_state(r, CT_EST_REL);
        nr_verdict(r, NF_ACCEPT, NULL);
        g_ptr_array_add(out, r);
        r = rule_in(chain);
        nr_match_ct_state(r, CT_INVALID);
        nr_verdict(r, NF_DROP, NULL);
        g_ptr_array_add(out, r);

        const FwPlan *plan = chains_client_plan(c);
        for (guint i = 0; i < plan->items->len; i++) {
                const FwPlanItem *it = &g_array_index(plan->items, FwPlanItem, i);
                if (it->kind == FWPLAN_RULE)
                        build_fw_rule(s, &g_array_index(fw->rules, FwRule, it->index), chain, out);
                else {
                        g_autofree char *set = chains_client_set_name(c, digest, it->index);
                        build_set_rule(plan->sets->pdata[it->index], set, chain, out);
                }
        }

        if (!c->has_rules || firewall_default(fw) == FW_ACTION_ACCEPT) {
                r = rule_in(chain);
                nr_match_ifname(r, false, true, s->uplink);
                nr_verdict(r, NF_ACCEPT, NULL);
                g_ptr_array_add(out, r);
        }
        RuleMatch m = { counter_match, chain };
        emit_rule(&m, c->has_rules && firewall_default(fw) == FW_ACTION_REJECT ? FW_ACTION_REJECT : FW_ACTION_DROP,
                  FW_PROTO_ANY, out);
}

