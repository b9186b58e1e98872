/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stopping a VM: graceful (ACPI power button, then destroy), forced, or a
 * managed save; waiters woken by libvirt's stopped event; federation_stop_vm().
 */
#include "federation/federation.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

#define VM_PRESS_INTERVAL 3 /* seconds between power-button presses during a graceful stop */

/* ---- stop ------------------------------------------------------------------ */

typedef struct StopCtx {
        char *name;
        FederationCallbacks cb;
        VmDoneFn done;
        void *userdata;
} StopCtx;

static void stop_ctx_free(void *userdata) {
        StopCtx *c = userdata;
        g_free(c->name);
        g_free(c);
}

static void stop_waiter_done(Federation *f, int r, const char *error, void *userdata) {
        StopCtx *c = userdata;
        Vm *vm = federation_find_vm(f, c->name);

        progress(&c->cb, "%s is %s", c->name, vm ? federation_vm_state_to_string(vm->state) : "gone");
        c->done(f, r, error, c->userdata);
        stop_ctx_free(c);
}

/* A worker's answer about a VM, on the loop: the VM by name (it may be gone meanwhile). */
static Vm *vm_of(Federation *f, void *name) {
        return federation_find_vm(f, name);
}

static void settle_checked(Federation *f, int r, const char *error, void *userdata) {
        Vm *vm = vm_of(f, userdata);

        if (vm && vm_is_active(vm) && (r == 0 || r == -ENOENT)) {
                log_warning("federation: %s: no stopped event from libvirt; it is inactive", vm->name);
                vm_domain_stopped(vm, "destroyed", false);
        }
        g_free(userdata);
}

static gboolean settle_check(gpointer userdata) {
        Vm *vm = userdata;
        FEDERATION_BUSY(vm->f);

        vm->settle_timer = 0;
        virt_domain_job(vm->f, vm->domain_name, VIRT_DOMAIN_IS_ACTIVE, settle_checked, g_strdup(vm->name), g_free);
        return G_SOURCE_REMOVE;
}

static void destroy_done(Federation *f, int r, const char *error, void *userdata) {
        Vm *vm = vm_of(f, userdata);

        if (r == -ENOENT && vm && vm_is_active(vm))
                vm_domain_stopped(vm, "gone", false);
        else if (r < 0)
                log_debug("federation: %s", error);
        /* The stopped event normally arrives right away; if not, look once. */
        vm = vm_of(f, userdata);
        if (vm && vm_is_active(vm) && !vm->settle_timer)
                vm->settle_timer = g_timeout_add_seconds(3, settle_check, vm);
        g_free(userdata);
}

static void vm_destroy(Federation *f, Vm *vm) {
        virt_domain_job(f, vm->domain_name, VIRT_DOMAIN_DESTROY, destroy_done, g_strdup(vm->name), g_free);
}

static gboolean stop_timeout(gpointer userdata) {
        Vm *vm = userdata;
        FEDERATION_BUSY(vm->f);

        vm->stop_timer = 0;
        g_clear_handle_id(&vm->press_timer, g_source_remove);
        log_notice("federation: %s did not stop within %u s; destroying it", vm->name, vm->stop_timeout);
        vm_destroy(vm->f, vm);
        return G_SOURCE_REMOVE;
}

static void pressed(Federation *f, int r, const char *error, void *userdata) {
}

/* A guest that was still booting may have missed the first press (no ACPI daemon yet): press again. */
static gboolean press_again(gpointer userdata) {
        Vm *vm = userdata;
        FEDERATION_BUSY(vm->f);

        if (vm->state != FEDERATION_VM_STOPPING) {
                vm->press_timer = 0;
                return G_SOURCE_REMOVE;
        }
        virt_domain_job(vm->f, vm->domain_name, VIRT_DOMAIN_SHUTDOWN, pressed, NULL, NULL);
        return G_SOURCE_CONTINUE;
}

typedef struct ShutdownCtx {
        char *name;
        FederationCallbacks cb;
} ShutdownCtx;

static void shutdown_ctx_free(gpointer p) {
        ShutdownCtx *c = p;
        g_free(c->name);
        g_free(c);
}

static void shutdown_pressed(Federation *f, int r, const char *error, void *userdata) {
        ShutdownCtx *c = userdata;
        Vm *vm = federation_find_vm(f, c->name);

        /* Only while the VM is on its way down: its stop's waiters (and their progress callbacks) still wait. */
        if (!vm || !vm_is_active(vm))
                return shutdown_ctx_free(c);
        if (r == -ENOENT) {
                vm_domain_stopped(vm, "gone", false);
                return shutdown_ctx_free(c);
        }
        if (r < 0) {
                progress(&c->cb, "%s: %s; destroying it", vm->name, error);
                vm_destroy(f, vm);
                return shutdown_ctx_free(c);
        }
        shutdown_ctx_free(c);
}

static void vm_shutdown(Federation *f, Vm *vm, const FederationCallbacks *cb) {
        const VmSpec *s = vm_get_spec(f, vm);
        ShutdownCtx *c = g_new0(ShutdownCtx, 1);

        vm->stop_timeout = s ? s->stop_timeout : VM_SPEC_STOP_TIMEOUT_DEFAULT;
        if (vm->disposable) {
                const VmSpec *t = vm_spec_find(f->specs, vm->template_name);
                vm->stop_timeout = t ? t->stop_timeout : VM_SPEC_STOP_TIMEOUT_DEFAULT;
        }
        c->name = g_strdup(vm->name);
        c->cb = cb ? *cb : (FederationCallbacks) {};
        progress(cb, "shutting down %s (ACPI power button; destroyed after %u s)", vm->name, vm->stop_timeout);
        if (vm_is_active(vm) && !vm->stop_timer)
                vm->stop_timer = g_timeout_add_seconds(vm->stop_timeout, stop_timeout, vm);
        if (vm_is_active(vm) && !vm->press_timer && vm->stop_timeout > VM_PRESS_INTERVAL)
                vm->press_timer = g_timeout_add_seconds(VM_PRESS_INTERVAL, press_again, vm);
        virt_domain_job(f, vm->domain_name, VIRT_DOMAIN_SHUTDOWN, shutdown_pressed, c, shutdown_ctx_free);
}

static void save_done(Federation *f, int r, const char *error, void *userdata) {
        ShutdownCtx *c = userdata;
        Vm *vm = federation_find_vm(f, c->name);

        if (r == -ENOENT && vm && vm_is_active(vm))
                vm_domain_stopped(vm, "gone", false);
        else if (r < 0 && vm && vm_is_active(vm)) {
                progress(&c->cb, "cannot save %s (%s); shutting it down", c->name, error);
                vm_shutdown(f, vm, &c->cb);
        }
        shutdown_ctx_free(c);
}

typedef struct DiscardCtx {
        char *name;
        VmDoneFn done;
        void *userdata;
} DiscardCtx;

static void discard_ctx_free(gpointer p) {
        DiscardCtx *c = p;
        g_free(c->name);
        g_free(c);
}

static void save_discarded(Federation *f, int r, const char *error, void *userdata) {
        DiscardCtx *c = userdata;
        Vm *vm = federation_find_vm(f, c->name);

        if (r >= 0 && vm && vm->state == FEDERATION_VM_SAVED)
                vm_set_state(vm, FEDERATION_VM_STOPPED, "saved state discarded");
        c->done(f, 0, NULL, c->userdata);
        discard_ctx_free(c);
}

void vm_stop_async(Federation *f, Vm *vm, StopMode mode, const FederationCallbacks *cb, VmDoneFn done,
                   void *userdata) {
        StopCtx *c;
        Waiter *w;

        if (!vm_is_active(vm)) {
                if (mode == STOP_FORCE && vm->state == FEDERATION_VM_SAVED) {
                        DiscardCtx *d = g_new0(DiscardCtx, 1);
                        d->name = g_strdup(vm->name);
                        d->done = done;
                        d->userdata = userdata;
                        virt_domain_job(f, vm->domain_name, VIRT_DOMAIN_SAVE_REMOVE, save_discarded, d,
                                        discard_ctx_free);
                        return;
                }
                federation_complete_later(f, done, userdata, 0, NULL);
                return;
        }
        c = g_new0(StopCtx, 1);
        c->name = g_strdup(vm->name);
        c->cb = cb ? *cb : (FederationCallbacks) {};
        c->done = done;
        c->userdata = userdata;
        w = g_new0(Waiter, 1);
        w->fn = stop_waiter_done;
        w->userdata = c;
        w->free_userdata = stop_ctx_free;
        g_ptr_array_add(vm->stop_waiters, w);

        if (vm->state == FEDERATION_VM_STOPPING && mode != STOP_FORCE)
                return; /* already on its way down: just wait */
        vm_set_state(vm, FEDERATION_VM_STOPPING, mode == STOP_SAVE ? "saving" : "stop requested");
        switch (mode) {
        case STOP_FORCE:
                progress(cb, "destroying %s", vm->name);
                vm_destroy(f, vm);
                break;
        case STOP_SAVE: {
                ShutdownCtx *s = g_new0(ShutdownCtx, 1);
                s->name = g_strdup(vm->name);
                s->cb = c->cb;
                progress(cb, "saving %s (managed save)", vm->name);
                virt_domain_job(f, vm->domain_name, VIRT_DOMAIN_MANAGED_SAVE, save_done, s, shutdown_ctx_free);
                break;
        }
        case STOP_GRACEFUL:
                vm_shutdown(f, vm, cb);
                break;
        }
}

int federation_stop_vm(Federation *f, const char *name, bool force, const FederationCallbacks *cb, char **ret_error) {
        FEDERATION_BUSY(f);
        Vm *vm = federation_find_vm(f, name);
        const VmSpec *s;

        if (!vm)
                return federation_refuse(ret_error, -ENOENT, "no VM named '%s'", name);
        s = vm_get_spec(f, vm);
        if (s && s->role == VM_ROLE_SERVICE && !force) {
                GHashTableIter it;
                gpointer value;
                g_hash_table_iter_init(&it, f->vms);
                while (g_hash_table_iter_next(&it, NULL, &value)) {
                        Vm *o = value;
                        /* Disposables use their template's network. */
                        const VmSpec *os = o->disposable ? vm_spec_find(f->specs, o->template_name) : vm_get_spec(f, o);
                        if (vm_is_active(o) && os && os->netvm && strcmp(os->netvm, name) == 0)
                                return federation_refuse(ret_error, -EBUSY,
                                                                 "%s is the NetVM of running VM %s; stop that "
                                                                 "first or force",
                                                                 name, o->name);
                }
        }
        if (f->sw && s && s->role == VM_ROLE_PERSONA)
                return federation_refuse(ret_error, -EBUSY, "a persona switch is under way");
        vm_stop_async(f, vm, force ? STOP_FORCE : STOP_GRACEFUL, cb, federation_op_done, federation_op_new(cb));
        return 0;
}
