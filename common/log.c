/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <sys/types.h>
#include <stdbool.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

static int max_level = LOG_INFO;
static const char *ident = "vmfed";

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_set_ident(const char *new_ident) {
        ident = new_ident;
}

static const char *level_word(int level) {
        switch (level) {
        case LOG_EMERG:
        case LOG_ALERT:
        case LOG_CRIT:
        case LOG_ERR:     return "error";
        case LOG_WARNING: return "warning";
        case LOG_NOTICE:  return "notice";
        case LOG_INFO:    return "info";
        default:          return "debug";
        }
}

static int normalize_error(int error) {
        if (error == 0)
                return -EIO;
        return error < 0 ? error : -error;
}

static bool stderr_is_tty(void) {
        static int cached = -1;
        if (cached < 0)
                cached = isatty(STDERR_FILENO);
        return cached;
}

/*
 * One line, one write(): stderr is unbuffered, and a daemon that logs an
 * audit line per routed request must not pay a syscall per field.  Lines
 * longer than the buffer are cut (and end in "...").
 */
static void emit(int level, const char *msg, const char *const *fields) {
        char line[4096];
        size_t n = 0;
        int k;

        if (stderr_is_tty())
                k = snprintf(line, sizeof line, "%s: %s: %s", ident, level_word(level), msg);
        else
                k = snprintf(line, sizeof line, "<%d>%s", level, msg);
        n = k < 0 ? 0 : (size_t) k;
        for (const char *const *p = fields; p && *p && n < sizeof line; p++) {
                k = snprintf(line + n, sizeof line - n, " %s", *p);
                n += k < 0 ? 0 : (size_t) k;
        }
        if (n >= sizeof line - 1) {
                n = sizeof line - 1;
                memcpy(line + n - 3, "...", 3);
        }
        line[n++] = '\n';

        /* A short or failed write of a log line is not worth failing for. */
        ssize_t w _unused_ = write(STDERR_FILENO, line, n);
}

int log_internalv(int level, int error, const char *file, int line, const char *func,
                  const char *format, va_list ap) {
        char buf[2048];

        if (level > max_level)
                return error == 0 ? 0 : normalize_error(error);

        /* Make %m print the error we were given, not whatever errno holds. */
        int saved_errno = errno;
        if (error != 0)
                errno = error < 0 ? -error : error;
        vsnprintf(buf, sizeof buf, format, ap);
        errno = saved_errno;

        emit(level, buf, NULL);
        (void) file;
        (void) line;
        (void) func;
        return error == 0 ? 0 : normalize_error(error);
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        int r = log_internalv(level, error, file, line, func, format, ap);
        va_end(ap);
        return r;
}

static bool journal_present(void) {
        static int cached = -1;
        if (cached < 0)
                cached = access("/run/systemd/journal/socket", W_OK) == 0;
        return cached;
}

int log_struct_internal(int level, const char *const *fields, const char *format, ...) {
        char buf[2048];
        va_list ap;

        if (level > max_level)
                return 0;

        va_start(ap, format);
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);

        emit(level, buf, fields);

        if (journal_present()) {
                /* Up to 16 extra fields plus MESSAGE, PRIORITY and ident. */
                struct iovec iov[19];
                char prio[32], msg[2100], id[64];
                size_t n = 0;

                snprintf(msg, sizeof msg, "MESSAGE=%s", buf);
                snprintf(prio, sizeof prio, "PRIORITY=%d", level);
                snprintf(id, sizeof id, "SYSLOG_IDENTIFIER=%s", ident);
                iov[n++] = (struct iovec) { msg, strlen(msg) };
                iov[n++] = (struct iovec) { prio, strlen(prio) };
                iov[n++] = (struct iovec) { id, strlen(id) };
                for (const char *const *p = fields; p && *p && n < ELEMENTSOF(iov); p++)
                        iov[n++] = (struct iovec) { (void *) *p, strlen(*p) };
                (void) sd_journal_sendv(iov, (int) n);
        }
        return 0;
}
