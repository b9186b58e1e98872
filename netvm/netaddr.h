/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IPv4/IPv6 addresses with a prefix length, and MAC addresses: parsing of
 * untrusted text and canonical formatting.  Used by the state file, the
 * firewall rules and the nftables/libnl layers.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct NetAddr {
        int family;             /* AF_INET or AF_INET6 */
        uint8_t bytes[16];      /* network byte order; 4 used for AF_INET */
        uint8_t prefixlen;      /* 0..32 or 0..128 */
} NetAddr;

/* Address length in bytes for a family (4 or 16). */
size_t netaddr_len(const NetAddr *a);

/*
 * Parse "ADDR" or "ADDR/PREFIX".  Without a prefix the prefix is the full
 * length.  With allow_prefix false a prefix is refused.  With
 * require_network true, host bits set under the prefix are refused
 * (192.0.2.1/24 is an error for a destination CIDR).  Returns 0 or -EINVAL.
 */
int netaddr_parse(const char *untrusted, bool allow_prefix, bool require_network, NetAddr *ret);

/* "192.0.2.1" or "192.0.2.0/24" (the prefix only when not a full host). */
#define NETADDR_STRLEN 64
const char *netaddr_format(const NetAddr *a, char buf[static NETADDR_STRLEN]);
/* Always with the prefix: "192.0.2.1/24". */
const char *netaddr_format_cidr(const NetAddr *a, char buf[static NETADDR_STRLEN]);

bool netaddr_equal(const NetAddr *a, const NetAddr *b);
/* Is host address h inside network n (same family, prefix of n)? */
bool netaddr_contains(const NetAddr *n, const NetAddr *h);
/* Zero the host bits of a (keep the prefix). */
void netaddr_mask(NetAddr *a);

/* Parse "52:54:00:12:34:56"; refuses multicast and all-zero. 0 or -EINVAL. */
int mac_parse(const char *untrusted, uint8_t ret[6]);
#define MAC_STRLEN 18
const char *mac_format(const uint8_t mac[6], char buf[static MAC_STRLEN]);
