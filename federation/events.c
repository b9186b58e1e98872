/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The federation's outgoing events: VM state changes (the watch list) and
 * the done callbacks of operations, queued in one FIFO and delivered from
 * an idle source on the loop, never from inside a federation function, so
 * a subscriber may call back into the federation, or free what it owns,
 * from its callback.
 */
#include "federation/federation.h"

#include <errno.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

typedef struct Watch {
        unsigned id;
        FederationStateFn fn;
        void *userdata;
        GDestroyNotify destroy;
        bool removed; /* during a dispatch: freed when it ends */
} Watch;

typedef struct Event {
        /* a state change */
        char *vm;
        FederationVmState state;
        char *reason;
        /* or an operation's done (cb.done != NULL) */
        FederationCallbacks cb;
        int r;
        char *message;
} Event;

static void event_free(Event *e) {
        g_free(e->vm);
        g_free(e->reason);
        g_free(e->message);
        g_free(e);
}

static void watch_free(Watch *w) {
        if (w->destroy)
                w->destroy(w->userdata);
        g_free(w);
}

/* Free the watches marked removed (not during a dispatch). */
static void watches_sweep(Federation *f) {
        for (guint i = 0; f->watches && i < f->watches->len;) {
                Watch *w = f->watches->pdata[i];
                if (w->removed)
                        g_ptr_array_remove_index(f->watches, i); /* frees it */
                else
                        i++;
        }
}

static void event_deliver(Federation *f, Event *e) {
        guint n = f->watches ? f->watches->len : 0; /* watches added meanwhile get the next event */

        if (e->cb.done) {
                e->cb.done(e->r, e->message, e->cb.userdata);
                return;
        }
        for (guint i = 0; i < n && !f->dead; i++) {
                Watch *w = f->watches->pdata[i];
                if (!w->removed)
                        w->fn(e->vm, e->state, e->reason, w->userdata);
        }
}

static gboolean events_dispatch(gpointer userdata) {
        Federation *f = federation_ref(userdata);
        Event *e;

        f->events_idle = 0;
        f->dispatching = true;
        while (!f->dead && (e = g_queue_pop_head(&f->events))) {
                event_deliver(f, e);
                event_free(e);
        }
        f->dispatching = false;
        if (f->dead)
                federation_events_clear(f);
        watches_sweep(f);
        federation_unref(f);
        return G_SOURCE_REMOVE;
}

static void events_push(Federation *f, Event *e) {
        if (f->dead) {
                event_free(e);
                return;
        }
        g_queue_push_tail(&f->events, e);
        if (!f->events_idle && !f->dispatching)
                f->events_idle = g_idle_add(events_dispatch, f);
}

void federation_events_state(Federation *f, const char *vm, FederationVmState state, const char *reason) {
        Event *e = g_new0(Event, 1);

        e->vm = g_strdup(vm);
        e->state = state;
        e->reason = g_strdup(reason);
        events_push(f, e);
}

void federation_events_done(Federation *f, const FederationCallbacks *cb, int r, const char *message) {
        Event *e;

        if (!cb || !cb->done)
                return;
        e = g_new0(Event, 1);
        e->cb = *cb;
        e->r = r;
        e->message = g_strdup(message);
        events_push(f, e);
}

void federation_events_clear(Federation *f) {
        g_clear_handle_id(&f->events_idle, g_source_remove);
        g_queue_clear_full(&f->events, (GDestroyNotify) event_free);
        if (!f->watches)
                return;
        for (guint i = 0; i < f->watches->len; i++)
                ((Watch *) f->watches->pdata[i])->removed = true;
        if (!f->dispatching)
                watches_sweep(f);
}

unsigned federation_watch_add(Federation *f, FederationStateFn fn, void *userdata, GDestroyNotify destroy) {
        Watch *w;

        if (!f || !fn || f->dead)
                return 0;
        if (!f->watches)
                f->watches = g_ptr_array_new_with_free_func((GDestroyNotify) watch_free);
        w = g_new0(Watch, 1);
        w->id = ++f->next_watch_id;
        if (w->id == 0)
                w->id = ++f->next_watch_id;
        w->fn = fn;
        w->userdata = userdata;
        w->destroy = destroy;
        g_ptr_array_add(f->watches, w);
        return w->id;
}

void federation_watch_remove(Federation *f, unsigned id) {
        if (!f || !f->watches || id == 0)
                return;
        for (guint i = 0; i < f->watches->len; i++) {
                Watch *w = f->watches->pdata[i];
                if (w->id != id || w->removed)
                        continue;
                w->removed = true;
                if (!f->dispatching)
                        watches_sweep(f);
                return;
        }
}

void federation_set_state_callback(Federation *f, FederationStateFn fn, void *userdata) {
        federation_watch_remove(f, f->state_watch);
        f->state_watch = fn ? federation_watch_add(f, fn, userdata, NULL) : 0;
}
