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

/*
 * Export the interface.  It follows the broker's events (broker.h): a new
 * policy is PropertiesChanged of Revision, Valid and Diagnostics; a request
 * decided by a rule with notify=yes (vmfed.policy(5)) is the signal
 * RequestNotified(t id, s service, s argument, s source, s target,
 * s decision, s rule) for the desktop side.  id is the request's audit id;
 * decision "allow" or "deny" (an ask is notified when it is answered, with
 * its outcome); rule "FILE:LINE" or why (as in the audit line).  Emitted
 * only while a bus peer is subscribed (Policy.Subscribe(), like systemd's
 * Manager.Subscribe()): without one nothing is built or sent.
 */
int policy_iface_register(Broker *b);
