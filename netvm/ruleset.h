/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The `inet vmfed` nftables table: compiling a NetState into it, reading
 * what the kernel has, and changing one into the other in one transaction.
 *
 * Layout (docs/netvm.md, "The inet vmfed table"):
 *
 *   set allowed4 { ether_addr . ipv4_addr }   client MAC . address pairs
 *   set allowed6 { ether_addr . ipv6_addr }
 *   map fwd4 { ipv4_addr : verdict }          client address : goto fwd-NAME
 *   map fwd6 { ipv6_addr : verdict }
 *   set dns4, dns6                            upstream resolvers
 *   chain antispoof   prerouting -300         downstream source must be in allowed4/6
 *   chain forward     forward 0               downstream traffic: vmap fwd4/fwd6
 *   chain input       input 0                 what clients/uplink may send the netvm
 *   chain dns-path    nat prerouting -100     DNS path: gateway:53 -> resolver
 *   chain uplink-masq nat postrouting 100     masquerade to the uplink
 *   chain fwd-NAME    one per client VM       its firewall, then default action
 *
 * Adding or removing a client VM is one chain plus its set elements; no
 * other chain or element is touched, so established flows of other clients
 * never notice.  The table is never flushed or deleted; conntrack is
 * touched only for addresses that change hands (netvm/handover.h).
 *
 * The files: ruleset.c the model (netvm/ruleset-model.h) and apply,
 * ruleset-compile.c, ruleset-read.c, ruleset-diff.c, and the nftnl objects
 * they queue in ruleset-objects.c; the rules of each chain in netvm/chains.c.
 */
#pragma once

#include <stdint.h>

#include "netvm/chains.h"
#include "netvm/netstate.h"
#include "netvm/nft-batch.h"

typedef struct Ruleset Ruleset;

typedef struct RulesetStats {
        unsigned chains_added, chains_changed, chains_removed;
        unsigned elems_added, elems_removed;
        unsigned rules_added;
        unsigned messages;
} RulesetStats;

Ruleset *ruleset_free(Ruleset *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Ruleset *, ruleset_free)

/* Read the current `inet vmfed` table from the kernel (an empty Ruleset if absent). */
int ruleset_read(NftSocket *s, Ruleset **ret);

/* The Ruleset state should produce.  state is borrowed until the Ruleset is freed. */
Ruleset *ruleset_compile(const NetState *state);

/*
 * Queue into b the changes that turn applied into desired: new objects,
 * element deletions, changed chains (flushed and refilled in the same
 * transaction), element additions, then removed chains.
 */
void ruleset_diff(const Ruleset *applied, Ruleset *desired, NftBatch *b, RulesetStats *stats);

/*
 * Compile state, diff against *applied, commit in one transaction.  On
 * success *applied becomes the new model; on failure the kernel is
 * unchanged and *applied is re-read from the kernel.
 */
int ruleset_apply(NftSocket *s, Ruleset **applied, const NetState *state, RulesetStats *stats);

