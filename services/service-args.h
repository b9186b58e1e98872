/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ServiceArgs: the checks of the arguments of routed services (URL, app id
 * and its arguments, file name, MIME type), shared by the broker (which
 * checks before the policy) and the agent (which checks again before it
 * execs anything).  Pure functions; "why" sentences are for the user.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERVICE_ARGS_URL_MAX 4096
#define SERVICE_ARGS_APP_ID_MAX 127
#define SERVICE_ARGS_ARG_MAX 4096
#define SERVICE_ARGS_N_ARGS_MAX 64
#define SERVICE_ARGS_FILE_NAME_MAX 255
#define SERVICE_ARGS_MIME_MAX 127

/* scheme:rest with scheme (lower case) in schemes; printable ASCII, no spaces. why: g_free. */
bool service_args_url_is_valid(const char *url, const char *const *schemes, char **why);
/* [A-Za-z0-9_.-], 1..127 bytes, not starting with '.' or '-' (also a valid policy argument). */
bool service_args_app_id_is_valid(const char *app_id);
/* At most 64 arguments of at most 4096 bytes, UTF-8, none starting with '-' (no option injection). */
bool service_args_args_are_valid(const char *const *args, char **why);
/* A plain file name: no '/', not "." or "..", not starting with '.' or '-', no control characters. */
bool service_args_file_name_is_valid(const char *name);
/*
 * "type/subtype" of [a-z0-9.+-] (lower case), at most 127 bytes.  Writes the
 * normalized type (parameters such as ";charset=utf-8" dropped, lower case)
 * into out (size SERVICE_ARGS_MIME_MAX + 1).
 */
bool service_args_mime_normalize(const char *mime, char *out);
/*
 * A decimal number at *p (digits, no sign, no leading zeros: one spelling per
 * number, at most 2^64 - 1): true and *p past it, else false.
 */
bool service_args_parse_u64(const char **p, uint64_t *ret);
/*
 * The policy argument for a clipboard type: "" for text/plain, else the type
 * with '/' replaced by '.' ("image/png" -> "image.png").
 */
void service_args_mime_to_policy_arg(const char *mime, char *out);
