/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvirt's domain lifecycle events and the QEMU pidfd watch: how a VM's
 * state follows what libvirt and the kernel report.
 */
#include "federation/federation.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib-unix.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

/* ---- QEMU exit watch -------------------------------------------------------
 *
 * libvirt reports a QEMU that died only after tearing the domain down,
 * which takes more than a second on a loaded host.  With a local
 * qemu:///system we also hold a pidfd of the QEMU process: its exit shows
 * the VM stopped at once, while exclusivity keeps counting it until
 * libvirt's stopped event says the devices are back (vm->releasing).
 */

static gboolean qemu_exited(gint fd, GIOCondition cond, gpointer userdata) {
        Vm *vm = userdata;
        FEDERATION_BUSY(vm->f);

        vm->qemu_watch = 0;
        vm->qemu_pidfd = safe_close(vm->qemu_pidfd);
        /* A stop we asked for: libvirt's event tells how it ended (shutdown, saved). */
        if (vm->state == FEDERATION_VM_RUNNING || vm->state == FEDERATION_VM_PAUSED) {
                vm->releasing = true;
                vm_set_state(vm, FEDERATION_VM_STOPPED, "qemu exited");
        }
        return G_SOURCE_REMOVE;
}

void vm_watch_qemu(Federation *f, Vm *vm) {
        g_autofree char *path = NULL, *text = NULL;
        long pid;
        int fd;

        if (vm->qemu_watch)
                return;
        path = g_strdup_printf("/run/libvirt/qemu/%s.pid", vm->domain_name);
        if (read_full_file(path, 64, &text, NULL) < 0)
                return; /* not a local QEMU domain: libvirt's events only */
        pid = strtol(text, NULL, 10);
        if (pid <= 1)
                return;
        fd = (int) syscall(SYS_pidfd_open, (pid_t) pid, 0);
        if (fd < 0)
                return;
        vm->qemu_pidfd = fd;
        vm->qemu_watch = g_unix_fd_add(fd, G_IO_IN, qemu_exited, vm);
}

/* ---- libvirt events ------------------------------------------------------ */

static const char *stopped_reason(int detail) {
        switch (detail) {
        case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
                return "shutdown";
        case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
                return "destroyed";
        case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
                return "crashed";
        case VIR_DOMAIN_EVENT_STOPPED_MIGRATED:
                return "migrated";
        case VIR_DOMAIN_EVENT_STOPPED_SAVED:
                return "saved";
        case VIR_DOMAIN_EVENT_STOPPED_FAILED:
                return "failed";
        default:
                return "stopped";
        }
}

int federation_lifecycle_event(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        Federation *f = opaque;
        FEDERATION_BUSY(f);
        Vm *vm = federation_find_vm_by_domain(f, virDomainGetName(dom));

        if (f->loading)
                f->adopt_events++; /* the adoption's scan may be older than this: it scans again (adopt.c) */
        if (!vm)
                return 0;
        switch (event) {
        case VIR_DOMAIN_EVENT_STARTED:
                vm->releasing = false;
                vm_watch_qemu(f, vm);
                vm_set_state(vm, FEDERATION_VM_RUNNING,
                             detail == VIR_DOMAIN_EVENT_STARTED_RESTORED || vm->restoring ? "restored" : "booted");
                break;
        case VIR_DOMAIN_EVENT_RESUMED:
                vm_watch_qemu(f, vm);
                /* QEMU starts paused and is resumed: for a start, that is the boot. */
                vm_set_state(vm, FEDERATION_VM_RUNNING,
                             vm->state != FEDERATION_VM_STARTING ? "resumed"
                             : vm->restoring                      ? "restored"
                                                                  : "booted");
                break;
        case VIR_DOMAIN_EVENT_SUSPENDED:
                /* A managed save pauses the domain first: it is still stopping. */
                if (vm->state != FEDERATION_VM_STOPPING)
                        vm_set_state(vm, FEDERATION_VM_PAUSED, "paused");
                break;
        case VIR_DOMAIN_EVENT_PMSUSPENDED:
                vm_set_state(vm, FEDERATION_VM_PAUSED, "suspended");
                break;
        case VIR_DOMAIN_EVENT_SHUTDOWN:
                vm_set_state(vm, FEDERATION_VM_STOPPING, "guest shutting down");
                break;
        case VIR_DOMAIN_EVENT_CRASHED:
                log_warning("federation: %s crashed (detail %d)", vm->name, detail);
                break;
        case VIR_DOMAIN_EVENT_STOPPED:
                vm_domain_stopped(vm, stopped_reason(detail), detail == VIR_DOMAIN_EVENT_STOPPED_SAVED);
                break;
        default:
                break;
        }
        return 0;
}
