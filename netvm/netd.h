/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfed-netd's core as the D-Bus interface sees it: the desired state it
 * enforces and the one way to change it.
 */
#pragma once

#include "netvm/netstate.h"

typedef struct Netd Netd;

/* The state being enforced (NULL until the first one was applied). */
const NetState *netd_get_state(Netd *d);

/*
 * Enforce new_state (taken over in every case): one nftables transaction,
 * then links, addresses and neighbours, then persist it.  If the nftables
 * transaction fails, nothing changed and the previous state stays in force.
 * If links fail after it (an interface is missing), the new firewall is in
 * force, the new state is kept so the next change diffs right, and the
 * error says what is missing.  *errorp says why in both cases.
 */
int netd_apply(Netd *d, NetState *new_state, char **errorp);
