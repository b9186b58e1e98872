/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Building nftables rules expression by expression with libnftnl: the few
 * matches and statements vmfed's tables need, each the same bytecode the
 * nft(8) tool generates for the equivalent text (so `nft list` shows it
 * readably).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libnftnl/rule.h>

#include "netvm/netaddr.h"

/* A new rule in family/table/chain. */
struct nftnl_rule *nr_new(uint32_t family, const char *table, const char *chain);

/* Low-level expressions (registers: NFT_REG_* / NFT_REG32_*). */
void nr_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg);
void nr_cmp(struct nftnl_rule *r, uint32_t sreg, uint32_t op, const void *data, uint32_t len);
void nr_payload(struct nftnl_rule *r, uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg);
void nr_bitwise_mask(struct nftnl_rule *r, uint32_t reg, const void *mask, uint32_t len);
void nr_lookup(struct nftnl_rule *r, uint32_t sreg, const char *set, bool is_map);
void nr_verdict(struct nftnl_rule *r, int verdict, const char *chain);
void nr_counter(struct nftnl_rule *r);

/* Matches. */
void nr_match_ifname(struct nftnl_rule *r, bool input, bool equal, const char *ifname);
void nr_match_nfproto(struct nftnl_rule *r, uint8_t nfproto);
void nr_match_l4proto(struct nftnl_rule *r, uint8_t proto);
/* ip/ip6 saddr or daddr inside a (masked) prefix; adds the nfproto dependency. */
void nr_match_addr(struct nftnl_rule *r, bool source, const NetAddr *a);
/* Transport destination port in [lo, hi] (network header must be tcp/udp). */
void nr_match_dport(struct nftnl_rule *r, uint16_t lo, uint16_t hi);
void nr_match_icmp_type(struct nftnl_rule *r, uint8_t type);
/* ct state & mask != 0 (NF_CT_STATE_BIT(...) bits). */
void nr_match_ct_state(struct nftnl_rule *r, uint32_t mask);

/* Statements. */
void nr_masquerade(struct nftnl_rule *r);
/* reject: with tcp reset (tcp true; TCP packets only) or with icmpx admin-prohibited. */
void nr_reject(struct nftnl_rule *r, bool tcp);
void nr_dnat(struct nftnl_rule *r, const NetAddr *to);

/* Attach a comment shown by `nft list` (TLV user data). */
void nr_comment(struct nftnl_rule *r, const char *comment);
/* The comment of a dumped rule, or NULL. */
const char *nr_get_comment(const struct nftnl_rule *r, char *buf, size_t size);
