/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Broker: the shared state of one vmfedd process, opaque outside broker.c.
 * Owns the configuration that was loaded (VM definitions and their VM
 * objects, the policy snapshot and the facts derived from them), the active
 * persona, request ids, the VM events' queue and the broker events (below).
 * It also holds one pointer to each module object of the process (the
 * lifecycle, the guest services, the netvm links, the channel table, the
 * pending operations) and the bus connection, for the modules to find each
 * other: the composition root (broker/daemon.c) creates, sets and frees
 * those.  Everything runs on the default GMainContext.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "federation/federation.h"
#include "federation/vm-model.h"
#include "policy/policy.h"

#define BROKER_BUS_NAME "org.vmfed.Federation1"
#define BROKER_ROOT_PATH "/org/vmfed/Federation1"
#define BROKER_VM_PATH_PREFIX "/org/vmfed/Federation1/vm"
/* The Manager interface: manager.c, lifecycle-iface.c, vm-config-iface.c, generations-iface.c add one vtable each. */
#define MANAGER_INTERFACE "org.vmfed.Federation1.Manager"

typedef struct Hypervisor Hypervisor;
typedef struct Channel Channel;
typedef struct ChannelTable ChannelTable;
typedef struct Lifecycle Lifecycle;
typedef struct Services Services;
typedef struct NetvmLinks NetvmLinks;
typedef struct VmEvents VmEvents;
typedef struct OperationSet OperationSet;

/* One VM the broker knows from vms.d/: exported as a .VM object.  Read-only outside broker.c. */
typedef struct VmObject {
        const VmSpec *spec; /* borrowed from the broker's model */
        char *state;      /* "running", "stopped", ..., see hypervisor.h */
} VmObject;

typedef struct Broker Broker;

/* ---- running VMs on demand (for routing; implemented in broker/lifecycle.c, reached through BrokerHooks) ----
 *
 * Both functions go through the federation library, so its invariants hold
 * whoever asks: two VMs that claim the same PCI device never run together,
 * one persona at a time, a VM's NetVM starts first, one switch at a time.
 *
 * cb is called exactly once, later, on the main loop (never from inside
 * the call that took it), unless the call returns a negative errno:
 * r = 0 with vm the VM's name (for a disposable the new name, "disp1234"),
 * or r < 0 with error a sentence (for the audit line / the caller).
 */
typedef void (*BrokerVmReadyFn)(Broker *b, int r, const char *vm, const char *error, void *userdata);

/*
 * Broker events: a change of the broker's shared state, or something a module
 * announces, for the modules that show it on the bus or act on it.  They are
 * never delivered from inside the code that made the change: each is queued
 * on the VM events' queue (vm-events.h) and delivered from its idle to every
 * watch in the order the watches were added.  One raised while a VM event is
 * dispatched (a VM's State and ActivePersona change there) goes right after
 * that event, before what was queued behind it (vm_events_defer_next()), so
 * PropertiesChanged is still on the bus before the reply to the StartVM whose
 * end was queued behind the VM event (vm_events_defer()).
 */
typedef enum BrokerEventKind {
        BROKER_EVENT_VM_STATE,         /* vm: its VmObject's State changed (broker_set_vm_state()) */
        BROKER_EVENT_ACTIVE_PERSONA,   /* Manager.ActivePersona changed (broker_set_active_persona()) */
        BROKER_EVENT_POLICY,           /* a new policy snapshot (broker_set_policy()) */
        BROKER_EVENT_AGENT_READY,      /* vm: its agent said Hello on its channel (channel.c) */
        BROKER_EVENT_AGENT_LOST,       /* vm: the connection of its agent (that had said Hello) is gone (channel.c) */
        BROKER_EVENT_FEDERATION_READY, /* the federation was (re)created (lifecycle.c) */
        BROKER_EVENT_REQUEST_NOTIFIED, /* request: decided by a rule with notify= (guest services, asks) */
} BrokerEventKind;

/* A request decided by a notify= rule: the fields of Policy.RequestNotified (policy-iface.h). */
typedef struct BrokerRequestNotice {
        uint64_t id;
        const char *service, *arg, *source, *target, *decision, *rule;
} BrokerRequestNotice;

typedef struct BrokerEvent {
        BrokerEventKind kind;
        const char *vm;                      /* VM_STATE, AGENT_READY, AGENT_LOST; else NULL */
        const BrokerRequestNotice *request;  /* REQUEST_NOTIFIED; else NULL */
} BrokerEvent;

typedef void (*BrokerEventFn)(Broker *b, const BrokerEvent *e, void *userdata);

/*
 * A watch id (> 0).  destroy (may be NULL) gets userdata when the watch is
 * removed or the broker freed.  Watches may be added and removed from inside a
 * delivery (a removed one hears nothing more).
 */
unsigned broker_watch_add(Broker *b, BrokerEventFn fn, void *userdata, GDestroyNotify destroy);
void broker_watch_remove(Broker *b, unsigned id);

/* Raise an event of the announcing kinds; the state setters below raise the others. */
void broker_post_agent_ready(Broker *b, const char *vm);
void broker_post_agent_lost(Broker *b, const char *vm);
void broker_post_federation_ready(Broker *b);
void broker_post_request_notified(Broker *b, const BrokerRequestNotice *n);

/*
 * What the broker asks other modules for, set by the composition root
 * (broker/daemon.c): broker.c itself includes no other broker module.  These
 * are requests with results, so they stay injected functions; notifications
 * travel as broker events (above).
 */
typedef struct BrokerHooks {
        /* broker_reload() (model NULL) and broker_reload_edited(). */
        int (*reload)(Broker *b, VmModel *model, GPtrArray **ret_errors);
        /* The federation (lifecycle_federation()), NULL while there is none. */
        Federation *(*federation)(Broker *b);
        /* Lifecycle → netvm links, before a VM starts: netvm_links_prepare(). */
        int (*netvm_prepare)(Broker *b, const char *vm);
        /* Policy → generations: generations_record(). */
        int (*record_generation)(Broker *b, const char *description);
        /* The routing API below (lifecycle_vm_ensure_running(), lifecycle_dispvm_*()). */
        int (*vm_ensure_running)(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error);
        int (*dispvm_start)(Broker *b, const char *target, const char *caller, BrokerVmReadyFn cb, void *userdata,
                            char **ret_error);
        int (*dispvm_release)(Broker *b, const char *name);
        bool (*dispvm_is_running)(Broker *b, const char *name);
} BrokerHooks;

/* What broker_new() takes (copied). */
typedef struct BrokerOptions {
        const char *config_dir;
        const char *state_dir;
        const char *bridge;   /* --bridge: the default netvm's bridge, NULL: no NICs */
        bool have_manage_gid; /* members of manage_gid may change the federation (auth.c) */
        gid_t manage_gid;
} BrokerOptions;

/*
 * The composition root's: the broker's own state; its first VM events watch
 * keeps the VM objects' State and ActivePersona.  broker_free() frees what the
 * broker owns; the module objects set below must be freed (and unset) before.
 */
int broker_new(const BrokerOptions *o, const BrokerHooks *hooks, Broker **ret);
Broker *broker_free(Broker *b);

/* ---- what it was given ---- */
const char *broker_config_dir(const Broker *b);
const char *broker_state_dir(const Broker *b);
const char *broker_policy_dir(const Broker *b);  /* CONFIG/policy.d */
const char *broker_channel_dir(const Broker *b); /* STATE/channels */
const char *broker_bridge(const Broker *b);      /* NULL: none */
/* The group whose members may change the federation, false: none (only root and polkit). */
bool broker_manage_gid(const Broker *b, gid_t *ret);

/* ---- the module objects: set by the composition root (guest_services_start() sets its own) ---- */
sd_bus *broker_bus(const Broker *b);          /* the system bus (or --bus-address), NULL before the start */
VmEvents *broker_vm_events(const Broker *b);  /* owned by the broker */
OperationSet *broker_operations(const Broker *b);
Lifecycle *broker_lifecycle(const Broker *b); /* NULL before the start */
Services *broker_services(const Broker *b);
NetvmLinks *broker_netvm_links(const Broker *b);
ChannelTable *broker_channel_table(const Broker *b);
void broker_set_bus(Broker *b, sd_bus *bus);
void broker_set_operations(Broker *b, OperationSet *s);
void broker_set_lifecycle(Broker *b, Lifecycle *l);
void broker_set_services(Broker *b, Services *s);
void broker_set_netvm_links(Broker *b, NetvmLinks *n);
void broker_set_channel_table(Broker *b, ChannelTable *t);

/* ---- the configuration ---- */

/* vms.d/ as last loaded (strictly, borrowed), NULL before the first load that succeeded. */
VmModel *broker_model(const Broker *b);
/* Why the last load of vms.d/ failed (errors joined), NULL when it loaded. */
const char *broker_model_error(const Broker *b);
void broker_set_model_error(Broker *b, const char *error);
/* The State a VM new to the broker starts with. */
typedef const char *(*BrokerVmStateFn)(const char *vm, void *userdata);
/*
 * Take model (its reference) as the VM definitions: one VM object per VM, a
 * VM that had one keeps its State, a new one gets state_of().  Returns the
 * previous model (its reference; NULL: none), for the caller to compare.
 */
VmModel *broker_set_model(Broker *b, VmModel *model, BrokerVmStateFn state_of, void *userdata);

PolicySnapshot *broker_policy(const Broker *b); /* borrowed, NULL before the first load */
PolicyFacts *broker_facts(const Broker *b);
uint64_t broker_policy_revision(const Broker *b);
const char *broker_active_persona(const Broker *b); /* NULL: none */

/* Rebuild the policy facts from the model and the active persona. */
int broker_rebuild_facts(Broker *b);

/*
 * Reload VM definitions and policy.  The policy is always swapped in (fail
 * closed: a broken policy denies everything); VM definitions only when they
 * all load strictly (vm-model.h: one load, the broker's VM objects, the
 * policy facts and the federation all use it).  Returns 0, or -EINVAL with *ret_errors (may be NULL) listing
 * what is wrong ("FILE:LINE[:COLUMN]: message").
 */
int broker_reload(Broker *b, GPtrArray **ret_errors);
/*
 * The same after the federation changed vms.d/ itself (AddVM, RemoveVM): it
 * loaded and validated what it wrote, so the broker takes that model
 * (federation_model()) instead of loading the files a second time.
 */
int broker_reload_edited(Broker *b, VmModel *model, GPtrArray **ret_errors);

/*
 * Swap in a new policy snapshot (already validated or known broken), bump
 * Policy.Revision and emit PropertiesChanged.
 */
void broker_set_policy(Broker *b, PolicySnapshot *s);

/* The requests of BrokerHooks, for the modules: */
Federation *broker_federation(Broker *b);                    /* NULL while there is none */
int broker_netvm_prepare(Broker *b, const char *vm);          /* right before vm's domain starts */
int broker_record_generation(Broker *b, const char *description);

/* A fresh id for a request, for audit lines and replies. */
uint64_t broker_next_request_id(Broker *b);

const VmObject *broker_find_vm(const Broker *b, const char *name);
/* Update a VM's State and emit PropertiesChanged when it changed. */
void broker_set_vm_state(Broker *b, const char *name, const char *state);
/* Set Manager.ActivePersona (NULL: none), rebuild the policy facts (@active), emit PropertiesChanged. */
void broker_set_active_persona(Broker *b, const char *name);


/*
 * Make sure the VM `name` of vms.d/ runs: cb at once (from an idle) when
 * it is running, else it is started like Manager.StartVM (Progress signals
 * under operation id "vmfedd/N").  A persona is only started when no other
 * persona runs (it never switches away from the active one).  Refused at
 * once: -ENOENT (unknown VM), -EBUSY (an exclusive device is held, another
 * persona runs, a switch is under way, the VM is stopping), -ENXIO (no
 * hypervisor connection or vms.d/ does not load); *ret_error (optional)
 * gets the sentence.
 */
int broker_vm_ensure_running(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error);

/*
 * Start a disposable VM for one job.  target: "@dispvm" (the default
 * template; DefaultDispVM= of `caller` if it has one), "@dispvm:TEMPLATE"
 * or TEMPLATE.  caller (may be NULL): the calling VM.  cb gets the new VM's
 * name.  From then on broker_dispvm_is_running() is true for it and the
 * broker listens on its channel STATE/channels/NAME.sock (kept in
 * the channel table, so channel_sync_all() must not drop channels for which
 * broker_dispvm_is_running() is true).  Refusals as above (-ENOENT: no such
 * template).
 */
int broker_dispvm_start(Broker *b, const char *target, const char *caller, BrokerVmReadyFn cb, void *userdata,
                        char **ret_error);

/*
 * The job of disposable `name` ended: destroy it now (forced, no grace: it
 * is thrown away), its overlay is deleted and its channel closed.  0, or
 * -ENOENT when no such disposable runs.  A disposable that stops by itself
 * (the guest powered off) is cleaned up the same way without this call.
 */
int broker_dispvm_release(Broker *b, const char *name);
bool broker_dispvm_is_running(Broker *b, const char *name);
