/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the broker hooks into the federation, on libvirt's in-memory
 * test:///default driver (the fixture: federation-fixture.h): the watch list
 * (one-way, deferred, in order, safe to free from), autostart at start, the
 * channel hook for every domain started.
 */
#include <errno.h>
#include <libvirt/libvirt.h>

#include "federation-fixture.h"

static void test_autostart(Fixture *x, gconstpointer data) {
        Result res = {};
        FederationCallbacks cb;

        fixture_write(x, "netvm", "service", "DefaultNetVM=true\nAutostart=true\n");
        fixture_write(x, "firewall", "service", "NetVM=\nAutostart=true\n");
        fixture_write(x, "alpha", "persona", "Autostart=true\n");
        fixture_write(x, "beta", "persona", "Autostart=true\n");
        fixture_write(x, "gamma", "persona", NULL);
        x->f = fixture_federation(x);

        cb = result_callbacks(&res);
        g_assert_cmpint(federation_autostart(x->f, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        /* One persona only: alpha (by name), beta refused, the services up first. */
        g_assert_cmpint(res.r, ==, -EBUSY);
        g_assert_nonnull(strstr(res.message, "cannot start persona beta: persona alpha is running"));
        g_assert_cmpint(federation_vm_state(x->f, "netvm"), ==, FEDERATION_VM_RUNNING);
        g_assert_cmpint(federation_vm_state(x->f, "firewall"), ==, FEDERATION_VM_RUNNING);
        g_assert_cmpint(federation_vm_state(x->f, "alpha"), ==, FEDERATION_VM_RUNNING);
        g_assert_cmpint(federation_vm_state(x->f, "beta"), ==, FEDERATION_VM_STOPPED);
        g_assert_cmpint(federation_vm_state(x->f, "gamma"), ==, FEDERATION_VM_STOPPED);
        g_assert_cmpint(state_log_find(&x->log, "firewall starting"), <, state_log_find(&x->log, "alpha starting"));

        /* Again: everything wanted already runs, beta is still refused. */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_autostart(x->f, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_assert_cmpint(res.r, ==, -EBUSY);
        g_assert_cmpuint(x->log.violations, ==, 0);
        g_ptr_array_unref(res.progress);
        g_free(res.message);
}

typedef struct ChannelCalls {
        GPtrArray *calls; /* "vm path" */
} ChannelCalls;

static int channel_cb(const char *vm, const char *path, void *userdata) {
        ChannelCalls *cc = userdata;
        g_ptr_array_add(cc->calls, g_strdup_printf("%s %s", vm, path));
        return strcmp(vm, "gondor") == 0 ? -EADDRINUSE : 0;
}

static void test_channel_hook(Fixture *x, gconstpointer data) {
        Result res = {};
        ChannelCalls cc = { .calls = g_ptr_array_new_with_free_func(g_free) };
        g_autoptr(GPtrArray) errors = NULL;
        g_autofree char *expect = NULL;
        FederationCallbacks cb;
        FederationOptions o = {
                .config_dir = x->config,
                .state_dir = x->state,
                .domain_prefix = x->prefix,
                .force_tcg = true,
                .fake_passthrough = true,
                .prepare_channel = channel_cb,
                .prepare_channel_userdata = &cc,
        };

        fixture_write(x, "netvm", "service", "DefaultNetVM=true\n");
        fixture_write(x, "rivendale", "persona", NULL);
        fixture_write(x, "gondor", "persona", NULL);
        fixture_write(x, "direct", "disposable-template", NULL);
        g_assert_cmpint(federation_new(x->conn, &o, &x->f, &errors), ==, 0);

        g_assert_cmpint(start_and_wait(x, "rivendale", &res), ==, 0);
        g_assert_cmpuint(cc.calls->len, ==, 2); /* the netvm, then rivendale */
        expect = g_strdup_printf("rivendale %s/channels/rivendale.sock", x->state);
        g_assert_cmpstr(cc.calls->pdata[1], ==, expect);
        {
                virDomainPtr dom = lookup(x, "rivendale");
                g_autofree char *xml = virDomainGetXMLDesc(dom, 0);
                g_assert_nonnull(strstr(xml, "mode='connect'")); /* the default: the broker listens */
                virDomainFree(dom);
        }
        /* Disposables get their channel prepared too. */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_start_disposable(x->f, "@dispvm", NULL, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_assert_cmpint(res.r, ==, 0);
        g_assert_true(g_str_has_prefix(cc.calls->pdata[2], res.message));
        /* A listener that cannot be made fails the start, and a switch rolls back. */
        g_assert_cmpint(switch_and_wait(x, "gondor", &res), ==, -EADDRINUSE);
        g_assert_nonnull(strstr(res.message, "nothing listens on the agent channel"));
        g_assert_nonnull(strstr(res.message, "rolled back to rivendale"));
        g_assert_cmpstr(federation_active_persona(x->f), ==, "rivendale");
        g_ptr_array_unref(cc.calls);
        g_ptr_array_unref(res.progress);
        g_free(res.message);
}


/* ---- the watch list: one-way, deferred, in order, safe to free from ---------- */

typedef struct WatchLog {
        Federation *f;
        GPtrArray *lines;    /* "vm state reason" and "done r" */
        unsigned self_id;    /* a watch that removes itself on "stopped" */
        unsigned other_id;   /* removed by the first watch on "stopped": never called for it */
        unsigned destroyed;
        char *owned;         /* freed by the self-removing watch's destroy */
} WatchLog;

static void watch_log_line(WatchLog *w, const char *prefix, const char *vm, FederationVmState s, const char *reason) {
        g_ptr_array_add(w->lines, g_strdup_printf("%s %s %s %s", prefix, vm, federation_vm_state_to_string(s),
                                                  reason ? reason : "-"));
}

static void watch_first(const char *vm, FederationVmState s, const char *reason, void *userdata) {
        WatchLog *w = userdata;
        watch_log_line(w, "first", vm, s, reason);
        if (s == FEDERATION_VM_STOPPED) {
                /* Calling back into the federation and removing watches is allowed here. */
                g_assert_cmpint(federation_vm_state(w->f, vm), ==, FEDERATION_VM_STOPPED);
                federation_watch_remove(w->f, w->other_id);
                federation_watch_remove(w->f, w->self_id);
        }
}

static void watch_other(const char *vm, FederationVmState s, const char *reason, void *userdata) {
        WatchLog *w = userdata;
        watch_log_line(w, "other", vm, s, reason);
}

static void watch_destroyed(void *userdata) {
        WatchLog *w = userdata;
        w->destroyed++;
        g_clear_pointer(&w->owned, g_free);
}

static void watch_done(int r, const char *message, void *userdata) {
        WatchLog *w = userdata;
        g_ptr_array_add(w->lines, g_strdup_printf("done %d", r));
}

static int watch_log_find(WatchLog *w, const char *line) {
        for (guint i = 0; i < w->lines->len; i++)
                if (strcmp(w->lines->pdata[i], line) == 0)
                        return (int) i;
        return -1;
}

static void test_watch_list(Fixture *x, gconstpointer data) {
        WatchLog w = { .f = x->f, .lines = g_ptr_array_new_with_free_func(g_free), .owned = g_strdup("mine") };
        FederationCallbacks cb = { .done = watch_done, .userdata = &w };
        g_autofree char *err = NULL;
        bool stopped = false;
        Result res = {};

        fixture_standard(x);
        w.f = x->f;
        w.self_id = federation_watch_add(x->f, watch_first, &w, watch_destroyed);
        w.other_id = federation_watch_add(x->f, watch_other, &w, NULL);
        g_assert_cmpuint(w.self_id, !=, 0);
        g_assert_cmpuint(w.other_id, !=, w.self_id);

        /* Nothing is delivered from inside the call, neither state nor done. */
        g_assert_cmpint(federation_start_vm(x->f, "rivendale", &cb, &err), ==, 0);
        g_assert_cmpuint(w.lines->len, ==, 0);
        for (int i = 0; i < 5000 && watch_log_find(&w, "done 0") < 0; i++)
                run_for(0.001);
        /* In order: both watches see "starting" and "running" before the start's done. */
        g_assert_cmpint(watch_log_find(&w, "first rivendale starting start requested"), >=, 0);
        g_assert_cmpint(watch_log_find(&w, "first rivendale running booted"), >,
                        watch_log_find(&w, "first rivendale starting start requested"));
        g_assert_cmpint(watch_log_find(&w, "other rivendale running booted"), >=, 0);
        g_assert_cmpint(watch_log_find(&w, "done 0"), >, watch_log_find(&w, "other rivendale running booted"));

        /* A forced stop: the watch removes itself and the other one while "stopped" is delivered. */
        g_ptr_array_set_size(w.lines, 0);
        g_assert_cmpint(federation_stop_vm(x->f, "rivendale", true, &cb, &err), ==, 0);
        g_assert_cmpuint(w.lines->len, ==, 0);
        for (int i = 0; i < 5000 && !stopped; i++) {
                run_for(0.001);
                stopped = watch_log_find(&w, "done 0") >= 0;
        }
        g_assert_true(stopped);
        g_assert_cmpint(watch_log_find(&w, "first rivendale stopped destroyed"), >=, 0);
        g_assert_cmpint(watch_log_find(&w, "other rivendale stopped destroyed"), <, 0); /* removed before its turn */
        g_assert_cmpuint(w.destroyed, ==, 1);
        g_assert_null(w.owned);

        /* Removed watches get nothing more; removing again or an unknown id is harmless. */
        g_ptr_array_set_size(w.lines, 0);
        federation_watch_remove(x->f, w.self_id);
        federation_watch_remove(x->f, 12345);
        g_assert_cmpint(start_and_wait(x, "rivendale", &res), ==, 0);
        run_for(0.05);
        g_assert_cmpuint(w.lines->len, ==, 0);
        g_assert_cmpuint(w.destroyed, ==, 1);

        /* federation_free() releases the watches still there. */
        w.self_id = federation_watch_add(x->f, watch_other, &w, watch_destroyed);
        g_clear_pointer(&x->f, federation_free);
        g_assert_cmpuint(w.destroyed, ==, 2);
        g_ptr_array_unref(w.lines);
        g_ptr_array_unref(res.progress);
        g_free(res.message);
}

int main(int argc, char *argv[]) {
        fixture_init(&argc, &argv);

#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("/federation/watch-list", test_watch_list);
        ADD("/federation/autostart", test_autostart);
        ADD("/federation/channel-hook", test_channel_hook);
        return g_test_run();
}
