/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * federation/vm-model: one load of vms.d/ and the policy facts built from it.
 * Most cases load the way `vmfedctl policy` lints (VM_SPEC_NO_FILE_CHECKS:
 * the example's disks are not on this machine); test_strict is vmfedd's load.
 */
#include <errno.h>
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "federation/vm-model.h"

static char *tmpdir(void) {
        char *d = g_dir_make_tmp("vmfed-vm-model-XXXXXX", NULL);
        g_assert_nonnull(d);
        return d;
}

static void put(const char *dir, const char *name, const char *text) {
        g_autofree char *p = g_build_filename(dir, "vms.d", name, NULL);
        g_autofree char *parent = g_path_get_dirname(p);
        g_assert_cmpint(g_mkdir_with_parents(parent, 0755), ==, 0);
        g_assert_true(g_file_set_contents(p, text, -1, NULL));
}

static void rm_rf(const char *dir) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        g_assert_cmpint(system(cmd), ==, 0);
}

static bool has_error(GPtrArray *errors, const char *substr) {
        for (guint i = 0; errors && i < errors->len; i++)
                if (strstr(errors->pdata[i], substr))
                        return true;
        return false;
}

/* The lint view; the old vm_config_load_dir(): -EINVAL with errors, 0 with a model. */
static int load(const char *dir, VmModel **ret, GPtrArray **ret_errors) {
        return vm_model_load(dir, NULL, VM_SPEC_NO_FILE_CHECKS, ret, ret_errors);
}

static void dump(GPtrArray *errors) {
        for (guint i = 0; errors && i < errors->len; i++)
                g_printerr("  error: %s\n", (char *) errors->pdata[i]);
}

static void test_example_federation(void) {
        g_autofree char *cfg = g_test_build_filename(G_TEST_DIST, "..", "..", "examples", "etc-vmfed", NULL);
        VmModel *vms = NULL;
        GPtrArray *errors = NULL;
        int r = load(cfg, &vms, &errors);
        dump(errors);
        g_assert_cmpint(r, ==, 0);
        g_assert_null(errors);
        g_assert_cmpuint(vm_model_n_vms(vms), ==, 5);
        /* sorted by name */
        const char *names[] = { "dispvm-default", "gondor", "mordor", "netvm", "rivendale" };
        for (guint i = 0; i < vm_model_n_vms(vms); i++)
                g_assert_cmpstr(vm_model_vm(vms, i)->name, ==, names[i]);
        const VmSpec *riv = vm_model_vm(vms, 4);
        g_assert_true(vm_model_find(vms, "rivendale") == riv);
        g_assert_null(vm_model_find(vms, "nobody"));
        g_assert_cmpint(riv->role, ==, VM_ROLE_PERSONA);
        g_assert_cmpstr(riv->tags[0], ==, "dev");
        g_assert_cmpstr(riv->tags[1], ==, "work");
        g_assert_null(riv->tags[2]);
        g_assert_cmpstr(riv->default_dispvm, ==, "dispvm-default");
        g_assert_cmpuint(riv->memory, ==, 8ull << 30);
        g_assert_cmpuint(riv->vcpus, ==, 8);
        g_assert_cmpstr(riv->netvm, ==, "netvm");
        g_assert_true(riv->netvm_set);
        g_assert_cmpstr(riv->devices[0], ==, "0000:01:00.0");
        const VmSpec *net = vm_model_vm(vms, 3);
        g_assert_cmpint(net->role, ==, VM_ROLE_SERVICE);
        g_assert_true(net->netvm_set); /* NetVM= (empty): no network */
        g_assert_null(net->netvm);
        g_assert_true(net->autostart);

        PolicyFacts *f = NULL;
        g_assert_cmpint(vm_model_build_policy_facts(vms, "nobody", NULL, &f), ==, -ENOENT);
        g_assert_cmpint(vm_model_build_policy_facts(vms, "netvm", NULL, &f), ==, -EINVAL);
        g_assert_cmpint(vm_model_build_policy_facts(vms, "gondor", NULL, &f), ==, 0);
        /* Frozen. */
        g_assert_cmpint(policy_facts_add_vm(f, "x", "app", NULL, NULL), ==, -EPERM);
        /* The only disposable template is the federation default: gondor's @dispvm resolves to it. */
        PolicySnapshot *s = NULL;
        g_assert_cmpint(policy_snapshot_load_string("x.policy", "s * @anyvm @dispvm allow\n", &s), ==, 0);
        PolicyRequest req = { .service = "s", .source = "gondor", .target = "@dispvm" };
        PolicyDecision d;
        g_assert_cmpint(policy_evaluate(s, f, &req, &d), ==, 0);
        g_assert_cmpstr(d.target, ==, "@dispvm:dispvm-default");
        policy_snapshot_unref(s);
        policy_facts_unref(f);

        /* A running disposable as a source: unknown without the broker's list, matched with it. */
        g_assert_cmpint(policy_snapshot_load_string("x.policy",
                                                    "a * @dispvm:dispvm-default netvm allow\n"
                                                    "b * @dispvm netvm allow\n"
                                                    "c * @role:disposable netvm allow\n", &s), ==, 0);
        g_autoptr(GHashTable) dispvms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_hash_table_insert(dispvms, g_strdup("disp42"), g_strdup("dispvm-default"));
        PolicyRequest from_disp = { .service = "a", .source = "disp42", .target = "netvm" };
        g_assert_cmpint(vm_model_build_policy_facts(vms, NULL, NULL, &f), ==, 0);
        g_assert_cmpint(policy_evaluate(s, f, &from_disp, &d), ==, 0);
        g_assert_cmpint(d.action, ==, POLICY_ACTION_DENY);
        g_assert_cmpstr(d.reason, ==, "unknown source VM");
        policy_facts_unref(f);
        g_assert_cmpint(vm_model_build_policy_facts_with(vms, NULL, NULL, dispvms, &f), ==, 0);
        for (const char *service = "a"; *service <= 'c'; service = *service == 'a' ? "b" : *service == 'b' ? "c" : "d") {
                from_disp.service = service;
                g_assert_cmpint(policy_evaluate(s, f, &from_disp, &d), ==, 0);
                g_assert_cmpint(d.action, ==, POLICY_ACTION_ALLOW);
        }
        from_disp.source = "disp43"; /* not running */
        g_assert_cmpint(policy_evaluate(s, f, &from_disp, &d), ==, 0);
        g_assert_cmpint(d.action, ==, POLICY_ACTION_DENY);
        policy_snapshot_unref(s);
        policy_facts_unref(f);
        g_assert_null(vm_model_unref(vms));
}

/* vmfedd's load (flags 0): the example's Disk= files are not on this machine, so it is refused whole. */
static void test_strict(void) {
        g_autofree char *cfg = g_test_build_filename(G_TEST_DIST, "..", "..", "examples", "etc-vmfed", NULL);
        g_autofree char *dir = tmpdir();
        g_autofree char *kernel = g_build_filename(dir, "kernel", NULL);
        g_autofree char *text = NULL;
        VmModel *m = NULL;
        GPtrArray *errors = NULL;

        g_assert_cmpint(vm_model_load(cfg, NULL, 0, &m, &errors), ==, -EINVAL);
        g_assert_null(m);
        g_assert_true(has_error(errors, "vms.d/rivendale.vm:"));
        g_assert_true(has_error(errors, "key Disk"));
        g_ptr_array_unref(errors);

        /* With its boot file there, the same definition loads; without, not even a lint would start it. */
        g_assert_true(g_file_set_contents(kernel, "k", -1, NULL));
        text = g_strdup_printf("[VM]\nRole=app\nKernel=%s\n", kernel);
        put(dir, "a.vm", text);
        errors = NULL;
        g_assert_cmpint(vm_model_load(dir, NULL, 0, &m, &errors), ==, 0);
        g_assert_null(errors);
        g_assert_cmpuint(vm_model_n_vms(m), ==, 1);
        g_assert_cmpstr(vm_model_vm(m, 0)->kernel, ==, kernel);
        /* Immutable and shared: a reference outlives the caller's. */
        VmModel *ref = vm_model_ref(m);
        g_assert_null(vm_model_unref(m));
        g_assert_cmpstr(vm_model_vm(ref, 0)->name, ==, "a");
        vm_model_unref(ref);
        put(dir, "b.vm", "[VM]\nRole=app\n");
        g_assert_cmpint(vm_model_load(dir, NULL, 0, &m, &errors), ==, -EINVAL);
        g_assert_true(has_error(errors, "vms.d/b.vm:"));
        g_ptr_array_unref(errors);
        /* A NULL model (never loaded) has no VMs. */
        g_assert_cmpuint(vm_model_n_vms(NULL), ==, 0);
        g_assert_null(vm_model_find(NULL, "a"));
        rm_rf(dir);
}

static void test_empty_and_ignored(void) {
        g_autofree char *dir = tmpdir();
        VmModel *vms = NULL;
        GPtrArray *errors = NULL;
        /* no vms.d at all: an empty federation */
        g_assert_cmpint(load(dir, &vms, &errors), ==, 0);
        g_assert_cmpuint(vm_model_n_vms(vms), ==, 0);
        vm_model_unref(vms);

        /* every key of vmfed.vm(5) is accepted, [Firewall] belongs to the netvm's parser */
        put(dir, "a.vm", "[VM]\nRole=app\nKernel=/boot/vmlinuz\nInitrd=/boot/initrd\nCmdline=console=ttyS0 quiet\n"
                         "StopTimeout=30\nAccel=auto\nDefaultNetVM=false\n[Firewall]\nAnything=goes\n");
        put(dir, ".b.vm", "garbage");
        put(dir, "README", "garbage");
        put(dir, "c.vm~", "garbage");
        g_assert_cmpint(load(dir, &vms, &errors), ==, 0);
        g_assert_cmpuint(vm_model_n_vms(vms), ==, 1);
        const VmSpec *a = vm_model_vm(vms, 0);
        g_assert_cmpstr(a->name, ==, "a");
        g_assert_nonnull(a->tags);
        g_assert_null(a->tags[0]);
        g_assert_nonnull(a->devices);
        g_assert_null(a->netvm);
        g_assert_false(a->netvm_set);
        vm_model_unref(vms);
        rm_rf(dir);
}

static void test_errors(void) {
        struct {
                const char *file, *text, *error;
        } cases[] = {
                { "x.vm", "[VM]\nRole=persona\nColour=blue\n", "vms.d/x.vm:3: key Colour: unknown key in [VM]" },
                { "x.vm", "[VM]\nRole=persona\n[Sound]\nCard=1\n", "vms.d/x.vm:3: unknown section [Sound]" },
                { "x.vm", "[VM]\nRole=persona\nTags=a\nTags=b\n", "vms.d/x.vm:4: key Tags: given twice in [VM] (first on line 3)" },
                { "x.vm", "[VM]\nRole=persona\n[VM]\nMemory=1G\n", "vms.d/x.vm:3: section [VM] appears twice (first on line 1)" },
                { "x.vm", "[VM]\nMemory=1G\n", "vms.d/x.vm:0: key Role: missing" },
                { "x.vm", "# c\n[VM]\nRole=king\n", "vms.d/x.vm:3: key Role: 'king' is not one of" },
                { "x.vm", "[VM]\nRole=app\nMemory=lots\n", "vms.d/x.vm:3: key Memory: 'lots' is not a size with a unit" },
                { "x.vm", "[VM]\nRole=app\nMemory=0\n", "key Memory: '0' is not a size with a unit" },
                { "x.vm", "[VM]\nRole=app\nMemory=99999999999T\n", "key Memory: '99999999999T' is out of range" },
                { "x.vm", "[VM]\nRole=app\nVCPUs=0\n", "vms.d/x.vm:3: key VCPUs: '0' is not a number from 1 to 256" },
                { "x.vm", "[VM]\nRole=app\nVCPUs=2x\n", "key VCPUs: '2x' is not a number" },
                { "x.vm", "[VM]\nRole=app\nDisk=disk.qcow2\n", "vms.d/x.vm:3: key Disk: 'disk.qcow2' is not an absolute path" },
                { "x.vm", "[VM]\nRole=app\nNetVM=-net\n", "vms.d/x.vm:3: key NetVM: '-net' is not a valid VM name" },
                { "x.vm", "[VM]\nRole=app\nNetVM=nobody\n", "vms.d/x.vm:3: key NetVM: no VM named 'nobody'" },
                { "x.vm", "[VM]\nRole=app\nNetVM=x\n", "a VM cannot be its own network VM" },
                { "x.vm", "[VM]\nRole=app\nAutostart=perhaps\n", "vms.d/x.vm:3: key Autostart: 'perhaps' is not a boolean (true or false)" },
                { "x.vm", "[VM]\nRole=app\nAccel=hvf\n", "vms.d/x.vm:3: key Accel: 'hvf' is not one of auto, kvm, tcg" },
                { "x.vm", "[VM]\nRole=app\nTags=ok;not ok\n", "vms.d/x.vm:3: key Tags: 'not ok' is not a valid tag" },
                { "x.vm", "[VM]\nRole=app\nDefaultDispVM=x\n", "vms.d/x.vm:3: key DefaultDispVM: 'x' is not a disposable-template VM" },
                { "x.vm", "[VM]\nRole=app\n[Passthrough]\nDevices=01:00.0\n", "vms.d/x.vm:4: key Devices: '01:00.0' is not a PCI address" },
                { "x.vm", "[VM]\nRole=app\n[Passthrough]\nDevices=0000:01:00.8\n", "'0000:01:00.8' is not a PCI address" },
                { "x.vm", "[VM]\nRole=app\n[Passthrough]\nRom=x\n", "vms.d/x.vm:4: key Rom: unknown key in [Passthrough]" },
                { "x.vm", "[Passthrough]\nDevices=0000:01:00.0\n", "vms.d/x.vm:0: missing section [VM]" },
                { "x.vm", "Role=persona\n", "vms.d/x.vm:0: not a valid key file" },
                { "9lives.vm", "[VM]\nRole=app\n", "vms.d/9lives.vm:0: '9lives' is not a valid VM name" },
                { "x.vm", "[VM]\nRole=app\nTags=a;b;c;d;e;f;g;h;i;j;k;l;m;n;o;p;q;r;s;t;u;v;w;x;y;z;a1;b1;c1;d1;e1;f1;g1\n",
                  "vms.d/x.vm:3: key Tags: more than 32 tags" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *dir = tmpdir();
                put(dir, cases[i].file, cases[i].text);
                VmModel *vms = NULL;
                GPtrArray *errors = NULL;
                int r = load(dir, &vms, &errors);
                if (r != -EINVAL || !has_error(errors, cases[i].error)) {
                        g_printerr("case %zu: want '%s', r=%d\n", i, cases[i].error, r);
                        dump(errors);
                        g_assert_not_reached();
                }
                g_assert_null(vms);
                g_ptr_array_unref(errors);
                rm_rf(dir);
        }

        /* Every file's errors are reported, not just the first. */
        g_autofree char *dir = tmpdir();
        put(dir, "a.vm", "[VM]\nRole=king\n");
        put(dir, "b.vm", "[VM]\nRole=app\nVCPUs=none\nAccel=x\n");
        put(dir, "c.vm", "[VM]\nRole=app\n[Firewall]\nAllow=anything\n");
        VmModel *vms = NULL;
        GPtrArray *errors = NULL;
        g_assert_cmpint(load(dir, &vms, &errors), ==, -EINVAL);
        g_assert_null(vms);
        g_assert_cmpuint(errors->len, ==, 3);
        g_ptr_array_unref(errors);
        rm_rf(dir);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/vm-model/example-federation", test_example_federation);
        g_test_add_func("/vm-model/empty-and-ignored", test_empty_and_ignored);
        g_test_add_func("/vm-model/errors", test_errors);
        g_test_add_func("/vm-model/strict", test_strict);
        return g_test_run();
}
