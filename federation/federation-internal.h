/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared between federation.c (VMs, events, start/stop), switch.c and
 * disposable.c.  Not part of the library's API.
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

        FederationStateFn state_fn;
        void *state_userdata;

        Switch *sw;
        uint64_t last_switch_overhead_ns;

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

Vm *federation_find_vm(Federation *f, const char *name);
bool vm_is_active(const Vm *vm); /* starting, running, paused, stopping */
void vm_set_state(Vm *vm, FederationVmState s, const char *reason);
Vm *vm_new_disposable(Federation *f, const char *name, const char *template_name, const char *overlay);

void progress(const FederationCallbacks *cb, const char *fmt, ...) _printf_(2, 3);

/* May spec start now?  Exclusivity (devices, personas; VMs in `ignore` do
 * not count), passthrough sysfs checks, files. */
int federation_check_start(Federation *f, const VmSpec *s, Vm *ignore, char **ret_error);

/* Fill the domain parameters of a VM; strings are owned by the caller's GPtrArray. */
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

/* Run a long libvirt call in a worker thread; done on the loop.  When the
 * federation was freed meanwhile, done is not called and userdata_free
 * (may be NULL) releases userdata instead. */
typedef enum VirtJob {
        VIRT_JOB_CREATE,      /* virDomainCreate: boots, or restores a managed save */
        VIRT_JOB_CREATE_XML,  /* virDomainCreateXML: a transient domain */
        VIRT_JOB_MANAGED_SAVE,
        VIRT_JOB_DESTROY,
} VirtJob;
void virt_job_run(Federation *f, VirtJob job, virDomainPtr dom, const char *xml, VmDoneFn done, void *userdata,
                  GDestroyNotify userdata_free);

/* switch.c */
void switch_free(Switch *sw);
int switch_journal_read(Federation *f, char **ret_from, char **ret_to, char **ret_phase);

/* disposable.c */
int disposable_sweep(Federation *f, GHashTable *live_overlays);
void disposable_stopped(Federation *f, Vm *vm);
