/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The federation: the running model of the VMs of vms.d/ on libvirt.
 *
 * The caller (vmfedd) owns the libvirt connection and the GLib main loop:
 * it calls virEventRegisterDefaultImpl() once before opening the
 * connection, runs the default GMainContext and hands the connection to
 * federation_new().  Everything here runs on that loop and never waits for
 * libvirtd: every libvirt call of an operation (lookups, define, create,
 * restore, managed save, shutdown, destroy, undefine) runs in a worker
 * thread and reports back on the loop, so a stalled libvirtd delays VM
 * operations, not the loop.  (federation_new() itself, at connection time,
 * still lists and adopts the domains synchronously.)  VM state follows
 * libvirt's lifecycle events and the QEMU process's pidfd, not polling.
 *
 * Operations (start, stop, switch, disposables) are asynchronous: they
 * return 0 when accepted, and later call cb->done exactly once, on the main
 * loop, never from inside the call (from the event queue: see
 * federation_watch_add()).  When refused at once they return a
 * negative errno and set *ret_error (optional) to a sentence; cb->done is
 * then not called.  cb->progress gets human-readable lines while the
 * operation runs (the broker's progress lines).
 *
 * Domains are named "<prefix><vm>" (prefix "vmfed-" by default) and carry
 * vmfed metadata (domain-xml.h); domains without the prefix are never
 * touched.
 *
 * Invariants kept whoever asks:
 *   - two VMs that claim the same PCI device never run at the same time;
 *   - at most one persona runs;
 *   - a VM's NetVM (a service VM) is started before it; a switch never
 *     stops service VMs;
 *   - one switch at a time (-EBUSY).
 *
 * Files in the state directory: switch.journal (an interrupted switch,
 * finished or rolled back by federation_resume()), disposables/\*.qcow2
 * (overlays, removed when their VM stops and swept at federation_new()),
 * channels/NAME.sock (agent channels), consoles/NAME.log (serial logs),
 * nvram/NAME.fd (a UEFI VM's variables, libvirt copies the template there at
 * its first start; kept for good: switches, restarts, RemoveVM; disposables'
 * are disposables/dispNNNN.fd), generations/ (generation.h).
 */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stdint.h>

#include "federation/domain-xml.h"
#include "federation/vm-model.h"
#include "federation/vmspec.h"

typedef struct Federation Federation;

typedef enum FederationVmState {
        FEDERATION_VM_STOPPED,
        FEDERATION_VM_STARTING,
        FEDERATION_VM_RUNNING,
        FEDERATION_VM_PAUSED,
        FEDERATION_VM_STOPPING,
        FEDERATION_VM_SAVED, /* stopped with a managed-save image: starting it resumes where it was */
        _FEDERATION_VM_STATE_MAX,
        FEDERATION_VM_STATE_INVALID = -EINVAL,
} FederationVmState;

/* "stopped", "starting", "running", "paused", "stopping", "saved" */
const char *federation_vm_state_to_string(FederationVmState s);

/* Not running at all: stopped, saved, or (negative, from federation_vm_state()) not in the federation. */
static inline bool federation_vm_state_is_down(FederationVmState s) {
        return s < 0 || s == FEDERATION_VM_STOPPED || s == FEDERATION_VM_SAVED;
}

/*
 * With DOMAIN_CHANNEL_CONNECT, libvirt refuses to start a domain whose
 * channel socket does not exist: the listener must be there first.  Called
 * on the main loop right before each VM's domain is started (disposables
 * included) with the VM name and the socket path; return 0 once something
 * listens there, or a negative errno to fail the start.
 */
typedef int (*FederationChannelFn)(const char *vm, const char *path, void *userdata);

typedef struct FederationOptions {
        const char *config_dir;     /* holds vms.d/ (and policy.d/ for generations); required */
        /*
         * The VM model to start from (vm-model.h; a reference is taken): the
         * broker's one strict load of vms.d/.  NULL: federation_new() loads
         * vms.d/ itself, strictly.
         */
        VmModel *model;
        const char *state_dir;      /* required; created if missing */
        const char *domain_prefix;  /* NULL: "vmfed-"; else must start with "vmfed-" (tests add a run id) */
        const char *sysfs_root;     /* NULL: "/sys" */
        /*
         * Bridge of the default netvm: the netvm's NIC joins it, clients join
         * it with isolated ports.  Other service VMs used as NetVM get
         * "vmfbr-" + the first 9 characters of their name.  NULL: no NICs.
         */
        const char *bridge;
        DomainChannelMode channel_mode; /* default CONNECT: the broker listens on STATE/channels/NAME.sock */
        FederationChannelFn prepare_channel; /* may be NULL (the caller keeps listeners for every VM) */
        void *prepare_channel_userdata;
        bool force_tcg;             /* also when $VMFED_FORCE_TCG=1 */
        bool fake_passthrough;      /* also when $VMFED_TEST_FAKE_PASSTHROUGH=1: exclusivity only, no <hostdev> */
        const char *ovmf_dir;       /* Firmware='s OVMF files; NULL: /usr/share/OVMF (federation/firmware.h) */
} FederationOptions;

typedef void (*FederationProgressFn)(const char *line, void *userdata);
/* r: 0 or negative errno.  message: the error, or on success an
 * operation-specific result (the disposable's name) or NULL. */
typedef void (*FederationDoneFn)(int r, const char *message, void *userdata);
/* reason: what libvirt said ("booted", "shutdown", "destroyed", "crashed",
 * "saved", "restored", "adopted", ...), may be NULL. */
typedef void (*FederationStateFn)(const char *vm, FederationVmState state, const char *reason, void *userdata);

typedef struct FederationCallbacks {
        FederationProgressFn progress; /* may be NULL */
        FederationDoneFn done;         /* may be NULL */
        void *userdata;
} FederationCallbacks;

/*
 * Take o->model, or load vms.d/ (strictly: on errors -EINVAL with *ret_errors), register for
 * lifecycle events on conn (a reference is taken), adopt running vmfed
 * domains as they are (nothing is started or stopped), sweep orphan
 * disposable overlays, record vms.d/ + policy.d/ as a generation when they
 * differ from the latest one (the first start's baseline; edits made while
 * no broker ran), finish a rollback a crash interrupted.  An interrupted switch is left for
 * federation_resume().
 */
int federation_new(virConnectPtr conn, const FederationOptions *o, Federation **ret, GPtrArray **ret_errors);

/*
 * The domain XML the federation would define for VM name of specs (a load
 * of vms.d/), offline, without libvirt: from o's state_dir (required),
 * domain_prefix, bridge, channel_mode, force_tcg and ovmf_dir as
 * federation_new() takes them, /dev/kvm probed the same way, the latest
 * generation of state_dir, and the UUID vmfed gives a domain it defines
 * first (a domain libvirt already has keeps its own).  For `vmfedctl vm
 * xml`.  Returns 0 with *ret_xml, or a negative errno with *ret_error
 * (optional): -ENOENT no such VM, -EINVAL a disposable template (its
 * disposables are transient domains) or no boot source.
 */
int federation_domain_xml(GPtrArray *specs, const FederationOptions *o, const char *name, char **ret_xml,
                          char **ret_error);

/*
 * The same, with the adoption's libvirt calls (a list of domains, a few
 * calls per domain) in the worker: for a program whose main loop serves
 * others meanwhile (vmfedd reconnecting to libvirtd).  *ret is returned at
 * once; loaded is called later, on the loop, when the adoption ended (r 0,
 * or a negative errno with error a sentence).  Until then f may only be
 * freed (loaded is then not called) and federation_is_loaded() is false.
 */
typedef void (*FederationLoadedFn)(Federation *f, int r, const char *error, void *userdata);
int federation_new_async(virConnectPtr conn, const FederationOptions *o, FederationLoadedFn loaded, void *userdata,
                         Federation **ret, GPtrArray **ret_errors);
bool federation_is_loaded(Federation *f);
/* Deregisters events; pending operations are abandoned (their done is not
 * called) — like a broker crash, which federation_resume() recovers from. */
Federation *federation_free(Federation *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Federation, federation_free)

/*
 * VM state events, one-way and deferred (iwd, systemd-resolved style).
 *
 * Every state change of a VM is queued and delivered later from an idle
 * source on the main loop, to every watch, in the order the changes
 * happened; never from inside a federation function its caller called.
 * The done callbacks of operations (FederationCallbacks.done) go through
 * the same queue, so a VM's state events reach the watches before the
 * done of the operation that caused them ("running" before StartVM's
 * done).  From a callback a subscriber may call any federation function,
 * add or remove watches (a removed one is not called again, even for the
 * event being delivered), free what it owns, or federation_free() (nothing
 * more is delivered).  Progress lines (FederationCallbacks.progress) are
 * not deferred.
 *
 * federation_watch_add() returns an id (never 0; 0 when fn is NULL) for
 * federation_watch_remove(); destroy (may be NULL) is called on userdata
 * when the watch is removed or the federation is freed.  A watch added
 * while an event is being delivered gets the events after it.
 */
unsigned federation_watch_add(Federation *f, FederationStateFn fn, void *userdata, GDestroyNotify destroy);
void federation_watch_remove(Federation *f, unsigned id);
/* One watch without destroy, replaced by the next call (fn NULL: none): the broker's lifecycle.c. */
void federation_set_state_callback(Federation *f, FederationStateFn fn, void *userdata);

/*
 * Finish or roll back a switch interrupted by a broker crash (the journal
 * in the state dir).  Returns 0 and calls cb->done when settled (with
 * message NULL and r=0 when there was nothing to do).
 */
int federation_resume(Federation *f, const FederationCallbacks *cb, char **ret_error);

/* Re-read vms.d/ after a change (running VMs keep running). */
int federation_reload(Federation *f, GPtrArray **ret_errors);

/*
 * Swap in a VM model the caller loaded (the broker's reload: one load for
 * the broker and the federation); a reference is taken.  Like
 * federation_reload(): new VMs appear, removed ones stay while they run.
 */
void federation_set_model(Federation *f, VmModel *m);
/* The VM model in use (borrowed): after federation_add_vm(), _remove_vm(), _rollback() the one they loaded. */
VmModel *federation_model(Federation *f);

/*
 * Start every VM with Autostart=yes that is not running, service VMs
 * first, one after the other (each after its NetVM).  Refusals do not stop
 * the others (a second autostart persona is refused: one persona runs).
 * done: 0, or the first error with every error joined by "; ".
 * The broker calls it once at start, after federation_resume().
 */
int federation_autostart(Federation *f, const FederationCallbacks *cb, char **ret_error);

/* ---- queries ------------------------------------------------------------ */

/* Names of configured VMs and running disposables, sorted; free with g_strfreev. */
char **federation_list_vms(Federation *f);
/* -ENOENT for an unknown name. */
FederationVmState federation_vm_state(Federation *f, const char *name);
/* A disposable (started by federation_start_disposable() or adopted as one). */
bool federation_vm_is_disposable(Federation *f, const char *name);
const VmSpec *federation_vm_spec(Federation *f, const char *name);
/* The libvirt domain name of a VM (known or disposable), or NULL. */
const char *federation_vm_domain_name(Federation *f, const char *name);
/* The running (or starting) persona, or NULL. */
const char *federation_active_persona(Federation *f);
bool federation_switch_in_progress(Federation *f);
/* The vms.d/ generation domains are defined from (generation.h); 0: none recorded. */
uint64_t federation_generation(Federation *f);

/*
 * Broker-side nanoseconds of the last completed switch: its wall time minus
 * time inside libvirt calls minus time waiting (for events, for worker
 * threads, for the guest).  For the benchmark.
 */
uint64_t federation_last_switch_overhead_ns(Federation *f);

/* ---- lifecycle ----------------------------------------------------------- */

/*
 * Start a configured VM (its NetVM chain first).  Refused at once:
 * -ENOENT (no such VM), -EBUSY (a device is held by a running VM, another
 * persona runs, a switch is under way), -EPERM/-ENODEV/-EOPNOTSUPP
 * (passthrough checks), -EALREADY (running).
 */
int federation_start_vm(Federation *f, const char *name, const FederationCallbacks *cb, char **ret_error);

/*
 * Stop: graceful (ACPI power button, then destroy after StopTimeout=
 * seconds) or forced (destroy now).  A service VM that running VMs use is
 * only stopped with force (else -EBUSY).  Stopping a stopped VM succeeds.
 * A saved VM's image is kept (Start resumes it); force also discards it.
 */
int federation_stop_vm(Federation *f, const char *name, bool force, const FederationCallbacks *cb, char **ret_error);

/*
 * Switch the active persona to name: stop the current persona (managed
 * save when it has no passthrough devices and libvirt can save it, else
 * shut down), wait until libvirt reports it stopped, start name.  If that
 * fails, the previous persona is started again and both errors reported.
 * -EBUSY when a switch is under way.  Switching to the active persona is
 * done at once (r=0).
 */
int federation_switch_persona(Federation *f, const char *name, const FederationCallbacks *cb, char **ret_error);

/*
 * Start a disposable VM.  target: "@dispvm" (the default template: the one
 * disposable-template VM, or the one named by DefaultDispVM= of `caller`),
 * "@dispvm:NAME" or NAME.  caller may be NULL.  On success done's message
 * is the new VM's name ("disp1234"); stop it like any VM, its overlay is
 * deleted however it stops.
 */
int federation_start_disposable(Federation *f, const char *target, const char *caller, const FederationCallbacks *cb,
                                char **ret_error);

/* ---- changes to vms.d/ --------------------------------------------------- */

/*
 * Add or replace vms.d/NAME.vm: validated with the whole federation first
 * (-EINVAL with *ret_errors), written atomically, recorded as a new
 * generation, reloaded.  A running VM keeps its old definition until it is
 * restarted.
 */
int federation_add_vm(Federation *f, const char *name, const char *untrusted_text, GPtrArray **ret_errors);

/*
 * Remove vms.d/NAME.vm: refused while the VM runs (-EBUSY) or when the rest
 * would not validate (-EINVAL, e.g. another VM's NetVM= names it); removes
 * the libvirt domain (and its saved state), records a generation.
 */
int federation_remove_vm(Federation *f, const char *name, GPtrArray **ret_errors);

/*
 * Record the current vms.d/ and policy.d/ as a generation (generation.h):
 * the broker calls this after each write of a policy file.  Returns
 * GENERATION_RECORDED or GENERATION_UNCHANGED (identical to the latest),
 * *ret_number (optional) the generation they now are.
 */
int federation_record_generation(Federation *f, const char *description, uint64_t *ret_number);

/*
 * Restore generation n of vms.d/ and policy.d/ (generation.h) and reload.
 * Refused (-EBUSY) during a switch.  *ret_new (optional): the generation
 * recorded for the rollback itself.
 */
int federation_rollback(Federation *f, uint64_t n, uint64_t *ret_new, GPtrArray **ret_errors);
