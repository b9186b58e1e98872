/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bytecode of table inet vmfed (layout: netvm/ruleset.h): the base
 * chains, the sets and maps they use, and one chain per client VM, built
 * with netvm/nft-rule.h from a NetState.  No I/O here; netvm/ruleset-diff.c
 * decides which chains to (re)write and sends them.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "netvm/fwplan.h"
#include "netvm/netstate.h"

/* The table (family inet). */
#define RULESET_TABLE "vmfed"
#define CLIENT_CHAIN_PREFIX "fwd-"
#define CLIENT_SET_PREFIX "c-"

/* nft's concatenated datatype ids (datatype << 6 | datatype). */
#define TYPE_IPV4 7
#define TYPE_IPV6 8
#define TYPE_ETHER 9
#define CONCAT(a, b) (((a) << 6) | (b))

typedef enum ChainKind {
        CHAIN_ANTISPOOF,
        CHAIN_FORWARD,
        CHAIN_INPUT,
        CHAIN_DNAT,
        CHAIN_MASQ,
        CHAIN_CLIENT,
        CHAIN_UNKNOWN,
} ChainKind;

typedef struct BaseChainDef {
        const char *name;
        const char *type;
        uint32_t hook;
        int32_t prio;
} BaseChainDef;

typedef struct SetDef {
        const char *name;
        uint32_t key_type, key_len;
        bool map;
} SetDef;

enum { SET_ALLOWED4, SET_ALLOWED6, SET_FWD4, SET_FWD6, SET_DNS4, SET_DNS6, _SET_MAX };

extern const BaseChainDef chains_base[CHAIN_CLIENT];
extern const SetDef chains_sets[_SET_MAX];

/* Is there an upstream resolver of this family (the "dns" target)? */
bool chains_has_dns(const NetState *s, int family);

/* The client's compiled firewall (cached in the client). */
const FwPlan *chains_client_plan(const NetClient *c);
/* "c-NAME-DIGEST-INDEX": a client's interval set, named after its chain's digest. */
char *chains_client_set_name(const NetClient *c, const char *digest, guint index);

/* Append the rules (struct nftnl_rule*) of a base chain / of a client's chain fwd-NAME. */
void chains_build_base(const NetState *s, ChainKind kind, GPtrArray *out);
void chains_build_client(const NetState *s, const NetClient *c, const char *chain, const char *digest,
                         GPtrArray *out);
