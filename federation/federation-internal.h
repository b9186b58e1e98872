/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared between the federation's files (one noun each: vm.c, domain-events.c, domain-params.c,
 * virt-job.c, exclusivity.c, vm-start.c, vm-stop.c, autostart.c, vms-edit.c,
 * adopt.c, federation.c, switch.c, disposable.c).  Not part of the library's API.
 */
#pragma once

#include "federation/federation.h"
#include "federation/virt.h"

typedef struct Switch Switch;

/* Internal completion: r, error message (NULL on success). */
typedef void (*VmDoneFn)(Federation *f, int r, const char *error, void *userdata);

typedef struct Waiter {
        VmDoneFn fn;
        void *userdata;
        GDestroyNotify free_userdata; /* when the VM goes away with the waiter never called */
} Waiter;

typedef enum StopMode {
        STOP_GRACEFUL, /* ACPI power button, destroy after StopTimeout= */
        STOP_FORCE,    /* destroy now */
        STOP_SAVE,     /* managed save; graceful when libvirt cannot save */
} StopMode;

typedef struct Vm {
        Federation *f;
        char *name;
        char *domain_name;
        bool configured;      /* in vms.d/ (false: a disposable or a removed VM still running) */
        bool disposable;
        char *template_name;  /* disposables */
        char *overlay;        /* disposables with a disk: the overlay file */
        FederationVmState state;
        bool restoring;          /* a start from a managed-save image is under way */
        /*
         * QEMU exited but libvirt has not reported the domain stopped yet
         * (it is still tearing it down and giving devices back): shown as
         * stopped, still counted as holding its devices and persona slot.
         */
        bool releasing;
        int qemu_pidfd;          /* pidfd of the domain's QEMU (local qemu:///system), or -EBADF */
        guint qemu_watch;
        GPtrArray *stop_waiters; /* Waiter* called when libvirt reports the domain stopped */
        guint stop_timer;        /* StopTimeout= for a graceful stop */
        guint press_timer;       /* presses the power button again while a graceful stop waits */
        guint settle_timer;      /* after destroy: check the domain once if no event came */
        unsigned stop_timeout;
} Vm;

struct Federation {
        unsigned n_ref;
        bool dead;            /* federation_free() was called; late callbacks only unref */
        virConnectPtr conn;
        int event_id;
        char *config_dir;
        char *state_dir;
        char *prefix;
        char *sysfs_root;     /* NULL: /sys without explicit root */
        char *bridge;
        char *ovmf_dir;       /* NULL: FIRMWARE_OVMF_DIR */
        DomainChannelMode channel_mode;
        FederationChannelFn prepare_channel;
        void *prepare_channel_userdata;
        bool force_tcg;
        bool fake_passthrough;
        bool kvm_available;
        VmModel *model;       /* the VM model in use (vm-model.h), a reference; shared with the broker */
        GPtrArray *specs;     /* vm_model_specs(model): VmSpec*, borrowed, read-only */
        GHashTable *vms;      /* name → Vm*, owning */
        uint64_t generation;

        /* events.c: state changes and operations' done, delivered in order from an idle source */
        GQueue events;
        guint events_idle;
        bool dispatching;
        GPtrArray *watches; /* Watch* */
        unsigned next_watch_id;
        unsigned state_watch; /* federation_set_state_callback()'s */

        Switch *sw;
        uint64_t last_switch_overhead_ns;

        GHashTable *virt_queues; /* virt-job.c: domain name → jobs waiting for the one running */

        /* adopt.c: federation_new_async()'s adoption under way; domain events that came meanwhile */
        bool loading;
        unsigned adopt_events;

        /* Busy-time accounting for the benchmark (see federation_busy_ns()). */
        unsigned busy_depth;
        uint64_t busy_ns, busy_t0, busy_virt0;
};

Federation *federation_ref(Federation *f);
void federation_unref(Federation *f);

/* Time the library spends on the main loop outside libvirt, cumulative. */
uint64_t federation_busy_ns(Federation *f);
void federation_busy_begin(Federation *f);
void federation_busy_end(Federation **fp);
/* Put at the top of every entry point from the main loop. */
#define FEDERATION_BUSY(f) \
        _cleanup_(federation_busy_end) _unused_ Federation *_busy_f_ = (federation_busy_begin(f), (f))

/* vm.c */
Vm *vm_new(Federation *f, const char *name); /* added to f->vms */
void vm_free(Vm *vm);
Vm *federation_find_vm(Federation *f, const char *name);
Vm *federation_find_vm_by_domain(Federation *f, const char *domain_name);
bool vm_is_active(const Vm *vm); /* starting, running, paused, stopping */
bool vm_holds_resources(const Vm *vm); /* active, or QEMU gone but libvirt still tearing down */
void vm_set_state(Vm *vm, FederationVmState s, const char *reason);
const VmSpec *vm_get_spec(Federation *f, const Vm *vm); /* NULL unless configured */
/* libvirt reported the domain inactive: settle state, wake waiters, drop disposables. */
void vm_domain_stopped(Vm *vm, const char *reason, bool saved);
Vm *vm_new_disposable(Federation *f, const char *name, const char *template_name, const char *overlay);

/* Public operations' completion: cb->done of a FederationCallbacks. */
typedef struct OpCtx OpCtx;
OpCtx *federation_op_new(const FederationCallbacks *cb);
void federation_op_done(Federation *f, int r, const char *error, void *userdata);
/* Set *ret_error (optional) and return r. */
int federation_refuse(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);

/* domain-events.c */
int federation_lifecycle_event(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque);
void vm_watch_qemu(Federation *f, Vm *vm);

/* adopt.c: take over running vmfed domains, sweep orphan overlays. */
int federation_adopt(Federation *f);
/* The same with libvirt's calls in the worker; f->loading until loaded is called (adopt.c). */
void federation_adopt_async(Federation *f, FederationLoadedFn loaded, void *userdata);

/* vms-edit.c: swap in a model (taking the reference) or specs loaded here
 * (new VMs appear, removed ones stay while they run). */
void federation_take_model(Federation *f, VmModel *model);
void federation_take_specs(Federation *f, GPtrArray *specs);

void progress(const FederationCallbacks *cb, const char *fmt, ...) _printf_(2, 3);

/* exclusivity.c: May spec start now?  Exclusivity (devices, personas; VMs in `ignore` do
 * not count), passthrough sysfs checks, files. */
int federation_check_start(Federation *f, const VmSpec *s, Vm *ignore, char **ret_error);
/* The same, not counting VMs libvirt is still tearing down (their releasing is waited for). */
int federation_check_start_after_release(Federation *f, const VmSpec *s, Vm *ignore, char **ret_error);
/* A VM whose QEMU exited, still torn down by libvirt, that keeps s from starting (its name), or NULL. */
const char *federation_releasing_conflict(Federation *f, const VmSpec *s);
/* Disk=, Kernel=, Initrd= readable?  The OVMF files of Firmware= and swtpm of TPM= there (firmware.h)? */
int federation_check_files(Federation *f, const VmSpec *s, char **ret_error);

/* Fill the domain parameters of a VM; strings are owned by the caller's GPtrArray.  The NVRAM is
 * STATE/nvram/VM.fd (disposable.c puts a disposable's beside its overlay). */
void federation_domain_params(Federation *f, const VmSpec *s, const char *vm_name, GPtrArray *owned,
                              DomainXmlParams *p);

/* CONNECT mode: have the caller listen on the VM's channel socket before its domain starts. */
int federation_prepare_channel(Federation *f, const char *vm_name, char **ret_error);

/* Async building blocks; done is always called later, on the loop. */
void vm_start_async(Federation *f, Vm *vm, const FederationCallbacks *cb, VmDoneFn done, void *userdata);
void vm_stop_async(Federation *f, Vm *vm, StopMode mode, const FederationCallbacks *cb, VmDoneFn done,
                   void *userdata);
/* Call done from an idle source (for results known at once). */
void federation_complete_later(Federation *f, VmDoneFn done, void *userdata, int r, const char *error);

/*
 * Every libvirt call that waits for libvirtd runs in a worker thread (GLib's
 * task pool): a stalled libvirtd then delays libvirt work, never the loop.
 * Jobs with the same key (a domain name; NULL: none) run one at a time, in
 * the order submitted.  done runs on the loop; when the federation was freed
 * meanwhile, done is not called and userdata_free (may be NULL) releases
 * userdata instead.
 */
typedef enum VirtJob {
        VIRT_JOB_CREATE_XML,  /* virDomainCreateXML: a transient domain */
        VIRT_JOB_CALL,        /* virt_job_call() */
} VirtJob;
void virt_job_run(Federation *f, VirtJob job, const char *key, const char *xml, VmDoneFn done, void *userdata,
                  GDestroyNotify userdata_free);
/*
 * work runs in the thread with the connection (thread-safe in libvirt) and
 * userdata (the loop does not touch it until done); it returns 0 (or a
 * positive result) or a negative errno and may set *ret_error.  work must
 * not touch the Federation or its Vms.
 */
typedef int (*VirtWorkFn)(virConnectPtr conn, void *userdata, char **ret_error);
void virt_job_call(Federation *f, const char *key, VirtWorkFn work, VmDoneFn done, void *userdata,
                   GDestroyNotify userdata_free);
/* Worker side: look a domain up; -ENOENT (with *ret_error) when libvirt has no such domain. */
int virt_lookup(virConnectPtr conn, const char *domain_name, virDomainPtr *ret, char **ret_error);

/*
 * One call on a domain, by name, in the worker (lookup included).  done's r:
 * 0 (IS_ACTIVE: 1 active, 0 not), -ENOENT when libvirt has no such domain,
 * else the call's error.  userdata_free as for virt_job_run().
 */
typedef enum VirtDomainOp {
        VIRT_DOMAIN_DESTROY,
        VIRT_DOMAIN_SHUTDOWN,     /* ACPI power button; the default method where that is refused */
        VIRT_DOMAIN_MANAGED_SAVE,
        VIRT_DOMAIN_SAVE_REMOVE,  /* discard the managed-save image */
        VIRT_DOMAIN_IS_ACTIVE,
        VIRT_DOMAIN_UNDEFINE,     /* with its managed save; NVRAM and TPM state kept */
} VirtDomainOp;
void virt_domain_job(Federation *f, const char *domain_name, VirtDomainOp op, VmDoneFn done, void *userdata,
                     GDestroyNotify userdata_free);

/* events.c: queue a state change / an operation's cb->done (nothing when cb or cb->done is NULL) */
void federation_events_state(Federation *f, const char *vm, FederationVmState state, const char *reason);
void federation_events_done(Federation *f, const FederationCallbacks *cb, int r, const char *message);
/* federation_free(): drop what is queued, release the watches. */
void federation_events_clear(Federation *f);

/* switch.c */
void switch_free(Switch *sw);
int switch_journal_read(Federation *f, char **ret_from, char **ret_to, char **ret_phase);

/* disposable.c */
int disposable_sweep(Federation *f, GHashTable *live_overlays); /* overlays and NVRAM files of live disposables */
char *disposable_nvram_path(Federation *f, const char *name);
void disposable_stopped(Federation *f, Vm *vm);
