/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Vm model: a VM of vms.d/ or a running disposable, its state, lookups,
 * and the queries of federation.h.
 */
#include "federation/federation.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

static const char *const state_names[_FEDERATION_VM_STATE_MAX] = {
        [FEDERATION_VM_STOPPED] = "stopped",   [FEDERATION_VM_STARTING] = "starting",
        [FEDERATION_VM_RUNNING] = "running",   [FEDERATION_VM_PAUSED] = "paused",
        [FEDERATION_VM_STOPPING] = "stopping", [FEDERATION_VM_SAVED] = "saved",
};

const char *federation_vm_state_to_string(FederationVmState s) {
        return s >= 0 && s < _FEDERATION_VM_STATE_MAX ? state_names[s] : NULL;
}

/* ---- VMs ------------------------------------------------------------------- */

void vm_free(Vm *vm) {
        if (!vm)
                return;
        if (vm->stop_timer)
                g_source_remove(vm->stop_timer);
        if (vm->press_timer)
                g_source_remove(vm->press_timer);
        if (vm->settle_timer)
                g_source_remove(vm->settle_timer);
        if (vm->qemu_watch)
                g_source_remove(vm->qemu_watch);
        safe_close(vm->qemu_pidfd);
        /* Waiters never woken (the federation is freed mid-stop): free what they hold. */
        for (guint i = 0; i < vm->stop_waiters->len; i++) {
                Waiter *w = vm->stop_waiters->pdata[i];
                if (w->free_userdata)
                        w->free_userdata(w->userdata);
        }
        g_ptr_array_unref(vm->stop_waiters);
        g_free(vm->name);
        g_free(vm->domain_name);
        g_free(vm->template_name);
        g_free(vm->overlay);
        g_free(vm);
}

Vm *vm_new(Federation *f, const char *name) {
        Vm *vm = g_new0(Vm, 1);
        vm->f = f;
        vm->name = g_strdup(name);
        vm->domain_name = g_strconcat(f->prefix, name, NULL);
        vm->state = FEDERATION_VM_STOPPED;
        vm->qemu_pidfd = -EBADF;
        vm->stop_waiters = g_ptr_array_new_with_free_func(g_free);
        g_hash_table_replace(f->vms, vm->name, vm);
        return vm;
}

Vm *vm_new_disposable(Federation *f, const char *name, const char *template_name, const char *overlay) {
        Vm *vm = vm_new(f, name);
        vm->disposable = true;
        vm->template_name = g_strdup(template_name);
        vm->overlay = g_strdup(overlay);
        return vm;
}

Vm *federation_find_vm(Federation *f, const char *name) {
        return name ? g_hash_table_lookup(f->vms, name) : NULL;
}

Vm *federation_find_vm_by_domain(Federation *f, const char *domain_name) {
        if (!domain_name || !g_str_has_prefix(domain_name, f->prefix))
                return NULL;
        return federation_find_vm(f, domain_name + strlen(f->prefix));
}

bool vm_is_active(const Vm *vm) {
        return vm->state == FEDERATION_VM_STARTING || vm->state == FEDERATION_VM_RUNNING ||
               vm->state == FEDERATION_VM_PAUSED || vm->state == FEDERATION_VM_STOPPING;
}

bool vm_holds_resources(const Vm *vm) {
        return vm_is_active(vm) || vm->releasing;
}

static void vm_unwatch_qemu(Vm *vm) {
        g_clear_handle_id(&vm->qemu_watch, g_source_remove);
        vm->qemu_pidfd = safe_close(vm->qemu_pidfd);
}

void vm_set_state(Vm *vm, FederationVmState s, const char *reason) {
        Federation *f = vm->f;
        if (vm->state == s)
                return;
        log_debug("federation: %s: %s → %s (%s)", vm->name, state_names[vm->state], state_names[s],
                  reason ? reason : "-");
        vm->state = s;
        federation_events_state(f, vm->name, s, reason);
}

const VmSpec *vm_get_spec(Federation *f, const Vm *vm) {
        return vm->configured ? vm_spec_find(f->specs, vm->name) : NULL;
}

/* libvirt reported the domain inactive: settle state, wake waiters, drop disposables. */
void vm_domain_stopped(Vm *vm, const char *reason, bool saved) {
        Federation *f = vm->f;
        g_autoptr(GPtrArray) waiters = NULL;
        g_autofree char *name = g_strdup(vm->name);

        g_clear_handle_id(&vm->stop_timer, g_source_remove);
        g_clear_handle_id(&vm->press_timer, g_source_remove);
        g_clear_handle_id(&vm->settle_timer, g_source_remove);
        vm_unwatch_qemu(vm);
        vm->releasing = false;
        if (vm->disposable)
                disposable_stopped(f, vm);
        vm_set_state(vm, saved ? FEDERATION_VM_SAVED : FEDERATION_VM_STOPPED, reason);
        waiters = steal_pointer(&vm->stop_waiters);
        vm->stop_waiters = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; i < waiters->len; i++) {
                Waiter *w = waiters->pdata[i];
                w->fn(f, 0, NULL, w->userdata);
        }
        vm = federation_find_vm(f, name);
        if (vm && vm->disposable && !vm_is_active(vm))
                g_hash_table_remove(f->vms, name);
}

/* ---- public operations ----------------------------------------------------- */

typedef struct OpCtx {
        FederationCallbacks cb;
} OpCtx;

OpCtx *federation_op_new(const FederationCallbacks *cb) {
        OpCtx *o = g_new0(OpCtx, 1);
        o->cb = cb ? *cb : (FederationCallbacks) {};
        return o;
}

void federation_op_done(Federation *f, int r, const char *error, void *userdata) {
        OpCtx *o = userdata;
        federation_events_done(f, &o->cb, r, error);
        g_free(o);
}

int federation_refuse(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;
        if (ret_error) {
                va_start(ap, fmt);
                *ret_error = g_strdup_vprintf(fmt, ap);
                va_end(ap);
        }
        return r;
}

/* ---- queries ------------------------------------------------------------- */

static gint compare_strings(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

char **federation_list_vms(Federation *f) {
        g_autoptr(GPtrArray) names = g_ptr_array_new();
        GHashTableIter it;
        gpointer key;

        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, &key, NULL))
                g_ptr_array_add(names, g_strdup(key));
        g_ptr_array_sort(names, compare_strings);
        g_ptr_array_add(names, NULL);
        return (char **) g_ptr_array_free(steal_pointer(&names), false);
}

FederationVmState federation_vm_state(Federation *f, const char *name) {
        Vm *vm = federation_find_vm(f, name);
        return vm ? vm->state : -ENOENT;
}

bool federation_vm_is_disposable(Federation *f, const char *name) {
        Vm *vm = federation_find_vm(f, name);
        return vm && vm->disposable;
}

const VmSpec *federation_vm_spec(Federation *f, const char *name) {
        return vm_spec_find(f->specs, name);
}

const char *federation_vm_domain_name(Federation *f, const char *name) {
        Vm *vm = federation_find_vm(f, name);
        return vm ? vm->domain_name : NULL;
}

const char *federation_active_persona(Federation *f) {
        GHashTableIter it;
        gpointer value;

        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                Vm *vm = value;
                const VmSpec *s = vm_get_spec(f, vm);
                if (s && s->role == VM_ROLE_PERSONA && vm_is_active(vm) && vm->state != FEDERATION_VM_STOPPING)
                        return vm->name;
        }
        return NULL;
}

bool federation_switch_in_progress(Federation *f) {
        return f->sw != NULL;
}

uint64_t federation_generation(Federation *f) {
        return f->generation;
}

uint64_t federation_last_switch_overhead_ns(Federation *f) {
        return f->last_switch_overhead_ns;
}

