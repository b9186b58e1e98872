/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Editing vms.d/ over D-Bus: Manager.AddVM(name, config) and
 * Manager.RemoveVM(name).  A change is validated against the whole
 * federation before anything is written (InvalidArgs naming file, line
 * and key), written atomically and recorded as a generation by the
 * federation library, then the broker reloads: VM objects appear and
 * disappear with InterfacesAdded/InterfacesRemoved.
 */
#pragma once

#include "broker/broker.h"

#define VM_CONFIG_MAX (64 * 1024)

int vm_config_iface_register(Broker *b);
