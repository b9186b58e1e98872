/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hypervisor: the broker's libvirt connection.  libvirt's default event
 * implementation (GLib based since libvirt 6.x: virEventRegisterDefaultImpl()
 * attaches its sources to the default GMainContext) runs on the broker's
 * main loop, so keepalives, the close callback and domain lifecycle events
 * are dispatched there.  When the connection closes it is reopened every
 * few seconds, each attempt in a worker thread (virConnectOpen() to a hung
 * libvirtd waits; the loop does not); meanwhile every VM's State is
 * "unknown".  Only the first attempt, at start before the bus is served,
 * is synchronous.
 *
 * Domain lifecycle events and VM state belong to the federation
 * (broker/lifecycle.c): each new connection is handed to lifecycle_attach(),
 * a lost one to lifecycle_detach().  libvirt errors are translated by
 * federation/virt.c's virt_error().
 */
#pragma once

#include "broker/broker.h"

/* Call once, before any libvirt connection is opened. */
int hypervisor_init_event_loop(void);

int hypervisor_new(Broker *b, const char *uri, Hypervisor **ret);
Hypervisor *hypervisor_free(Hypervisor *h);

bool hypervisor_is_connected(Hypervisor *h);

/* A VM's state as the federation keeps it ("unknown" without one); no libvirt call. */
const char *hypervisor_domain_state(Hypervisor *h, const char *name);

/* Refresh every VM's State from the federation (after connecting and on reload). */
void hypervisor_refresh_states(Hypervisor *h);
