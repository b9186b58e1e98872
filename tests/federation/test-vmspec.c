/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vms.d/NAME.vm strict parsing and the checks across files (vmfed.vm(5)). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/stream-frame.h"
#include "fed-test-util.h"
#include "federation/vmspec.h"

static char *tmp, *config, *kernel;

static bool contains(GPtrArray *errors, const char *needle) {
        for (guint i = 0; errors && i < errors->len; i++)
                if (strstr(errors->pdata[i], needle))
                        return true;
        for (guint i = 0; errors && i < errors->len; i++)
                g_printerr("  have: %s\n", (char *) errors->pdata[i]);
        return false;
}

static GPtrArray *parse_errors(const char *name, const char *text) {
        GPtrArray *errors = g_ptr_array_new_with_free_func(g_free);
        VmSpec *s = NULL;
        int r = vm_spec_parse(name, "/x", text, errors, &s);
        if (r >= 0) {
                vm_spec_free(s);
                g_assert_cmpuint(errors->len, ==, 0);
        }
        return errors;
}

static void test_good(void) {
        g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *text = g_strdup_printf(
                "# a persona\n[VM]\nRole=persona\nMemory=8G\nVCPUs=4\nKernel=%s\nInitrd=%s\nCmdline=console=ttyS0 quiet\n"
                "Tags=dev;work\nNetVM=netvm\nAutostart=true\nAccel=tcg\nStopTimeout=10\nDefaultDispVM=dvm\n"
                "[Passthrough]\nDevices=0000:01:00.0; 0000:01:00.1 ;0000:00:1F.3\n",
                kernel, kernel);
        g_autoptr(VmSpec) s = NULL;

        g_assert_cmpint(vm_spec_parse("rivendale", "/x", text, errors, &s), ==, 0);
        g_assert_cmpint(s->role, ==, VM_ROLE_PERSONA);
        g_assert_cmpuint(s->memory, ==, 8ULL << 30);
        g_assert_cmpuint(s->vcpus, ==, 4);
        g_assert_cmpstr(s->kernel, ==, kernel);
        g_assert_cmpstr(s->cmdline, ==, "console=ttyS0 quiet");
        g_assert_cmpstr(s->tags[1], ==, "work");
        g_assert_cmpstr(s->netvm, ==, "netvm");
        g_assert_true(s->autostart);
        g_assert_cmpint(s->accel, ==, VM_ACCEL_TCG);
        g_assert_cmpuint(s->stop_timeout, ==, 10);
        g_assert_cmpstr(s->devices[1], ==, "0000:01:00.1");
        g_assert_cmpstr(s->devices[2], ==, "0000:00:1f.3"); /* normalized to lower case */
        g_assert_null(s->devices[3]);
}

static void test_bad_values(void) {
        g_autoptr(GPtrArray) e = NULL;
        g_autofree char *t = NULL;

        e = parse_errors("a", "[VM]\nRole=king\n");
        g_assert_true(contains(e, "vms.d/a.vm:2: key Role: 'king' is not one of"));
        g_assert_true(contains(e, "key Disk: missing"));
        g_clear_pointer(&e, g_ptr_array_unref);

        t = g_strdup_printf("[VM]\nRole=app\nKernel=%s\nMemory=8\nVCPUs=0\nAccel=xen\nStopTimeout=-1\n"
                            "Autostart=maybe\nTags=ok;not ok\nColor=red\n[Passthrough]\nDevices=0000:01:00.0;zz:00.0;0000:01:00.0\n"
                            "[Extra]\nA=b\n",
                            kernel);
        e = parse_errors("a", t);
        g_assert_true(contains(e, "vms.d/a.vm:4: key Memory: '8' is not a size with a unit"));
        g_assert_true(contains(e, "vms.d/a.vm:5: key VCPUs: '0'"));
        g_assert_true(contains(e, "vms.d/a.vm:6: key Accel: 'xen'"));
        g_assert_true(contains(e, "vms.d/a.vm:7: key StopTimeout"));
        g_assert_true(contains(e, "vms.d/a.vm:8: key Autostart: 'maybe'"));
        g_assert_true(contains(e, "vms.d/a.vm:9: key Tags: 'not ok'"));
        g_assert_true(contains(e, "vms.d/a.vm:10: key Color: unknown key in [VM]"));
        g_assert_true(contains(e, "key Devices: 'zz:00.0' is not a PCI address"));
        g_assert_true(contains(e, "key Devices: 0000:01:00.0 is listed twice"));
        g_assert_true(contains(e, "key Devices: only persona and service VMs may take devices"));
        g_assert_true(contains(e, "vms.d/a.vm:13: unknown section [Extra]"));
        g_clear_pointer(&e, g_ptr_array_unref);

        e = parse_errors("a", "[VM]\nRole=app\nDisk=/nonexistent/disk.qcow2\n");
        g_assert_true(contains(e, "vms.d/a.vm:3: key Disk: '/nonexistent/disk.qcow2': No such file or directory"));
        g_clear_pointer(&e, g_ptr_array_unref);
        e = parse_errors("a", "[VM]\nRole=app\nDisk=relative.img\nMemory=16M\n");
        g_assert_true(contains(e, "key Disk: 'relative.img' is not an absolute path"));
        g_assert_true(contains(e, "key Memory: '16M' is out of range"));
        g_clear_pointer(&e, g_ptr_array_unref);
        e = parse_errors("a", "[VM]\nRole=app\nCmdline=quiet\nDefaultNetVM=true\n");
        g_assert_true(contains(e, "key Cmdline: needs Kernel="));
        g_assert_true(contains(e, "key DefaultNetVM: only a service VM"));
        g_clear_pointer(&e, g_ptr_array_unref);
        e = parse_errors("a", "[VM]\nRole=persona\nKernel=/dev/null\n[Passthrough]\nDevices=01:00.0;0000:01:20.0;0000:0A:00.8\n");
        g_assert_true(contains(e, "vms.d/a.vm:5: key Devices: '01:00.0' is not a PCI address"));
        g_assert_true(contains(e, "'0000:01:20.0' is not a PCI address")); /* slot > 0x1f */
        g_assert_true(contains(e, "'0000:0A:00.8' is not a PCI address")); /* function > 7 */
        g_clear_pointer(&e, g_ptr_array_unref);
        e = parse_errors("a", "[VM]\nRole=disposable-template\nKernel=/dev/null\nAutostart=true\n");
        g_assert_true(contains(e, "vms.d/a.vm:4: key Autostart: a disposable template never runs itself"));
        g_clear_pointer(&e, g_ptr_array_unref);
        e = parse_errors("a", "[VM]\nRole=app\nKernel=/dev/null\nMemory=1G\nMemory=2G\n[VM]\nVCPUs=2\n");
        g_assert_true(contains(e, "vms.d/a.vm:5: key Memory: given twice in [VM]"));
        g_assert_true(contains(e, "vms.d/a.vm:6: section [VM] appears twice"));
        g_clear_pointer(&e, g_ptr_array_unref);
        e = parse_errors("a", "not a key file");
        g_assert_true(contains(e, "vms.d/a.vm:0: not a valid key file"));
        g_clear_pointer(&e, g_ptr_array_unref);
        e = parse_errors("9lives", "[VM]\nRole=app\n");
        g_assert_true(contains(e, "'9lives' is not a valid VM name"));
        g_clear_pointer(&e, g_ptr_array_unref);
        /* work.stream.0.sock is VM work's stream port 0: no VM may have it as its channel. */
        e = parse_errors("work.stream.0", "[VM]\nRole=app\n");
        g_assert_true(contains(e, "vms.d/work.stream.0.vm:0: 'work.stream.0' is not a valid VM name"));
        g_assert_true(contains(e, "not ending in .stream.N, another VM's stream port"));
        g_assert_false(vm_spec_name_is_valid("a.stream.31"));
        g_assert_true(vm_spec_name_is_valid("a.stream."));
        g_assert_true(vm_spec_name_is_valid("a.stream.1x"));
        g_assert_true(vm_spec_name_is_valid("a.stream.1.b"));
        g_assert_true(vm_spec_name_is_valid("a.streams.1"));
        g_assert_true(vm_spec_name_is_valid("stream.1"));
}

static void test_federation_checks(void) {
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        g_autofree char *cmd = NULL;
#define VM_FMT "[VM]\nRole=%s\nKernel=%s\n%s"
        struct {
                const char *name, *role, *extra;
        } files[] = {
                { "net1", "service", "DefaultNetVM=true\n" },
                { "net2", "service", "DefaultNetVM=1\n" },
                { "p1", "persona", "NetVM=p2\n" },
                { "p2", "persona", "NetVM=ghost\nDefaultDispVM=p1\n" },
                { "p3", "persona", "" },
                { "p4", "persona", "NetVM=\n" },
                { "loop1", "service", "NetVM=loop2\n" },
                { "loop2", "service", "NetVM=loop1\n" },
                { "dvm", "disposable-template", "" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
                g_autofree char *t = g_strdup_printf(VM_FMT, files[i].role, kernel, files[i].extra);
                write_vm(config, files[i].name, t);
        }
        g_assert_cmpint(vm_spec_load_dir(config, NULL, &specs, &errors), ==, -EINVAL);
        g_assert_true(contains(errors, "vms.d/net2.vm:4: key DefaultNetVM: net1 already is the default netvm"));
        g_assert_true(contains(errors, "vms.d/p1.vm:4: key NetVM: 'p2' is a persona VM, not a service VM"));
        g_assert_true(contains(errors, "vms.d/p2.vm:4: key NetVM: no VM named 'ghost'"));
        g_assert_true(contains(errors, "vms.d/p2.vm:5: key DefaultDispVM: 'p1' is not a disposable-template VM"));
        g_assert_true(contains(errors, "the chain of NetVM= loops"));
        g_clear_pointer(&errors, g_ptr_array_unref);

        /* Fix them with overrides one at a time is tedious: rewrite and check the default netvm resolution. */
        cmd = g_strdup_printf("rm -f '%s'/vms.d/net2.vm '%s'/vms.d/loop1.vm '%s'/vms.d/loop2.vm", config, config, config);
        g_assert_cmpint(system(cmd), ==, 0);
        {
                g_autofree char *t = g_strdup_printf(VM_FMT, "persona", kernel, "NetVM=net1\n");
                write_vm(config, "p1", t);
        }
        {
                VmSpecOverride o = { .name = "p2", .text = NULL }; /* as if removed */
                g_assert_cmpint(vm_spec_load_dir(config, &o, &specs, &errors), ==, 0);
        }
        g_assert_cmpuint(specs->len, ==, 5);
        g_assert_cmpstr(vm_spec_find(specs, "p3")->netvm, ==, "net1"); /* key absent: the default netvm */
        g_assert_null(vm_spec_find(specs, "p4")->netvm);              /* empty: no network */
        g_assert_null(vm_spec_find(specs, "net1")->netvm);
        g_assert_null(vm_spec_find(specs, "p2"));
}

/* VM_SPEC_NO_FILE_CHECKS (vmconfig.h's view): the boot source is not checked, everything else is. */
static void test_no_file_checks(void) {
        g_autofree char *cfg = g_build_filename(tmp, "nofiles", NULL);
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;

        write_vm(cfg, "a", "[VM]\nRole=persona \nDisk=/nonexistent/a.qcow2\nTags= dev ;;work\nNetVM=net\n");
        write_vm(cfg, "b", "[VM]\nRole=app\n");
        write_vm(cfg, "net", "[VM]\nRole=service\nKernel=/nonexistent/vmlinuz\nInitrd=/nonexistent/initrd\nNetVM=\n");
        g_assert_cmpint(vm_spec_load_dir(cfg, NULL, &specs, &errors), ==, -EINVAL);
        g_assert_true(contains(errors, "vms.d/a.vm:3: key Disk: '/nonexistent/a.qcow2': No such file or directory"));
        g_assert_true(contains(errors, "vms.d/b.vm:0: key Disk: missing"));
        g_clear_pointer(&errors, g_ptr_array_unref);

        g_assert_cmpint(vm_spec_load_dir_full(cfg, NULL, VM_SPEC_NO_FILE_CHECKS, &specs, &errors), ==, 0);
        g_assert_null(errors);
        g_assert_cmpuint(specs->len, ==, 3);
        g_assert_cmpint(vm_spec_find(specs, "a")->role, ==, VM_ROLE_PERSONA); /* values are stripped */
        g_assert_cmpstr(vm_spec_find(specs, "a")->disk, ==, "/nonexistent/a.qcow2");
        g_assert_cmpstr(vm_spec_find(specs, "a")->tags[1], ==, "work"); /* empty items left out */
        g_assert_null(vm_spec_find(specs, "a")->tags[2]);
        g_assert_null(vm_spec_find(specs, "b")->disk);
        g_clear_pointer(&specs, g_ptr_array_unref);

        write_vm(cfg, "b", "[VM]\nRole=app\nDisk=b.img\nNetVM=b\n");
        g_assert_cmpint(vm_spec_load_dir_full(cfg, NULL, VM_SPEC_NO_FILE_CHECKS, &specs, &errors), ==, -EINVAL);
        g_assert_true(contains(errors, "vms.d/b.vm:3: key Disk: 'b.img' is not an absolute path"));
        g_clear_pointer(&errors, g_ptr_array_unref);
        write_vm(cfg, "b", "[VM]\nRole=app\nNetVM=b\n");
        g_assert_cmpint(vm_spec_load_dir_full(cfg, NULL, VM_SPEC_NO_FILE_CHECKS, &specs, &errors), ==, -EINVAL);
        g_assert_true(contains(errors, "vms.d/b.vm:3: key NetVM: a VM cannot be its own network VM"));
        g_clear_pointer(&errors, g_ptr_array_unref);
        write_vm(cfg, "b", "[VM]\nRole=app\nTags=a;b;c;d;e;f;g;h;i;j;k;l;m;n;o;p;q;r;s;t;u;v;w;x;y;z;0;1;2;3;4;5;6\n"
                           "Role=app\n");
        g_assert_cmpint(vm_spec_load_dir_full(cfg, NULL, VM_SPEC_NO_FILE_CHECKS, &specs, &errors), ==, -EINVAL);
        g_assert_true(contains(errors, "vms.d/b.vm:3: key Tags: more than 32 tags"));
        g_assert_true(contains(errors, "vms.d/b.vm:4: key Role: given twice in [VM] (first on line 2)"));
}

/* Booleans: GLib's spelling and systemd's (yes/no/on/off); case matters. */
static void test_booleans(void) {
        static const char *const yes[] = { "true", "1", "yes", "on" };
        static const char *const no[] = { "false", "0", "no", "off" };
        static const char *const bad[] = { "", "Yes", "TRUE", "y", "2", "of", "maybe" };
        bool b;

        for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
                b = false;
                g_assert_cmpint(vm_bool_from_string(yes[i], &b), ==, 0);
                g_assert_true(b);
                b = true;
                g_assert_cmpint(vm_bool_from_string(no[i], &b), ==, 0);
                g_assert_false(b);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                g_assert_cmpint(vm_bool_from_string(bad[i], &b), ==, -EINVAL);
        g_assert_cmpint(vm_bool_from_string(NULL, &b), ==, -EINVAL);
}

/* Streams=: 0 to STREAM_PORTS_MAX stream ports, default STREAM_PORTS_DEFAULT; anything else names the key. */
static void test_streams(void) {
        static const struct {
                const char *value;
                unsigned want;
        } good[] = { { "0", 0 }, { "1", 1 }, { "8", 8 }, { "28", 28 }, { " 5 ", 5 } };
        static const char *const bad[] = { "29", "abc", "", "-1", "+4", "4x", "0x10", "99999999999999999999", "2.5" };
        g_autofree char *plain = g_strdup_printf("[VM]\nRole=app\nKernel=%s\n", kernel);
        g_autoptr(VmSpec) d = test_vm_spec("a", plain);

        g_assert_cmpuint(d->streams, ==, STREAM_PORTS_DEFAULT);
        g_assert_cmpuint(d->streams, ==, 8);
        for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
                g_autofree char *t = g_strdup_printf("%sStreams=%s\n", plain, good[i].value);
                g_autoptr(VmSpec) s = test_vm_spec("a", t);
                g_assert_cmpuint(s->streams, ==, good[i].want);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *t = g_strdup_printf("%sStreams=%s\n", plain, bad[i]);
                g_autofree char *want = g_strdup_printf("vms.d/a.vm:4: key Streams: '%s' is not a number of stream "
                                                        "ports from 0 to 28",
                                                        bad[i]);
                g_autoptr(GPtrArray) e = parse_errors("a", t);
                g_assert_cmpuint(e->len, ==, 1);
                g_assert_true(contains(e, want));
        }
}

int main(int argc, char *argv[]) {
        int r;

        g_test_init(&argc, &argv, NULL);
        tmp = g_dir_make_tmp("vmfed-vmspec-XXXXXX", NULL);
        config = g_build_filename(tmp, "etc", NULL);
        kernel = g_build_filename(tmp, "vmlinuz", NULL);
        write_text(kernel, "kernel\n");
        g_test_add_func("/vmspec/good", test_good);
        g_test_add_func("/vmspec/bad-values", test_bad_values);
        g_test_add_func("/vmspec/federation-checks", test_federation_checks);
        g_test_add_func("/vmspec/no-file-checks", test_no_file_checks);
        g_test_add_func("/vmspec/booleans", test_booleans);
        g_test_add_func("/vmspec/streams", test_streams);
        r = g_test_run();
        {
                g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmp);
                if (system(cmd) != 0)
                        r = 1;
        }
        return r;
}
