/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Logging for vmfed binaries.  Lines go to stderr prefixed with the
 * sd-daemon(3) priority marker ("<3>") when stderr is not a terminal, so the
 * journal (or any syslog-style collector) keeps the level; on a terminal they
 * get a readable "error: " style prefix instead.
 *
 * log_*() return the negative errno they were given (or -EIO for 0), so a
 * failure path can log and return in one statement:
 *
 *         return log_error_errno(r, "Failed to parse %s: %m", path);
 */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "common/macro.h"

void log_set_max_level(int level);
int log_get_max_level(void);
/* Name used in the journal's SYSLOG_IDENTIFIER and terminal prefixes. */
void log_set_ident(const char *ident);

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) _printf_(6, 7);
int log_internalv(int level, int error, const char *file, int line, const char *func,
                  const char *format, va_list ap) _printf_(6, 0);

/*
 * Structured log: message plus extra journal fields ("KEY=value" strings,
 * NULL-terminated).  On stderr the fields are appended as " KEY=value".
 */
int log_struct_internal(int level, const char *const *fields, const char *format, ...) _printf_(3, 4);

#define log_full_errno(level, error, ...) \
        log_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_debug(...)   log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, (e), __VA_ARGS__)

#define log_oom() log_error_errno(-ENOMEM, "Out of memory.")
