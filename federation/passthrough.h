/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Passthrough safety: what must hold on the host before a VM gets PCI
 * devices, read from sysfs (root configurable, tests use fixtures of real
 * layouts under tests/federation/fixtures/):
 *
 *   - the IOMMU is on: SYSFS/kernel/iommu_groups is not empty;
 *   - each device exists and has an IOMMU group, and every other device of
 *     that group goes to the same VM or is a PCI bridge (class 0x0604xx);
 *   - each device can be reset: a non-empty reset_method file (Linux ≥
 *     5.15) or a reset file.
 *
 * And exclusivity between VMs: which device lists overlap.
 */
#pragma once

#include <stdbool.h>

/*
 * Check devices (normalized PCI addresses, NULL-terminated) of one VM.
 * sysfs_root NULL means "/sys".  Returns 0, or -ENODEV / -EPERM / -EBUSY /
 * -EOPNOTSUPP with *ret_reason a sentence naming the device and what is wrong.
 */
int passthrough_check(const char *sysfs_root, const char *vm_name, char *const *devices, char **ret_reason);

/* The first device both lists contain, or NULL. */
const char *passthrough_shared_device(char *const *a, char *const *b);
