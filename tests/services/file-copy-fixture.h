/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the file-copy tests share: a sender and a receiver on the two ends
 * of a socketpair (the receiver in a thread), a receiver fed hand-made
 * bytes, a builder for such bytes, and tree helpers (create, compare,
 * list).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <glib.h>

#include "services/file-copy.h"

typedef struct CopyRun {
        int tx_r, rx_r;
        FileCopyStats tx, rx;
        GError *tx_error, *rx_error;
} CopyRun;

void copy_run_clear(CopyRun *c);

/* file_copy_send(paths) | file_copy_receive(dest, max_bytes) over a socketpair. */
void copy_run(char *const *paths, const char *dest, uint64_t max_bytes, CopyRun *ret);

/*
 * Feed bytes (from a thread, then EOF) to file_copy_receive(dest,
 * max_bytes); returns its result, *ret_status (optional, g_free) the
 * status line it wrote and *ret_error its message.
 */
int copy_feed(const void *bytes, size_t len, const char *dest, uint64_t max_bytes, char **ret_status,
              char **ret_error);

/* Hand-made streams. */
GByteArray *stream_new(void);                                   /* with the magic */
void stream_entry(GByteArray *s, char type, const char *name, uint32_t mode, uint64_t size, const void *data,
                  size_t data_len);                             /* data_len may be less than size */
void stream_raw_header(GByteArray *s, const uint8_t raw[32]);
void stream_end(GByteArray *s, uint64_t entries, uint64_t bytes);

/* Trees. */
char *tree_tmpdir(void);                                        /* a fresh directory, g_free */
void tree_rm(const char *path);                                 /* rm -rf */
void tree_write(const char *path, const void *data, size_t len, mode_t mode);
void tree_write_pattern(const char *path, uint64_t size, uint32_t seed, mode_t mode);
/* Assert that b is a. copy of a: types, permission bits (expect_mode_mask applied to a's), contents, targets, file mtimes. */
void tree_assert_equal(const char *a, const char *b, mode_t expect_mode_mask);
/* The names in dir, sorted, joined by ' ' ("" when empty). */
char *tree_list(const char *dir);
/* Every path under dir, recursively, sorted, joined by ' '. */
char *tree_list_all(const char *dir);
