/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static const sd_bus_error_map vmfed_error_map[] = {
        SD_BUS_ERROR_MAP(VMFED_ERROR_NOT_FOUND, ENOENT),
        SD_BUS_ERROR_MAP(VMFED_ERROR_ACCESS_DENIED, EACCES),
        SD_BUS_ERROR_MAP(VMFED_ERROR_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(VMFED_ERROR_INVALID_ARGS, EINVAL),
        SD_BUS_ERROR_MAP(VMFED_ERROR_TOO_LARGE, EFBIG),
        SD_BUS_ERROR_MAP(VMFED_ERROR_CONFLICT, ESTALE),
        SD_BUS_ERROR_MAP(VMFED_ERROR_FAILED, EIO),
        SD_BUS_ERROR_MAP_END,
};

int errors_register(void) {
        static bool done = false;
        if (done)
                return 0;
        int r = sd_bus_error_add_map(vmfed_error_map);
        if (r < 0)
                return r;
        done = true;
        return 0;
}

static const char *errno_to_name(int r) {
        switch (-r) {
        case ENOENT:
                return VMFED_ERROR_NOT_FOUND;
        case EACCES:
        case EPERM:
                return VMFED_ERROR_ACCESS_DENIED;
        case EBUSY:
        case EAGAIN:
                return VMFED_ERROR_BUSY;
        case EINVAL:
                return VMFED_ERROR_INVALID_ARGS;
        case EFBIG:
        case E2BIG:
                return VMFED_ERROR_TOO_LARGE;
        case ESTALE:
        case EEXIST:
                return VMFED_ERROR_CONFLICT;
        default:
                return VMFED_ERROR_FAILED;
        }
}

int errors_set_errno(sd_bus_error *error, int r, const char *format, ...) {
        char buf[1024];
        va_list ap;

        if (r >= 0)
                r = -EIO;
        va_start(ap, format);
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);
        (void) sd_bus_error_set(error, errno_to_name(r), errors_utf8_cut(buf));
        return r;
}

char *errors_utf8_cut(char *s) {
        const char *end;

        if (!g_utf8_validate(s, -1, &end))
                *(char *) end = 0;
        return s;
}

const char *errors_excerpt(char *buf, size_t size, const char *untrusted) {
        g_strlcpy(buf, untrusted ? untrusted : "", size);
        return errors_utf8_cut(buf);
}

char *errors_join(const GPtrArray *errors) {
        GString *joined;

        if (!errors || errors->len == 0)
                return NULL;
        joined = g_string_new(NULL);
        for (guint i = 0; i < errors->len; i++) {
                if (i > 0)
                        g_string_append(joined, "; ");
                g_string_append(joined, g_ptr_array_index(errors, i));
        }
        return g_string_free(joined, FALSE);
}
