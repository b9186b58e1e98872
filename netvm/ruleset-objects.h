/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Builders of the nftnl objects of table inet vmfed (private to ruleset*.c):
 * each queues one kind of change into a batch, the same bytes whoever asks.
 */
#pragma once

#include <stdint.h>

#include <glib.h>
#include <libnftnl/chain.h>
#include <libnftnl/set.h>

#include "netvm/nft-batch.h"
#include "netvm/ruleset-model.h"

/* Also in netvm/ruleset.h. */
typedef struct RulesetStats RulesetStats;

/* A chain / one of the fixed sets of the table, by name only (to add to or delete). */
struct nftnl_chain *ruleset_chain_obj(const char *name);
struct nftnl_set *ruleset_set_obj(int set);

/* The table itself. */
void ruleset_queue_table(NftBatch *b);
/* One of the fixed sets (chains_sets[set]) with its key and flags. */
void ruleset_queue_set(int set, NftBatch *b);
/* A new chain: a base chain (kind < CHAIN_CLIENT) with its hook, else a regular one. */
void ruleset_queue_new_chain(const char *name, ChainKind kind, NftBatch *b);
/* Delete every rule of a chain (refilled in the same transaction). */
void ruleset_queue_flush_chain(const char *name, NftBatch *b);
void ruleset_queue_del_chain(const char *name, NftBatch *b);
void ruleset_queue_del_set(const char *name, NftBatch *b);

/* The rules of chain c as desired's state builds them, the first one marked with c's digest. */
void ruleset_queue_chain_rules(const Ruleset *desired, const ChainSpec *c, NftBatch *b, RulesetStats *st);
/* Queue the elements of `from` that `other` lacks (other NULL: all); returns how many. */
unsigned ruleset_queue_elems(GHashTable *from, GHashTable *other, int set, uint16_t msg_type, NftBatch *b);
/* A client's interval set `name` (its FwSetPlan ref->index) and all its elements. */
void ruleset_queue_client_set(const NetState *state, const ClientSetEntry *ref, const char *name, uint32_t id,
                              NftBatch *b, RulesetStats *st);
/* One element of a fixed set, added or deleted (msg_type). */
void ruleset_queue_elem(int set, const ElemSpec *e, uint16_t msg_type, NftBatch *b);
