/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The libvirt boundary of the federation library: cleanup helpers for
 * libvirt objects, translation of libvirt's -1 + virGetLastError() into a
 * negative errno plus a message, and time accounting of every libvirt call
 * (for the switch benchmark: broker-side time is wall time minus time spent
 * inside libvirt minus time waiting for events).
 */
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdint.h>

#include "common/macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(virDomainPtr, virDomainFree)

/*
 * After a failed libvirt call: the negative errno for the last libvirt
 * error (VIR_ERR_NO_DOMAIN → -ENOENT, OPERATION_INVALID → -EBUSY, NO_SUPPORT
 * → -EOPNOTSUPP, ...) and, when ret_message is non-NULL, "WHAT: libvirt's
 * message" newly allocated.  Resets the libvirt error.
 */
int virt_error(const char *what, char **ret_message);

/* Silence libvirt's default printing of errors to stderr (once per process). */
void virt_quiet_errors(void);

/* Monotonic clock in nanoseconds. */
uint64_t virt_now_ns(void);

/*
 * Nanoseconds this thread has spent inside libvirt calls made through
 * VIRT_CALL (monotonic, per thread).
 */
uint64_t virt_time_ns(void);
void virt_time_add(uint64_t ns);

/* Time a libvirt call: VIRT_CALL(virDomainCreate(dom)) evaluates to its result. */
#define VIRT_CALL(expr)                                          \
        ({                                                       \
                uint64_t _virt_t0_ = virt_now_ns();              \
                __typeof__(expr) _virt_r_ = (expr);              \
                virt_time_add(virt_now_ns() - _virt_t0_);        \
                _virt_r_;                                        \
        })
