/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The process-wide registry of names (VM names and tags) that snapshots and
 * facts share: each distinct string has one id for as long as some snapshot
 * or facts object holds a reference to it.  With it, evaluation joins a
 * request's VM (found in the facts) with the compiled rules by comparing
 * integers -- no string hashing beyond finding the VM in the facts.
 *
 * Reference and release happen only while building and freeing snapshots
 * and facts, under a mutex.  Evaluation never touches the registry: it only
 * compares ids already stored in the immutable snapshot and facts, so it
 * stays pure and lock-free.  Ids are below 2^31 (the index uses the top bit).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Returns the id (>= 1) of s[0..len), taking a reference. */
uint32_t policy_name_ref(const char *s, size_t len);
void policy_name_unref(uint32_t id);
/* Number of names currently registered (for tests). */
size_t policy_name_count(void);
