/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Policy files as the D-Bus API sees them: top-level files of policy.d/
 * with names [0-9a-z_-][0-9a-z_.-]*.policy (no '/', no "..", no dotfiles),
 * at most POLICY_FILE_MAX bytes, identified for optimistic concurrency by an
 * etag: the SHA-256 of the content in hex.  A file that does not exist has
 * the etag "" — ReplaceFile with etag "" creates a file.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

#define POLICY_FILE_MAX (1024 * 1024)
#define POLICY_FILE_NAME_MAX 128

bool policy_file_name_is_valid(const char *name);

/* Newly allocated etag of content; never NULL. */
char *policy_file_etag(const char *content, size_t size);

/*
 * Read dir/name: 0 with content and etag, -ENOENT when missing, -EFBIG when
 * larger than POLICY_FILE_MAX, other negative errno on failure.
 */
int policy_file_read(const char *dir, const char *name, char **ret_content, char **ret_etag);

/* Names of the valid-named regular files in dir, sorted (C locale). Missing dir: empty. */
int policy_file_list(const char *dir, GPtrArray **ret_names);

/* Atomically replace dir/name (creating dir if needed). */
int policy_file_write(const char *dir, const char *name, const char *content, size_t size);

/* Remove dir/name durably. */
int policy_file_remove(const char *dir, const char *name);
