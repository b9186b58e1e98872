/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Client firewall: where a client VM's rules (vmfed.firewall(5)) come
 * from, for its netvm (broker/netvm-link.c):
 *
 *   1. CONFIG/firewall.d/NAME.rules, its text as it is;
 *   2. else the [Firewall] section of vms.d/NAME.vm: Rules= a ';'-separated
 *      list of rule lines (an empty list: "default drop");
 *   3. else none (NULL): no firewall, default accept to the uplink.
 *
 * A rules file that cannot be read, or a [Firewall] key other than Rules=,
 * fails closed ("default drop").  A disposable passes its template's name.
 */
#pragma once

#include <glib.h>

#include "federation/vmspec.h"

/* The rules text, or NULL for no firewall.  s: the VM's (or template's) spec. */
char *client_firewall_rules(const char *config_dir, const VmSpec *s, const char *name);

/* Append rules as netvm state-file lines: one Rule= per rule, "Rule=" alone for an empty set. */
void client_firewall_append_state(GString *s, const char *rules);
