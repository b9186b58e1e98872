/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Adoption at federation_new(): running vmfed domains are taken over as
 * they are, orphan disposable overlays swept.
 */
#include "federation/federation.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

/* ---- creation and adoption ------------------------------------------------ */

static void adopt_domain(Federation *f, virDomainPtr dom, GHashTable *live_overlays) {
        const char *dname = virDomainGetName(dom);
        g_autofree char *meta_xml = NULL;
        DomainMetadata m = {};
        bool have_meta;
        int active, state = 0, reason = 0;
        Vm *vm;

        if (!dname || !g_str_has_prefix(dname, f->prefix))
                return;
        meta_xml = VIRT_CALL(virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, DOMAIN_XML_NS, 0));
        virResetLastError();
        have_meta = meta_xml && domain_metadata_parse(meta_xml, &m) >= 0;
        active = VIRT_CALL(virDomainIsActive(dom));

        if (have_meta && m.role && strcmp(m.role, "disposable") == 0) {
                if (active == 1 && !federation_find_vm(f, dname + strlen(f->prefix))) {
                        vm = vm_new_disposable(f, dname + strlen(f->prefix), m.template_name, m.overlay);
                        vm->state = FEDERATION_VM_RUNNING;
                        vm_watch_qemu(f, vm);
                        if (m.overlay)
                                g_hash_table_add(live_overlays, g_strdup(m.overlay));
                        log_info("federation: adopted running disposable %s", vm->name);
                }
                domain_metadata_done(&m);
                return;
        }
        domain_metadata_done(&m);

        vm = federation_find_vm_by_domain(f, dname);
        if (!vm) {
                if (active != 1)
                        return;
                /* Running, but no longer configured: keep it visible until it stops. */
                vm = vm_new(f, dname + strlen(f->prefix));
                vm->configured = false;
        }
        if (active == 1 && VIRT_CALL(virDomainGetState(dom, &state, &reason, 0)) >= 0) {
                vm->state = state == VIR_DOMAIN_PAUSED || state == VIR_DOMAIN_PMSUSPENDED ? FEDERATION_VM_PAUSED
                            : state == VIR_DOMAIN_SHUTDOWN                                 ? FEDERATION_VM_STOPPING
                                                                                            : FEDERATION_VM_RUNNING;
                vm_watch_qemu(f, vm);
                log_info("federation: adopted %s (%s)", vm->name, federation_vm_state_to_string(vm->state));
        } else if (active == 0)
                vm->state = VIRT_CALL(virDomainHasManagedSaveImage(dom, 0)) == 1 ? FEDERATION_VM_SAVED
                                                                                   : FEDERATION_VM_STOPPED;
        virResetLastError();
}

int federation_adopt(Federation *f) {
        virDomainPtr *doms = NULL;
        g_autoptr(GHashTable) live = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        int n;

        n = VIRT_CALL(virConnectListAllDomains(f->conn, &doms, 0));
        if (n < 0) {
                g_autofree char *err = NULL;
                int r = virt_error("virConnectListAllDomains", &err);
                return log_error_errno(r, "federation: %s", err);
        }
        for (int i = 0; i < n; i++) {
                adopt_domain(f, doms[i], live);
                virDomainFree(doms[i]);
        }
        free(doms);
        return disposable_sweep(f, live);
}
