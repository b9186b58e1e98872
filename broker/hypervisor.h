/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hypervisor: the broker's libvirt connection.  libvirt's default event
 * implementation (GLib based since libvirt 6.x: virEventRegisterDefaultImpl()
 * attaches its sources to the default GMainContext) runs on the broker's
 * main loop, so keepalives, the close callback and domain lifecycle events
 * are dispatched there.  When the connection closes it is reopened every
 * few seconds; meanwhile every VM's State is "unknown".
 *
 * VM states reported on .VM.State: "running", "paused", "stopping",
 * "stopped", "crashed", "suspended" (to RAM), "undefined" (no libvirt
 * domain of that name), "unknown" (no hypervisor connection).
 */
#pragma once

#include "broker/broker.h"

/* Call once, before any libvirt connection is opened. */
int hypervisor_init_event_loop(void);

int hypervisor_new(Broker *b, const char *uri, Hypervisor **ret);
Hypervisor *hypervisor_free(Hypervisor *h);

bool hypervisor_is_connected(Hypervisor *h);

/* Query the state of one domain now (a libvirt call). */
const char *hypervisor_domain_state(Hypervisor *h, const char *name);

/* Refresh every VM's State from libvirt (after connecting and on reload). */
void hypervisor_refresh_states(Hypervisor *h);
