/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Addressing: the fixed IPv4 address of every client VM behind a netvm.
 *
 * One downstream subnet, a /24 (CONFIG/network.conf [Network] Subnet=,
 * default 10.137.0.0/24): the netvm's downstream address (the clients'
 * gateway and DNS) is .1, client VMs get .10 + their index (0 … 244).
 * The index of a VM of vms.d/ is allocated once and kept in
 * STATE/addresses ("NAME INDEX" lines, written atomically), so a VM keeps
 * its address across restarts of itself, the netvm and the broker; a
 * disposable gets a free index while it runs (not persisted).  A removed
 * VM keeps its index while a generation that has it can be rolled back to
 * (generation_vm_names()), so a rollback gives it back its address; when no
 * index is free, those of VMs in neither vms.d/ nor a retained generation
 * nor running are released (reclaimed only then: an address is reused as
 * late as possible).  MACs are not here: they are derived from the VM name
 * (domain_xml_vm_mac()).
 *
 * IPv6: beside the /24 a /64 (CONFIG/network.conf [Network] Subnet6=; by
 * default a ULA fdXX:XXXX:XXXX::/64 whose 40-bit global ID is the first
 * bytes of SHA-256 of "vmfed-ula:" + the IPv4 subnet, so the same
 * configuration always gives the same addresses; "none": no IPv6).  The
 * host part is the IPv4 one's number written as hex digits: the gateway is
 * ::1, the client at .10 is ::10, the one at .254 is ::254.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/macro.h"

#define ADDRESSING_FIRST_HOST 10
#define ADDRESSING_MAX_CLIENTS 245

typedef struct Addressing Addressing;

/*
 * subnet "A.B.C.0/24" (NULL: 10.137.0.0/24). -EINVAL for anything else.
 * config_dir/vms.d/ and state_dir/generations/ say which removed VMs keep
 * their index.
 */
int addressing_new(const char *config_dir, const char *state_dir, const char *subnet, Addressing **ret);
Addressing *addressing_free(Addressing *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(Addressing *, addressing_free)

/*
 * vm's address ("10.137.0.12", without prefix), for a client that starts
 * running: it is in use until addressing_release().  persistent: a VM of
 * vms.d/ (its index is written to STATE/addresses).  -ENOSPC when the
 * subnet is full even after reclaiming.
 */
int addressing_lookup(Addressing *a, const char *vm, bool persistent, char **ret_address);
/* vm stopped: a transient (disposable) VM's index is forgotten; a persistent one's kept (see above). */
void addressing_release(Addressing *a, const char *vm);

const char *addressing_gateway(Addressing *a); /* "10.137.0.1" */

/*
 * subnet6 "PREFIX::/64" with a zero interface ID, "none" (no IPv6), or NULL
 * (the default ULA, see above).  -EINVAL for anything else (IPv6 unchanged).
 */
int addressing_set_subnet6(Addressing *a, const char *subnet6);
/* The IPv6 gateway ("fdXX:…::1"), NULL without IPv6. */
const char *addressing_gateway6(Addressing *a);
/* The IPv6 address of the client with IPv4 address v4 (from addressing_lookup()), NULL without IPv6. */
char *addressing_address6(Addressing *a, const char *v4);
unsigned addressing_prefixlen(Addressing *a); /* 24 */
