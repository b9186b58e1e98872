/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The netvm's links, addresses, routes, neighbours and forwarding sysctls,
 * applied with libnl (rtnetlink).  Idempotent: applying the same state
 * twice changes nothing the second time.
 *
 * What is owned:
 *  - both interfaces are set up; IPv4 forwarding is enabled per interface
 *    through rtnetlink devconf (IFLA_INET_CONF); redirects are not sent to
 *    clients;
 *  - the addresses listed in the state are added (others are left alone);
 *  - a default route per [Uplink] Gateway=;
 *  - every client address gets a PERMANENT neighbour entry (address to its
 *    MAC) on the downstream interface, so that no client can take over
 *    another's address with forged ARP/NA, and the netvm reaches a client
 *    at once after a restart; permanent entries of clients that are gone
 *    are removed.  After the first apply on an interface only the
 *    neighbours of clients that changed are touched.
 */
#pragma once

#include "common/macro.h"
#include "netvm/netstate.h"

typedef struct Links Links;

int links_open(Links **ret);
Links *links_free(Links *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(Links *, links_free)

/* -ENODEV when an interface of the state does not exist. */
int links_apply(Links *l, const NetState *s);

