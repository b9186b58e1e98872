/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.vmfed.NetVM1 at /org/vmfed/NetVM1: how the broker changes the
 * netvm's desired state over the agent channel.  Reference:
 * docs/dbus/org.vmfed.NetVM1.xml and docs/netvm.md.
 */
#pragma once

#include <systemd/sd-bus.h>

#include "netvm/netd.h"

#define NETVM_IFACE "org.vmfed.NetVM1"
#define NETVM_PATH "/org/vmfed/NetVM1"

int netvm_iface_add(sd_bus *bus, Netd *d, sd_bus_slot **ret_slot);
/* Emit PropertiesChanged for Clients (after a change). */
void netvm_iface_emit_changed(sd_bus *bus);
