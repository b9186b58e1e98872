/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Lifecycle: the broker's federation (federation/federation.h) on its
 * hypervisor connection, and the one owner of VM state in the broker.
 *
 *   - hypervisor.c calls lifecycle_attach() when libvirt is connected and
 *     lifecycle_detach() when the connection is lost: the Federation is
 *     created (adopting running vmfed domains as they are) and freed with
 *     it; operations pending at a loss fail, and an interrupted switch is
 *     resumed when the connection returns.
 *   - the federation's state callback sets VM.State and ActivePersona
 *     (PropertiesChanged); without a federation every VM is "unknown".
 *   - once, when the first federation exists: federation_resume() (finish
 *     or roll back a switch a crashed broker left), then
 *     federation_autostart() (Autostart= VMs, services first).
 *   - disposables started for routing (broker.h) get a guest channel while
 *     they run.
 */
#pragma once

#include <libvirt/libvirt.h>

#include "broker/broker.h"
#include "federation/federation.h"

/* Opaque: the state of broker/lifecycle.c. */

int lifecycle_new(Broker *b, const char *domain_prefix, const char *bridge, Lifecycle **ret);
Lifecycle *lifecycle_free(Lifecycle *l);

void lifecycle_attach(Lifecycle *l, virConnectPtr conn);
void lifecycle_detach(Lifecycle *l);

/*
 * Hand the broker's VM model (broker_model(), just loaded) to the federation,
 * or create the federation from it when it could not be before.  Appends
 * messages to errors (may be NULL); 0 or -EINVAL.
 */
int lifecycle_reload(Lifecycle *l, GPtrArray *errors);

/*
 * The federation, or NULL with *ret_reason (optional, borrowed) saying why
 * ("no connection to libvirt", "vms.d/ does not load: ...").
 */
Federation *lifecycle_federation(Lifecycle *l, const char **ret_reason);

/* "running", "stopped", ...; "unknown" without a federation or for a VM it does not know. */
const char *lifecycle_vm_state(Lifecycle *l, const char *name);
void lifecycle_refresh_states(Lifecycle *l);

/* The routing API of broker.h (broker_vm_ensure_running(), broker_dispvm_*()), reached through BrokerHooks. */
int lifecycle_vm_ensure_running(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error);
int lifecycle_dispvm_start(Broker *b, const char *target, const char *caller, BrokerVmReadyFn cb, void *userdata,
                           char **ret_error);
int lifecycle_dispvm_release(Broker *b, const char *name);
bool lifecycle_dispvm_is_running(Broker *b, const char *name);
