/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/lifecycle.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "broker/channel.h"
#include "broker/channel-access.h"
#include "broker/errors.h"
#include "broker/operation.h"
#include "broker/vm-events.h"
#include "common/log.h"
#include "common/macro.h"

struct Lifecycle {
        Broker *broker;
        char *domain_prefix;       /* NULL: the library's "vmfed-" */
        char *bridge;              /* the default netvm's bridge, NULL: no NICs */
        virConnectPtr conn;        /* a reference while connected */
        Federation *federation;    /* NULL: not connected, or vms.d/ does not load */
        Federation *loading;       /* after a reconnection: adopting libvirt's domains in the worker */
        bool connected_before;     /* the first connection's federation is loaded at once (startup) */
        char *unavailable;         /* why federation is NULL */
        GHashTable *dispvms;       /* names of running disposables from broker_dispvm_start() */
        GPtrArray *ready_waiters;  /* broker_vm_ensure_running() waiting for a start under way */
        bool booted;               /* resume + autostart done */
        guint boot_idle;
        unsigned watch;            /* on broker/vm-events.h */
};

typedef struct ReadyWaiter {
        char *name;
        BrokerVmReadyFn cb;
        void *userdata;
} ReadyWaiter;

static void ready_waiter_free(void *p) {
        ReadyWaiter *w = p;
        g_free(w->name);
        g_free(w);
}

static void lifecycle_on_vm_event(const VmEvent *e, void *userdata);

int lifecycle_new(Broker *b, const char *domain_prefix, const char *bridge, Lifecycle **ret) {
        Lifecycle *l = g_new0(Lifecycle, 1);

        l->broker = b;
        l->domain_prefix = g_strdup(domain_prefix);
        l->bridge = g_strdup(bridge);
        l->unavailable = g_strdup("no connection to libvirt");
        l->dispvms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        l->ready_waiters = g_ptr_array_new_with_free_func(ready_waiter_free);
        l->watch = vm_events_watch_add(broker_vm_events(b), lifecycle_on_vm_event, l, NULL);
        *ret = l;
        return 0;
}

static void ready_waiters_fail(Lifecycle *l, const char *name, int r, const char *error);

Lifecycle *lifecycle_free(Lifecycle *l) {
        if (!l)
                return NULL;
        g_clear_handle_id(&l->boot_idle, g_source_remove);
        /* First the federation (it then never calls back), then whoever waited. */
        l->federation = federation_free(l->federation);
        l->loading = federation_free(l->loading);
        operation_abandon_all(l->broker, -ESHUTDOWN, "vmfedd is shutting down");
        ready_waiters_fail(l, NULL, -ESHUTDOWN, "vmfedd is shutting down");
        vm_events_watch_remove(broker_vm_events(l->broker), l->watch);
        if (l->conn)
                virConnectClose(l->conn);
        g_hash_table_unref(l->dispvms);
        g_ptr_array_unref(l->ready_waiters);
        g_free(l->domain_prefix);
        g_free(l->bridge);
        g_free(l->unavailable);
        g_free(l);
        return NULL;
}

Federation *lifecycle_federation(Lifecycle *l, const char **ret_reason) {
        if (ret_reason)
                *ret_reason = l && l->unavailable ? l->unavailable : "the federation is not loaded";
        return l ? l->federation : NULL;
}

const char *lifecycle_vm_state(Lifecycle *l, const char *name) {
        FederationVmState s;

        if (!l || !l->federation)
                return "unknown";
        s = federation_vm_state(l->federation, name);
        return federation_vm_state_to_string(s) ?: "unknown";
}

static void lifecycle_update_active_persona(Lifecycle *l) {
        const char *active = l->federation ? federation_active_persona(l->federation) : NULL;
        broker_set_active_persona(l->broker, active);
}

void lifecycle_refresh_states(Lifecycle *l) {
        if (!l)
                return;
        /* The broker has a VM object for each VM of its model. */
        VmModel *model = broker_model(l->broker);
        for (guint i = 0; i < vm_model_n_vms(model); i++) {
                const char *name = vm_model_vm(model, i)->name;
                broker_set_vm_state(l->broker, name, lifecycle_vm_state(l, name));
        }
        lifecycle_update_active_persona(l);
}

/* ---- waiters of broker_vm_ensure_running() ------------------------------ */

typedef struct ReadyLater {
        Broker *broker;
        BrokerVmReadyFn cb;
        void *userdata;
        int r;
        char *vm;
        char *error;
} ReadyLater;

static gboolean ready_later_dispatch(gpointer p) {
        ReadyLater *x = p;
        x->cb(x->broker, x->r, x->vm, x->error, x->userdata);
        g_free(x->vm);
        g_free(x->error);
        g_free(x);
        return G_SOURCE_REMOVE;
}

static void ready_later(Broker *b, BrokerVmReadyFn cb, void *userdata, int r, const char *vm, const char *error) {
        ReadyLater *x = g_new0(ReadyLater, 1);
        *x = (ReadyLater) { .broker = b, .cb = cb, .userdata = userdata, .r = r, .vm = g_strdup(vm),
                            .error = g_strdup(error) };
        g_idle_add(ready_later_dispatch, x);
}

/* name NULL: every waiter. */
static void ready_waiters_fail(Lifecycle *l, const char *name, int r, const char *error) {
        for (guint i = 0; i < l->ready_waiters->len;) {
                ReadyWaiter *w = l->ready_waiters->pdata[i];
                if (name && strcmp(w->name, name) != 0) {
                        i++;
                        continue;
                }
                ready_later(l->broker, w->cb, w->userdata, r, w->name, error);
                g_ptr_array_remove_index(l->ready_waiters, i);
        }
}

static void ready_waiters_check(Lifecycle *l, const char *name, FederationVmState s) {
        g_autofree char *error = NULL;

        if (s == FEDERATION_VM_RUNNING) {
                for (guint i = 0; i < l->ready_waiters->len;) {
                        ReadyWaiter *w = l->ready_waiters->pdata[i];
                        if (strcmp(w->name, name) != 0) {
                                i++;
                                continue;
                        }
                        ready_later(l->broker, w->cb, w->userdata, 0, name, NULL);
                        g_ptr_array_remove_index(l->ready_waiters, i);
                }
        } else if (federation_vm_state_is_down(s)) {
                error = g_strdup_printf("%s stopped instead of starting", name);
                ready_waiters_fail(l, name, -EIO, error);
        }
}

/* ---- disposables ----------------------------------------------------------- */

bool lifecycle_dispvm_is_running(Broker *b, const char *name) {
        return broker_lifecycle(b) && name && g_hash_table_contains(broker_lifecycle(b)->dispvms, name);
}

/* ---- the federation's state callback ------------------------------------- */

/*
 * Only queue (broker/vm-events.h): whoever cares (VM objects, channels,
 * netvm links, the waiters below) hears of it from an idle, never from
 * inside the federation call that changed the state.
 */
static void lifecycle_post(Lifecycle *l, const char *vm, FederationVmState s, const char *reason) {
        VmEvent e = {
                .vm = vm,
                .state = s,
                .reason = reason,
                .active_persona = l->federation ? federation_active_persona(l->federation) : NULL,
                .disposable = g_hash_table_contains(l->dispvms, vm),
        };
        vm_events_post(broker_vm_events(l->broker), &e);
}

static void on_vm_state(const char *vm, FederationVmState s, const char *reason, void *userdata) {
        Lifecycle *l = userdata;
        const char *state = federation_vm_state_to_string(s);

        log_debug("Federation: %s is %s (%s).", vm, state ? state : "?", reason ? reason : "-");
        lifecycle_post(l, vm, s, reason);
}

/* The Lifecycle's own watch: its disposables and the waiters of broker_vm_ensure_running(). */
static void lifecycle_on_vm_event(const VmEvent *e, void *userdata) {
        Lifecycle *l = userdata;

        if (e->disposable && federation_vm_state_is_down(e->state) && g_hash_table_remove(l->dispvms, e->vm))
                log_info("Disposable %s is gone; closing its channel.", e->vm);
        /*
         * By the current state, not the event's: a waiter that came after a
         * queued "stopped" waits for the start under way.
         */
        ready_waiters_check(l, e->vm, l->federation ? federation_vm_state(l->federation, e->vm) : e->state);
}

/* ---- channels --------------------------------------------------------------
 *
 * libvirt refuses to start a domain whose connect-mode channel socket does
 * not exist, so right before each domain starts the broker makes sure it
 * listens there: VMs of vms.d/ normally have their channel already
 * (channel_sync_all()); a disposable gets one here, dropped when it stops.
 */
static int on_prepare_channel(const char *vm, const char *path, void *userdata) {
        Lifecycle *l = userdata;
        Broker *b = l->broker;
        Channel *c = NULL;
        int r;

        r = broker_netvm_prepare(b, vm); /* a netvm: its link to vmfed-netd and its bridge */
        if (r < 0)
                return r;
        channel_access_share(b, vm); /* QEMU's group may connect (channel-access.h) */
        r = channel_ensure(b, vm, &c);
        if (r < 0)
                return log_error_errno(r, "Cannot listen on the channel of %s: %m", vm);
        if (r == 0)
                return 0;
        if (strcmp(channel_path(c), path) != 0)
                log_warning("Channel of %s: the broker listens on %s, the domain uses %s.", vm, channel_path(c), path);
        channel_access_share(b, vm);
        if (!broker_find_vm(b, vm))
                g_hash_table_add(l->dispvms, g_strdup(vm)); /* a disposable: its channel goes when it stops */
        return 0;
}

/* ---- creation, boot (resume, autostart) ------------------------------------ */

static void autostart_done(Broker *b, int r, const char *message, void *userdata) {
}

static void resume_done(Broker *b, int r, const char *message, void *userdata) {
        Lifecycle *l = broker_lifecycle(b);
        bool autostart = GPOINTER_TO_INT(userdata);
        g_autofree char *error = NULL;
        Operation *op;

        if (!l->federation || !autostart)
                return;
        op = operation_new(b, NULL, "autostart", autostart_done, NULL);
        r = federation_autostart(l->federation, operation_callbacks(op), &error);
        if (r < 0)
                operation_finish(op, r, error);
}

/*
 * A disposable lives as long as its job, and jobs live in the broker: a
 * running disposable that no job of ours knows (it was adopted after the
 * broker that ran its job crashed) would run for ever, its overlay with it.
 * Destroy it; its overlay goes when it stops (disposable_stopped()).
 */
static void lifecycle_reap_orphan_disposables(Lifecycle *l) {
        g_auto(GStrv) names = federation_list_vms(l->federation);

        for (char **n = names; n && *n; n++) {
                g_autofree char *error = NULL;
                int r;

                if (!federation_vm_is_disposable(l->federation, *n) || g_hash_table_contains(l->dispvms, *n))
                        continue;
                log_info("Disposable %s has no job (its broker is gone); destroying it.", *n);
                r = federation_stop_vm(l->federation, *n, true, NULL, &error);
                if (r < 0)
                        log_warning_errno(r, "Cannot destroy disposable %s: %s", *n, error ? error : strerror(-r));
        }
}

/* A disposable that stopped while libvirt was away reported no transition: close its channel now. */
static void lifecycle_forget_stopped_dispvms(Lifecycle *l) {
        g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
        GHashTableIter it;
        gpointer key;

        g_hash_table_iter_init(&it, l->dispvms);
        while (g_hash_table_iter_next(&it, &key, NULL))
                if (federation_vm_state_is_down(federation_vm_state(l->federation, key)))
                        g_ptr_array_add(gone, g_strdup(key));
        for (guint i = 0; i < gone->len; i++)
                lifecycle_post(l, gone->pdata[i], federation_vm_state(l->federation, gone->pdata[i]), "gone");
}

/* After (re)creating the federation: resume an interrupted switch; the first time also autostart. */
static gboolean lifecycle_boot(gpointer userdata) {
        Lifecycle *l = userdata;
        Broker *b = l->broker;
        bool autostart = !l->booted;
        g_autofree char *error = NULL;
        Operation *op;
        int r;

        l->boot_idle = 0;
        if (!l->federation)
                return G_SOURCE_REMOVE;
        l->booted = true;
        lifecycle_reap_orphan_disposables(l);
        op = operation_new(b, NULL, "resume an interrupted persona switch", resume_done,
                           GINT_TO_POINTER(autostart));
        r = federation_resume(l->federation, operation_callbacks(op), &error);
        if (r < 0)
                operation_finish(op, r, error);
        return G_SOURCE_REMOVE;
}

/* A federation that loaded: the Lifecycle's from now on. */
static void lifecycle_take(Lifecycle *l, Federation *f) {
        Broker *b = l->broker;

        if (broker_model(b) && federation_model(f) != broker_model(b))
                federation_set_model(f, broker_model(b)); /* a Reload while it was loading */
        federation_set_state_callback(f, on_vm_state, l);
        l->federation = f;
        g_clear_pointer(&l->unavailable, g_free);
        lifecycle_forget_stopped_dispvms(l);
        broker_post_federation_ready(b);
        log_info("Federation loaded (domain prefix %s, generation %" G_GUINT64_FORMAT ").",
                 l->domain_prefix ? l->domain_prefix : "vmfed-", federation_generation(f));
        if (!l->boot_idle)
                l->boot_idle = g_idle_add(lifecycle_boot, l);
}

static void on_federation_loaded(Federation *f, int r, const char *error, void *userdata) {
        Lifecycle *l = userdata;

        g_assert(f == l->loading);
        l->loading = NULL;
        if (r < 0) {
                federation_free(f);
                g_free(l->unavailable);
                l->unavailable = g_strdup_printf("the federation could not be loaded: %s", error);
                log_error("No federation: %s", l->unavailable);
        } else
                lifecycle_take(l, f);
        lifecycle_refresh_states(l);
}

/*
 * async: adopt libvirt's domains in the federation's worker (after a
 * reconnection, while the bus is served: a libvirtd that hangs again must
 * not hold the loop); until then the federation is unavailable, as while
 * libvirt was away.  Else at once (the first connection, at startup; and a
 * Reload that makes vms.d/ load again, whose reply says whether it did).
 */
static int lifecycle_create(Lifecycle *l, GPtrArray *errors, bool async) {
        Broker *b = l->broker;
        g_autoptr(GPtrArray) ferrors = NULL;
        FederationOptions o = {
                .config_dir = broker_config_dir(b),
                .model = broker_model(b), /* the broker's load of vms.d/: the federation does not load it again */
                .state_dir = broker_state_dir(b),
                .domain_prefix = l->domain_prefix,
                .bridge = l->bridge,
                /* The broker listens on STATE/channels/NAME.sock (channel.c); QEMU connects. */
                .channel_mode = DOMAIN_CHANNEL_CONNECT,
                .prepare_channel = on_prepare_channel,
                .prepare_channel_userdata = l,
        };
        Federation *f = NULL;
        int r;

        if (!broker_model(b)) {
                /* vms.d/ never loaded (broker_reload() reported why): no federation until it does. */
                g_free(l->unavailable);
                l->unavailable = g_strdup_printf("the federation could not be loaded: %s",
                                                 broker_model_error(b) ?: "vms.d/ is not loaded");
                log_error("No federation: %s", l->unavailable);
                return -EINVAL;
        }
        if (async)
                r = federation_new_async(l->conn, &o, on_federation_loaded, l, &f, &ferrors);
        else
                r = federation_new(l->conn, &o, &f, &ferrors);
        if (r < 0) {
                g_autofree char *joined = errors_join(ferrors);
                if (ferrors && errors)
                        for (guint i = 0; i < ferrors->len; i++)
                                g_ptr_array_add(errors, g_strdup(ferrors->pdata[i]));
                g_free(l->unavailable);
                l->unavailable = g_strdup_printf("the federation could not be loaded: %s",
                                                 joined ? joined : strerror(-r));
                log_error("No federation: %s", l->unavailable);
                return r;
        }
        if (async) {
                l->loading = f;
                g_free(l->unavailable);
                l->unavailable = g_strdup("vmfedd is reading libvirt's domains after reconnecting");
                return 0;
        }
        lifecycle_take(l, f);
        return 0;
}

void lifecycle_attach(Lifecycle *l, virConnectPtr conn) {
        if (!l || l->conn == conn)
                return;
        lifecycle_detach(l);
        virConnectRef(conn);
        l->conn = conn;
        (void) lifecycle_create(l, NULL, l->connected_before);
        l->connected_before = true;
        lifecycle_refresh_states(l);
}

void lifecycle_detach(Lifecycle *l) {
        static const char lost[] = "the connection to libvirt was lost; an interrupted persona switch is "
                                   "finished or rolled back when it returns";

        if (!l || !l->conn)
                return;
        g_clear_handle_id(&l->boot_idle, g_source_remove);
        l->federation = federation_free(l->federation);
        l->loading = federation_free(l->loading);
        operation_abandon_all(l->broker, -ENOTCONN, lost);
        ready_waiters_fail(l, NULL, -ENOTCONN, lost);
        virConnectClose(l->conn);
        l->conn = NULL;
        g_free(l->unavailable);
        l->unavailable = g_strdup("no connection to libvirt");
        lifecycle_refresh_states(l);
}

int lifecycle_reload(Lifecycle *l, GPtrArray *errors) {
        int r = 0;

        if (!l || !l->conn)
                return 0;
        if (!l->federation && !l->loading)
                /* (vms.d/ errors are reported once) */
                r = lifecycle_create(l, broker_model(l->broker) ? errors : NULL, false);
        else if (l->federation && broker_model(l->broker) && federation_model(l->federation) != broker_model(l->broker))
                federation_set_model(l->federation, broker_model(l->broker));
        /* (a federation still loading takes the model in use when it is loaded: lifecycle_take()) */
        lifecycle_refresh_states(l);
        return r < 0 ? -EINVAL : 0;
}

/* ---- API for routing (broker.h) ------------------------------------------- */

typedef struct EnsureCtx {
        char *name;
        BrokerVmReadyFn cb;
        void *userdata;
} EnsureCtx;

static void ensure_done(Broker *b, int r, const char *message, void *userdata) {
        EnsureCtx *c = userdata;
        c->cb(b, r, c->name, r < 0 ? message : NULL, c->userdata);
        g_free(c->name);
        g_free(c);
}

static int refuse(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int refuse(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;
        if (ret_error) {
                va_start(ap, fmt);
                *ret_error = g_strdup_vprintf(fmt, ap);
                va_end(ap);
        }
        return r;
}

int lifecycle_vm_ensure_running(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error) {
        const char *reason;
        Federation *f = lifecycle_federation(broker_lifecycle(b), &reason);
        g_autofree char *error = NULL;
        FederationVmState s;
        EnsureCtx *c;
        Operation *op;
        int r;

        if (!f)
                return refuse(ret_error, -ENXIO, "%s", reason);
        s = federation_vm_state(f, name);
        if (s < 0 || !federation_vm_spec(f, name))
                return refuse(ret_error, -ENOENT, "no VM named '%s' in vms.d/", name);
        switch (s) {
        case FEDERATION_VM_RUNNING:
                ready_later(b, cb, userdata, 0, name, NULL);
                return 0;
        case FEDERATION_VM_STARTING: {
                ReadyWaiter *w = g_new0(ReadyWaiter, 1);
                *w = (ReadyWaiter) { .name = g_strdup(name), .cb = cb, .userdata = userdata };
                g_ptr_array_add(broker_lifecycle(b)->ready_waiters, w);
                return 0;
        }
        case FEDERATION_VM_STOPPING:
                return refuse(ret_error, -EBUSY, "%s is stopping", name);
        case FEDERATION_VM_PAUSED:
                return refuse(ret_error, -EBUSY, "%s is paused", name);
        default:
                break;
        }

        c = g_new0(EnsureCtx, 1);
        *c = (EnsureCtx) { .name = g_strdup(name), .cb = cb, .userdata = userdata };
        error = g_strdup_printf("start %s (on demand)", name);
        op = operation_new(b, NULL, error, ensure_done, c);
        g_clear_pointer(&error, g_free);
        r = federation_start_vm(f, name, operation_callbacks(op), &error);
        if (r < 0) {
                operation_cancel(op);
                g_free(c->name);
                g_free(c);
                return refuse(ret_error, r, "%s", error ? error : strerror(-r));
        }
        return 0;
}

static void dispvm_done(Broker *b, int r, const char *message, void *userdata) {
        EnsureCtx *c = userdata;
        Lifecycle *l = broker_lifecycle(b);

        if (r >= 0 && message) {
                /* Its channel was opened by on_prepare_channel() before the domain started. */
                g_hash_table_add(l->dispvms, g_strdup(message));
                c->cb(b, 0, message, NULL, c->userdata);
        } else
                c->cb(b, r < 0 ? r : -EIO, NULL, message ? message : "the disposable did not start",
                      c->userdata);
        g_free(c->name);
        g_free(c);
}

int lifecycle_dispvm_start(Broker *b, const char *target, const char *caller, BrokerVmReadyFn cb, void *userdata,
                           char **ret_error) {
        const char *reason;
        Federation *f = lifecycle_federation(broker_lifecycle(b), &reason);
        g_autofree char *error = NULL, *what = NULL;
        EnsureCtx *c;
        Operation *op;
        int r;

        if (!f)
                return refuse(ret_error, -ENXIO, "%s", reason);
        c = g_new0(EnsureCtx, 1);
        *c = (EnsureCtx) { .name = g_strdup(target), .cb = cb, .userdata = userdata };
        what = g_strdup_printf("start a disposable from %s for %s", target ? target : "@dispvm",
                               caller ? caller : "@host");
        op = operation_new(b, NULL, what, dispvm_done, c);
        r = federation_start_disposable(f, target, caller, operation_callbacks(op), &error);
        if (r < 0) {
                operation_cancel(op);
                g_free(c->name);
                g_free(c);
                return refuse(ret_error, r, "%s", error ? error : strerror(-r));
        }
        return 0;
}

int lifecycle_dispvm_release(Broker *b, const char *name) {
        Federation *f = lifecycle_federation(broker_lifecycle(b), NULL);
        g_autofree char *error = NULL;
        int r;

        if (!broker_dispvm_is_running(b, name))
                return -ENOENT;
        if (!f)
                return -ENXIO;
        r = federation_stop_vm(f, name, true, NULL, &error);
        if (r < 0)
                return log_warning_errno(r, "Cannot destroy disposable %s: %s", name, error ? error : "?");
        return 0;
}
