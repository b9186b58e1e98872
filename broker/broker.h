/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Broker: the state of one vmfedd process.  Owns the configuration that was
 * loaded (VM definitions, the policy snapshot and the facts derived from
 * them), the system bus connection, the hypervisor connection and the
 * per-VM guest channels.  Everything runs on the default GMainContext.
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
typedef struct Lifecycle Lifecycle;
typedef struct Services Services;
typedef struct NetvmLinks NetvmLinks;
typedef struct VmEvents VmEvents;
typedef struct OperationSet OperationSet;

/* One VM the broker knows from vms.d/: exported as a .VM object. */
typedef struct VmObject {
        const VmSpec *spec; /* borrowed from Broker.model */
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
        const char *vm;                      /* VM_STATE, AGENT_READY; else NULL */
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

/* Raise an event of the announcing kinds (AGENT_READY, FEDERATION_READY, REQUEST_NOTIFIED); the state setters below raise theirs. */
void broker_post_agent_ready(Broker *b, const char *vm);
void broker_post_federation_ready(Broker *b);
void broker_post_request_notified(Broker *b, const BrokerRequestNotice *n);
/* Remove every watch (the composition root, before the VM events go). */
void broker_watches_free(Broker *b);

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

struct Broker {
        char *config_dir;
        char *state_dir;
        char *policy_dir;  /* CONFIG/policy.d */
        char *channel_dir; /* STATE/channels */
        char *libvirt_uri;
        char *bus_address; /* NULL: the system bus */

        GMainLoop *loop;
        int exit_status;

        sd_bus *bus;
        GSource *bus_source;

        Hypervisor *hypervisor;
        VmEvents *vm_events;  /* VM state changes, delivered from an idle (broker/vm-events.h) */
        unsigned vm_events_watch, channels_watch;
        OperationSet *operations; /* pending federation operations (broker/operation.c) */
        Lifecycle *lifecycle; /* the federation on libvirt (broker/lifecycle.c) */
        Services *services;   /* clipboard, routing, asks (broker/guest-services.c) */
        NetvmLinks *netvm_links; /* vmfed-netd of each netvm, client addresses, host bridge (broker/netvm-link.c) */

        VmModel *model;        /* vms.d/ as last loaded (strictly), NULL before the first load that succeeded */
        char *model_error;     /* why the last load of vms.d/ failed (errors joined), NULL when it loaded */
        GHashTable *vm_objects; /* name → VmObject* (owning) */
        GHashTable *channels;   /* name → Channel* (owning) */

        PolicySnapshot *policy;
        PolicyFacts *facts;
        uint64_t policy_revision;
        char *active_persona; /* NULL: none */

        uint64_t next_request_id;

        char *domain_prefix; /* --domain-prefix (tests), NULL: "vmfed-" */
        char *bridge;        /* --bridge: the default netvm's bridge, NULL: no NICs */

        char *manage_group; /* "vmfed": its members may change things */
        bool have_vmfed_gid;
        gid_t vmfed_gid;

        BrokerHooks hooks;
        GPtrArray *watches; /* BrokerWatch* (broker.c), in the order they were added */
        unsigned next_watch_id, watch_dispatching;
};

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

/* A fresh id for a request, for audit lines and replies. */
uint64_t broker_next_request_id(Broker *b);

VmObject *broker_find_vm(Broker *b, const char *name);
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
 * b->channels, so channel_sync_all() must not drop channels for which
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
