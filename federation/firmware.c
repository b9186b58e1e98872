/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "federation/firmware.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"

const char *firmware_code_file(VmFirmware f) {
        switch (f) {
        case VM_FIRMWARE_UEFI:
                return "OVMF_CODE_4M.fd";
        case VM_FIRMWARE_UEFI_SECURE_BOOT:
                return "OVMF_CODE_4M.secboot.fd";
        default:
                return NULL;
        }
}

const char *firmware_vars_file(VmFirmware f) {
        switch (f) {
        case VM_FIRMWARE_UEFI:
                return "OVMF_VARS_4M.fd";
        case VM_FIRMWARE_UEFI_SECURE_BOOT:
                return "OVMF_VARS_4M.ms.fd"; /* Microsoft's KEK and db enrolled */
        default:
                return NULL;
        }
}

static int check_ovmf(const VmSpec *s, const char *dir, char **ret_error) {
        const char *files[] = { firmware_code_file(s->firmware), firmware_vars_file(s->firmware) };

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                g_autofree char *path = NULL;
                if (!files[i])
                        continue;
                path = g_build_filename(dir, files[i], NULL);
                if (access(path, R_OK) < 0) {
                        int r = negative_errno();
                        if (ret_error)
                                *ret_error = g_strdup_printf("%s: Firmware=%s needs %s: %s (install the Debian "
                                                             "package " FIRMWARE_OVMF_PACKAGE ")",
                                                             s->name, vm_firmware_to_string(s->firmware), path,
                                                             g_strerror(-r));
                        return r;
                }
        }
        return 0;
}

int firmware_check_host(const VmSpec *s, const char *ovmf_dir, char **ret_error) {
        /* What libvirt runs for an emulated TPM, and the packages that have them. */
        static const struct {
                const char *program, *package;
        } swtpm[] = {
                { "swtpm", "swtpm" },
                { "swtpm_setup", "swtpm-tools" },
                { "swtpm_ioctl", "swtpm-tools" },
        };
        int r;

        if (s->firmware != VM_FIRMWARE_BIOS) {
                r = check_ovmf(s, ovmf_dir ? ovmf_dir : FIRMWARE_OVMF_DIR, ret_error);
                if (r < 0)
                        return r;
        }
        if (s->tpm == VM_TPM_NONE)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(swtpm); i++) {
                g_autofree char *p = g_find_program_in_path(swtpm[i].program);
                if (p)
                        continue;
                if (ret_error)
                        *ret_error = g_strdup_printf("%s: TPM=%s needs %s, which is not installed (install the "
                                                     "Debian package %s)",
                                                     s->name, vm_tpm_to_string(s->tpm), swtpm[i].program,
                                                     swtpm[i].package);
                return -ENOENT;
        }
        return 0;
}

int firmware_xml_os(GString *x, const VmSpec *s, const char *ovmf_dir, const char *nvram_path) {
        const char *dir = ovmf_dir ? ovmf_dir : FIRMWARE_OVMF_DIR;
        g_autofree char *code = NULL, *vars = NULL, *e = NULL;

        if (s->firmware == VM_FIRMWARE_BIOS)
                return 0;
        if (!nvram_path || !firmware_code_file(s->firmware))
                return -EINVAL;
        code = g_build_filename(dir, firmware_code_file(s->firmware), NULL);
        vars = g_build_filename(dir, firmware_vars_file(s->firmware), NULL);
        /* libvirt copies the template to nvram_path at start when that does not exist, never after. */
        e = g_markup_printf_escaped("    <loader readonly='yes' secure='%s' type='pflash'>%s</loader>\n"
                                    "    <nvram template='%s'>%s</nvram>\n",
                                    s->firmware == VM_FIRMWARE_UEFI_SECURE_BOOT ? "yes" : "no", code, vars,
                                    nvram_path);
        g_string_append(x, e);
        return 0;
}

void firmware_hyperv_vendor_id(const char *vm_name, char ret[static FIRMWARE_HYPERV_VENDOR_MAX]) {
        g_autofree char *key = g_strconcat("vmfed-hv:", vm_name, NULL);
        g_autofree char *h = g_compute_checksum_for_string(G_CHECKSUM_SHA256, key, -1);

        snprintf(ret, FIRMWARE_HYPERV_VENDOR_MAX, "%.12s", h);
}

void firmware_xml_features(GString *x, const VmSpec *s, bool kvm) {
        char vendor[FIRMWARE_HYPERV_VENDOR_MAX];

        if (s->firmware == VM_FIRMWARE_UEFI_SECURE_BOOT)
                g_string_append(x, "    <smm state='on'/>\n");
        if (!s->hide_hypervisor || !kvm)
                return;
        firmware_hyperv_vendor_id(s->name, vendor);
        g_string_append_printf(x,
                               "    <hyperv>\n"
                               "      <vendor_id state='on' value='%s'/>\n"
                               "    </hyperv>\n"
                               "    <kvm>\n"
                               "      <hidden state='on'/>\n"
                               "    </kvm>\n",
                               vendor);
}

void firmware_xml_cpu(GString *x, const VmSpec *s, bool kvm) {
        if (kvm && !s->hide_hypervisor)
                g_string_append(x, "  <cpu mode='host-passthrough'/>\n");
        else if (kvm)
                g_string_append(x, "  <cpu mode='host-passthrough'>\n"
                                   "    <feature policy='disable' name='hypervisor'/>\n"
                                   "  </cpu>\n");
        else if (s->hide_hypervisor)
                /* TCG: QEMU's default model, as without a <cpu>, minus the hypervisor bit. */
                g_string_append(x, "  <cpu mode='custom' match='exact' check='none'>\n"
                                   "    <model fallback='allow'>qemu64</model>\n"
                                   "    <feature policy='disable' name='hypervisor'/>\n"
                                   "  </cpu>\n");
}

void firmware_xml_tpm(GString *x, const VmSpec *s) {
        if (s->tpm == VM_TPM_2_0)
                g_string_append(x, "    <tpm model='tpm-crb'>\n"
                                   "      <backend type='emulator' version='2.0'/>\n"
                                   "    </tpm>\n");
}

/* ---- the values of Firmware= and TPM= (vmspec.h) ---------------------------- */

static const char *const firmware_names[_VM_FIRMWARE_MAX] = {
        [VM_FIRMWARE_BIOS] = "bios",
        [VM_FIRMWARE_UEFI] = "uefi",
        [VM_FIRMWARE_UEFI_SECURE_BOOT] = "uefi-secure-boot",
};

const char *vm_firmware_to_string(VmFirmware f) {
        return f >= 0 && f < _VM_FIRMWARE_MAX ? firmware_names[f] : NULL;
}

VmFirmware vm_firmware_from_string(const char *s) {
        for (int i = 0; s && i < _VM_FIRMWARE_MAX; i++)
                if (strcmp(s, firmware_names[i]) == 0)
                        return (VmFirmware) i;
        return VM_FIRMWARE_INVALID;
}

static const char *const tpm_names[_VM_TPM_MAX] = {
        [VM_TPM_NONE] = "none",
        [VM_TPM_2_0] = "2.0",
};

const char *vm_tpm_to_string(VmTpm t) {
        return t >= 0 && t < _VM_TPM_MAX ? tpm_names[t] : NULL;
}

VmTpm vm_tpm_from_string(const char *s) {
        for (int i = 0; s && i < _VM_TPM_MAX; i++)
                if (strcmp(s, tpm_names[i]) == 0)
                        return (VmTpm) i;
        return VM_TPM_INVALID;
}
