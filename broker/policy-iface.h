/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.vmfed.Federation1.Policy on /org/vmfed/Federation1: evaluate requests
 * against the loaded snapshot, read and edit the files of policy.d/.
 * Edits are validated against the whole policy (policy_snapshot_load() with
 * a PolicyOverride) before anything is written, written atomically, and
 * guarded by etags (see policy-file.h).
 */
#pragma once

#include "broker/broker.h"

#define POLICY_INTERFACE "org.vmfed.Federation1.Policy"

int policy_iface_register(Broker *b);
/* Emit PropertiesChanged for Revision, Valid and Diagnostics. */
void policy_iface_emit_changed(Broker *b);
