/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.vmfed.NetVM1 at /org/vmfed/NetVM1: how the broker changes the
 * netvm's desired state over the agent channel.  Reference:
 * docs/dbus/org.vmfed.NetVM1.xml and docs/netvm.md.
 *
 * The interface knows nothing of the daemon around it (netvm/netd.c): it
 * reads and changes the desired state through NetvmIfaceOps only.
 */
#pragma once

#include <systemd/sd-bus.h>

#include "netvm/netstate.h"

#define NETVM_IFACE "org.vmfed.NetVM1"
#define NETVM_PATH "/org/vmfed/NetVM1"

typedef struct NetvmIfaceOps {
        /* The state being enforced (NULL until the first one was applied). */
        const NetState *(*get_state)(void *userdata);
        /*
         * Enforce new_state (taken over in every case).  < 0 and *errorp
         * saying why when it could not be put in force (docs/netvm.md).
         */
        int (*apply)(void *userdata, NetState *new_state, char **errorp);
        void *userdata;
} NetvmIfaceOps;

/* ops must outlive the slot. */
int netvm_iface_add(sd_bus *bus, const NetvmIfaceOps *ops, sd_bus_slot **ret_slot);
/* Emit PropertiesChanged for Clients (after a change). */
void netvm_iface_emit_changed(sd_bus *bus);
