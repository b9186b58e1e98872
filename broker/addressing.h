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
unsigned addressing_prefixlen(Addressing *a); /* 24 */
