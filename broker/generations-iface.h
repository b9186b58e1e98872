/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Configuration generations on org.vmfed.Federation1.Manager
 * (federation/generation.h): ListGenerations() and Rollback(), and the
 * record call every change the broker applies to vms.d/ or policy.d/ ends
 * with (AddVM/RemoveVM record through the federation library,
 * Policy.ReplaceFile/RemoveFile and a successful Reload through
 * generations_record()).
 */
#pragma once

#include "broker/broker.h"

int generations_iface_register(Broker *b);

/*
 * Record CONFIG/vms.d/ and CONFIG/policy.d/ as a new generation unless they
 * equal the latest.  Failures are logged (the change itself stands).
 */
int generations_record(Broker *b, const char *description);
