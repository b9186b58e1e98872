/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Host-side plumbing between client VMs and the network VM (used by the
 * broker): one Linux bridge that every client VM's tap joins with an
 * *isolated* port (IFLA_BRPORT_ISOLATED: isolated ports cannot talk to each
 * other, only to non-isolated ones), the netvm's tap as the one
 * non-isolated port, and per-port anti-spoofing in the nftables table
 * `bridge vmfed-host`:
 *
 *   map ports { ifname : verdict }            tap : goto port-TAP
 *   chain prerouting (bridge, prerouting, -200): iifname vmap @ports
 *   chain port-TAP: ether saddr must be the VM's MAC; ARP, IPv4 and IPv6
 *                   sources must be its addresses (IPv6 also link-local
 *                   and "::" for neighbour discovery); everything else,
 *                   VLAN-tagged frames included, is dropped.
 *
 * Every function is idempotent and returns 0 or a negative errno; libnl
 * errors are translated.  Nothing here touches another table or bridge.
 */
#pragma once

#include "common/macro.h"

typedef struct HostNet HostNet;

int hostnet_open(HostNet **ret);
HostNet *hostnet_free(HostNet *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(HostNet *, hostnet_free)

/*
 * Create bridge (if missing) and set it up, and create table
 * `bridge vmfed-host` (if missing).  -EEXIST if a link of that name exists
 * and is not a bridge.
 */
int hostnet_bridge_ensure(HostNet *h, const char *bridge);

/* Delete the bridge (0 if it does not exist). Its ports fall off it. */
int hostnet_bridge_remove(HostNet *h, const char *bridge);

/*
 * Attach a client VM's tap: enslave to bridge as an isolated port, set it
 * up, and install its anti-spoofing chain and map element (one nftables
 * transaction; re-attaching replaces the chain's rules atomically).
 * mac "52:54:00:..."; addresses NULL-terminated, IPv4 and/or IPv6 host
 * addresses (at least one).  -ENODEV if tap or bridge do not exist,
 * -EINVAL for a bad MAC or address.
 */
int hostnet_port_attach(HostNet *h, const char *bridge, const char *tap, const char *mac,
                        const char *const *addresses);

/* Attach the netvm's tap: a non-isolated port without filtering. */
int hostnet_netvm_attach(HostNet *h, const char *bridge, const char *tap);

/*
 * Detach a tap: remove its anti-spoofing chain and element (one
 * transaction) and take it off its bridge if it still exists.  0 when
 * there was nothing to do.
 */
int hostnet_port_detach(HostNet *h, const char *tap);
/* Remove the port chains (and map elements) of taps that no longer exist: a
 * broker that was down when a VM stopped could not detach it. */
int hostnet_port_sweep(HostNet *h);
