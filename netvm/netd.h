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
 * then links, addresses and neighbours, then persist it.  On failure the
 * previous state stays in force and *errorp says why.
 */
int netd_apply(Netd *d, NetState *new_state, char **errorp);
