/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * May a VM start now?  Devices and personas held by other VMs, passthrough
 * checks, files.
 */
#include "federation/federation.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"
#include "federation/passthrough.h"

int federation_check_files(const VmSpec *s, char **ret_error) {
        const char *files[] = { s->disk, s->kernel, s->initrd };
        const char *keys[] = { "Disk", "Kernel", "Initrd" };

        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                if (files[i] && access(files[i], R_OK) < 0) {
                        int r = negative_errno();
                        if (ret_error)
                                *ret_error = g_strdup_printf("%s: %s=%s: %s", s->name, keys[i], files[i],
                                                             g_strerror(-r));
                        return r;
                }
        return 0;
}

/* VMs whose QEMU exited: ask libvirt whether the teardown finished before its event reaches us. */
static void settle_releasing(Federation *f) {
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        GHashTableIter it;
        gpointer value;

        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, NULL, &value))
                if (((Vm *) value)->releasing)
                        g_ptr_array_add(names, g_strdup(((Vm *) value)->name));
        for (guint i = 0; i < names->len; i++) {
                Vm *vm = federation_find_vm(f, names->pdata[i]);
                _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
                if (!vm)
                        continue;
                dom = VIRT_CALL(virDomainLookupByName(f->conn, vm->domain_name));
                if (!dom || VIRT_CALL(virDomainIsActive(dom)) == 0)
                        vm_domain_stopped(vm, "failed", false);
                virResetLastError();
        }
}

int federation_check_start(Federation *f, const VmSpec *s, Vm *ignore, char **ret_error) {
        GHashTableIter it;
        gpointer value;
        int r;

        settle_releasing(f);
        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                Vm *other = value;
                const VmSpec *os;
                const char *dev;

                if (other == ignore || strcmp(other->name, s->name) == 0 || !vm_holds_resources(other))
                        continue;
                os = vm_get_spec(f, other);
                if (!os)
                        continue;
                if (s->role == VM_ROLE_PERSONA && os->role == VM_ROLE_PERSONA) {
                        if (ret_error)
                                *ret_error = g_strdup_printf("cannot start persona %s: persona %s is %s; "
                                                             "switch personas instead",
                                                             s->name, other->name,
                                                             other->releasing
                                                                     ? "being torn down by libvirt"
                                                                     : federation_vm_state_to_string(other->state));
                        return -EBUSY;
                }
                dev = passthrough_shared_device(s->devices, os->devices);
                if (dev) {
                        if (ret_error)
                                *ret_error = g_strdup_printf("cannot start %s: PCI device %s is held by %s (%s)",
                                                             s->name, dev, other->name,
                                                             other->releasing
                                                                     ? "being torn down by libvirt"
                                                                     : federation_vm_state_to_string(other->state));
                        return -EBUSY;
                }
        }
        if (s->devices[0] && (!f->fake_passthrough || f->sysfs_root)) {
                g_autofree char *reason = NULL;
                r = passthrough_check(f->sysfs_root, s->name, s->devices, &reason);
                if (r < 0) {
                        if (ret_error)
                                *ret_error = g_strdup_printf("cannot start %s: %s", s->name, reason);
                        return r;
                }
        }
        return federation_check_files(s, ret_error);
}
