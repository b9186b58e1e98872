/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "federation/passthrough.h"

#include <errno.h>
#include <glib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/macro.h"

const char *passthrough_shared_device(char *const *a, char *const *b) {
        for (size_t i = 0; a && a[i]; i++)
                for (size_t j = 0; b && b[j]; j++)
                        if (strcmp(a[i], b[j]) == 0)
                                return a[i];
        return NULL;
}

static bool dir_is_empty(const char *path) {
        g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
        return !d || !g_dir_read_name(d);
}

static bool is_bridge(const char *sysfs, const char *addr) {
        g_autofree char *p = g_strdup_printf("%s/bus/pci/devices/%s/class", sysfs, addr);
        g_autofree char *cls = NULL;

        if (read_full_file(p, 64, &cls, NULL) < 0)
                return false;
        g_strstrip(cls);
        /* class is "0xCCSSPP": base class 06 (bridge), subclass 04 (PCI-to-PCI). */
        return g_str_has_prefix(cls, "0x0604");
}

static bool can_reset(const char *sysfs, const char *addr) {
        g_autofree char *m = g_strdup_printf("%s/bus/pci/devices/%s/reset_method", sysfs, addr);
        g_autofree char *r = g_strdup_printf("%s/bus/pci/devices/%s/reset", sysfs, addr);
        g_autofree char *methods = NULL;

        if (read_full_file(m, 4096, &methods, NULL) >= 0 && g_strstrip(methods)[0])
                return true;
        return access(r, F_OK) == 0;
}

static int check_one(const char *sysfs, const char *vm, char *const *devices, const char *addr, char **ret_reason) {
        g_autofree char *dev = g_strdup_printf("%s/bus/pci/devices/%s", sysfs, addr);
        g_autofree char *group_link = g_strdup_printf("%s/iommu_group", dev);
        g_autofree char *target = NULL, *group = NULL, *members_dir = NULL;
        g_autoptr(GDir) d = NULL;
        const char *m;

        if (access(dev, F_OK) < 0) {
                *ret_reason = g_strdup_printf("%s: PCI device %s does not exist on this host", vm, addr);
                return -ENODEV;
        }
        target = g_file_read_link(group_link, NULL);
        if (!target) {
                *ret_reason = g_strdup_printf("%s: PCI device %s is in no IOMMU group", vm, addr);
                return -EPERM;
        }
        group = g_path_get_basename(target);
        members_dir = g_strdup_printf("%s/kernel/iommu_groups/%s/devices", sysfs, group);
        d = g_dir_open(members_dir, 0, NULL);
        if (!d) {
                *ret_reason = g_strdup_printf("%s: IOMMU group %s of %s has no device list", vm, group, addr);
                return -EPERM;
        }
        while ((m = g_dir_read_name(d))) {
                if (g_strv_contains((const char *const *) devices, m) || is_bridge(sysfs, m))
                        continue;
                *ret_reason = g_strdup_printf(
                        "%s: PCI device %s shares IOMMU group %s with %s, which is neither given to %s nor a "
                        "PCI bridge; add it to [Passthrough] Devices= or move the card to another slot",
                        vm, addr, group, m, vm);
                return -EBUSY;
        }
        if (!can_reset(sysfs, addr)) {
                *ret_reason = g_strdup_printf("%s: PCI device %s has no reset method (neither reset_method "
                                              "nor reset in sysfs); it could leak state between VMs",
                                              vm, addr);
                return -EOPNOTSUPP;
        }
        return 0;
}

int passthrough_check(const char *sysfs_root, const char *vm_name, char *const *devices, char **ret_reason) {
        const char *sysfs = sysfs_root ? sysfs_root : "/sys";
        g_autofree char *groups = g_strdup_printf("%s/kernel/iommu_groups", sysfs);

        if (!devices || !devices[0])
                return 0;
        if (dir_is_empty(groups)) {
                *ret_reason = g_strdup_printf("%s: the IOMMU is off (%s is empty): enable VT-d/AMD-Vi in the "
                                              "firmware and boot with intel_iommu=on or amd_iommu=on",
                                              vm_name, groups);
                return -EPERM;
        }
        for (size_t i = 0; devices[i]; i++) {
                int r = check_one(sysfs, vm_name, devices, devices[i], ret_reason);
                if (r < 0)
                        return r;
        }
        return 0;
}
