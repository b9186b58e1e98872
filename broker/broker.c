/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/broker.h"

#include <errno.h>
#include <string.h>

#include "broker/vm-events.h"
#include "common/log.h"

/* ---- broker events ------------------------------------------------------ */

typedef struct BrokerWatch {
        unsigned id;
        BrokerEventFn fn;
        void *userdata;
        GDestroyNotify destroy;
        bool removed;
} BrokerWatch;

/* One event on its way: a copy of everything it points to. */
typedef struct Posted {
        Broker *broker;
        BrokerEventKind kind;
        char *vm;
        bool has_request;
        BrokerRequestNotice request;
        char *strings[6];
} Posted;

static void broker_watch_free(BrokerWatch *w) {
        if (w->destroy)
                w->destroy(w->userdata);
        g_free(w);
}

unsigned broker_watch_add(Broker *b, BrokerEventFn fn, void *userdata, GDestroyNotify destroy) {
        BrokerWatch *w = g_new0(BrokerWatch, 1);

        if (!b->watches)
                b->watches = g_ptr_array_new();
        *w = (BrokerWatch) { .id = ++b->next_watch_id, .fn = fn, .userdata = userdata, .destroy = destroy };
        g_ptr_array_add(b->watches, w);
        return w->id;
}

static void broker_watches_sweep(Broker *b) {
        for (guint k = 0; b->watches && k < b->watches->len;) {
                BrokerWatch *w = b->watches->pdata[k];
                if (w->removed) {
                        g_ptr_array_remove_index(b->watches, k);
                        broker_watch_free(w);
                } else
                        k++;
        }
}

void broker_watch_remove(Broker *b, unsigned id) {
        for (guint k = 0; id > 0 && b->watches && k < b->watches->len; k++) {
                BrokerWatch *w = b->watches->pdata[k];
                if (w->id == id)
                        w->removed = true;
        }
        if (b->watch_dispatching == 0)
                broker_watches_sweep(b);
}

void broker_watches_free(Broker *b) {
        for (guint k = 0; b->watches && k < b->watches->len; k++)
                ((BrokerWatch *) b->watches->pdata[k])->removed = true;
        broker_watches_sweep(b);
        g_clear_pointer(&b->watches, g_ptr_array_unref);
}

static void posted_free(Posted *p) {
        g_free(p->vm);
        for (size_t i = 0; i < G_N_ELEMENTS(p->strings); i++)
                g_free(p->strings[i]);
        g_free(p);
}

static void posted_deliver(void *userdata) {
        Posted *p = userdata;
        Broker *b = p->broker;
        BrokerEvent e = { .kind = p->kind, .vm = p->vm, .request = p->has_request ? &p->request : NULL };

        /* Watches added meanwhile get the next event, not this one. */
        guint n = b->watches ? b->watches->len : 0;
        b->watch_dispatching++;
        for (guint k = 0; k < n && k < b->watches->len; k++) {
                BrokerWatch *w = b->watches->pdata[k];
                if (!w->removed)
                        w->fn(b, &e, w->userdata);
        }
        if (--b->watch_dispatching == 0)
                broker_watches_sweep(b);
        posted_free(p);
}

static void broker_post(Broker *b, BrokerEventKind kind, const char *vm, const BrokerRequestNotice *n) {
        Posted *p = g_new0(Posted, 1);

        *p = (Posted) { .broker = b, .kind = kind, .vm = g_strdup(vm) };
        if (n) {
                char **s = p->strings;
                p->has_request = true;
                p->request = (BrokerRequestNotice) {
                        .id = n->id,
                        .service = s[0] = g_strdup(n->service ?: ""),
                        .arg = s[1] = g_strdup(n->arg ?: ""),
                        .source = s[2] = g_strdup(n->source ?: ""),
                        .target = s[3] = g_strdup(n->target ?: ""),
                        .decision = s[4] = g_strdup(n->decision ?: ""),
                        .rule = s[5] = g_strdup(n->rule ?: ""),
                };
        }
        vm_events_defer_next(b->vm_events, posted_deliver, p);
}

void broker_post_agent_ready(Broker *b, const char *vm) {
        broker_post(b, BROKER_EVENT_AGENT_READY, vm, NULL);
}

void broker_post_federation_ready(Broker *b) {
        broker_post(b, BROKER_EVENT_FEDERATION_READY, NULL, NULL);
}

void broker_post_request_notified(Broker *b, const BrokerRequestNotice *n) {
        broker_post(b, BROKER_EVENT_REQUEST_NOTIFIED, NULL, n);
}

/* ---- state ---------------------------------------------------------------- */

uint64_t broker_next_request_id(Broker *b) {
        return b->next_request_id++;
}

VmObject *broker_find_vm(Broker *b, const char *name) {
        return g_hash_table_lookup(b->vm_objects, name);
}

void broker_set_vm_state(Broker *b, const char *name, const char *state) {
        VmObject *o = broker_find_vm(b, name);

        if (!o || strcmp(o->state, state) == 0)
                return;
        log_info("VM %s: %s -> %s.", name, o->state, state);
        g_free(o->state);
        o->state = g_strdup(state);
        broker_post(b, BROKER_EVENT_VM_STATE, name, NULL);
}

void broker_set_active_persona(Broker *b, const char *name) {
        if (g_strcmp0(b->active_persona, name) == 0)
                return;
        log_info("Active persona: %s -> %s.", b->active_persona ?: "(none)", name ?: "(none)");
        g_free(b->active_persona);
        b->active_persona = g_strdup(name);
        (void) broker_rebuild_facts(b);
        broker_post(b, BROKER_EVENT_ACTIVE_PERSONA, NULL, NULL);
}

void broker_set_policy(Broker *b, PolicySnapshot *s) {
        policy_snapshot_unref(b->policy);
        b->policy = policy_snapshot_ref(s);
        b->policy_revision++;
        if (!policy_snapshot_is_valid(s))
                log_error("Policy in %s is broken: every request is denied until it is fixed.", b->policy_dir);
        broker_post(b, BROKER_EVENT_POLICY, NULL, NULL);
}

int broker_rebuild_facts(Broker *b) {
        PolicyFacts *f = NULL;
        int r = vm_model_build_policy_facts(b->model, b->active_persona, NULL, &f);
        if (r < 0)
                return log_error_errno(r, "Cannot build policy facts from the VM definitions: %m");
        policy_facts_unref(b->facts);
        b->facts = f;
        return 0;
}

/* model NULL: load vms.d/ (the reload's one load); else take this one, loaded by the federation's edit. */

int broker_reload(Broker *b, GPtrArray **ret_errors) {
        return b->hooks.reload(b, NULL, ret_errors);
}

int broker_reload_edited(Broker *b, VmModel *model, GPtrArray **ret_errors) {
        g_return_val_if_fail(model, -EINVAL);
        return b->hooks.reload(b, model, ret_errors);
}

int broker_vm_ensure_running(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error) {
        return b->hooks.vm_ensure_running(b, name, cb, userdata, ret_error);
}

int broker_dispvm_start(Broker *b, const char *target, const char *caller, BrokerVmReadyFn cb, void *userdata,
                        char **ret_error) {
        return b->hooks.dispvm_start(b, target, caller, cb, userdata, ret_error);
}

int broker_dispvm_release(Broker *b, const char *name) {
        return b->hooks.dispvm_release(b, name);
}

bool broker_dispvm_is_running(Broker *b, const char *name) {
        return b->hooks.dispvm_is_running(b, name);
}
