/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Starting, stopping and switching VMs over D-Bus:
 * Manager.StartVM/StopVM/SwitchPersona and the Progress signal on
 * /org/vmfed/Federation1, VM.Start/Stop on each VM object.  Calls are
 * answered when the operation has ended (broker/operation.h); progress
 * lines go out meanwhile as Progress(s operation, s line), with operation
 * "SENDER/COOKIE" of the call.
 */
#pragma once

#include "broker/broker.h"

/* Registers the Manager members and the VM object members. */
int lifecycle_iface_register(Broker *b);
