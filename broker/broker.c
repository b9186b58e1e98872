/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/broker.h"

#include <errno.h>
#include <string.h>

#include "federation/netvm-query.h"
#include "federation/vmspec.h"

#include "broker/vm-events.h"
#include "common/log.h"

struct Broker {
        char *config_dir;
        char *state_dir;
        char *policy_dir;  /* CONFIG/policy.d */
        char *channel_dir; /* STATE/channels */
        char *bridge;      /* --bridge: the default netvm's bridge, NULL: no NICs */
        bool have_manage_gid;
        gid_t manage_gid;
        BrokerHooks hooks;

        /* The module objects (broker.h): set and freed by the composition root. */
        sd_bus *bus;
        OperationSet *operations;
        Lifecycle *lifecycle;
        Services *services;
        NetvmLinks *netvm_links;
        ChannelTable *channel_table;

        VmEvents *vm_events;  /* VM state changes and broker events, delivered from an idle (vm-events.h) */
        unsigned vm_events_watch;
        GPtrArray *watches;   /* BrokerWatch*, in the order they were added */
        unsigned next_watch_id, watch_dispatching;

        VmModel *model;         /* vms.d/ as last loaded (strictly), NULL before the first load that succeeded */
        char *model_error;      /* why the last load of vms.d/ failed, NULL when it loaded */
        GHashTable *vm_objects; /* name → VmObject* (owning) */

        PolicySnapshot *policy;
        PolicyFacts *facts;
        GHashTable *dispvms;  /* running disposables: name → template (owning both), for the facts */
        uint64_t policy_revision;
        char *active_persona; /* NULL: none */

        uint64_t next_request_id;
};

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

static void broker_watches_free(Broker *b) {
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

void broker_post_agent_lost(Broker *b, const char *vm) {
        broker_post(b, BROKER_EVENT_AGENT_LOST, vm, NULL);
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

const VmObject *broker_find_vm(const Broker *b, const char *name) {
        return g_hash_table_lookup(b->vm_objects, name);
}

void broker_set_vm_state(Broker *b, const char *name, const char *state) {
        VmObject *o = g_hash_table_lookup(b->vm_objects, name);

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
        int r = vm_model_build_policy_facts_with(b->model, b->active_persona, NULL, b->dispvms, &f);
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

Federation *broker_federation(Broker *b) {
        return b->hooks.federation(b);
}

int broker_netvm_prepare(Broker *b, const char *vm) {
        return b->hooks.netvm_prepare(b, vm);
}

int broker_record_generation(Broker *b, const char *description) {
        return b->hooks.record_generation(b, description);
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

/* ---- construction ----------------------------------------------------------- */

static VmObject *vm_object_new(const VmSpec *spec, const char *state) {
        VmObject *o = g_new0(VmObject, 1);
        o->spec = spec;
        o->state = g_strdup(state ? state : "unknown");
        return o;
}

static void vm_object_free(void *p) {
        VmObject *o = p;
        if (!o)
                return;
        g_free(o->state);
        g_free(o);
}

/* The broker's own VM events watch, the first: the VM objects' State and ActivePersona. */
/*
 * A disposable's requests are decided like any VM's: it is in the policy's
 * facts (role disposable, its template) from its start until it is down.
 */
static void broker_track_dispvm(Broker *b, const VmEvent *e) {
        Federation *f = broker_federation(b);
        bool down = federation_vm_state_is_down(e->state), known = g_hash_table_contains(b->dispvms, e->vm);

        if (down && known)
                g_hash_table_remove(b->dispvms, e->vm);
        else if (!down && !known && f && federation_vm_is_disposable(f, e->vm) && federation_vm_template(f, e->vm))
                g_hash_table_insert(b->dispvms, g_strdup(e->vm), g_strdup(federation_vm_template(f, e->vm)));
        else
                return;
        (void) broker_rebuild_facts(b);
}

static void broker_on_vm_event(const VmEvent *e, void *userdata) {
        Broker *b = userdata;
        const char *state = federation_vm_state_to_string(e->state);

        if (state)
                broker_set_vm_state(b, e->vm, state);
        if (!broker_find_vm(b, e->vm))
                broker_track_dispvm(b, e);
        broker_set_active_persona(b, e->active_persona);
}

int broker_new(const BrokerOptions *o, const BrokerHooks *hooks, Broker **ret) {
        Broker *b = g_new0(Broker, 1);

        b->config_dir = g_strdup(o->config_dir);
        b->state_dir = g_strdup(o->state_dir);
        b->policy_dir = g_build_filename(o->config_dir, "policy.d", NULL);
        b->channel_dir = g_build_filename(o->state_dir, "channels", NULL);
        b->bridge = g_strdup(o->bridge);
        b->have_manage_gid = o->have_manage_gid;
        b->manage_gid = o->manage_gid;
        b->hooks = *hooks;
        b->vm_objects = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, vm_object_free);
        b->dispvms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        b->next_request_id = 1;
        b->vm_events = vm_events_new();
        b->vm_events_watch = vm_events_watch_add(b->vm_events, broker_on_vm_event, b, NULL);
        *ret = b;
        return 0;
}

Broker *broker_free(Broker *b) {
        if (!b)
                return NULL;
        broker_watches_free(b);
        vm_events_watch_remove(b->vm_events, b->vm_events_watch);
        /* Pending deferred calls (the ends of operations) run here, with the state still there. */
        b->vm_events = vm_events_free(b->vm_events);
        g_clear_pointer(&b->vm_objects, g_hash_table_unref);
        g_clear_pointer(&b->dispvms, g_hash_table_unref);
        b->model = vm_model_unref(b->model);
        g_free(b->model_error);
        b->policy = policy_snapshot_unref(b->policy);
        b->facts = policy_facts_unref(b->facts);
        g_free(b->config_dir);
        g_free(b->state_dir);
        g_free(b->policy_dir);
        g_free(b->channel_dir);
        g_free(b->bridge);
        g_free(b->active_persona);
        g_free(b);
        return NULL;
}

/* ---- accessors ---------------------------------------------------------------- */

const char *broker_config_dir(const Broker *b) {
        return b->config_dir;
}

const char *broker_state_dir(const Broker *b) {
        return b->state_dir;
}

const char *broker_policy_dir(const Broker *b) {
        return b->policy_dir;
}

const char *broker_channel_dir(const Broker *b) {
        return b->channel_dir;
}

const char *broker_bridge(const Broker *b) {
        return b->bridge;
}

bool broker_manage_gid(const Broker *b, gid_t *ret) {
        if (b->have_manage_gid && ret)
                *ret = b->manage_gid;
        return b->have_manage_gid;
}

sd_bus *broker_bus(const Broker *b) {
        return b->bus;
}

VmEvents *broker_vm_events(const Broker *b) {
        return b->vm_events;
}

OperationSet *broker_operations(const Broker *b) {
        return b->operations;
}

Lifecycle *broker_lifecycle(const Broker *b) {
        return b->lifecycle;
}

Services *broker_services(const Broker *b) {
        return b->services;
}

NetvmLinks *broker_netvm_links(const Broker *b) {
        return b->netvm_links;
}

ChannelTable *broker_channel_table(const Broker *b) {
        return b->channel_table;
}

void broker_set_bus(Broker *b, sd_bus *bus) {
        b->bus = bus;
}

void broker_set_operations(Broker *b, OperationSet *s) {
        b->operations = s;
}

void broker_set_lifecycle(Broker *b, Lifecycle *l) {
        b->lifecycle = l;
}

void broker_set_services(Broker *b, Services *s) {
        b->services = s;
}

void broker_set_netvm_links(Broker *b, NetvmLinks *n) {
        b->netvm_links = n;
}

void broker_set_channel_table(Broker *b, ChannelTable *t) {
        b->channel_table = t;
}

VmModel *broker_model(const Broker *b) {
        return b->model;
}

const char *broker_model_error(const Broker *b) {
        return b->model_error;
}

void broker_set_model_error(Broker *b, const char *error) {
        g_free(b->model_error);
        b->model_error = g_strdup(error);
}

VmModel *broker_set_model(Broker *b, VmModel *model, BrokerVmStateFn state_of, void *userdata) {
        g_autoptr(GHashTable) objects = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, vm_object_free);
        VmModel *old = b->model;

        for (guint i = 0; i < vm_model_n_vms(model); i++) {
                const VmSpec *c = vm_model_vm(model, i);
                const VmObject *o = broker_find_vm(b, c->name);
                g_hash_table_insert(objects, c->name, vm_object_new(c, o ? o->state : state_of(c->name, userdata)));
        }
        g_hash_table_unref(b->vm_objects);
        b->vm_objects = g_steal_pointer(&objects);
        b->model = model;
        return old;
}

PolicySnapshot *broker_policy(const Broker *b) {
        return b->policy;
}

PolicyFacts *broker_facts(const Broker *b) {
        return b->facts;
}

uint64_t broker_policy_revision(const Broker *b) {
        return b->policy_revision;
}

const char *broker_active_persona(const Broker *b) {
        return b->active_persona;
}
