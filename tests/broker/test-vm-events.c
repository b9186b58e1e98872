/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * broker/vm-events.c: events are delivered later (never from inside
 * vm_events_post()), in order, to every watch in the order they were
 * added; deferred calls run behind the events queued before them; a watch
 * may remove itself or another one and free what it owns; events posted
 * from inside a watch come after the current one.
 */
#include <glib.h>
#include <string.h>

#include "broker/vm-events.h"

typedef struct Log {
        GString *s;
        VmEvents *ev;
        unsigned self, other;
        char *owned; /* freed by the watch that owns it */
} Log;

static void watch_a(const VmEvent *e, void *userdata) {
        Log *l = userdata;
        g_string_append_printf(l->s, "a:%s:%s ", e->vm, federation_vm_state_to_string(e->state));
        if (strcmp(e->vm, "x") == 0 && e->state == FEDERATION_VM_STOPPED) {
                VmEvent again = { .vm = "y", .state = FEDERATION_VM_RUNNING };
                vm_events_post(l->ev, &again);
        }
}

static void watch_b(const VmEvent *e, void *userdata) {
        Log *l = userdata;
        g_string_append_printf(l->s, "b:%s ", e->vm);
        if (strcmp(e->vm, "y") == 0) {
                /* Gone with the VM: free what it owns and remove itself and watch c. */
                g_clear_pointer(&l->owned, g_free);
                vm_events_watch_remove(l->ev, l->self);
                vm_events_watch_remove(l->ev, l->other);
        }
}

static void watch_c(const VmEvent *e, void *userdata) {
        Log *l = userdata;
        g_string_append_printf(l->s, "c:%s ", e->vm);
}

static void deferred(void *userdata) {
        Log *l = userdata;
        g_string_append(l->s, "done ");
}

static void destroyed(void *userdata) {
        Log *l = userdata;
        g_string_append(l->s, "destroy ");
}

/* A consequence of the event being dispatched: before what was queued behind the event, in the order raised. */
static void next_1(void *userdata) {
        Log *l = userdata;
        g_string_append(l->s, "next1 ");
}

static void next_2(void *userdata) {
        Log *l = userdata;
        g_string_append(l->s, "next2 ");
}

static void watch_next(const VmEvent *e, void *userdata) {
        Log *l = userdata;
        g_string_append_printf(l->s, "n:%s ", e->vm);
        vm_events_defer_next(l->ev, next_1, l);
        vm_events_defer_next(l->ev, next_2, l);
}

static void test_defer_next(void) {
        Log l = { .s = g_string_new(NULL), .ev = vm_events_new() };
        VmEvent e1 = { .vm = "x", .state = FEDERATION_VM_RUNNING };
        VmEvent e2 = { .vm = "y", .state = FEDERATION_VM_RUNNING };

        vm_events_watch_add(l.ev, watch_next, &l, NULL);
        vm_events_post(l.ev, &e1);
        vm_events_defer(l.ev, deferred, &l);
        vm_events_post(l.ev, &e2);
        vm_events_flush(l.ev);
        g_assert_cmpstr(l.s->str, ==, "n:x next1 next2 done n:y next1 next2 ");

        /* Outside a dispatch: behind what is queued. */
        g_string_truncate(l.s, 0);
        vm_events_defer(l.ev, deferred, &l);
        vm_events_defer_next(l.ev, next_1, &l);
        vm_events_flush(l.ev);
        g_assert_cmpstr(l.s->str, ==, "done next1 ");

        vm_events_free(l.ev);
        g_string_free(l.s, TRUE);
}

int main(void) {
        test_defer_next();

        Log l = { .s = g_string_new(NULL), .ev = vm_events_new(), .owned = g_strdup("x's channel") };

        vm_events_watch_add(l.ev, watch_a, &l, NULL);
        l.self = vm_events_watch_add(l.ev, watch_b, &l, NULL);
        l.other = vm_events_watch_add(l.ev, watch_c, &l, destroyed);

        VmEvent e1 = { .vm = "x", .state = FEDERATION_VM_RUNNING };
        VmEvent e2 = { .vm = "x", .state = FEDERATION_VM_STOPPED };
        vm_events_post(l.ev, &e1);
        vm_events_post(l.ev, &e2);
        vm_events_defer(l.ev, deferred, &l);
        g_assert_cmpstr(l.s->str, ==, ""); /* nothing from inside post */

        while (g_main_context_iteration(NULL, FALSE))
                ;
        g_assert_cmpstr(l.s->str, ==,
                        "a:x:running b:x c:x a:x:stopped b:x c:x done a:y:running b:y destroy ");
        g_assert_null(l.owned);

        /* Removed watches hear nothing more. */
        g_string_truncate(l.s, 0);
        vm_events_post(l.ev, &e1);
        vm_events_flush(l.ev);
        g_assert_cmpstr(l.s->str, ==, "a:x:running ");

        vm_events_free(l.ev);
        g_string_free(l.s, TRUE);
        return 0;
}
