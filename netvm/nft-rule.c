/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/nft-rule.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <libnftnl/expr.h>
#include <libnftnl/udata.h>

struct nftnl_rule *nr_new(uint32_t family, const char *table, const char *chain) {
        struct nftnl_rule *r = nftnl_rule_alloc();
        nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, family);
        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
        nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
        return r;
}

void nr_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg) {
        struct nftnl_expr *e = nftnl_expr_alloc("meta");
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
        nftnl_rule_add_expr(r, e);
}

void nr_cmp(struct nftnl_rule *r, uint32_t sreg, uint32_t op, const void *data, uint32_t len) {
        struct nftnl_expr *e = nftnl_expr_alloc("cmp");
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
        nftnl_rule_add_expr(r, e);
}

void nr_payload(struct nftnl_rule *r, uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
        struct nftnl_expr *e = nftnl_expr_alloc("payload");
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
        nftnl_rule_add_expr(r, e);
}

void nr_bitwise_mask(struct nftnl_rule *r, uint32_t reg, const void *mask, uint32_t len) {
        uint8_t xor[16] = {};
        struct nftnl_expr *e = nftnl_expr_alloc("bitwise");
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
        nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
        nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor, len);
        nftnl_rule_add_expr(r, e);
}

void nr_lookup(struct nftnl_rule *r, uint32_t sreg, const char *set, bool is_map) {
        struct nftnl_expr *e = nftnl_expr_alloc("lookup");
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
        nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
        if (is_map)
                nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
        nftnl_rule_add_expr(r, e);
}

void nr_verdict(struct nftnl_rule *r, int verdict, const char *chain) {
        struct nftnl_expr *e = nftnl_expr_alloc("immediate");
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t) verdict);
        if (chain)
                nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
        nftnl_rule_add_expr(r, e);
}

void nr_counter(struct nftnl_rule *r) {
        nftnl_rule_add_expr(r, nftnl_expr_alloc("counter"));
}

void nr_match_ifname(struct nftnl_rule *r, bool input, bool equal, const char *ifname) {
        char name[IFNAMSIZ] = {};
        strncpy(name, ifname, IFNAMSIZ - 1);
        nr_meta(r, input ? NFT_META_IIFNAME : NFT_META_OIFNAME, NFT_REG_1);
        /* Like nft: compare the name with its terminating NUL. */
        nr_cmp(r, NFT_REG_1, equal ? NFT_CMP_EQ : NFT_CMP_NEQ, name, (uint32_t) strlen(name) + 1);
}

void nr_match_nfproto(struct nftnl_rule *r, uint8_t nfproto) {
        nr_meta(r, NFT_META_NFPROTO, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, &nfproto, 1);
}

void nr_match_l4proto(struct nftnl_rule *r, uint8_t proto) {
        nr_meta(r, NFT_META_L4PROTO, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, &proto, 1);
}

void nr_match_addr(struct nftnl_rule *r, bool source, const NetAddr *a) {
        bool v6 = a->family == AF_INET6;
        uint32_t len = v6 ? 16 : 4;
        uint32_t off = v6 ? (source ? 8 : 24) : (source ? 12 : 16);

        nr_match_nfproto(r, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
        if (a->prefixlen == 0)
                return; /* the whole family */
        NetAddr net = *a;
        netaddr_mask(&net);
        if (a->prefixlen % 8 == 0) {
                /* Like nft: a prefix on a byte boundary is a shorter load and compare. */
                uint32_t n = a->prefixlen / 8u;
                nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, n, NFT_REG_1);
                nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, net.bytes, n);
                return;
        }
        NetAddr m = { .family = a->family, .prefixlen = a->prefixlen };
        memset(m.bytes, 0xff, len);
        netaddr_mask(&m);
        nr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, len, NFT_REG_1);
        nr_bitwise_mask(r, NFT_REG_1, m.bytes, len);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, net.bytes, len);
}

void nr_match_dport(struct nftnl_rule *r, uint16_t lo, uint16_t hi) {
        uint16_t l = htons(lo), h = htons(hi);
        nr_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1);
        if (lo == hi)
                nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, &l, 2);
        else {
                nr_cmp(r, NFT_REG_1, NFT_CMP_GTE, &l, 2);
                nr_cmp(r, NFT_REG_1, NFT_CMP_LTE, &h, 2);
        }
}

void nr_match_icmp_type(struct nftnl_rule *r, uint8_t type) {
        nr_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1);
        nr_cmp(r, NFT_REG_1, NFT_CMP_EQ, &type, 1);
}

void nr_match_ct_state(struct nftnl_rule *r, uint32_t mask) {
        uint32_t zero = 0;
        struct nftnl_expr *e = nftnl_expr_alloc("ct");
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
        nftnl_rule_add_expr(r, e);
        nr_bitwise_mask(r, NFT_REG_1, &mask, 4);
        nr_cmp(r, NFT_REG_1, NFT_CMP_NEQ, &zero, 4);
}

void nr_reject(struct nftnl_rule *r, bool tcp) {
        struct nftnl_expr *e = nftnl_expr_alloc("reject");
        nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, tcp ? NFT_REJECT_TCP_RST : NFT_REJECT_ICMPX_UNREACH);
        nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, tcp ? 0 : NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
        nftnl_rule_add_expr(r, e);
}

void nr_masquerade(struct nftnl_rule *r) {
        nftnl_rule_add_expr(r, nftnl_expr_alloc("masq"));
}

void nr_dnat(struct nftnl_rule *r, const NetAddr *to) {
        bool v6 = to->family == AF_INET6;
        struct nftnl_expr *imm = nftnl_expr_alloc("immediate");
        nftnl_expr_set_u32(imm, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
        nftnl_expr_set(imm, NFTNL_EXPR_IMM_DATA, to->bytes, v6 ? 16 : 4);
        nftnl_rule_add_expr(r, imm);

        struct nftnl_expr *e = nftnl_expr_alloc("nat");
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
        nftnl_rule_add_expr(r, e);
}

void nr_comment(struct nftnl_rule *r, const char *comment) {
        struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
        nftnl_udata_put_strz(u, NFTNL_UDATA_RULE_COMMENT, comment);
        nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
        nftnl_udata_buf_free(u);
}

typedef struct CommentCtx {
        char *buf;
        size_t size;
        bool found;
} CommentCtx;

static int comment_cb(const struct nftnl_udata *attr, void *data) {
        CommentCtx *ctx = data;
        if (nftnl_udata_type(attr) != NFTNL_UDATA_RULE_COMMENT)
                return 0;
        size_t len = nftnl_udata_len(attr);
        if (len == 0 || len > ctx->size)
                return 0;
        memcpy(ctx->buf, nftnl_udata_get(attr), len);
        ctx->buf[len - 1] = '\0';
        ctx->found = true;
        return 0;
}

const char *nr_get_comment(const struct nftnl_rule *r, char *buf, size_t size) {
        uint32_t len = 0;
        if (!nftnl_rule_is_set(r, NFTNL_RULE_USERDATA))
                return NULL;
        const void *data = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
        CommentCtx ctx = { .buf = buf, .size = size };
        if (nftnl_udata_parse(data, len, comment_cb, &ctx) < 0 || !ctx.found)
                return NULL;
        return buf;
}
