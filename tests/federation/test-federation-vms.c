/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VMs made and unmade on libvirt's in-memory test:///default driver (the
 * fixture: federation-fixture.h): disposables and their overlays, AddVM and
 * RemoveVM validation, generations and rollback.
 */
#include <errno.h>
#include <libvirt/libvirt.h>

#include "federation-fixture.h"
#include "federation/generation.h"

static int count_overlays(Fixture *x) {
        g_autofree char *d = g_build_filename(x->state, "disposables", NULL);
        g_autoptr(GDir) dir = g_dir_open(d, 0, NULL);
        int n = 0;
        while (dir && g_dir_read_name(dir))
                n++;
        return n;
}

/* A domain XML of VM name has stream ports 0 … n-1 on its own sockets, and no more. */
static void assert_stream_ports(Fixture *x, const char *xml, const char *name, unsigned n) {
        for (unsigned i = 0; i <= n; i++) {
                g_autofree char *port = g_strdup_printf("name='org.vmfed.stream.%u'", i);
                g_autofree char *sock = g_strdup_printf("%s/channels/%s.stream.%u.sock", x->state, name, i);
                g_assert_true((strstr(xml, port) != NULL) == (i < n));
                g_assert_true((strstr(xml, sock) != NULL) == (i < n));
        }
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
        text = g_strdup_printf("[VM]\nRole=disposable-template\nMemory=256M\nDisk=%s\nStreams=3\n", base);
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
                assert_stream_ports(x, xml, disp1, 3); /* the template's Streams=3 */
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

int main(int argc, char *argv[]) {
        fixture_init(&argc, &argv);

#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("/federation/disposables", test_disposables);
        ADD("/federation/add-remove-rollback", test_add_remove);
        return g_test_run();
}
