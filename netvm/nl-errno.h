/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libnl's error codes at the boundary (netvm/links.c, netvm/host/hostnet.c). */
#pragma once

/* libnl's -NLE_* as a negative errno. */
int nl_error_to_errno(int nlerr);
