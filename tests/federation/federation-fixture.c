/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The federation tests' fixture (federation-fixture.h). */
#include <errno.h>
#include <libvirt/libvirt.h>
#include <unistd.h>

#include "federation-fixture.h"

static unsigned fixture_counter;

void fixture_setup(Fixture *x, gconstpointer data) {
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

void fixture_teardown(Fixture *x, gconstpointer data) {
        g_clear_pointer(&x->f, federation_free);
        /* Leave the shared test driver clean: remove every domain of this run. */
        test_remove_domains(x->conn, x->prefix);
        virConnectClose(x->conn);
        state_log_clear(&x->log);
        test_remove_tree(x->tmp);
        g_free(x->tmp);
        g_free(x->config);
        g_free(x->state);
        g_free(x->kernel);
        g_free(x->prefix);
}

void fixture_write(Fixture *x, const char *name, const char *role, const char *extra) {
        g_autofree char *text = g_strdup_printf("[VM]\nRole=%s\nMemory=256M\nKernel=%s\nStopTimeout=2\n%s", role,
                                                x->kernel, extra ? extra : "");
        write_vm(x->config, name, text);
}

static FederationOptions fixture_options(Fixture *x) {
        return (FederationOptions) {
                .config_dir = x->config,
                .state_dir = x->state,
                .domain_prefix = x->prefix,
                .bridge = "vmfedtest0",
                .force_tcg = true,
                .fake_passthrough = true,
        };
}

static void print_errors(GPtrArray *errors) {
        for (guint i = 0; errors && i < errors->len; i++)
                g_printerr("%s\n", (char *) errors->pdata[i]);
}

Federation *fixture_federation(Fixture *x) {
        g_autoptr(GPtrArray) errors = NULL;
        FederationOptions o = fixture_options(x);
        Federation *f = NULL;
        int r = federation_new(x->conn, &o, &f, &errors);
        print_errors(errors);
        g_assert_cmpint(r, ==, 0);
        state_log_attach(&x->log, f);
        return f;
}

static void fixture_loaded(Federation *f, int r, const char *error, void *userdata) {
        Result *res = userdata;
        res->r = r;
        res->done = true;
        if (r < 0)
                g_printerr("loading failed: %s\n", error);
}

Federation *fixture_federation_async(Fixture *x, FixtureBeforeLoad before, void *userdata) {
        g_autoptr(GPtrArray) errors = NULL;
        FederationOptions o = fixture_options(x);
        Federation *f = NULL;
        Result res = {};
        int r = federation_new_async(x->conn, &o, fixture_loaded, &res, &f, &errors);
        print_errors(errors);
        g_assert_cmpint(r, ==, 0);
        g_assert_false(federation_is_loaded(f));
        if (before)
                before(x, userdata);
        g_assert_true(run_until(&res.done, 10));
        g_assert_cmpint(res.r, ==, 0);
        g_assert_true(federation_is_loaded(f));
        state_log_attach(&x->log, f);
        return f;
}

void fixture_standard(Fixture *x) {
        fixture_write(x, "netvm", "service", "DefaultNetVM=true\n");
        fixture_write(x, "rivendale", "persona", "[Passthrough]\nDevices=0000:01:00.0;0000:01:00.1\n");
        fixture_write(x, "gondor", "persona", "[Passthrough]\nDevices=0000:01:00.0;0000:01:00.1\n");
        fixture_write(x, "shire", "persona", NULL);
        fixture_write(x, "tools", "app", "[Passthrough]\n");
        x->f = fixture_federation(x);
}

int start_and_wait(Fixture *x, const char *name, Result *res) {
        FederationCallbacks cb = result_callbacks(res);
        g_autofree char *err = NULL;
        int r = federation_start_vm(x->f, name, &cb, &err);
        if (r < 0)
                return r;
        g_assert_true(run_until(&res->done, 10));
        return res->r;
}

int switch_and_wait(Fixture *x, const char *name, Result *res) {
        FederationCallbacks cb = result_callbacks(res);
        g_autofree char *err = NULL;
        int r = federation_switch_persona(x->f, name, &cb, &err);
        if (r < 0)
                return r;
        g_assert_true(run_until(&res->done, 15));
        return res->r;
}

virDomainPtr lookup(Fixture *x, const char *vm) {
        g_autofree char *n = g_strconcat(x->prefix, vm, NULL);
        return virDomainLookupByName(x->conn, n);
}

void fixture_init(int *argc, char ***argv) {
        g_test_init(argc, argv, NULL);
        g_assert_cmpint(virInitialize(), ==, 0);
        g_assert_cmpint(virEventRegisterDefaultImpl(), ==, 0);
}
