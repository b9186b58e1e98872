/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Addresses that change hands between two states, so that no packet of an
 * old flow reaches the next holder of an address (docs/netvm.md,
 * "Conntrack"):
 *
 *   released   every client address of old that, in new, no client has,
 *              or another client (other name or other MAC) has;
 *   between    when some released address is taken over in new: new
 *              without the clients taking one over (NULL otherwise).
 *
 * vmfed-netd applies `between` first (if any), deletes the conntrack
 * entries of the released addresses, then applies new: the address has no
 * owner in the kernel while its entries go.
 */
#pragma once

#include <glib.h>

#include "netvm/netstate.h"

typedef struct Handover {
        GArray *released;       /* NetAddr */
        NetState *between;      /* or NULL */
} Handover;

/* old may be NULL (nothing released). */
void handover_plan(const NetState *old, const NetState *new_state, Handover *ret);
void handover_done(Handover *h);
