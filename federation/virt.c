/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "federation/virt.h"

#include <errno.h>
#include <glib.h>
#include <time.h>

static _Thread_local uint64_t virt_ns;

uint64_t virt_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

uint64_t virt_time_ns(void) {
        return virt_ns;
}

void virt_time_add(uint64_t ns) {
        virt_ns += ns;
}

static void quiet_error_func(void *userdata, virErrorPtr error) {
}

void virt_quiet_errors(void) {
        virSetErrorFunc(NULL, quiet_error_func);
}

static int code_to_errno(const virError *e) {
        if (!e)
                return -EIO;
        switch (e->code) {
        case VIR_ERR_NO_DOMAIN:
        case VIR_ERR_NO_DOMAIN_METADATA:
        case VIR_ERR_NO_DOMAIN_SNAPSHOT:
                return -ENOENT;
        case VIR_ERR_OPERATION_INVALID:
                return -EBUSY;
        case VIR_ERR_NO_SUPPORT:
        case VIR_ERR_ARGUMENT_UNSUPPORTED:
                return -EOPNOTSUPP;
        case VIR_ERR_INVALID_ARG:
        case VIR_ERR_XML_ERROR:
        case VIR_ERR_XML_DETAIL:
        case VIR_ERR_CONFIG_UNSUPPORTED:
                return -EINVAL;
        case VIR_ERR_OPERATION_TIMEOUT:
        case VIR_ERR_AGENT_UNRESPONSIVE:
                return -ETIMEDOUT;
        case VIR_ERR_AUTH_FAILED:
        case VIR_ERR_AUTH_CANCELLED:
        case VIR_ERR_OPERATION_DENIED:
        case VIR_ERR_ACCESS_DENIED:
                return -EACCES;
        case VIR_ERR_NO_CONNECT:
        case VIR_ERR_INVALID_CONN:
        case VIR_ERR_RPC:
                return -ENOTCONN;
        case VIR_ERR_DOM_EXIST:
                return -EEXIST;
        case VIR_ERR_NO_MEMORY:
                return -ENOMEM;
        case VIR_ERR_SYSTEM_ERROR:
                return e->int1 > 0 ? -e->int1 : -EIO;
        default:
                return -EIO;
        }
}

int virt_error(const char *what, char **ret_message) {
        const virError *e = virGetLastError();
        int r = code_to_errno(e);

        if (ret_message)
                *ret_message = g_strdup_printf("%s: %s", what, e && e->message ? e->message : "unknown libvirt error");
        virResetLastError();
        return r;
}
