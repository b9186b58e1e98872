/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VM specifications: the full, strictly validated reading of vms.d/NAME.vm
 * (vmfed.vm(5)) that the federation needs to run a VM — memory, CPUs, boot
 * source, network, passthrough devices, lifecycle settings.  This is the
 * only parser of those files; vm-model.h holds one load of them (VmModel),
 * the only model of vms.d/ that the broker, the policy facts and the
 * federation share.
 *
 * Errors are strings "vms.d/NAME.vm:LINE: key K: reason" (LINE 0 when the
 * problem is not on one line, "key K" left out when it concerns no key).
 */
#pragma once

#include <errno.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy/name.h"

#define VM_SPEC_MEMORY_MIN (32ULL << 20)
#define VM_SPEC_MEMORY_MAX (4ULL << 40)
#define VM_SPEC_VCPUS_MAX 256
#define VM_SPEC_STOP_TIMEOUT_DEFAULT 30
#define VM_SPEC_STOP_TIMEOUT_MAX 3600

typedef enum VmRole {
        VM_ROLE_PERSONA,
        VM_ROLE_SERVICE,
        VM_ROLE_DISPOSABLE_TEMPLATE,
        VM_ROLE_APP,
        _VM_ROLE_MAX,
        VM_ROLE_INVALID = -EINVAL,
} VmRole;

const char *vm_role_to_string(VmRole r);
VmRole vm_role_from_string(const char *s);

typedef enum VmAccel {
        VM_ACCEL_AUTO,
        VM_ACCEL_KVM,
        VM_ACCEL_TCG,
        _VM_ACCEL_MAX,
        VM_ACCEL_INVALID = -EINVAL,
} VmAccel;

const char *vm_accel_to_string(VmAccel a);
VmAccel vm_accel_from_string(const char *s);

/* Firmware=: SeaBIOS, OVMF, or OVMF with Secure Boot (federation/firmware.h). */
typedef enum VmFirmware {
        VM_FIRMWARE_BIOS,
        VM_FIRMWARE_UEFI,
        VM_FIRMWARE_UEFI_SECURE_BOOT,
        _VM_FIRMWARE_MAX,
        VM_FIRMWARE_INVALID = -EINVAL,
} VmFirmware;

/* "bios", "uefi", "uefi-secure-boot" */
const char *vm_firmware_to_string(VmFirmware f);
VmFirmware vm_firmware_from_string(const char *s);

/* TPM=: none, or a TPM 2.0 emulated by swtpm. */
typedef enum VmTpm {
        VM_TPM_NONE,
        VM_TPM_2_0,
        _VM_TPM_MAX,
        VM_TPM_INVALID = -EINVAL,
} VmTpm;

/* "none", "2.0" */
const char *vm_tpm_to_string(VmTpm t);
VmTpm vm_tpm_from_string(const char *s);

typedef struct VmSpec {
        char *name;          /* from the file name */
        char *path;          /* the file it came from */
        VmRole role;
        uint64_t memory;     /* bytes */
        unsigned vcpus;
        char *disk;          /* absolute path or NULL */
        char *kernel;        /* direct boot: absolute path or NULL */
        char *initrd;        /* NULL unless kernel */
        char *cmdline;       /* NULL unless kernel */
        char **tags;         /* NULL-terminated, never NULL */
        /*
         * The service VM this VM's network goes through.  NULL: no network.
         * Resolved by vm_spec_validate_federation(): a missing NetVM= key
         * means the default netvm (if any), an empty value means none.
         */
        char *netvm;
        bool netvm_set;      /* NetVM= was present in the file */
        bool default_netvm;  /* DefaultNetVM=yes (service VMs only) */
        bool autostart;
        VmAccel accel;
        unsigned stop_timeout; /* seconds */
        VmFirmware firmware;
        VmTpm tpm;
        bool hide_hypervisor; /* HideHypervisor=: KVM signature hidden, CPUID hypervisor bit off */
        unsigned streams;     /* Streams=: stream ports org.vmfed.stream.0 … streams-1 (docs/streams.md) */
        char *default_dispvm;
        char **devices;      /* PCI addresses "dddd:bb:dd.f", normalized, NULL-terminated, never NULL */
        char *source_text;   /* the file's content, for change detection */
} VmSpec;

VmSpec *vm_spec_free(VmSpec *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmSpec, vm_spec_free)

/*
 * The policy language's VM names: [A-Za-z][A-Za-z0-9_.-]*, at most POLICY_NAME_MAX (31) bytes; but not
 * X.stream.N (N digits): its agent channel would be VM X's stream port N (domain_xml_stream_channel_path()).
 */
bool vm_spec_name_is_valid(const char *name);

/* "0000:01:00.0" (DDDD:BB:DD.F, case-insensitive) → normalized copy; NULL if invalid. */
char *pci_address_normalize(const char *untrusted);

/* "true"/"1" or "false"/"0" (as GKeyFile reads booleans); -EINVAL otherwise. */
int vm_bool_from_string(const char *untrusted, bool *ret);

typedef enum VmSpecLoadFlags {
        /*
         * The boot source is not this reader's concern: only for `vmfedctl
         * policy`'s offline linting of a configuration whose disks need not
         * be on this machine (vmfedd and the federation always load strictly):
         * Disk=, Kernel= and Initrd= are checked for form (absolute paths)
         * only, the files need not exist and a VM need not have Disk= or
         * Kernel=.  Everything else is checked as without the flag.
         */
        VM_SPEC_NO_FILE_CHECKS = 1 << 0,
} VmSpecLoadFlags;

/*
 * Parse one file's text.  Checks everything that concerns this file alone
 * (keys, values, files that must exist).  Returns 0 with *ret, or -EINVAL
 * after appending messages to errors.
 */
int vm_spec_parse(const char *name, const char *path, const char *untrusted_text, GPtrArray *errors,
                  VmSpec **ret);

/*
 * Checks across files: NetVM= names a service VM, at most one
 * DefaultNetVM=yes, DefaultDispVM= names a disposable template.  Resolves
 * each spec's netvm.  Returns 0 or -EINVAL after appending to errors.
 */
int vm_spec_validate_federation(GPtrArray *specs, GPtrArray *errors);

/*
 * An in-memory replacement for one file while loading, to validate a change
 * against the whole federation before writing it.  text == NULL: removed.
 */
typedef struct VmSpecOverride {
        const char *name;
        const char *text;
} VmSpecOverride;

/*
 * Load and validate CONFIG/vms.d/\*.vm (with an optional override).
 * Returns 0 with *ret_specs (VmSpec*, sorted by name, owning), or -EINVAL
 * with *ret_errors, or another negative errno (then *ret_errors may hold a
 * message too).  A missing vms.d/ is an empty federation.
 */
int vm_spec_load_dir(const char *config_dir, const VmSpecOverride *override, GPtrArray **ret_specs,
                     GPtrArray **ret_errors);
/* The same with flags; vm_spec_load_dir() is flags 0. */
int vm_spec_load_dir_full(const char *config_dir, const VmSpecOverride *override, VmSpecLoadFlags flags,
                          GPtrArray **ret_specs, GPtrArray **ret_errors);

VmSpec *vm_spec_find(GPtrArray *specs, const char *name);
