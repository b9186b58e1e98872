/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Firmware=, TPM=, HideHypervisor= (federation/firmware.h): what vms.d/
 * accepts and refuses, the domain XML each builds (validated against
 * libvirt's schema with virt-xml-validate when it is installed), the host
 * check before a start (OVMF files, swtpm), the stable domain UUID.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fed-test-util.h"
#include "federation/domain-xml.h"
#include "federation/firmware.h"

static char *tmp, *disk, *ovmf;


static VmSpec *spec_with(const char *name, const char *keys) {
        g_autofree char *text = g_strdup_printf("[VM]\nRole=persona\nDisk=%s\n%s", disk, keys);
        return test_vm_spec(name, text);
}

/* The one error of parsing text, which must fail. */
static char *parse_error(const char *text) {
        g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
        VmSpec *s = NULL;

        g_assert_cmpint(vm_spec_parse("mordor", "/x", text, errors, &s), ==, -EINVAL);
        g_assert_null(s);
        g_assert_cmpuint(errors->len, ==, 1);
        return g_strdup(errors->pdata[0]);
}

static void validate(const char *xml) {
        g_autofree char *tool = g_find_program_in_path("virt-xml-validate");
        g_autofree char *path = g_build_filename(tmp, "domain.xml", NULL);
        g_autofree char *cmd = g_strdup_printf("virt-xml-validate '%s' domain >&2", path);
        int status;

        if (!tool) {
                g_test_message("virt-xml-validate not installed (libvirt-clients): schema not checked");
                return;
        }
        write_text(path, xml);
        status = system(cmd);
        if (status != 0)
                g_printerr("%s", xml);
        g_assert_cmpint(status, ==, 0);
}

static char *build(const VmSpec *s, bool kvm) {
        DomainXmlParams p = {
                .domain_name = "vmfed-mordor",
                .channel_path = "/var/lib/vmfed/channels/mordor.sock",
                .console_path = "/var/lib/vmfed/consoles/mordor.log",
                .kvm_available = kvm,
                .nvram_path = "/var/lib/vmfed/nvram/mordor.fd",
        };
        char *xml = NULL;

        g_assert_cmpint(domain_xml_build(s, &p, &xml), ==, 0);
        validate(xml);
        return xml;
}

static void test_parse(void) {
        g_autoptr(VmSpec) d = spec_with("mordor", "");
        g_autoptr(VmSpec) u = spec_with("mordor", "Firmware=uefi\nTPM=2.0\nHideHypervisor=yes\n");
        g_autoptr(VmSpec) sb = spec_with("mordor", "Firmware=uefi-secure-boot\nTPM=none\nHideHypervisor=false\n");

        g_assert_cmpint(d->firmware, ==, VM_FIRMWARE_BIOS);
        g_assert_cmpint(d->tpm, ==, VM_TPM_NONE);
        g_assert_false(d->hide_hypervisor);
        g_assert_cmpint(u->firmware, ==, VM_FIRMWARE_UEFI);
        g_assert_cmpint(u->tpm, ==, VM_TPM_2_0);
        g_assert_true(u->hide_hypervisor);
        g_assert_cmpint(sb->firmware, ==, VM_FIRMWARE_UEFI_SECURE_BOOT);
        g_assert_cmpint(sb->tpm, ==, VM_TPM_NONE);
        g_assert_false(sb->hide_hypervisor);
        g_assert_cmpstr(vm_firmware_to_string(VM_FIRMWARE_UEFI_SECURE_BOOT), ==, "uefi-secure-boot");
        g_assert_cmpstr(vm_tpm_to_string(VM_TPM_2_0), ==, "2.0");
        g_assert_null(vm_firmware_to_string(VM_FIRMWARE_INVALID));
}

static void test_bad_input(void) {
        static const struct {
                const char *keys, *error;
        } cases[] = {
                { "Firmware=efi\n", "vms.d/mordor.vm:4: key Firmware: 'efi' is not one of bios, uefi, uefi-secure-boot" },
                { "Firmware=UEFI\n", "vms.d/mordor.vm:4: key Firmware: 'UEFI' is not one of bios, uefi, uefi-secure-boot" },
                { "Firmware=\n", "vms.d/mordor.vm:4: key Firmware: '' is not one of bios, uefi, uefi-secure-boot" },
                { "TPM=1.2\n", "vms.d/mordor.vm:4: key TPM: '1.2' is not one of none, 2.0" },
                { "TPM=2\n", "vms.d/mordor.vm:4: key TPM: '2' is not one of none, 2.0" },
                { "HideHypervisor=maybe\n", "vms.d/mordor.vm:4: key HideHypervisor: 'maybe' is not a boolean (true or false)" },
                { "Firmware=uefi\nFirmware=bios\n", "vms.d/mordor.vm:5: key Firmware: given twice in [VM] (first on line 4)" },
                { "Tpm=2.0\n", NULL }, /* unknown key: keys are case-sensitive */
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *text = g_strdup_printf("[VM]\nRole=persona\nDisk=%s\n%s", disk, cases[i].keys);
                g_autofree char *e = parse_error(text);
                if (cases[i].error)
                        g_assert_cmpstr(e, ==, cases[i].error);
                else
                        g_assert_true(g_str_has_prefix(e, "vms.d/mordor.vm:4: key Tpm: unknown key in [VM]"));
        }
}

static void test_bios_unchanged(void) {
        g_autoptr(VmSpec) d = spec_with("mordor", "");
        g_autoptr(VmSpec) e = spec_with("mordor", "Firmware=bios\nTPM=none\nHideHypervisor=false\n");
        g_autofree char *x1 = build(d, true), *x2 = build(e, true);

        /* Spelling the defaults out changes nothing, not even the config hash (no redefinition). */
        g_assert_cmpstr(x1, ==, x2);
        g_assert_null(strstr(x1, "<loader"));
        g_assert_null(strstr(x1, "<nvram"));
        g_assert_null(strstr(x1, "<tpm"));
        g_assert_null(strstr(x1, "<smm"));
        g_assert_null(strstr(x1, "<kvm>"));
        g_assert_nonnull(strstr(x1, "  <features>\n    <acpi/>\n  </features>\n  <cpu mode='host-passthrough'/>\n"));
}

static void test_uefi(void) {
        g_autoptr(VmSpec) s = spec_with("mordor", "Firmware=uefi\n");
        g_autofree char *xml = build(s, true), *none = NULL;
        DomainXmlParams p = { .domain_name = "vmfed-mordor" };

        g_assert_nonnull(strstr(xml, "<loader readonly='yes' secure='no' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"));
        g_assert_nonnull(strstr(xml, "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/vmfed/nvram/mordor.fd</nvram>"));
        g_assert_null(strstr(xml, "<smm"));
        g_assert_nonnull(strstr(xml, "machine='q35'"));
        /* Without a place for the NVRAM there is no UEFI domain. */
        g_assert_cmpint(domain_xml_build(s, &p, &none), ==, -EINVAL);
        g_assert_null(none);
}

static void test_secure_boot(void) {
        g_autoptr(VmSpec) s = spec_with("mordor", "Firmware=uefi-secure-boot\n");
        g_autofree char *xml = build(s, false);
        g_autofree char *kernel = g_strdup_printf("Firmware=uefi-secure-boot\nKernel=%s\n", disk);
        g_autoptr(VmSpec) k = spec_with("mordor", kernel);

        g_assert_nonnull(strstr(xml, "<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.secboot.fd</loader>"));
        g_assert_nonnull(strstr(xml, "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>/var/lib/vmfed/nvram/mordor.fd</nvram>"));
        g_assert_nonnull(strstr(xml, "<smm state='on'/>"));
        g_assert_nonnull(strstr(xml, "<domain type='qemu'>"));
        /* The loader before a direct kernel, as libvirt orders <os>. */
        {
                g_autofree char *kx = build(k, false);
                g_assert_true(strstr(kx, "<loader") < strstr(kx, "<kernel>"));
        }
}

static void test_tpm(void) {
        g_autoptr(VmSpec) s = spec_with("mordor", "Firmware=uefi\nTPM=2.0\n");
        g_autoptr(VmSpec) b = spec_with("mordor", "TPM=2.0\n");
        g_autofree char *xml = build(s, true), *bx = build(b, false);

        g_assert_nonnull(strstr(xml, "    <tpm model='tpm-crb'>\n      <backend type='emulator' version='2.0'/>\n    </tpm>\n"));
        /* libvirt 9.0 has no state path: the domain XML names none. */
        g_assert_null(strstr(xml, "persistent_state"));
        g_assert_nonnull(strstr(bx, "<tpm model='tpm-crb'>"));
        g_assert_null(strstr(bx, "<loader"));
}

static void test_hide_hypervisor(void) {
        g_autoptr(VmSpec) s = spec_with("mordor", "Firmware=uefi-secure-boot\nTPM=2.0\nHideHypervisor=true\n");
        g_autofree char *kvm = build(s, true), *tcg = build(s, false), *vendor_attr = NULL;
        char vendor[FIRMWARE_HYPERV_VENDOR_MAX];

        firmware_hyperv_vendor_id("mordor", vendor);
        g_assert_cmpuint(strlen(vendor), ==, 12);
        vendor_attr = g_strdup_printf("<vendor_id state='on' value='%s'/>", vendor);
        g_assert_nonnull(strstr(kvm, "<kvm>\n      <hidden state='on'/>\n    </kvm>"));
        g_assert_nonnull(strstr(kvm, vendor_attr));
        g_assert_nonnull(strstr(kvm, "<cpu mode='host-passthrough'>\n    <feature policy='disable' name='hypervisor'/>\n  </cpu>"));
        g_assert_nonnull(strstr(kvm, "<smm state='on'/>"));
        /* TCG: no KVM signature to hide, no Hyper-V; the hypervisor bit is off. */
        g_assert_null(strstr(tcg, "<kvm>"));
        g_assert_null(strstr(tcg, "<hyperv>"));
        g_assert_nonnull(strstr(tcg, "<model fallback='allow'>qemu64</model>"));
        g_assert_nonnull(strstr(tcg, "<feature policy='disable' name='hypervisor'/>"));
}

static void test_check_host(void) {
        g_autoptr(VmSpec) u = spec_with("mordor", "Firmware=uefi\n");
        g_autoptr(VmSpec) sb = spec_with("mordor", "Firmware=uefi-secure-boot\n");
        g_autoptr(VmSpec) t = spec_with("mordor", "TPM=2.0\n");
        g_autoptr(VmSpec) d = spec_with("mordor", "");
        g_autofree char *bin = g_build_filename(tmp, "bin", NULL), *err = NULL, *path = NULL, *expect = NULL;
        g_autofree char *old_path = g_strdup(g_getenv("PATH"));

        /* No OVMF: the error names the file and the package. */
        g_assert_cmpint(firmware_check_host(u, ovmf, &err), ==, -ENOENT);
        expect = g_strdup_printf("mordor: Firmware=uefi needs %s/OVMF_CODE_4M.fd: No such file or directory "
                                 "(install the Debian package ovmf)", ovmf);
        g_assert_cmpstr(err, ==, expect);
        g_clear_pointer(&err, g_free);
        g_assert_cmpint(firmware_check_host(d, ovmf, &err), ==, 0);
        g_assert_null(err);

        g_assert_cmpint(g_mkdir_with_parents(ovmf, 0755), ==, 0);
        for (const char *const *f = (const char *const[]) { "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd",
                                                            "OVMF_CODE_4M.secboot.fd", NULL };
             *f; f++) {
                g_autofree char *p = g_build_filename(ovmf, *f, NULL);
                write_text(p, "fd\n");
        }
        g_assert_cmpint(firmware_check_host(u, ovmf, NULL), ==, 0);
        /* Secure Boot needs the vars with Microsoft's keys too. */
        g_assert_cmpint(firmware_check_host(sb, ovmf, &err), ==, -ENOENT);
        g_assert_nonnull(strstr(err, "OVMF_VARS_4M.ms.fd"));
        g_assert_nonnull(strstr(err, "package ovmf"));
        g_clear_pointer(&err, g_free);

        /* swtpm, then its tools, looked up in $PATH. */
        g_assert_cmpint(g_mkdir_with_parents(bin, 0755), ==, 0);
        g_setenv("PATH", bin, true);
        g_assert_cmpint(firmware_check_host(t, ovmf, &err), ==, -ENOENT);
        g_assert_cmpstr(err, ==, "mordor: TPM=2.0 needs swtpm, which is not installed (install the Debian package swtpm)");
        g_clear_pointer(&err, g_free);
        path = g_build_filename(bin, "swtpm", NULL);
        write_text(path, "#!/bin/sh\n");
        g_assert_cmpint(g_chmod(path, 0755), ==, 0);
        g_assert_cmpint(firmware_check_host(t, ovmf, &err), ==, -ENOENT);
        g_assert_cmpstr(err, ==, "mordor: TPM=2.0 needs swtpm_setup, which is not installed (install the Debian "
                                 "package swtpm-tools)");
        g_clear_pointer(&err, g_free);
        for (const char *const *f = (const char *const[]) { "swtpm_setup", "swtpm_ioctl", NULL }; *f; f++) {
                g_autofree char *p = g_build_filename(bin, *f, NULL);
                write_text(p, "#!/bin/sh\n");
                g_assert_cmpint(g_chmod(p, 0755), ==, 0);
        }
        g_assert_cmpint(firmware_check_host(t, ovmf, &err), ==, 0);
        g_assert_null(err);
        g_setenv("PATH", old_path, true);
}

static void test_stable_uuid(void) {
        char a[DOMAIN_XML_UUID_MAX], b[DOMAIN_XML_UUID_MAX], c[DOMAIN_XML_UUID_MAX];

        domain_xml_stable_uuid("vmfed-mordor", a);
        domain_xml_stable_uuid("vmfed-mordor", b);
        domain_xml_stable_uuid("vmfed-gondor", c);
        g_assert_cmpstr(a, ==, b);
        g_assert_cmpstr(a, !=, c);
        g_assert_cmpuint(strlen(a), ==, 36);
        g_assert_true(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
        g_assert_cmpint(a[14], ==, '8');
        g_assert_nonnull(strchr("89ab", a[19]));
        for (size_t i = 0; i < 36; i++)
                g_assert_true(a[i] == '-' || g_ascii_isxdigit(a[i]));
}

int main(int argc, char *argv[]) {
        g_autofree char *cmd = NULL;
        int r;

        g_test_init(&argc, &argv, NULL);
        tmp = g_dir_make_tmp("vmfed-firmware-XXXXXX", NULL);
        disk = g_build_filename(tmp, "disk.img", NULL);
        ovmf = g_build_filename(tmp, "OVMF", NULL);
        write_text(disk, "disk\n");
        g_test_add_func("/firmware/parse", test_parse);
        g_test_add_func("/firmware/bad-input", test_bad_input);
        g_test_add_func("/firmware/bios-unchanged", test_bios_unchanged);
        g_test_add_func("/firmware/uefi", test_uefi);
        g_test_add_func("/firmware/secure-boot", test_secure_boot);
        g_test_add_func("/firmware/tpm", test_tpm);
        g_test_add_func("/firmware/hide-hypervisor", test_hide_hypervisor);
        g_test_add_func("/firmware/check-host", test_check_host);
        g_test_add_func("/firmware/stable-uuid", test_stable_uuid);
        r = g_test_run();
        cmd = g_strdup_printf("rm -rf '%s'", tmp);
        r = system(cmd) == 0 ? r : 1;
        g_free(tmp);
        g_free(disk);
        g_free(ovmf);
        return r;
}
