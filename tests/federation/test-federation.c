/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The federation's logic on libvirt's in-memory test:///default driver:
 * start order, exclusivity, graceful stop, switching (shutdown and managed
 * save paths, -EBUSY, rollback when the target fails), state from events,
 * adoption by a new federation object, resuming an interrupted switch,
 * disposables and their overlays, AddVM/RemoveVM validation, generations.
 */
#include <errno.h>
#include <libvirt/libvirt.h>
#include <unistd.h>

#include "fed-test-util.h"
#include "federation/generation.h"

typedef struct Fixture {
        char *tmp;
        char *config;
        char *state;
        char *kernel;
        char *prefix;
        virConnectPtr conn;
        Federation *f;
        StateLog log;
} Fixture;

static unsigned fixture_counter;

static void fixture_setup(Fixture *x, gconstpointer data) {
        x->tmp = g_dir_make_tmp("vmfed-fed-XXXXXX", NULL);
        g_assert_nonnull(x->tmp);
        x->config = g_build_filename(x->tmp, "etc", NULL);
        x->state = g_build_filename(x->tmp, "state", NULL);
        x->kernel = g_build_filename(x->tmp, "vmlinuz", NULL);
        write_text(x->kernel, "not really a kernel: the test driver never reads it\n");
        x->prefix = g_strdup_printf("vmfed-t%d-%u-", (int) getpid(), ++fixture_counter);
        x->conn = virConnectOpen("test:///default");
        g_assert_nonnull(x->conn);
}

static void fixture_teardown(Fixture *x, gconstpointer data) {
        virDomainPtr *doms = NULL;
        int n;

        g_clear_pointer(&x->f, federation_free);
        /* Leave the shared test driver clean: remove every domain of this run. */
        n = virConnectListAllDomains(x->conn, &doms, 0);
        for (int i = 0; i < n; i++) {
                if (g_str_has_prefix(virDomainGetName(doms[i]), x->prefix)) {
                        if (virDomainIsActive(doms[i]) == 1)
                                (void) virDomainDestroy(doms[i]);
                        (void) virDomainUndefineFlags(doms[i], VIR_DOMAIN_UNDEFINE_MANAGED_SAVE);
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        virConnectClose(x->conn);
        state_log_clear(&x->log);
        {
                g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", x->tmp);
                g_assert_cmpint(system(cmd), ==, 0);
        }
        g_free(x->tmp);
        g_free(x->config);
        g_free(x->state);
        g_free(x->kernel);
        g_free(x->prefix);
}

static void fixture_write(Fixture *x, const char *name, const char *role, const char *extra) {
        g_autofree char *text = g_strdup_printf("[VM]\nRole=%s\nMemory=256M\nKernel=%s\nStopTimeout=2\n%s", role,
                                                x->kernel, extra ? extra : "");
        write_vm(x->config, name, text);
}

static Federation *fixture_federation(Fixture *x) {
        g_autoptr(GPtrArray) errors = NULL;
        FederationOptions o = {
                .config_dir = x->config,
                .state_dir = x->state,
                .domain_prefix = x->prefix,
                .bridge = "vmfedtest0",
                .force_tcg = true,
                .fake_passthrough = true,
        };
        Federation *f = NULL;
        int r = federation_new(x->conn, &o, &f, &errors);
        for (guint i = 0; errors && i < errors->len; i++)
                g_printerr("%s\n", (char *) errors->pdata[i]);
        g_assert_cmpint(r, ==, 0);
        state_log_attach(&x->log, f);
        return f;
}

/* A netvm, two personas sharing a (fake) GPU, a third persona without devices. */
static void fixture_standard(Fixture *x) {
        fixture_write(x, "netvm", "service", "DefaultNetVM=true\n");
        fixture_write(x, "rivendale", "persona", "[Passthrough]\nDevices=0000:01:00.0;0000:01:00.1\n");
        fixture_write(x, "gondor", "persona", "[Passthrough]\nDevices=0000:01:00.0;0000:01:00.1\n");
        fixture_write(x, "shire", "persona", NULL);
        fixture_write(x, "tools", "app", "[Passthrough]\n");
        x->f = fixture_federation(x);
}

static int start_and_wait(Fixture *x, const char *name, Result *res) {
        FederationCallbacks cb = result_callbacks(res);
        g_autofree char *err = NULL;
        int r = federation_start_vm(x->f, name, &cb, &err);
        if (r < 0)
                return r;
        g_assert_true(run_until(&res->done, 10));
        return res->r;
}

static int switch_and_wait(Fixture *x, const char *name, Result *res) {
        FederationCallbacks cb = result_callbacks(res);
        g_autofree char *err = NULL;
        int r = federation_switch_persona(x->f, name, &cb, &err);
        if (r < 0)
                return r;
        g_assert_true(run_until(&res->done, 15));
        return res->r;
}

static virDomainPtr lookup(Fixture *x, const char *vm) {
        g_autofree char *n = g_strconcat(x->prefix, vm, NULL);
        return virDomainLookupByName(x->conn, n);
}

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

static void test_adopt(Fixture *x, gconstpointer data) {
        Result res = {};
        virDomainPtr dom;
        unsigned id_net, id_riv;

        fixture_standard(x);
        g_assert_cmpint(start_and_wait(x, "rivendale", &res), ==, 0);
        g_assert_cmpint(switch_and_wait(x, "shire", &res), ==, 0);
        g_assert_cmpint(switch_and_wait(x, "rivendale", &res), ==, 0);
        dom = lookup(x, "netvm");
        id_net = virDomainGetID(dom);
        virDomainFree(dom);
        dom = lookup(x, "rivendale");
        id_riv = virDomainGetID(dom);
        virDomainFree(dom);

        /* The broker restarts. */
        g_clear_pointer(&x->f, federation_free);
        x->f = fixture_federation(x);
        g_assert_cmpint(federation_vm_state(x->f, "netvm"), ==, FEDERATION_VM_RUNNING);
        g_assert_cmpint(federation_vm_state(x->f, "rivendale"), ==, FEDERATION_VM_RUNNING);
        g_assert_cmpint(federation_vm_state(x->f, "shire"), ==, FEDERATION_VM_SAVED);
        g_assert_cmpint(federation_vm_state(x->f, "gondor"), ==, FEDERATION_VM_STOPPED);
        g_assert_cmpstr(federation_active_persona(x->f), ==, "rivendale");
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

static int count_overlays(Fixture *x) {
        g_autofree char *d = g_build_filename(x->state, "disposables", NULL);
        g_autoptr(GDir) dir = g_dir_open(d, 0, NULL);
        int n = 0;
        while (dir && g_dir_read_name(dir))
                n++;
        return n;
}

static void test_disposables(Fixture *x, gconstpointer data) {
        Result res = {};
        FederationCallbacks cb;
        g_autofree char *base = g_build_filename(x->tmp, "template.qcow2", NULL);
        g_autofree char *cmd = g_strdup_printf("qemu-img create -q -f qcow2 '%s' 16M", base);
        g_autofree char *text = NULL, *disp1 = NULL, *disp2 = NULL, *err = NULL;
        g_autofree char *overlay = NULL;

        g_assert_cmpint(system(cmd), ==, 0);
        fixture_write(x, "netvm", "service", "DefaultNetVM=true\n");
        text = g_strdup_printf("[VM]\nRole=disposable-template\nMemory=256M\nDisk=%s\n", base);
        write_vm(x->config, "dvm", text);
        fixture_write(x, "direct", "disposable-template", "NetVM=\n");
        fixture_write(x, "rivendale", "persona", "DefaultDispVM=direct\n");
        x->f = fixture_federation(x);

        /* Two templates, no DefaultDispVM for the caller: the request must name one. */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_start_disposable(x->f, "@dispvm", NULL, &cb, &err), ==, -ENOENT);
        g_assert_nonnull(strstr(err, "several"));
        g_assert_cmpint(federation_start_disposable(x->f, "@dispvm:rivendale", NULL, &cb, NULL), ==, -EINVAL);
        g_assert_cmpint(federation_start_vm(x->f, "dvm", &cb, NULL), ==, -EINVAL); /* templates never run */

        /* Disk template: overlay in the state dir while it runs; netvm first. */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_start_disposable(x->f, "@dispvm:dvm", NULL, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_assert_cmpint(res.r, ==, 0);
        disp1 = g_strdup(res.message);
        g_assert_true(g_str_has_prefix(disp1, "disp"));
        g_assert_cmpint(federation_vm_state(x->f, disp1), ==, FEDERATION_VM_RUNNING);
        g_assert_cmpint(federation_vm_state(x->f, "netvm"), ==, FEDERATION_VM_RUNNING);
        overlay = g_strdup_printf("%s/disposables/%s.qcow2", x->state, disp1);
        g_assert_true(g_file_test(overlay, G_FILE_TEST_EXISTS));
        {
                virDomainPtr dom = lookup(x, disp1);
                g_autofree char *xml = virDomainGetXMLDesc(dom, 0);
                g_assert_nonnull(strstr(xml, overlay));
                g_assert_nonnull(strstr(xml, "<vmfed:role>disposable</vmfed:role>") ? xml : strstr(xml, ">disposable<"));
                g_assert_cmpint(virDomainIsPersistent(dom), ==, 0);
                virDomainFree(dom);
        }
        /* Stopped: overlay deleted, the VM gone. */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_stop_vm(x->f, disp1, false, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 5));
        g_assert_false(g_file_test(overlay, G_FILE_TEST_EXISTS));
        g_assert_cmpint(federation_vm_state(x->f, disp1), ==, -ENOENT);

        /* The netvm serves a running disposable: not stopped without force. */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_start_disposable(x->f, "dvm", NULL, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_clear_pointer(&disp1, g_free);
        disp1 = g_strdup(res.message);
        g_clear_pointer(&err, g_free);
        g_assert_cmpint(federation_stop_vm(x->f, "netvm", false, &cb, &err), ==, -EBUSY);
        g_assert_nonnull(strstr(err, disp1));
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_stop_vm(x->f, disp1, true, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 5));
        g_assert_cmpint(count_overlays(x), ==, 0);

        /* The caller's DefaultDispVM picks the direct-boot template: no overlay. */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_start_disposable(x->f, "@dispvm", "rivendale", &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_assert_cmpint(res.r, ==, 0);
        disp2 = g_strdup(res.message);
        g_assert_cmpint(count_overlays(x), ==, 0);

        /* A disposable whose domain dies while the broker is down: overlay swept at restart. */
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_start_disposable(x->f, "dvm", NULL, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_clear_pointer(&disp1, g_free);
        disp1 = g_strdup(res.message);
        g_assert_cmpint(count_overlays(x), ==, 1);
        g_clear_pointer(&x->f, federation_free);
        {
                virDomainPtr dom = lookup(x, disp1);
                g_assert_cmpint(virDomainDestroy(dom), ==, 0);
                virDomainFree(dom);
        }
        x->f = fixture_federation(x);
        g_assert_cmpint(count_overlays(x), ==, 0);
        /* The other disposable still runs and was adopted as one. */
        g_assert_cmpint(federation_vm_state(x->f, disp2), ==, FEDERATION_VM_RUNNING);
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_stop_vm(x->f, disp2, true, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 5));
        g_assert_cmpint(federation_vm_state(x->f, disp2), ==, -ENOENT);
        g_ptr_array_unref(res.progress);
        g_free(res.message);
}

static bool errors_contain(GPtrArray *errors, const char *needle) {
        for (guint i = 0; errors && i < errors->len; i++)
                if (strstr(errors->pdata[i], needle))
                        return true;
        return false;
}

static void test_add_remove(Fixture *x, gconstpointer data) {
        Result res = {};
        g_autoptr(GPtrArray) e1 = NULL, e2 = NULL, e3 = NULL, e4 = NULL, e5 = NULL, e6 = NULL, gens = NULL;
        g_autofree char *good = NULL, *path = NULL;

        fixture_standard(x);
        /* The configuration found at start is generation 1; nothing new when unchanged. */
        g_assert_cmpuint(federation_generation(x->f), ==, 1);
        g_assert_cmpint(generation_record(x->config, x->state, "again", NULL), ==, GENERATION_UNCHANGED);

        /* Bad size, unknown key: file, line, key and reason. */
        g_assert_cmpint(federation_add_vm(x->f, "bad", "[VM]\nRole=app\nMemory=lots\nColour=blue\nKernel=/x\n", &e1),
                        ==, -EINVAL);
        g_assert_true(errors_contain(e1, "vms.d/bad.vm:3: key Memory: 'lots'"));
        g_assert_true(errors_contain(e1, "vms.d/bad.vm:4: key Colour: unknown key"));
        g_assert_true(errors_contain(e1, "vms.d/bad.vm:5: key Kernel: '/x': No such file"));
        /* A NetVM that is not a service VM. */
        good = g_strdup_printf("[VM]\nRole=app\nKernel=%s\nNetVM=rivendale\n", x->kernel);
        g_assert_cmpint(federation_add_vm(x->f, "app1", good, &e2), ==, -EINVAL);
        g_assert_true(errors_contain(e2, "vms.d/app1.vm:4: key NetVM: 'rivendale' is a persona VM, not a service VM"));
        /* A second default netvm. */
        g_clear_pointer(&good, g_free);
        good = g_strdup_printf("[VM]\nRole=service\nKernel=%s\nDefaultNetVM=true\n", x->kernel);
        g_assert_cmpint(federation_add_vm(x->f, "netvm2", good, &e3), ==, -EINVAL);
        g_assert_true(errors_contain(e3, "DefaultNetVM: netvm already is the default netvm") ||
                      errors_contain(e3, "DefaultNetVM: netvm2 already is the default netvm"));
        g_assert_cmpint(federation_add_vm(x->f, "Bad/Name", "[VM]\n", &e4), ==, -EINVAL);
        path = g_strdup_printf("%s/vms.d/netvm2.vm", x->config);
        g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));

        /* A good one: written, recorded, known. */
        g_clear_pointer(&good, g_free);
        good = g_strdup_printf("[VM]\nRole=app\nKernel=%s\nTags=office\nNetVM=netvm\n", x->kernel);
        g_assert_cmpint(federation_add_vm(x->f, "office", good, NULL), ==, 0);
        g_assert_nonnull(federation_vm_spec(x->f, "office"));
        g_assert_cmpstr(federation_vm_spec(x->f, "office")->netvm, ==, "netvm");
        g_assert_cmpstr(federation_vm_spec(x->f, "rivendale")->netvm, ==, "netvm"); /* the default netvm */
        g_assert_cmpint(generation_list(x->state, &gens), ==, 0);
        g_assert_cmpuint(gens->len, ==, 2);
        g_assert_cmpuint(federation_generation(x->f), ==, 2);

        /* A policy edit by the broker: recorded once, not twice. */
        {
                g_autofree char *pol = g_build_filename(x->config, "policy.d", "30-user.policy", NULL);
                uint64_t n = 0;
                write_text(pol, "vmfed.OpenURL * @anyvm @dispvm allow\n");
                g_assert_cmpint(federation_record_generation(x->f, "policy: 30-user.policy", &n), ==, GENERATION_RECORDED);
                g_assert_cmpuint(n, ==, 3);
                g_assert_cmpint(federation_record_generation(x->f, "again", &n), ==, GENERATION_UNCHANGED);
                g_assert_cmpuint(n, ==, 3);
        }

        /* Removing the netvm office names: refused by validation. */
        g_assert_cmpint(federation_remove_vm(x->f, "netvm", &e5), ==, -EINVAL);
        g_assert_true(errors_contain(e5, "vms.d/office.vm:5: key NetVM: no VM named 'netvm'"));
        /* Removing a running VM: refused. */
        g_assert_cmpint(start_and_wait(x, "office", &res), ==, 0);
        g_assert_cmpint(federation_remove_vm(x->f, "office", &e6), ==, -EBUSY);
        {
                FederationCallbacks cb = result_callbacks(&res);
                g_assert_cmpint(federation_stop_vm(x->f, "office", true, &cb, NULL), ==, 0);
                g_assert_true(run_until(&res.done, 5));
        }
        g_assert_cmpint(federation_remove_vm(x->f, "office", NULL), ==, 0);
        g_assert_null(federation_vm_spec(x->f, "office"));
        {
                /* Undefined too (by the worker: wait for it, bounded). */
                virDomainPtr dom = lookup(x, "office");
                for (int i = 0; dom && i < 500; i++) {
                        virDomainFree(dom);
                        run_for(0.01);
                        dom = lookup(x, "office");
                }
                g_assert_null(dom);
        }
        g_assert_cmpuint(federation_generation(x->f), ==, 4);

        /* Roll back to generation 2: office is back, the policy edit gone. */
        g_assert_cmpint(federation_rollback(x->f, 2, NULL, NULL), ==, 0);
        g_assert_nonnull(federation_vm_spec(x->f, "office"));
        g_assert_cmpuint(federation_generation(x->f), ==, 5);
        {
                g_autofree char *pol = g_build_filename(x->config, "policy.d", "30-user.policy", NULL);
                g_assert_false(g_file_test(pol, G_FILE_TEST_EXISTS));
        }
        g_assert_cmpint(federation_rollback(x->f, 99, NULL, NULL), ==, -ENOENT);
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
        g_test_init(&argc, &argv, NULL);
        g_assert_cmpint(virInitialize(), ==, 0);
        g_assert_cmpint(virEventRegisterDefaultImpl(), ==, 0);

#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("/federation/start-order-and-stop", test_start_order_and_stop);
        ADD("/federation/exclusivity", test_exclusivity);
        ADD("/federation/switch", test_switch_shutdown_and_save);
        ADD("/federation/switch-busy", test_switch_busy);
        ADD("/federation/switch-rollback", test_switch_rollback);
        ADD("/federation/events", test_events);
        ADD("/federation/watch-list", test_watch_list);
        ADD("/federation/adopt", test_adopt);
        ADD("/federation/resume", test_resume);
        ADD("/federation/disposables", test_disposables);
        ADD("/federation/add-remove-rollback", test_add_remove);
        ADD("/federation/passthrough-sysfs", test_passthrough_sysfs);
        ADD("/federation/autostart", test_autostart);
        ADD("/federation/channel-hook", test_channel_hook);
        return g_test_run();
}
