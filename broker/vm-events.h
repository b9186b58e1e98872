/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VmEvents: one-way, deferred VM events inside the broker (a watch list in
 * the style of iwd's and systemd-resolved's).
 *
 * The one producer is the Lifecycle (broker/lifecycle.c: the federation's
 * state callback).  vm_events_post() only queues; the queue is dispatched
 * from an idle source on the main loop, event by event, each to every
 * watch in the order the watches were added.  So no subscriber is ever
 * called from inside the code that made the change (a federation call, a
 * channel's teardown, a request's end), and a subscriber may free what it
 * owns: nobody up the stack holds a pointer into it.
 *
 * vm_events_defer() queues a call behind the events queued so far: the
 * end of an operation goes that way, so that the state changes it caused
 * are on the bus before its D-Bus call is answered.
 *
 * Watches may be added and removed from inside a dispatch (a removed one
 * is not called again, not even for the event being dispatched); events
 * posted from inside a dispatch are delivered after the current one, in
 * the same run.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "federation/federation.h"

typedef struct VmEvents VmEvents;

typedef struct VmEvent {
        const char *vm;
        FederationVmState state;
        const char *reason;         /* may be NULL */
        const char *active_persona; /* the active persona after the change, NULL: none */
        bool disposable;            /* a disposable of broker_dispvm_start(): its job's channel */
} VmEvent;

typedef void (*VmEventFn)(const VmEvent *e, void *userdata);
typedef void (*VmEventsCallFn)(void *userdata);

VmEvents *vm_events_new(void);
/* Pending events are dropped, pending deferred calls run (vm_events_flush() first to deliver events too). */
VmEvents *vm_events_free(VmEvents *ev);

/* A watch id (> 0).  destroy (may be NULL) gets userdata when the watch is removed or ev freed. */
unsigned vm_events_watch_add(VmEvents *ev, VmEventFn fn, void *userdata, GDestroyNotify destroy);
void vm_events_watch_remove(VmEvents *ev, unsigned id);

void vm_events_post(VmEvents *ev, const VmEvent *e);
void vm_events_defer(VmEvents *ev, VmEventsCallFn fn, void *userdata);
/*
 * The same, but called from inside a dispatch the call goes right after the
 * item being dispatched, before what was queued behind it (several such calls
 * keep their order): a consequence of the current event, such as the broker's
 * own events (broker.h), arrives before an operation's end queued behind that
 * event.  Outside a dispatch it is vm_events_defer().
 */
void vm_events_defer_next(VmEvents *ev, VmEventsCallFn fn, void *userdata);

/* Deliver everything queued now (shutdown; tests).  Not from inside a watch. */
void vm_events_flush(VmEvents *ev);
