/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ruleset_diff(): the changes that turn one model into another, in the
 * order the kernel needs them, queued in one batch.
 */
#include "netvm/ruleset.h"

#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <glib.h>

#include "netvm/ruleset-model.h"
#include "netvm/ruleset-objects.h"

static bool model_has_set(const ClientModel *m, const char *name) {
        for (guint i = 0; m && i < m->sets->len; i++)
                if (strcmp(g_array_index(m->sets, ClientSetEntry, i).name, name) == 0)
                        return true;
        return false;
}

static bool model_has_elem(const ClientModel *m, int set, const char *id) {
        for (guint i = 0; m && i < m->elems->len; i++)
                if (g_array_index(m->elem_sets, int, i) == set && strcmp(m->elem_ids->pdata[i], id) == 0)
                        return true;
        return false;
}

typedef enum Phase {
        PHASE_NEW_SETS,
        PHASE_NEW_CHAINS,
        PHASE_DEL_ELEMS,
        PHASE_CHANGED_CHAINS,
        PHASE_ADD_ELEMS,
        PHASE_DEL_CHAINS,
        PHASE_DEL_SETS,
} Phase;

/* One client's part of one phase of the transaction: dm desired, am applied (either may be NULL). */
static void diff_client(const Ruleset *desired, const ClientModel *dm, const ClientModel *am, Phase phase,
                        NftBatch *b, RulesetStats *st, uint32_t *set_id) {
        switch (phase) {
        case PHASE_NEW_SETS:
                for (guint i = 0; dm && i < dm->sets->len; i++) {
                        const ClientSetEntry *e = &g_array_index(dm->sets, ClientSetEntry, i);
                        if (!model_has_set(am, e->name))
                                ruleset_queue_client_set(desired->state, e, e->name, (*set_id)++, b, st);
                }
                break;
        case PHASE_NEW_CHAINS:
                if (dm && !am) {
                        ruleset_queue_new_chain(dm->chain.name, CHAIN_CLIENT, b);
                        st->chains_added++;
                }
                break;
        case PHASE_DEL_ELEMS:
                for (guint i = 0; am && i < am->elems->len; i++) {
                        int set = g_array_index(am->elem_sets, int, i);
                        if (!model_has_elem(dm, set, am->elem_ids->pdata[i])) {
                                ruleset_queue_elem(set, am->elems->pdata[i], NFT_MSG_DELSETELEM, b);
                                st->elems_removed++;
                        }
                }
                break;
        case PHASE_CHANGED_CHAINS:
                if (!dm || (am && strcmp(am->chain.digest, dm->chain.digest) == 0))
                        break;
                if (am) {
                        ruleset_queue_flush_chain(dm->chain.name, b);
                        st->chains_changed++;
                }
                ruleset_queue_chain_rules(desired, &dm->chain, b, st);
                break;
        case PHASE_ADD_ELEMS:
                for (guint i = 0; dm && i < dm->elems->len; i++) {
                        int set = g_array_index(dm->elem_sets, int, i);
                        if (!model_has_elem(am, set, dm->elem_ids->pdata[i])) {
                                ruleset_queue_elem(set, dm->elems->pdata[i], NFT_MSG_NEWSETELEM, b);
                                st->elems_added++;
                        }
                }
                break;
        case PHASE_DEL_CHAINS:
                if (am && !dm) {
                        ruleset_queue_del_chain(am->chain.name, b);
                        st->chains_removed++;
                }
                break;
        case PHASE_DEL_SETS:
                for (guint i = 0; am && i < am->sets->len; i++) {
                        const char *name = g_array_index(am->sets, ClientSetEntry, i).name;
                        if (!model_has_set(dm, name))
                                ruleset_queue_del_set(name, b);
                }
                break;
        }
}

typedef struct ClientPair {
        const ClientModel *dm, *am;
} ClientPair;

/*
 * Both models know their clients: only clients whose model differs cost
 * anything (a client unchanged between two states shares its ClientModel).
 * Both model lists are in the order of their states' clients, sorted by name
 * (netstate_put_client), so one merge finds the pairs, and a shared model is
 * skipped by comparing pointers alone: no per-client hashing or string
 * reads, which at hundreds of clients cost more than the kernel's part of a
 * small transaction.  Against a model read back from the kernel the generic
 * tables hold everything and there are no pairs.
 */
static GArray *client_pairs(const Ruleset *applied, const Ruleset *desired) {
        GArray *pairs = g_array_new(FALSE, FALSE, sizeof(ClientPair));
        if (applied->from_kernel)
                return pairs;
        ClientModel *const *d = (ClientModel *const *) desired->models->pdata;
        ClientModel *const *a = (ClientModel *const *) applied->models->pdata;
        guint nd = desired->models->len, na = applied->models->len, i = 0, j = 0;
        while (i < nd || j < na) {
                if (i < nd && j < na && d[i] == a[j]) {
                        i++, j++;
                        continue;
                }
                int cmp = i >= nd ? 1 : j >= na ? -1 : strcmp(d[i]->client, a[j]->client);
                ClientPair p = { cmp <= 0 ? d[i] : NULL, cmp >= 0 ? a[j] : NULL };
                g_array_append_val(pairs, p);
                if (cmp <= 0)
                        i++;
                if (cmp >= 0)
                        j++;
        }
        return pairs;
}

static void diff_clients(const Ruleset *desired, GArray *pairs, Phase phase, NftBatch *b,
                         RulesetStats *st, uint32_t *set_id) {
        for (guint i = 0; i < pairs->len; i++) {
                const ClientPair *p = &g_array_index(pairs, ClientPair, i);
                diff_client(desired, p->dm, p->am, phase, b, st, set_id);
        }
}

/* The table's own part of each phase: base chains, fixed sets, client sets (all, against the kernel). */
static void diff_table(const Ruleset *applied, const Ruleset *desired, Phase phase, NftBatch *b,
                       RulesetStats *st, uint32_t *set_id) {
        GHashTableIter it;
        const char *name;
        ChainSpec *c;
        ClientSetEntry *ref;

        switch (phase) {
        case PHASE_NEW_SETS:
                if (!applied->table_exists)
                        ruleset_queue_table(b);
                for (int i = 0; i < _SET_MAX; i++)
                        if (!applied->set_exists[i])
                                ruleset_queue_set(i, b);
                /* New client sets with their elements: the new chain rules refer to them. */
                g_hash_table_iter_init(&it, desired->client_sets);
                while (g_hash_table_iter_next(&it, (gpointer *) &name, (gpointer *) &ref))
                        if (!g_hash_table_contains(applied->client_sets, name))
                                ruleset_queue_client_set(desired->state, ref, name, (*set_id)++, b, st);
                break;
        case PHASE_NEW_CHAINS:
                /* New chains first: rules and map elements may refer to them. */
                g_hash_table_iter_init(&it, desired->chains);
                while (g_hash_table_iter_next(&it, NULL, (gpointer *) &c)) {
                        if (g_hash_table_contains(applied->chains, c->name))
                                continue;
                        ruleset_queue_new_chain(c->name, c->kind, b);
                        st->chains_added++;
                }
                break;
        case PHASE_DEL_ELEMS:
                for (int i = 0; i < _SET_MAX; i++)
                        st->elems_removed += ruleset_queue_elems(applied->elems[i], desired->elems[i], i,
                                                                 NFT_MSG_DELSETELEM, b);
                break;
        case PHASE_CHANGED_CHAINS:
                g_hash_table_iter_init(&it, desired->chains);
                while (g_hash_table_iter_next(&it, NULL, (gpointer *) &c)) {
                        ChainSpec *old = g_hash_table_lookup(applied->chains, c->name);
                        if (old && strcmp(old->digest, c->digest) == 0)
                                continue;
                        if (old) {
                                /* Flush and refill inside the transaction: never seen half done. */
                                ruleset_queue_flush_chain(c->name, b);
                                st->chains_changed++;
                        }
                        ruleset_queue_chain_rules(desired, c, b, st);
                }
                break;
        case PHASE_ADD_ELEMS:
                for (int i = 0; i < _SET_MAX; i++)
                        st->elems_added += ruleset_queue_elems(desired->elems[i], applied->elems[i], i,
                                                               NFT_MSG_NEWSETELEM, b);
                break;
        case PHASE_DEL_CHAINS:
                /* Chains that are no longer wanted: nothing refers to them any more. */
                g_hash_table_iter_init(&it, applied->chains);
                while (g_hash_table_iter_next(&it, NULL, (gpointer *) &c)) {
                        if (g_hash_table_contains(desired->chains, c->name))
                                continue;
                        ruleset_queue_del_chain(c->name, b);
                        st->chains_removed++;
                }
                break;
        case PHASE_DEL_SETS:
                /* Client sets no chain refers to any more. */
                g_hash_table_iter_init(&it, applied->client_sets);
                while (g_hash_table_iter_next(&it, (gpointer *) &name, NULL))
                        if (!g_hash_table_contains(desired->client_sets, name))
                                ruleset_queue_del_set(name, b);
                break;
        }
}

void ruleset_diff(const Ruleset *applied, Ruleset *desired, NftBatch *b, RulesetStats *st) {
        RulesetStats dummy = {};
        uint32_t set_id = 100;

        if (!st)
                st = &dummy;
        *st = (RulesetStats) {};
        /* Against what the kernel told us, compare everything; else client by client. */
        ruleset_materialize(desired, applied->from_kernel);
        g_autoptr(GArray) pairs = client_pairs(applied, desired);

        /* In each phase the table's part, then the clients'. */
        for (Phase phase = PHASE_NEW_SETS; phase <= PHASE_DEL_SETS; phase++) {
                diff_table(applied, desired, phase, b, st, &set_id);
                diff_clients(desired, pairs, phase, b, st, &set_id);
        }
        st->messages = (unsigned) nft_batch_size(b);
}
