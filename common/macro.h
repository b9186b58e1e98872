/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small language helpers shared by every vmfed module: cleanup attributes,
 * ownership transfer and a few compile-time utilities.  Keep this file
 * small; anything with state or logic belongs in a module of its own.
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/*
 * Define `NAMEp(T **p)` that calls `func(*p)` when *p is non-NULL, for use
 * with _cleanup_.  For library types that have no g_autoptr support
 * (libnl, libnftnl, libvirt objects).
 */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)              \
        static inline void func##p(type *p) {                \
                if (*p)                                      \
                        func(*p);                            \
        }

/* Hand over ownership: returns the pointer and leaves NULL behind. */
#define steal_pointer(pp)                                     \
        ({                                                    \
                __typeof__(*(pp)) _tmp_ = *(pp);              \
                *(pp) = NULL;                                 \
                _tmp_;                                        \
        })

/* Hand over an fd: returns it and leaves -EBADF behind. */
#define steal_fd(fdp)                                         \
        ({                                                    \
                int _tmp_fd_ = *(fdp);                        \
                *(fdp) = -EBADF;                              \
                _tmp_fd_;                                     \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* close() that keeps errno and never fails; returns -EBADF for reuse. */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Negative errno of the last failing libc call; never 0. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
