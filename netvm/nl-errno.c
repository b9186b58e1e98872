/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netvm/nl-errno.h"

#include <errno.h>

#include <netlink/errno.h>

/* libnl's -NLE_* codes become -errno here, only here. */
int nl_error_to_errno(int nlerr) {
        switch (nlerr < 0 ? -nlerr : nlerr) {
        case 0:                 return 0;
        case NLE_INTR:          return -EINTR;
        case NLE_BAD_SOCK:      return -EBADF;
        case NLE_AGAIN:         return -EAGAIN;
        case NLE_NOMEM:         return -ENOMEM;
        case NLE_EXIST:         return -EEXIST;
        case NLE_INVAL:         return -EINVAL;
        case NLE_RANGE:         return -ERANGE;
        case NLE_MSGSIZE:       return -EMSGSIZE;
        case NLE_OPNOTSUPP:     return -EOPNOTSUPP;
        case NLE_AF_NOSUPPORT:  return -EAFNOSUPPORT;
        case NLE_OBJ_NOTFOUND:  return -ENOENT;
        case NLE_NOATTR:        return -ENOENT;
        case NLE_PERM:          return -EPERM;
        case NLE_BUSY:          return -EBUSY;
        case NLE_NODEV:         return -ENODEV;
        case NLE_NOADDR:        return -EADDRNOTAVAIL;
        case NLE_IMMUTABLE:     return -EROFS;
        case NLE_NOACCESS:      return -EACCES;
        default:                return -EIO;
        }
}
