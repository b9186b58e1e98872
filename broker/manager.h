/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.vmfed.Federation1.Manager on /org/vmfed/Federation1: list and look up
 * VMs, reload the configuration; properties Version and ActivePersona.
 */
#pragma once

#include "broker/broker.h"

/* MANAGER_INTERFACE: broker.h */

int manager_register(Broker *b);
