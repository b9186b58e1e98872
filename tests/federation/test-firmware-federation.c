/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Firmware= and TPM= in the federation, on libvirt's test:///default driver
 * (which never runs OVMF or swtpm): the domain a UEFI VM is defined with
 * (its NVRAM in STATE/nvram/, the stable UUID its TPM state is keyed by, the
 * same again after RemoveVM and AddVM), the NVRAM kept by RemoveVM, a
 * disposable's NVRAM removed when it stops and swept when orphaned, and the
 * start refused when OVMF or swtpm is missing, naming the package.
 */
#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <unistd.h>

#include "fed-test-util.h"
#include "federation/firmware.h"

typedef struct Fixture {
        char *tmp, *config, *state, *kernel, *ovmf, *prefix;
        virConnectPtr conn;
        Federation *f;
} Fixture;

static unsigned fixture_counter;
/* $PATH of the whole test, set before libvirt starts threads (setenv() is not thread-safe). */
static char *bin;

static void put_executable(const char *dir, const char *name) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        write_text(p, "#!/bin/sh\nexit 0\n");
        g_assert_cmpint(g_chmod(p, 0755), ==, 0);
}

static void fixture_setup(Fixture *x, gconstpointer data) {
        x->tmp = g_dir_make_tmp("vmfed-fwfed-XXXXXX", NULL);
        g_assert_nonnull(x->tmp);
        x->config = g_build_filename(x->tmp, "etc", NULL);
        x->state = g_build_filename(x->tmp, "state", NULL);
        x->kernel = g_build_filename(x->tmp, "vmlinuz", NULL);
        x->ovmf = g_build_filename(x->tmp, "OVMF", NULL);
        write_text(x->kernel, "not really a kernel: the test driver never reads it\n");
        g_assert_cmpint(g_mkdir_with_parents(x->ovmf, 0755), ==, 0);
        for (const char *const *f = (const char *const[]) { "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd",
                                                            "OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd", NULL };
             *f; f++) {
                g_autofree char *p = g_build_filename(x->ovmf, *f, NULL);
                write_text(p, "fd\n");
        }
        /* swtpm as far as the check can tell: the test driver runs nothing. */
        put_executable(bin, "swtpm");
        put_executable(bin, "swtpm_setup");
        put_executable(bin, "swtpm_ioctl");
        x->prefix = g_strdup_printf("vmfed-fw%d-%u-", (int) getpid(), ++fixture_counter);
        x->conn = virConnectOpen("test:///default");
        g_assert_nonnull(x->conn);
}

static void fixture_teardown(Fixture *x, gconstpointer data) {
        g_clear_pointer(&x->f, federation_free);
        test_remove_domains(x->conn, x->prefix);
        virConnectClose(x->conn);
        test_remove_tree(x->tmp);
        g_free(x->tmp);
        g_free(x->config);
        g_free(x->state);
        g_free(x->kernel);
        g_free(x->ovmf);
        g_free(x->prefix);
}

static char *vm_text(Fixture *x, const char *role, const char *extra) {
        return g_strdup_printf("[VM]\nRole=%s\nMemory=256M\nKernel=%s\nStopTimeout=2\nNetVM=\n%s", role, x->kernel,
                               extra);
}

static Federation *fixture_federation(Fixture *x) {
        g_autoptr(GPtrArray) errors = NULL;
        FederationOptions o = {
                .config_dir = x->config,
                .state_dir = x->state,
                .domain_prefix = x->prefix,
                .force_tcg = true,
                .ovmf_dir = x->ovmf,
        };
        Federation *f = NULL;
        int r = federation_new(x->conn, &o, &f, &errors);
        for (guint i = 0; errors && i < errors->len; i++)
                g_printerr("%s\n", (char *) errors->pdata[i]);
        g_assert_cmpint(r, ==, 0);
        return f;
}

static int start_and_wait(Fixture *x, const char *name) {
        Result res = {};
        FederationCallbacks cb;
        int r;

        result_reset(&res);
        cb = result_callbacks(&res);
        r = federation_start_vm(x->f, name, &cb, NULL);
        if (r >= 0) {
                g_assert_true(run_until(&res.done, 10));
                r = res.r;
        }
        g_ptr_array_unref(res.progress);
        g_free(res.message);
        return r;
}

static void stop_and_wait(Fixture *x, const char *name) {
        Result res = {};
        FederationCallbacks cb;

        result_reset(&res);
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_stop_vm(x->f, name, true, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_assert_cmpint(res.r, ==, 0);
        g_ptr_array_unref(res.progress);
        g_free(res.message);
}

static char *domain_xml(Fixture *x, const char *vm) {
        g_autofree char *name = g_strconcat(x->prefix, vm, NULL);
        virDomainPtr dom = virDomainLookupByName(x->conn, name);
        char *xml;

        g_assert_nonnull(dom);
        xml = virDomainGetXMLDesc(dom, 0);
        virDomainFree(dom);
        return xml;
}

static void test_uefi_tpm_persona(Fixture *x, gconstpointer data) {
        g_autofree char *text = vm_text(x, "persona", "Firmware=uefi-secure-boot\nTPM=2.0\n");
        g_autofree char *domain_name = g_strconcat(x->prefix, "mordor", NULL);
        g_autofree char *nvram = g_build_filename(x->state, "nvram", "mordor.fd", NULL);
        g_autofree char *xml = NULL, *uuid_elem = NULL, *nvram_elem = NULL, *content = NULL;
        g_autoptr(GPtrArray) errors = NULL;
        char uuid[DOMAIN_XML_UUID_MAX];

        write_vm(x->config, "mordor", text);
        x->f = fixture_federation(x);
        g_assert_cmpint(start_and_wait(x, "mordor"), ==, 0);
        xml = domain_xml(x, "mordor");
        domain_xml_stable_uuid(domain_name, uuid);
        uuid_elem = g_strdup_printf("<uuid>%s</uuid>", uuid);
        g_assert_nonnull(strstr(xml, uuid_elem));
        nvram_elem = g_strdup_printf(">%s</nvram>", nvram);
        g_assert_nonnull(strstr(xml, nvram_elem));
        g_assert_nonnull(strstr(xml, "OVMF_VARS_4M.ms.fd"));
        g_assert_nonnull(strstr(xml, "<tpm model='tpm-crb'>"));
        g_assert_true(g_file_test(x->state, G_FILE_TEST_IS_DIR));
        {
                g_autofree char *dir = g_build_filename(x->state, "nvram", NULL);
                g_assert_true(g_file_test(dir, G_FILE_TEST_IS_DIR));
        }
        stop_and_wait(x, "mordor");

        /* What libvirt copied from the template at the first start (the test driver copies nothing). */
        write_text(nvram, "enrolled keys, boot entries\n");
        g_assert_cmpint(federation_remove_vm(x->f, "mordor", &errors), ==, 0);
        run_for(0.2);
        {
                virDomainPtr dom = virDomainLookupByName(x->conn, domain_name);
                g_assert_null(dom);
                virResetLastError();
        }
        g_assert_true(g_file_get_contents(nvram, &content, NULL, NULL));
        g_assert_cmpstr(content, ==, "enrolled keys, boot entries\n");

        /* Added again: the same UUID, so libvirt's TPM state of that UUID is the VM's again. */
        g_assert_cmpint(federation_add_vm(x->f, "mordor", text, &errors), ==, 0);
        g_assert_cmpint(start_and_wait(x, "mordor"), ==, 0);
        g_clear_pointer(&xml, g_free);
        xml = domain_xml(x, "mordor");
        g_assert_nonnull(strstr(xml, uuid_elem));
        stop_and_wait(x, "mordor");
}

static void test_missing_packages(Fixture *x, gconstpointer data) {
        g_autofree char *uefi = vm_text(x, "app", "Firmware=uefi\n");
        g_autofree char *tpm = vm_text(x, "app", "TPM=2.0\n");
        g_autofree char *code = g_build_filename(x->ovmf, "OVMF_CODE_4M.fd", NULL);
        g_autofree char *swtpm = g_build_filename(bin, "swtpm", NULL);
        g_autofree char *err = NULL, *expect = NULL;

        write_vm(x->config, "efi", uefi);
        write_vm(x->config, "tpm", tpm);
        x->f = fixture_federation(x);
        g_assert_cmpint(g_unlink(code), ==, 0);
        g_assert_cmpint(g_chmod(swtpm, 0644), ==, 0); /* not a program any more */

        g_assert_cmpint(federation_start_vm(x->f, "efi", NULL, &err), ==, -ENOENT);
        expect = g_strdup_printf("efi: Firmware=uefi needs %s: No such file or directory (install the Debian "
                                 "package ovmf)", code);
        g_assert_cmpstr(err, ==, expect);
        g_clear_pointer(&err, g_free);
        g_assert_cmpint(federation_start_vm(x->f, "tpm", NULL, &err), ==, -ENOENT);
        g_assert_cmpstr(err, ==, "tpm: TPM=2.0 needs swtpm, which is not installed (install the Debian package swtpm)");
        g_assert_cmpint(federation_vm_state(x->f, "efi"), ==, FEDERATION_VM_STOPPED);
        g_assert_cmpint(federation_vm_state(x->f, "tpm"), ==, FEDERATION_VM_STOPPED);
}

static void test_disposable_nvram(Fixture *x, gconstpointer data) {
        g_autofree char *text = vm_text(x, "disposable-template", "Firmware=uefi\n");
        g_autofree char *orphan = g_build_filename(x->state, "disposables", "disp9999.fd", NULL);
        g_autofree char *nvram = NULL, *xml = NULL, *disp = NULL;
        Result res = {};
        FederationCallbacks cb;

        write_vm(x->config, "dvm", text);
        x->f = fixture_federation(x);
        result_reset(&res);
        cb = result_callbacks(&res);
        g_assert_cmpint(federation_start_disposable(x->f, "@dispvm:dvm", NULL, &cb, NULL), ==, 0);
        g_assert_true(run_until(&res.done, 10));
        g_assert_cmpint(res.r, ==, 0);
        disp = g_strdup(res.message);
        nvram = g_strdup_printf("%s/disposables/%s.fd", x->state, disp);
        xml = domain_xml(x, disp);
        g_assert_nonnull(strstr(xml, nvram));
        g_assert_null(strstr(xml, "/nvram/"));
        write_text(nvram, "vars\n"); /* as libvirt would have copied them */

        /* A restarted broker keeps a running disposable's NVRAM and sweeps an orphan one. */
        write_text(orphan, "vars\n");
        g_clear_pointer(&x->f, federation_free);
        x->f = fixture_federation(x);
        g_assert_true(g_file_test(nvram, G_FILE_TEST_EXISTS));
        g_assert_false(g_file_test(orphan, G_FILE_TEST_EXISTS));

        stop_and_wait(x, disp);
        g_assert_false(g_file_test(nvram, G_FILE_TEST_EXISTS));
        g_ptr_array_unref(res.progress);
        g_free(res.message);
}

int main(int argc, char *argv[]) {
        g_autofree char *tmp = NULL, *cmd = NULL;
        int r;

        g_test_init(&argc, &argv, NULL);
        tmp = g_dir_make_tmp("vmfed-fwbin-XXXXXX", NULL);
        g_assert_nonnull(tmp);
        bin = g_build_filename(tmp, "bin", NULL);
        g_assert_cmpint(g_mkdir_with_parents(bin, 0755), ==, 0);
        g_setenv("PATH", bin, true);
        g_assert_cmpint(virInitialize(), ==, 0);
        g_assert_cmpint(virEventRegisterDefaultImpl(), ==, 0);

#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("/firmware-federation/uefi-tpm-persona", test_uefi_tpm_persona);
        ADD("/firmware-federation/missing-packages", test_missing_packages);
        ADD("/firmware-federation/disposable-nvram", test_disposable_nvram);
        r = g_test_run();
        cmd = g_strdup_printf("/bin/rm -rf '%s'", tmp);
        r = system(cmd) == 0 ? r : 1;
        g_free(bin);
        return r;
}
