/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The federation's lifecycle on libvirt's in-memory test:///default driver
 * (the fixture: federation-fixture.h): start order, exclusivity, graceful
 * stop, switching (shutdown and managed save paths, -EBUSY, rollback when the
 * target fails), state from events, adoption by a new federation object,
 * resuming an interrupted switch, a passthrough device without a reset method.
 * Disposables and AddVM/RemoveVM are in test-federation-vms.c, the watch
 * list, autostart and the channel hook in test-federation-hooks.c.
 */
#include <errno.h>
#include <libvirt/libvirt.h>
#include <unistd.h>

#include "federation-fixture.h"

static void test_start_order_and_stop(Fixture *x, gconstpointer data) {
        Result res = {};
        FederationCallbacks cb;
        g_autofree char *err = NULL;
        int i_net, i_riv;

        fixture_standard(x);
        g_assert_cmpint(start_and_wait(x, "rivendale", &res), ==, 0);
        /* The netvm came up before the persona that uses it. */
        i_net = state_log_find(&x->log, "netvm running");
        i_riv = state_log_find(&x->log, "rivendale starting");
        g_assert_cmpint(i_net, >=, 0);
        g_assert_cmpint(i_riv, >=, 0);
        g_assert_true(result_has_progress(&res, "starting netvm, the NetVM of rivendale"));
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_RUNNING);
        g_assert_cmpstr(federation_active_persona(x->f), ==, "rivendale");

        /* The netvm is in use: only a forced stop takes it down. */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_stop_vm(x->f, "netvm", false, &cb, &err), ==, -EBUSY);
        g_assert_nonnull(strstr(err, "rivendale"));

        /* Graceful stop; libvirt's stopped event settles it. */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_stop_vm(x->f, "rivendale", false, &cb, NULL), ==, 0);
        g_assert_false(res.done); /* never re-entrant */
        g_assert_true(run_until(&res.done, 5));
        g_assert_cmpint(res.r, ==, 0);
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_STOPPED);
        g_assert_cmpint(federation_vm_state(x->f, "netvm"), ==, FEDERATION_VM_RUNNING);
        g_assert_true(result_has_progress(&res, "ACPI power button"));

        /* Starting again, and a second start is refused. */
        g_assert_cmpint(start_and_wait(x, "rivendale", &res), ==, 0);
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_start_vm(x->f, "rivendale", &cb, NULL), ==, -EALREADY);
        g_assert_cmpint(federation_start_vm(x->f, "nosuch", &cb, NULL), ==, -ENOENT);
        g_assert_cmpuint(x->log.violations, ==, 0);
        result_reset(&res);
        g_ptr_array_unref(res.progress);
}

static void test_exclusivity(Fixture *x, gconstpointer data) {
        Result res = {};
        FederationCallbacks cb;
        g_autofree char *err = NULL, *err2 = NULL;

        fixture_write(x, "netvm", "service", "DefaultNetVM=true\n");
        fixture_write(x, "rivendale", "persona", "[Passthrough]\nDevices=0000:01:00.0\n");
        fixture_write(x, "gondor", "persona", "[Passthrough]\nDevices=0000:02:00.0\n");
        fixture_write(x, "usbvm", "service", "NetVM=\n[Passthrough]\nDevices=0000:01:00.0\n");
        fixture_write(x, "usbvm2", "service", "NetVM=\n[Passthrough]\nDevices=0000:02:00.0\n");
        x->f = fixture_federation(x);

        g_assert_cmpint(start_and_wait(x, "rivendale", &res), ==, 0);
        /* Another persona: refused whoever asks (Start, not Switch). */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_start_vm(x->f, "gondor", &cb, &err), ==, -EBUSY);
        g_assert_nonnull(strstr(err, "persona rivendale"));
        /* A service VM claiming the persona's device: refused. */
        g_assert_cmpint(federation_start_vm(x->f, "usbvm", &cb, &err2), ==, -EBUSY);
        g_assert_nonnull(strstr(err2, "0000:01:00.0"));
        g_assert_nonnull(strstr(err2, "rivendale"));
        /* A service VM holding gondor's device: the switch is refused before anything stops. */
        g_assert_cmpint(start_and_wait(x, "usbvm2", &res), ==, 0);
        {
                g_autofree char *err3 = NULL;
                cb = result_callbacks(&res);
                g_assert_cmpint(federation_switch_persona(x->f, "gondor", &cb, &err3), ==, -EBUSY);
                g_assert_nonnull(strstr(err3, "0000:02:00.0 is held by usbvm2"));
                g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_RUNNING);
        }
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_stop_vm(x->f, "usbvm2", true, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 5));
        /* Switching is the way between personas. */
        g_assert_cmpint(switch_and_wait(x, "gondor", &res), ==, 0);
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_STOPPED);
        g_assert_cmpuint(x->log.violations, ==, 0);
        g_ptr_array_unref(res.progress);
        g_free(res.message);
}

static void test_switch_shutdown_and_save(Fixture *x, gconstpointer data) {
        Result res = {};
        virDomainPtr dom;
        unsigned netvm_id;

        fixture_standard(x);
        g_assert_cmpint(start_and_wait(x, "rivendale", &res), ==, 0);
        dom = lookup(x, "netvm");
        netvm_id = virDomainGetID(dom);
        virDomainFree(dom);

        /* Passthrough personas: shut down and booted. */
        g_assert_cmpint(switch_and_wait(x, "gondor", &res), ==, 0);
        g_assert_null(res.message);
        g_assert_cmpstr(federation_active_persona(x->f), ==, "gondor");
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_STOPPED);
        g_assert_true(result_has_progress(&res, "shutting down rivendale"));
        g_assert_true(result_has_progress(&res, "gondor is the active persona"));
        /* The rivendale stop came before the gondor start (devices released first). */
        g_assert_cmpint(state_log_find(&x->log, "rivendale stopped"), <, state_log_find(&x->log, "gondor starting"));
        g_assert_false(federation_switch_in_progress(x->f));

        /* A persona without devices keeps its state: managed save, then restore. */
        g_assert_cmpint(switch_and_wait(x, "shire", &res), ==, 0);
        g_assert_cmpint(switch_and_wait(x, "rivendale", &res), ==, 0);
        g_assert_true(result_has_progress(&res, "saving shire"));
        g_assert_cmpint(federation_vm_state(x->f, "shire"), ==, FEDERATION_VM_SAVED);
        dom = lookup(x, "shire");
        g_assert_cmpint(virDomainHasManagedSaveImage(dom, 0), ==, 1);
        virDomainFree(dom);
        g_assert_cmpint(switch_and_wait(x, "shire", &res), ==, 0);
        g_assert_true(result_has_progress(&res, "restoring shire from its saved state"));
        g_assert_cmpint(state_log_find(&x->log, "shire running restored"), >=, 0);

        /* Switching to the active persona is a no-op that still completes. */
        g_assert_cmpint(switch_and_wait(x, "shire", &res), ==, 0);
        /* Not a persona. */
        {
                FederationCallbacks cb = result_callbacks(&res);
                g_assert_cmpint(federation_switch_persona(x->f, "netvm", &cb, NULL), ==, -EINVAL);
        }

        /* The netvm never stopped. */
        dom = lookup(x, "netvm");
        g_assert_cmpuint(virDomainGetID(dom), ==, netvm_id);
        virDomainFree(dom);
        g_assert_cmpint(state_log_find(&x->log, "netvm stopp"), ==, -1);
        g_assert_cmpuint(x->log.violations, ==, 0);
        g_ptr_array_unref(res.progress);
}

static void test_switch_busy(Fixture *x, gconstpointer data) {
        Result a = {}, b = {};
        FederationCallbacks cba, cbb;
        g_autofree char *err = NULL;

        fixture_standard(x);
        g_assert_cmpint(start_and_wait(x, "rivendale", &a), ==, 0);
        cba = result_callbacks(&a);
        cbb = result_callbacks(&b);
        g_assert_cmpint(federation_switch_persona(x->f, "gondor", &cba, NULL), ==, 0);
        g_assert_true(federation_switch_in_progress(x->f));
        g_assert_cmpint(federation_switch_persona(x->f, "shire", &cbb, &err), ==, -EBUSY);
        g_assert_nonnull(strstr(err, "gondor"));
        /* Nor may a persona be started or stopped behind the switch's back. */
        g_assert_cmpint(federation_start_vm(x->f, "shire", &cbb, NULL), ==, -EBUSY);
        g_assert_true(run_until(&a.done, 10));
        g_assert_cmpint(a.r, ==, 0);
        g_assert_false(b.done);
        g_ptr_array_unref(a.progress);
        g_ptr_array_unref(b.progress);
}

static void test_switch_rollback(Fixture *x, gconstpointer data) {
        Result res = {};
        g_autofree char *disk = g_build_filename(x->tmp, "netvm2.img", NULL);
        g_autofree char *text = NULL;

        write_text(disk, "raw disk\n");
        fixture_write(x, "netvm", "service", "DefaultNetVM=true\n");
        text = g_strdup_printf("[VM]\nRole=service\nMemory=128M\nDisk=%s\n", disk);
        write_vm(x->config, "netvm2", text);
        fixture_write(x, "rivendale", "persona", "[Passthrough]\nDevices=0000:01:00.0\n");
        fixture_write(x, "gondor", "persona", "NetVM=netvm2\n[Passthrough]\nDevices=0000:01:00.0\n");
        x->f = fixture_federation(x);

        g_assert_cmpint(start_and_wait(x, "rivendale", &res), ==, 0);
        /* gondor's NetVM loses its disk after the configuration was loaded. */
        g_assert_cmpint(unlink(disk), ==, 0);
        g_assert_cmpint(switch_and_wait(x, "gondor", &res), ==, -ENOENT);
        g_assert_nonnull(strstr(res.message, "netvm2"));
        g_assert_nonnull(strstr(res.message, "rolled back to rivendale"));
        g_assert_cmpstr(federation_active_persona(x->f), ==, "rivendale");
        g_assert_cmpint(federation_vm_state(x->f, "gondor"), ==, FEDERATION_VM_STOPPED);
        /* rivendale really went down and came back. */
        g_assert_cmpint(state_log_find(&x->log, "rivendale stopped"), >=, 0);
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_RUNNING);
        {
                g_autofree char *j = g_build_filename(x->state, "switch.journal", NULL);
                g_assert_false(g_file_test(j, G_FILE_TEST_EXISTS));
        }
        g_assert_cmpuint(x->log.violations, ==, 0);
        g_ptr_array_unref(res.progress);
        g_free(res.message);
}

static void test_events(Fixture *x, gconstpointer data) {
        Result res = {};
        virDomainPtr dom;
        gint64 t0;

        fixture_standard(x);
        g_assert_cmpint(start_and_wait(x, "rivendale", &res), ==, 0);
        /* Someone else kills the domain: the state follows libvirt's event. */
        dom = lookup(x, "rivendale");
        x->log.last_stopped_usec = 0;
        t0 = g_get_monotonic_time();
        g_assert_cmpint(virDomainDestroy(dom), ==, 0);
        virDomainFree(dom);
        /* State events are delivered from the loop (federation.h): wait for the watch's too. */
        while ((federation_vm_state(x->f, "rivendale") != FEDERATION_VM_STOPPED ||
                state_log_find(&x->log, "rivendale stopped destroyed") < 0) &&
               g_get_monotonic_time() - t0 < G_USEC_PER_SEC)
                g_main_context_iteration(NULL, false);
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_STOPPED);
        g_assert_cmpint(state_log_find(&x->log, "rivendale stopped destroyed"), >=, 0);
        g_assert_null(federation_active_persona(x->f));
        /* Started behind our back (virsh start): seen too. */
        dom = lookup(x, "rivendale");
        g_assert_cmpint(virDomainCreate(dom), ==, 0);
        virDomainFree(dom);
        run_for(0.2);
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_RUNNING);
        g_ptr_array_unref(res.progress);
}

/* What the adoption tests leave running: the netvm, rivendale active, shire saved, gondor stopped. */
static void adopt_scenario(Fixture *x, Result *res) {
        fixture_standard(x);
        g_assert_cmpint(start_and_wait(x, "rivendale", res), ==, 0);
        g_assert_cmpint(switch_and_wait(x, "shire", res), ==, 0);
        g_assert_cmpint(switch_and_wait(x, "rivendale", res), ==, 0);
}

/* A new federation found that as it was. */
static void assert_adopted(Fixture *x) {
        g_assert_cmpint(federation_vm_state(x->f, "netvm"), ==, FEDERATION_VM_RUNNING);
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_RUNNING);
        g_assert_cmpint(federation_vm_state(x->f, "shire"), ==, FEDERATION_VM_SAVED);
        g_assert_cmpint(federation_vm_state(x->f, "gondor"), ==, FEDERATION_VM_STOPPED);
        g_assert_cmpstr(federation_active_persona(x->f), ==, "rivendale");
}

static void test_adopt(Fixture *x, gconstpointer data) {
        Result res = {};
        virDomainPtr dom;
        unsigned id_net, id_riv;

        adopt_scenario(x, &res);
        dom = lookup(x, "netvm");
        id_net = virDomainGetID(dom);
        virDomainFree(dom);
        dom = lookup(x, "rivendale");
        id_riv = virDomainGetID(dom);
        virDomainFree(dom);

        /* The broker restarts. */
        g_clear_pointer(&x->f, federation_free);
        x->f = fixture_federation(x);
        assert_adopted(x);
        {
                FederationCallbacks cb = result_callbacks(&res);
                g_assert_cmpint(federation_resume(x->f, &cb, NULL), ==, 0);
                g_assert_true(run_until(&res.done, 5));
                g_assert_cmpint(res.r, ==, 0);
        }
        /* Nothing was restarted. */
        dom = lookup(x, "netvm");
        g_assert_cmpuint(virDomainGetID(dom), ==, id_net);
        virDomainFree(dom);
        dom = lookup(x, "rivendale");
        g_assert_cmpuint(virDomainGetID(dom), ==, id_riv);
        virDomainFree(dom);
        /* And the adopted state is live: exclusivity holds against adopted VMs. */
        {
                FederationCallbacks cb = result_callbacks(&res);
                g_assert_cmpint(federation_start_vm(x->f, "gondor", &cb, NULL), ==, -EBUSY);
        }
        g_ptr_array_unref(res.progress);
}

/* A domain event while the async adoption scans: what is applied is never older than it. */
static void destroy_netvm(Fixture *x, void *userdata) {
        virDomainPtr dom = lookup(x, "netvm");
        g_assert_nonnull(dom);
        g_assert_cmpint(virDomainDestroy(dom), ==, 0);
        virDomainFree(dom);
}

static void loaded_never(Federation *f, int r, const char *error, void *userdata) {
        g_assert_not_reached();
}

/* federation_new_async() (vmfedd after a reconnection) adopts as federation_new() does. */
static void test_adopt_async(Fixture *x, gconstpointer data) {
        Result res = {};
        virDomainPtr dom;
        unsigned id_riv;

        adopt_scenario(x, &res);
        dom = lookup(x, "rivendale");
        id_riv = virDomainGetID(dom);
        virDomainFree(dom);

        g_clear_pointer(&x->f, federation_free);
        state_log_clear(&x->log);
        x->f = fixture_federation_async(x, NULL, NULL);
        assert_adopted(x);
        dom = lookup(x, "rivendale");
        g_assert_cmpuint(virDomainGetID(dom), ==, id_riv);
        virDomainFree(dom);
        {
                FederationCallbacks cb = result_callbacks(&res);
                g_assert_cmpint(federation_start_vm(x->f, "gondor", &cb, NULL), ==, -EBUSY);
        }

        /* Freed while loading: loaded is never called, nothing leaks (ASan, valgrind). */
        g_clear_pointer(&x->f, federation_free);
        {
                FederationOptions o = { .config_dir = x->config, .state_dir = x->state, .domain_prefix = x->prefix };
                Federation *f = NULL;
                g_assert_cmpint(federation_new_async(x->conn, &o, NULL, NULL, &f, NULL), ==, -EINVAL);
                g_assert_cmpint(federation_new_async(x->conn, &o, loaded_never, NULL, &f, NULL), ==, 0);
                federation_free(f);
                run_for(0.3);
        }

        /* The netvm is destroyed while the scan runs: it ends up stopped, whichever came first. */
        state_log_clear(&x->log);
        x->f = fixture_federation_async(x, destroy_netvm, NULL);
        for (int i = 0; i < 100 && federation_vm_state(x->f, "netvm") != FEDERATION_VM_STOPPED; i++)
                run_for(0.05);
        g_assert_cmpint(federation_vm_state(x->f, "netvm"), ==, FEDERATION_VM_STOPPED);
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_RUNNING);
        g_ptr_array_unref(res.progress);
}

static void write_journal(Fixture *x, const char *from, const char *to, const char *phase) {
        g_autofree char *p = g_build_filename(x->state, "switch.journal", NULL);
        g_autofree char *t = g_strdup_printf("[Switch]\nFrom=%s\nTo=%s\nPhase=%s\n", from, to, phase);
        write_text(p, t);
}

static void test_resume(Fixture *x, gconstpointer data) {
        Result res = {};
        FederationCallbacks cb;

        fixture_standard(x);
        g_assert_cmpint(start_and_wait(x, "rivendale", &res), ==, 0);

        /* Crash while stopping rivendale for gondor: rivendale still runs. */
        g_clear_pointer(&x->f, federation_free);
        write_journal(x, "rivendale", "gondor", "stopping");
        x->f = fixture_federation(x);
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_resume(x->f, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_assert_cmpint(res.r, ==, 0);
        g_assert_cmpstr(federation_active_persona(x->f), ==, "gondor");
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_STOPPED);

        /* Crash after gondor stopped, before shire started: finished on restart. */
        {
                virDomainPtr dom = lookup(x, "gondor");
                g_clear_pointer(&x->f, federation_free);
                g_assert_cmpint(virDomainDestroy(dom), ==, 0);
                virDomainFree(dom);
        }
        write_journal(x, "gondor", "shire", "starting");
        x->f = fixture_federation(x);
        g_assert_null(federation_active_persona(x->f));
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_resume(x->f, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_assert_cmpint(res.r, ==, 0);
        g_assert_cmpstr(federation_active_persona(x->f), ==, "shire");

        /* Crash during a rollback to rivendale: rivendale is started. */
        {
                virDomainPtr dom = lookup(x, "shire");
                g_clear_pointer(&x->f, federation_free);
                g_assert_cmpint(virDomainDestroy(dom), ==, 0);
                virDomainFree(dom);
        }
        write_journal(x, "rivendale", "gondor", "rollback");
        x->f = fixture_federation(x);
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_resume(x->f, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_assert_cmpstr(federation_active_persona(x->f), ==, "rivendale");
        {
                g_autofree char *j = g_build_filename(x->state, "switch.journal", NULL);
                g_assert_false(g_file_test(j, G_FILE_TEST_EXISTS));
        }
        g_assert_cmpuint(x->log.violations, ==, 0);
        g_ptr_array_unref(res.progress);
}


static void test_passthrough_sysfs(Fixture *x, gconstpointer data) {
        Result res = {};
        FederationCallbacks cb;
        g_autofree char *err = NULL;
        g_autoptr(GPtrArray) errors = NULL;
        g_autofree char *root = g_build_filename(g_getenv("VMFED_SOURCE_ROOT"), "tests/federation/fixtures/gpu-no-reset/sys", NULL);
        FederationOptions o = {
                .config_dir = x->config,
                .state_dir = x->state,
                .domain_prefix = x->prefix,
                .force_tcg = true,
                .fake_passthrough = true,
                .sysfs_root = root,
        };

        fixture_write(x, "gondor", "persona", "NetVM=\n[Passthrough]\nDevices=0000:01:00.0;0000:01:00.1\n");
        g_assert_cmpint(federation_new(x->conn, &o, &x->f, &errors), ==, 0);
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_start_vm(x->f, "gondor", &cb, &err), ==, -EOPNOTSUPP);
        g_assert_nonnull(strstr(err, "0000:01:00.1 has no reset method"));
        g_ptr_array_unref(res.progress);
}

int main(int argc, char *argv[]) {
        fixture_init(&argc, &argv);

#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("/federation/start-order-and-stop", test_start_order_and_stop);
        ADD("/federation/exclusivity", test_exclusivity);
        ADD("/federation/switch", test_switch_shutdown_and_save);
        ADD("/federation/switch-busy", test_switch_busy);
        ADD("/federation/switch-rollback", test_switch_rollback);
        ADD("/federation/events", test_events);
        ADD("/federation/adopt", test_adopt);
        ADD("/federation/adopt-async", test_adopt_async);
        ADD("/federation/resume", test_resume);
        ADD("/federation/passthrough-sysfs", test_passthrough_sysfs);
        return g_test_run();
}
