/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VM definitions: vms.d/NAME.vm GKeyFile files in the config directory.
 *
 * This is what the policy engine, the broker's VM objects and `vmfedctl
 * policy` need: a view of the specs federation/vmspec.h parses (the only
 * parser of these files), loaded with VM_SPEC_NO_FILE_CHECKS so that it
 * works on a configuration whose disks are not on this machine (linting,
 * examples).  Every other check of vmfed.vm(5) applies, across files too.
 */
#pragma once

#include <errno.h>

#include <glib.h>

#include "policy/policy.h"

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

typedef struct VmConfig {
        char *name;           /* from the file name, "rivendale" for vms.d/rivendale.vm */
        char *path;           /* the file it came from */
        VmRole role;
        char **tags;          /* NULL-terminated, never NULL */
        char *default_dispvm; /* [VM] DefaultDispVM=, or NULL */

        /* As the federation reads them (VmSpec), defaults of vmfed.vm(5) applied. */
        guint64 memory;       /* [VM] Memory= in bytes, default 1G */
        unsigned vcpus;       /* [VM] VCPUs=, default 1 */
        char *disk;           /* [VM] Disk= absolute path (need not exist), or NULL */
        char *netvm;          /* [VM] NetVM=: NULL when unset, "" for no network */
        gboolean autostart;   /* [VM] Autostart=, default false */
        char *accel;          /* [VM] Accel= kvm | tcg, or NULL (auto: the federation's choice) */
        char **devices;       /* [Passthrough] Devices= PCI addresses dddd:bb:dd.f (lower case), never NULL */
} VmConfig;

VmConfig *vm_config_free(VmConfig *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmConfig, vm_config_free)

/*
 * Load every vms.d/NAME.vm below config_dir.  Returns 0 with *ret_vms (a
 * GPtrArray of VmConfig*, sorted by name, owning them) when every file is
 * valid; otherwise -EINVAL with *ret_errors a GPtrArray of messages of the
 * form "vms.d/NAME.vm:LINE: key K: what was wrong" (line 0 when unknown).
 * A missing vms.d/ is an empty federation, not an error.  *ret_errors is
 * NULL on success; when vms.d/ itself cannot be read the negative errno is
 * returned and *ret_errors is NULL.  Files not ending in ".vm" and dotfiles
 * are ignored.  Unknown groups and keys are errors ([Firewall] belongs to
 * the network VM's own parser and is passed over).  The checks are
 * vm_spec_load_dir()'s (vmfed.vm(5)), except that Disk=/Kernel=/Initrd= need
 * not exist and a VM need not have either (VM_SPEC_NO_FILE_CHECKS).
 */
int vm_config_load_dir(const char *config_dir, GPtrArray **ret_vms, GPtrArray **ret_errors);

/*
 * Build frozen policy facts from loaded VM definitions.  active_persona
 * (may be NULL) must name a persona (-ENOENT / -EINVAL).  default_dispvm
 * NULL means: the one VM with Role=disposable-template when there is
 * exactly one, else none.
 */
int vm_config_build_policy_facts(GPtrArray *vms, const char *active_persona,
                                 const char *default_dispvm, PolicyFacts **ret);
