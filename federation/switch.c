/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Persona switching: stop the active persona (managed save when it has no
 * passthrough devices, else shut down), wait until libvirt reports it
 * stopped (for managed hostdevs libvirt has given the devices back to the
 * host by then), start the target; on failure start the previous persona
 * again.  One switch at a time.
 *
 * STATE/switch.journal (GKeyFile [Switch] From=, To=, Phase=stopping |
 * starting | rollback) is written atomically before each phase and removed
 * at the end, so a broker that crashed mid-switch finishes it or rolls it
 * back in federation_resume().
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

#define JOURNAL "switch.journal"

struct Switch {
        char *from;     /* persona to stop, may be NULL */
        char *to;
        char *fallback; /* persona to start again on failure, may be NULL */
        FederationCallbacks cb;
        uint64_t busy0;
        int first_r;
        char *first_error;
        guint release_timer;  /* gives up waiting until libvirt no longer lists release_of */
        unsigned release_token; /* tells a current answer or wake-up from a stale one */
        bool release_warned;
        char *release_of;  /* the VM waited for */
        void (*release_next)(Federation *f);
};

void switch_free(Switch *sw) {
        if (!sw)
                return;
        g_clear_handle_id(&sw->release_timer, g_source_remove);
        g_free(sw->release_of);
        g_free(sw->from);
        g_free(sw->to);
        g_free(sw->fallback);
        g_free(sw->first_error);
        g_free(sw);
}

static char *journal_path(Federation *f) {
        return g_build_filename(f->state_dir, JOURNAL, NULL);
}

static int journal_write(Federation *f, const char *phase) {
        Switch *sw = f->sw;
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autofree char *path = journal_path(f), *data = NULL;
        gsize len;
        int r;

        g_key_file_set_string(kf, "Switch", "From", sw->fallback ? sw->fallback : "");
        g_key_file_set_string(kf, "Switch", "To", sw->to);
        g_key_file_set_string(kf, "Switch", "Phase", phase);
        data = g_key_file_to_data(kf, &len, NULL);
        r = write_file_atomic(path, data, len, 0644);
        if (r < 0)
                log_warning_errno(r, "federation: cannot write %s: %s", path, g_strerror(-r));
        return r;
}

static void journal_remove(Federation *f) {
        g_autofree char *path = journal_path(f);
        int r = unlink_durable_at(AT_FDCWD, path);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "federation: cannot remove %s: %s", path, g_strerror(-r));
}

int switch_journal_read(Federation *f, char **ret_from, char **ret_to, char **ret_phase) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autofree char *path = journal_path(f);
        g_autofree char *from = NULL, *to = NULL, *phase = NULL;

        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL))
                return access(path, F_OK) < 0 ? -ENOENT : -EINVAL;
        from = g_key_file_get_string(kf, "Switch", "From", NULL);
        to = g_key_file_get_string(kf, "Switch", "To", NULL);
        phase = g_key_file_get_string(kf, "Switch", "Phase", NULL);
        if (!to || !phase)
                return -EINVAL;
        *ret_from = from && from[0] ? steal_pointer(&from) : NULL;
        *ret_to = steal_pointer(&to);
        *ret_phase = steal_pointer(&phase);
        return 0;
}

static void switch_finish(Federation *f, int r, const char *message) {
        Switch *sw = steal_pointer(&f->sw);
        FederationCallbacks cb = sw->cb;

        journal_remove(f);
        f->last_switch_overhead_ns = federation_busy_ns(f) - sw->busy0;
        log_info("federation: switch to %s %s (%.2f ms on the broker's side)%s%s", sw->to,
                 r < 0 ? "failed" : "done", f->last_switch_overhead_ns / 1e6, message ? ": " : "",
                 message ? message : "");
        switch_free(sw);
        federation_events_done(f, &cb, r, message);
}

static void switch_rolled_back(Federation *f, int r, const char *error, void *userdata) {
        Switch *sw = f->sw;
        g_autofree char *msg = NULL;

        if (r < 0)
                msg = g_strdup_printf("%s; starting %s again also failed: %s", sw->first_error, sw->fallback, error);
        else
                msg = g_strdup_printf("%s; rolled back to %s", sw->first_error, sw->fallback);
        progress(&sw->cb, "%s", msg);
        switch_finish(f, sw->first_r, msg);
}

static void switch_when_released(Federation *f, const char *name, void (*next)(Federation *f));
static void switch_start_fallback(Federation *f);

static void switch_rollback(Federation *f, int r, const char *error) {
        Switch *sw = f->sw;
        Vm *fb = federation_find_vm(f, sw->fallback);
        const char *active = federation_active_persona(f);

        sw->first_r = r;
        sw->first_error = g_strdup(error);
        if (!fb || (active && strcmp(active, sw->fallback) == 0)) {
                switch_finish(f, r, error);
                return;
        }
        progress(&sw->cb, "%s; starting %s again", error, sw->fallback);
        (void) journal_write(f, "rollback");
        if (vm_is_active(fb)) {
                federation_complete_later(f, switch_rolled_back, NULL, 0, NULL);
                return;
        }
        switch_when_released(f, sw->to, switch_start_fallback);
}

static void switch_started(Federation *f, int r, const char *error, void *userdata) {
        Switch *sw = f->sw;

        if (r < 0) {
                if (sw->fallback)
                        switch_rollback(f, r, error);
                else
                        switch_finish(f, r, error);
                return;
        }
        progress(&sw->cb, "%s is the active persona", sw->to);
        switch_finish(f, 0, NULL);
}

static void switch_start_target(Federation *f) {
        Switch *sw = f->sw;
        Vm *to = federation_find_vm(f, sw->to);
        const VmSpec *s = federation_vm_spec(f, sw->to);
        g_autofree char *err = NULL;
        int r;

        /* A VM whose QEMU exited still holds its devices until libvirt has torn it down: wait for that. */
        if (s && to && federation_releasing_conflict(f, s)) {
                switch_when_released(f, federation_releasing_conflict(f, s), switch_start_target);
                return;
        }
        (void) journal_write(f, "starting");
        r = s && to ? federation_check_start(f, s, NULL, &err) : -ENOENT;
        if (r < 0) {
                if (!err)
                        err = g_strdup_printf("%s is not configured", sw->to);
                switch_started(f, r, err, NULL);
                return;
        }
        progress(&sw->cb, "starting %s", sw->to);
        vm_start_async(f, to, &sw->cb, switch_started, NULL);
}

#define RELEASE_TIMEOUT_S 10

/*
 * A persona that stopped (or failed to start) holds its devices until
 * libvirt no longer lists it: start the next one only then.  tests/faults
 * saw libvirt list a persona whose virDomainCreate() had failed while the
 * rollback started the previous one, both holding the same device.  The
 * worker asks libvirt once; while it still lists the domain, the switch
 * waits for the domain's stopped event (a stop waiter), at most
 * RELEASE_TIMEOUT_S seconds.  No polling.
 */
static bool release_current(Federation *f, void *token) {
        return f->sw && f->sw->release_token == GPOINTER_TO_UINT(token);
}

static void switch_release_check(Federation *f);

static void switch_release_woken(Federation *f, int r, const char *error, void *token) {
        if (release_current(f, token))
                switch_release_check(f);
}

static void switch_release_answer(Federation *f, int r, const char *error, void *token) {
        Switch *sw = f->sw;
        Vm *vm;

        if (!release_current(f, token))
                return;
        vm = federation_find_vm(f, sw->release_of);
        if (r == 1 && vm) {
                Waiter *w = g_new0(Waiter, 1);
                if (!sw->release_warned)
                        log_warning("federation: libvirt still lists %s as running; waiting", sw->release_of);
                sw->release_warned = true;
                w->fn = switch_release_woken;
                w->userdata = token;
                g_ptr_array_add(vm->stop_waiters, w);
                return;
        }
        g_clear_handle_id(&sw->release_timer, g_source_remove);
        sw->release_token++; /* before waking waiters: ours are stale now */
        /* Gone from libvirt before its stopped event reached us: its devices are back. */
        if (vm && vm->releasing)
                vm_domain_stopped(vm, "failed", false);
        if (f->sw != sw)
                return;
        sw->release_next(f);
}

static gboolean switch_release_timeout(gpointer userdata) {
        Federation *f = userdata;
        FEDERATION_BUSY(f);
        Switch *sw = f->sw;
        g_autofree char *msg = g_strdup_printf("cannot stop %s: libvirt still runs it", sw->release_of);

        sw->release_timer = 0;
        sw->release_token++;
        switch_finish(f, -EBUSY, msg);
        return G_SOURCE_REMOVE;
}

static void switch_release_check(Federation *f) {
        Switch *sw = f->sw;
        Vm *vm = federation_find_vm(f, sw->release_of);

        if (!vm || !vm->domain_name) {
                switch_release_answer(f, 0, NULL, GUINT_TO_POINTER(sw->release_token));
                return;
        }
        virt_domain_job(f, vm->domain_name, VIRT_DOMAIN_IS_ACTIVE, switch_release_answer,
                        GUINT_TO_POINTER(sw->release_token), NULL);
}

static void switch_when_released(Federation *f, const char *name, void (*next)(Federation *f)) {
        Switch *sw = f->sw;

        if (name != sw->release_of) {
                g_free(sw->release_of);
                sw->release_of = g_strdup(name);
        }
        sw->release_next = next;
        sw->release_warned = false;
        sw->release_token++;
        g_clear_handle_id(&sw->release_timer, g_source_remove);
        sw->release_timer = g_timeout_add_seconds(RELEASE_TIMEOUT_S, switch_release_timeout, f);
        switch_release_check(f);
}

static void switch_start_fallback(Federation *f) {
        vm_start_async(f, federation_find_vm(f, f->sw->fallback), &f->sw->cb, switch_rolled_back, NULL);
}

static void switch_stopped(Federation *f, int r, const char *error, void *userdata) {
        Switch *sw = f->sw;
        Vm *from = federation_find_vm(f, sw->from);

        if (r < 0 || (from && vm_is_active(from))) {
                g_autofree char *msg =
                        g_strdup_printf("cannot stop %s: %s", sw->from, error ? error : "it is still running");
                switch_finish(f, r < 0 ? r : -EBUSY, msg);
                return;
        }
        /* The stopped event came: with managed hostdevs libvirt has reattached the devices by now. */
        switch_when_released(f, sw->from, switch_start_target);
}

static void switch_run(Federation *f) {
        Switch *sw = f->sw;
        Vm *from = federation_find_vm(f, sw->from);
        const VmSpec *fs = federation_vm_spec(f, sw->from);

        (void) journal_write(f, "stopping");
        if (!from || !vm_is_active(from)) {
                switch_start_target(f);
                return;
        }
        /* Passthrough personas are shut down (devices cannot be saved); others keep their state. */
        progress(&sw->cb, "stopping persona %s", sw->from);
        vm_stop_async(f, from, fs && fs->devices[0] ? STOP_GRACEFUL : STOP_SAVE, &sw->cb, switch_stopped, NULL);
}

static Switch *switch_new(Federation *f, const char *from, const char *to, const char *fallback,
                          const FederationCallbacks *cb) {
        Switch *sw = g_new0(Switch, 1);
        sw->from = g_strdup(from);
        sw->to = g_strdup(to);
        sw->fallback = g_strdup(fallback);
        sw->cb = cb ? *cb : (FederationCallbacks) {};
        sw->busy0 = federation_busy_ns(f);
        return sw;
}

static void done_later(Federation *f, int r, const char *error, void *userdata) {
        FederationCallbacks *cb = userdata;
        federation_events_done(f, cb, r, error);
        g_free(cb);
}

static void complete_cb_later(Federation *f, const FederationCallbacks *cb, int r, const char *message) {
        FederationCallbacks *copy = g_new0(FederationCallbacks, 1);
        if (cb)
                *copy = *cb;
        federation_complete_later(f, done_later, copy, r, message);
}

int federation_switch_persona(Federation *f, const char *name, const FederationCallbacks *cb, char **ret_error) {
        FEDERATION_BUSY(f);
        const VmSpec *s = federation_vm_spec(f, name);
        Vm *vm = federation_find_vm(f, name), *current;
        const char *active = federation_active_persona(f);
        g_autofree char *err = NULL;
        int r;

        if (f->sw) {
                if (ret_error)
                        *ret_error = g_strdup_printf("a switch to %s is under way", f->sw->to);
                return -EBUSY;
        }
        if (!s || !vm) {
                if (ret_error)
                        *ret_error = g_strdup_printf("no VM named '%s' in vms.d/", name);
                return -ENOENT;
        }
        if (s->role != VM_ROLE_PERSONA) {
                if (ret_error)
                        *ret_error = g_strdup_printf("%s is a %s VM, not a persona", name,
                                                     s->role == VM_ROLE_SERVICE ? "service" : "non-persona");
                return -EINVAL;
        }
        if (active && strcmp(active, name) == 0) {
                complete_cb_later(f, cb, 0, NULL);
                return 0;
        }
        /* Refuse before stopping anything what would fail anyway (a VM libvirt is
         * still tearing down is waited for, in switch_start_target()). */
        current = federation_find_vm(f, active);
        r = federation_check_start_after_release(f, s, current, &err);
        if (r < 0) {
                if (ret_error)
                        *ret_error = steal_pointer(&err);
                return r;
        }
        f->sw = switch_new(f, active, name, active, cb);
        progress(cb, "switching persona %s → %s", active ? active : "(none)", name);
        switch_run(f);
        return 0;
}

int federation_resume(Federation *f, const FederationCallbacks *cb, char **ret_error) {
        FEDERATION_BUSY(f);
        g_autofree char *from = NULL, *to = NULL, *phase = NULL;
        const char *active;
        Vm *target;
        int r;

        if (f->sw) {
                if (ret_error)
                        *ret_error = g_strdup("a switch is under way");
                return -EBUSY;
        }
        r = switch_journal_read(f, &from, &to, &phase);
        if (r == -ENOENT) {
                complete_cb_later(f, cb, 0, NULL);
                return 0;
        }
        if (r < 0) {
                log_warning("federation: unreadable switch journal; ignoring it");
                journal_remove(f);
                complete_cb_later(f, cb, 0, NULL);
                return 0;
        }
        active = federation_active_persona(f);
        /* Rolling back: the previous persona is the target now. */
        if (strcmp(phase, "rollback") == 0 && from) {
                g_free(to);
                to = g_strdup(from);
        }
        target = federation_find_vm(f, to);
        if (!target || !federation_vm_spec(f, to)) {
                progress(cb, "interrupted switch to %s: it is no longer configured; dropping it", to);
                journal_remove(f);
                complete_cb_later(f, cb, 0, NULL);
                return 0;
        }
        if (active && strcmp(active, to) == 0) {
                progress(cb, "interrupted switch to %s had completed", to);
                journal_remove(f);
                complete_cb_later(f, cb, 0, NULL);
                return 0;
        }
        progress(cb, "finishing the switch to %s interrupted in phase %s", to, phase);
        f->sw = switch_new(f, active, to, from && strcmp(from, to) != 0 ? from : NULL, cb);
        switch_run(f);
        return 0;
}
