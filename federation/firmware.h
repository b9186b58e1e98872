/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A VM's firmware, TPM and CPU identity: Firmware=, TPM=, HideHypervisor=
 * (vmfed.vm(5)), as pieces of its domain XML (domain-xml.c) and the host
 * check before it starts.
 *
 *   - Firmware=uefi: OVMF of Debian's ovmf package as an explicit read-only
 *     pflash loader (OVMF_CODE_4M.fd), and a per-VM NVRAM file that libvirt
 *     copies from the vars template (OVMF_VARS_4M.fd) when the VM starts
 *     and the file does not exist yet, and never writes over afterwards:
 *     STATE/nvram/NAME.fd (a disposable's beside its overlay, removed with it).
 *   - Firmware=uefi-secure-boot: OVMF_CODE_4M.secboot.fd (loader
 *     secure='yes'), the vars template with Microsoft's keys enrolled
 *     (OVMF_VARS_4M.ms.fd), SMM on (only code in SMM may write the variable
 *     store, which is what makes the keys stick); every VM is q35, which
 *     SMM needs.
 *   - TPM=2.0: <tpm model='tpm-crb'> on libvirt's swtpm emulator backend.
 *     libvirt 9.0 (Debian 12) has no way to name the state's location (its
 *     schema has none; <source> for the emulator came with libvirt 10.x):
 *     the state is libvirt's, /var/lib/libvirt/swtpm/UUID/, under the
 *     domain's UUID, which vmfed makes stable per VM
 *     (domain_xml_stable_uuid()) and keeps on undefine
 *     (VIR_DOMAIN_UNDEFINE_KEEP_TPM), so the state follows the VM.
 *   - HideHypervisor=true: under KVM, the KVM signature hidden
 *     (<kvm><hidden state='on'/>), a Hyper-V vendor id that is not
 *     "Microsoft Hv" and the CPUID hypervisor bit off; under TCG there is
 *     no KVM signature, only the hypervisor bit is turned off.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "federation/vmspec.h"

#define FIRMWARE_OVMF_DIR "/usr/share/OVMF"
#define FIRMWARE_OVMF_PACKAGE "ovmf"
#define FIRMWARE_HYPERV_VENDOR_MAX 13 /* 12 characters + NUL */

/* The loader and vars template of a UEFI firmware, file names in the OVMF directory; NULL for bios. */
const char *firmware_code_file(VmFirmware f);
const char *firmware_vars_file(VmFirmware f);

/*
 * Can this host run s's firmware and TPM?  The OVMF files readable in
 * ovmf_dir (NULL: FIRMWARE_OVMF_DIR), swtpm, swtpm_setup and swtpm_ioctl in
 * $PATH.  Returns 0, or a negative errno and "NAME: KEY=VALUE needs ...
 * (install the Debian package P)" in *ret_error (optional).
 */
int firmware_check_host(const VmSpec *s, const char *ovmf_dir, char **ret_error);

/* <loader> and <nvram> inside <os> (nothing for bios); -EINVAL when UEFI has no nvram_path. */
int firmware_xml_os(GString *x, const VmSpec *s, const char *ovmf_dir, const char *nvram_path);
/* Inside <features>: <smm> for Secure Boot; <kvm>, <hyperv> when the hypervisor is hidden under KVM. */
void firmware_xml_features(GString *x, const VmSpec *s, bool kvm);
/* The <cpu> element (host-passthrough under KVM), the hypervisor bit off when hidden. */
void firmware_xml_cpu(GString *x, const VmSpec *s, bool kvm);
/* The <tpm> device (nothing for TPM=none). */
void firmware_xml_tpm(GString *x, const VmSpec *s);

/* The Hyper-V vendor id of a hidden hypervisor: 12 hex digits of SHA-256("vmfed-hv:" NAME). */
void firmware_hyperv_vendor_id(const char *vm_name, char ret[static FIRMWARE_HYPERV_VENDOR_MAX]);
