/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Configuration generations, as NixOS keeps them: every applied change to
 * CONFIG/vms.d/ and CONFIG/policy.d/ is recorded as a numbered tree of both
 * directories in STATE/generations/N/, listed in STATE/generations/index
 * ("N<TAB>usec since the epoch<TAB>description"), written atomically: the
 * index is the commit point of a record and of a prune.  A file unchanged
 * since the previous generation is a hard link to that generation's file,
 * not a copy; no generation file is ever opened for writing.  Only the
 * latest KeepGenerations= (CONFIG/vmfed.conf [Generations], default 50)
 * are kept: each record drops the oldest beyond it.  A rollback builds the target trees aside in CONFIG
 * and swaps each in with one renameat2(RENAME_EXCHANGE); a journal makes a
 * rollback interrupted between the two swaps complete on the next start
 * (generation_recover()), so the configuration is never left half-restored.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

typedef struct Generation {
        uint64_t number;
        int64_t time_usec; /* CLOCK_REALTIME */
        char *description;
} Generation;

Generation *generation_free(Generation *g);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Generation, generation_free)

enum {
        GENERATION_UNCHANGED = 0, /* identical to the latest generation: nothing recorded */
        GENERATION_RECORDED = 1,
};

#define GENERATION_KEEP_DEFAULT 50u
#define GENERATION_KEEP_MAX 100000u

/*
 * Record the current vms.d/ and policy.d/ as a new generation, unless they
 * equal the latest one, then prune to generation_keep(config_dir).  Returns GENERATION_RECORDED or GENERATION_UNCHANGED
 * with *ret_number (optional) the generation they now are; negative errno
 * on failure.  The broker calls this after every write to either directory.
 */
int generation_record(const char *config_dir, const char *state_dir, const char *description, uint64_t *ret_number);

/* Generations in increasing order (GPtrArray of Generation*, owning). */
int generation_list(const char *state_dir, GPtrArray **ret);

/* The latest generation's number, 0 when none. */
uint64_t generation_latest(const char *state_dir);

/*
 * Make vms.d/ and policy.d/ equal generation n again and record that as a
 * new generation ("rollback to N"), returned in *ret_new (optional).
 * -ENOENT for an unknown generation.
 */
int generation_rollback(const char *config_dir, const char *state_dir, uint64_t n, uint64_t *ret_new);

/* Finish a rollback interrupted by a crash.  0 when there was none, 1 when one was finished. */
int generation_recover(const char *config_dir, const char *state_dir);

/*
 * KeepGenerations= of CONFIG/vmfed.conf [Generations]: 1 to
 * GENERATION_KEEP_MAX, else (logged) or without the file or key
 * GENERATION_KEEP_DEFAULT.  Read at each record.
 */
unsigned generation_keep(const char *config_dir);

/* Drop the oldest generations beyond keep (at least 1 is kept).  How many were dropped, or negative errno. */
int generation_prune(const char *state_dir, unsigned keep);

enum {
        GENERATION_RETAINED = 0, /* listed: it can be rolled back to */
        GENERATION_PRUNED = 1,   /* recorded once, dropped by KeepGenerations= */
        GENERATION_UNKNOWN = 2,  /* never recorded */
};

/* What is generation n?  One of the above, or negative errno when the index cannot be read. */
int generation_status(const char *state_dir, uint64_t n);

/*
 * The names of the VMs (vms.d/NAME.vm) of every retained generation, a set
 * (GHashTable of owned char*): those a rollback can bring back.
 */
int generation_vm_names(const char *state_dir, GHashTable **ret);
