/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the broker's netvm links ask the federation about a VM, answered
 * from its memory (no libvirt call: nothing here can block the loop).
 */
#pragma once

#include "federation/federation.h"

/* A running disposable's template (recorded when it started or was adopted), else NULL.  Borrowed. */
const char *federation_vm_template(Federation *f, const char *name);
