/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A network interface name, as the state file (Interface=) and the host bridges take it. */
#pragma once

#include <stdbool.h>

/* Shorter than IFNAMSIZ, not "." or "..", no '/', ':', blank or control character. */
bool ifname_is_valid(const char *name);
