/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * How one client VM's firewall becomes nftables objects.
 *
 * Consecutive rules with the same action and a destination (CIDR,
 * protocol tcp/udp/icmp/icmpv6 without type or none, port range or none)
 * are order-independent, so they are gathered into one interval set per
 * address family keyed "daddr . l4proto . dport" and matched by a single
 * rule (`ip daddr . meta l4proto . th dport @set accept`).  Everything else
 * (dns, rules without destination, ICMP types) stays one rule each, in
 * order.  A new set starts when the action changes or when an element
 * would overlap one already in the set (the kernel refuses overlapping
 * intervals).  The chain so holds a handful of rules whatever the size of
 * the firewall: lookups are O(log n) per packet, and the kernel's
 * per-transaction validation of the table stays small.
 */
#pragma once

#include <stdint.h>

#include <glib.h>

#include "netvm/firewall.h"

#define FWPLAN_SET_MAX 4096     /* elements per set before a new one starts */

typedef struct FwBox {
        uint8_t lo[24], hi[24]; /* key and key end: daddr . proto . dport, 4-byte padded */
} FwBox;

typedef struct FwSetPlan {
        int family;
        FwAction action;
        GArray *boxes;          /* FwBox */
} FwSetPlan;

typedef enum FwPlanKind {
        FWPLAN_RULE,            /* index into Firewall.rules */
        FWPLAN_SET,             /* index into FwPlan.sets */
} FwPlanKind;

typedef struct FwPlanItem {
        FwPlanKind kind;
        guint index;
} FwPlanItem;

typedef struct FwPlan {
        GArray *items;          /* FwPlanItem, in chain order */
        GPtrArray *sets;        /* FwSetPlan* */
} FwPlan;

/* Reference counted and immutable: copies of a NetClient share it. */
FwPlan *fwplan_new(const Firewall *fw);
FwPlan *fwplan_ref(FwPlan *p);
void fwplan_unref(FwPlan *p);

/* Key length of a set for family: 12 (IPv4) or 24 (IPv6). */
uint32_t fwplan_key_len(int family);
