/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The D-Bus errors of org.vmfed.Federation1 (docs/dbus-api.md, "Errors").
 * Header-only names so vmfedctl can match them too; errors_register() maps
 * them to errno values for sd-bus.
 */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

#define VMFED_ERROR_NOT_FOUND     "org.vmfed.Federation1.Error.NotFound"
#define VMFED_ERROR_ACCESS_DENIED "org.vmfed.Federation1.Error.AccessDenied"
#define VMFED_ERROR_BUSY          "org.vmfed.Federation1.Error.Busy"
#define VMFED_ERROR_INVALID_ARGS  "org.vmfed.Federation1.Error.InvalidArgs"
#define VMFED_ERROR_TOO_LARGE     "org.vmfed.Federation1.Error.TooLarge"
#define VMFED_ERROR_CONFLICT      "org.vmfed.Federation1.Error.Conflict"
#define VMFED_ERROR_FAILED        "org.vmfed.Federation1.Error.Failed"

/* Register the errno mapping with sd-bus (idempotent). */
int errors_register(void);

/*
 * Set *error to the vmfed error for a negative errno from our own code
 * (ENOENT → NotFound, EACCES/EPERM → AccessDenied, EBUSY → Busy, EINVAL →
 * InvalidArgs, EFBIG → TooLarge, ESTALE → Conflict, else Failed) with a
 * message; returns the negative errno.
 */
int errors_set_errno(sd_bus_error *error, int r, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/*
 * An error message must be valid UTF-8: sd-bus cannot send one that is not,
 * and the caller then gets no reply at all.  errors_utf8_cut() ends s (in
 * place) before its first invalid byte — a multi-byte character cut by
 * printf's precision or a full buffer; ERRORS_EXCERPT(s, N) is at most N
 * bytes of an untrusted string, cut on a character boundary, for "%s".
 */
char *errors_utf8_cut(char *s);
const char *errors_excerpt(char *buf, size_t size, const char *untrusted);
#define ERRORS_EXCERPT(s, n) errors_excerpt((char[(n) + 1]) { 0 }, (n) + 1, (s))

/* The messages in errors (may be NULL) joined with "; ", or NULL when there are none. */
char *errors_join(const GPtrArray *errors);
