/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel's connection tracking table, over ctnetlink with libmnl:
 * deleting every entry that involves given addresses.
 *
 * vmfed-netd calls it when an address leaves its client (RemoveClient, a
 * client whose addresses change, a persona switch), after the nftables
 * transaction that took the address out of allowed4/6 and fwd4/6: from
 * then on no new entry for it can be made from downstream, and once its
 * old entries are gone a late packet of one of its flows is "new" and
 * dropped by the forward chain (towards downstream: established/related
 * only) instead of reaching the next client given that address.
 */
#pragma once

#include <stddef.h>

#include "common/macro.h"
#include "netvm/netaddr.h"

typedef struct Conntrack Conntrack;

int conntrack_open(Conntrack **ret);
Conntrack *conntrack_free(Conntrack *ct);
DEFINE_TRIVIAL_CLEANUP_FUNC(Conntrack *, conntrack_free)

/*
 * Delete every conntrack entry whose original or reply tuple has one of
 * addrs (host addresses) as source or destination.  One dump of the
 * table, then one delete per entry found.  Entries that vanish meanwhile
 * are no error.  *n_deleted (if not NULL) gets how many were deleted.
 * 0 or a negative errno.
 */
int conntrack_flush_addrs(Conntrack *ct, const NetAddr *addrs, size_t n_addrs, unsigned *n_deleted);
