/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Operation: one long federation operation (start, stop, persona switch,
 * resume, autostart, disposable start) and whoever waits for it — a D-Bus
 * call, kept unanswered until the operation ends, or a callback inside the
 * broker.  While it runs, its progress lines are broadcast as the signal
 * org.vmfed.Federation1.Manager.Progress(s operation, s line).
 *
 * Operation ids are known to a caller before it calls: for a D-Bus call the
 * id is "SENDER/COOKIE" — the caller's unique bus name and the serial
 * (cookie) of its method call, e.g. ":1.42/7"; a client subscribes to
 * Progress, sends the call, and keeps the lines whose id is its own.
 * Operations the broker starts itself are "vmfedd/N".
 *
 * Pending operations are kept in the broker's OperationSet: when the hypervisor
 * connection is lost they fail (the library abandons them; the federation
 * resumes an interrupted switch when the connection returns).
 */
#pragma once

#include "broker/broker.h"
#include "federation/federation.h"

typedef struct Operation Operation;
/* The pending operations of one broker (broker_operations()). */
typedef struct OperationSet OperationSet;

OperationSet *operation_set_new(void);
/* Call operation_abandon_all() first. */
OperationSet *operation_set_free(OperationSet *s);

/* r: 0 or negative errno; message: the error, or a result (a disposable's name), may be NULL. */
typedef void (*OperationDoneFn)(Broker *b, int r, const char *message, void *userdata);

/*
 * A new operation, registered as pending.  m (may be NULL): the D-Bus call
 * to answer when it ends (with no arguments on success, with the vmfed
 * error for r otherwise).  done (may be NULL) runs first.  what: "start
 * rivendale", for log lines.
 */
Operation *operation_new(Broker *b, sd_bus_message *m, const char *what, OperationDoneFn done, void *userdata);

const char *operation_id(Operation *op);

/*
 * Callbacks to hand to the federation library: progress → Progress signal,
 * done → operation_finish() from the VM event queue (broker/vm-events.h),
 * after the state changes the library reported before it.
 */
const FederationCallbacks *operation_callbacks(Operation *op);

/* Send one progress line (Manager.Progress) and log it at debug level. */
void operation_progress(Operation *op, const char *line);

/*
 * End the operation: call done, answer the D-Bus call, unregister and free
 * it.  For a call the library refused at once (it will not call back),
 * and for abandoning operations.
 */
void operation_finish(Operation *op, int r, const char *message);

/*
 * Drop an internal operation the library refused at once, without calling
 * done (the caller reports the refusal itself).
 */
void operation_cancel(Operation *op);

/* Fail every pending operation (the hypervisor connection is gone). */
void operation_abandon_all(Broker *b, int r, const char *message);
