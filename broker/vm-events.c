/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/vm-events.h"

#include "common/log.h"

typedef struct Watch {
        unsigned id;
        VmEventFn fn;
        void *userdata;
        GDestroyNotify destroy;
        bool removed;
} Watch;

/* A queued event (fn NULL) or a deferred call. */
typedef struct Item {
        char *vm, *reason, *active_persona;
        FederationVmState state;
        bool disposable;
        VmEventsCallFn fn;
        void *userdata;
} Item;

struct VmEvents {
        GPtrArray *watches; /* Watch*, in the order they were added */
        GQueue items;       /* Item* */
        guint idle;
        unsigned next_id;
        unsigned dispatching; /* depth: removed watches are freed when 0 */
        guint n_next;         /* vm_events_defer_next() calls queued behind the current item */
};

static void watch_free(Watch *w) {
        if (w->destroy)
                w->destroy(w->userdata);
        g_free(w);
}

static void item_free(Item *i) {
        g_free(i->vm);
        g_free(i->reason);
        g_free(i->active_persona);
        g_free(i);
}

VmEvents *vm_events_new(void) {
        VmEvents *ev = g_new0(VmEvents, 1);
        ev->watches = g_ptr_array_new();
        g_queue_init(&ev->items);
        ev->next_id = 1;
        return ev;
}

VmEvents *vm_events_free(VmEvents *ev) {
        Item *i;

        if (!ev)
                return NULL;
        g_clear_handle_id(&ev->idle, g_source_remove);
        while ((i = g_queue_pop_head(&ev->items))) {
                if (i->fn)
                        i->fn(i->userdata);
                item_free(i);
        }
        for (guint k = 0; k < ev->watches->len; k++)
                watch_free(ev->watches->pdata[k]);
        g_ptr_array_unref(ev->watches);
        g_free(ev);
        return NULL;
}

unsigned vm_events_watch_add(VmEvents *ev, VmEventFn fn, void *userdata, GDestroyNotify destroy) {
        Watch *w = g_new0(Watch, 1);
        *w = (Watch) { .id = ev->next_id++, .fn = fn, .userdata = userdata, .destroy = destroy };
        g_ptr_array_add(ev->watches, w);
        return w->id;
}

static void watches_sweep(VmEvents *ev) {
        for (guint k = 0; k < ev->watches->len;) {
                Watch *w = ev->watches->pdata[k];
                if (w->removed) {
                        g_ptr_array_remove_index(ev->watches, k);
                        watch_free(w);
                } else
                        k++;
        }
}

void vm_events_watch_remove(VmEvents *ev, unsigned id) {
        if (!ev || id == 0)
                return;
        for (guint k = 0; k < ev->watches->len; k++) {
                Watch *w = ev->watches->pdata[k];
                if (w->id == id && !w->removed)
                        w->removed = true;
        }
        if (ev->dispatching == 0)
                watches_sweep(ev);
}

static void dispatch_one(VmEvents *ev, Item *i) {
        if (i->fn) {
                i->fn(i->userdata);
                return;
        }
        VmEvent e = { .vm = i->vm, .state = i->state, .reason = i->reason, .active_persona = i->active_persona,
                      .disposable = i->disposable };
        /* Watches added meanwhile get the next event, not this one. */
        guint n = ev->watches->len;
        for (guint k = 0; k < n && k < ev->watches->len; k++) {
                Watch *w = ev->watches->pdata[k];
                if (!w->removed)
                        w->fn(&e, w->userdata);
        }
}

void vm_events_flush(VmEvents *ev) {
        Item *i;

        if (!ev)
                return;
        g_clear_handle_id(&ev->idle, g_source_remove);
        ev->dispatching++;
        while ((i = g_queue_pop_head(&ev->items))) {
                ev->n_next = 0;
                dispatch_one(ev, i);
                item_free(i);
        }
        if (--ev->dispatching == 0)
                watches_sweep(ev);
}

static gboolean on_idle(gpointer userdata) {
        VmEvents *ev = userdata;
        ev->idle = 0;
        vm_events_flush(ev);
        return G_SOURCE_REMOVE;
}

static void vm_events_schedule(VmEvents *ev, Item *i) {
        g_queue_push_tail(&ev->items, i);
        if (!ev->idle && ev->dispatching == 0)
                ev->idle = g_idle_add(on_idle, ev);
}

void vm_events_post(VmEvents *ev, const VmEvent *e) {
        Item *i = g_new0(Item, 1);
        *i = (Item) { .vm = g_strdup(e->vm), .reason = g_strdup(e->reason),
                      .active_persona = g_strdup(e->active_persona), .state = e->state, .disposable = e->disposable };
        log_debug("VM event: %s is %s.", e->vm, federation_vm_state_to_string(e->state) ?: "?");
        vm_events_schedule(ev, i);
}

void vm_events_defer(VmEvents *ev, VmEventsCallFn fn, void *userdata) {
        Item *i = g_new0(Item, 1);
        *i = (Item) { .fn = fn, .userdata = userdata };
        vm_events_schedule(ev, i);
}

void vm_events_defer_next(VmEvents *ev, VmEventsCallFn fn, void *userdata) {
        if (ev->dispatching == 0) {
                vm_events_defer(ev, fn, userdata);
                return;
        }
        Item *i = g_new0(Item, 1);
        *i = (Item) { .fn = fn, .userdata = userdata };
        g_queue_push_nth(&ev->items, i, (gint) ev->n_next++);
}
