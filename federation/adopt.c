/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Adoption at federation_new(): running vmfed domains are taken over as
 * they are, orphan disposable overlays swept.
 *
 * In two halves: adopt_scan() asks libvirt about every domain (a list, then
 * a few calls per domain: the calls that wait for libvirtd), and
 * adopt_apply() takes the answers into the Vms.  federation_new() runs both
 * at once (the program is starting: nothing else is served yet);
 * federation_new_async() runs the scan in the worker (virt-job.c), so that a
 * libvirtd that hangs while a broker reconnects does not hold its main loop,
 * and applies on the loop.  A domain event that arrives during an async scan
 * may be older or newer than what the scan saw: such a scan is not applied
 * but made again, until one ran without events (at most ADOPT_MAX_SCANS).
 */
#include "federation/federation.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

#define ADOPT_MAX_SCANS 5

/* What libvirt said about one domain of ours. */
typedef struct AdoptedDomain {
        char *name;     /* the domain name (with the prefix) */
        char *meta_xml; /* our metadata element, NULL: none */
        int active;     /* virDomainIsActive(): 1, 0, or < 0 (error) */
        int state;      /* virDomainGetState() when active, else 0 */
        bool state_ok;
        int has_save;   /* virDomainHasManagedSaveImage() when inactive */
} AdoptedDomain;

static void adopted_domain_free(AdoptedDomain *d) {
        g_free(d->name);
        g_free(d->meta_xml);
        g_free(d);
}

typedef struct AdoptScan {
        char *prefix;
        GPtrArray *domains; /* AdoptedDomain* */
        /* async: */
        FederationLoadedFn loaded;
        void *userdata;
        unsigned n_scans;
} AdoptScan;

static void adopt_scan_free(AdoptScan *s) {
        if (!s)
                return;
        g_free(s->prefix);
        g_clear_pointer(&s->domains, g_ptr_array_unref);
        g_free(s);
}

/* The libvirt half: may run in a worker thread (touches no Federation). */
static int adopt_scan(virConnectPtr conn, void *userdata, char **ret_error) {
        AdoptScan *s = userdata;
        virDomainPtr *doms = NULL;
        int n;

        g_clear_pointer(&s->domains, g_ptr_array_unref);
        s->domains = g_ptr_array_new_with_free_func((GDestroyNotify) adopted_domain_free);
        n = VIRT_CALL(virConnectListAllDomains(conn, &doms, 0));
        if (n < 0)
                return virt_error("virConnectListAllDomains", ret_error);
        for (int i = 0; i < n; i++) {
                const char *dname = virDomainGetName(doms[i]);
                if (dname && g_str_has_prefix(dname, s->prefix)) {
                        AdoptedDomain *d = g_new0(AdoptedDomain, 1);
                        int reason = 0;
                        d->name = g_strdup(dname);
                        d->meta_xml = VIRT_CALL(virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT,
                                                                     DOMAIN_XML_NS, 0));
                        virResetLastError();
                        d->active = VIRT_CALL(virDomainIsActive(doms[i]));
                        if (d->active == 1)
                                d->state_ok = VIRT_CALL(virDomainGetState(doms[i], &d->state, &reason, 0)) >= 0;
                        else if (d->active == 0)
                                d->has_save = VIRT_CALL(virDomainHasManagedSaveImage(doms[i], 0));
                        virResetLastError();
                        g_ptr_array_add(s->domains, d);
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        return 0;
}

/* ---- the loop half --------------------------------------------------------- */

static void adopt_disposable(Federation *f, const AdoptedDomain *d, const DomainMetadata *m, GHashTable *live) {
        Vm *vm;

        if (d->active != 1 || federation_find_vm(f, d->name + strlen(f->prefix)))
                return;
        vm = vm_new_disposable(f, d->name + strlen(f->prefix), m->template_name, m->overlay);
        vm->state = FEDERATION_VM_RUNNING;
        vm_watch_qemu(f, vm);
        if (m->overlay)
                g_hash_table_add(live, g_strdup(m->overlay));
        g_hash_table_add(live, disposable_nvram_path(f, vm->name));
        log_info("federation: adopted running disposable %s", vm->name);
}

static void adopt_domain(Federation *f, const AdoptedDomain *d, GHashTable *live_overlays) {
        DomainMetadata m = {};
        bool have_meta = d->meta_xml && domain_metadata_parse(d->meta_xml, &m) >= 0;
        Vm *vm;

        if (have_meta && m.role && strcmp(m.role, "disposable") == 0) {
                adopt_disposable(f, d, &m, live_overlays);
                domain_metadata_done(&m);
                return;
        }
        domain_metadata_done(&m);

        vm = federation_find_vm_by_domain(f, d->name);
        if (!vm) {
                if (d->active != 1)
                        return;
                /* Running, but no longer configured: keep it visible until it stops. */
                vm = vm_new(f, d->name + strlen(f->prefix));
                vm->configured = false;
        }
        if (d->active == 1 && d->state_ok) {
                vm->state = d->state == VIR_DOMAIN_PAUSED || d->state == VIR_DOMAIN_PMSUSPENDED ? FEDERATION_VM_PAUSED
                            : d->state == VIR_DOMAIN_SHUTDOWN                                   ? FEDERATION_VM_STOPPING
                                                                                                : FEDERATION_VM_RUNNING;
                vm_watch_qemu(f, vm);
                log_info("federation: adopted %s (%s)", vm->name, federation_vm_state_to_string(vm->state));
        } else if (d->active == 0)
                vm->state = d->has_save == 1 ? FEDERATION_VM_SAVED : FEDERATION_VM_STOPPED;
}

static int adopt_apply(Federation *f, const AdoptScan *s) {
        g_autoptr(GHashTable) live = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

        for (guint i = 0; i < s->domains->len; i++)
                adopt_domain(f, s->domains->pdata[i], live);
        return disposable_sweep(f, live);
}

int federation_adopt(Federation *f) {
        AdoptScan s = { .prefix = f->prefix };
        g_autofree char *err = NULL;
        int r;

        r = adopt_scan(f->conn, &s, &err);
        if (r >= 0)
                r = adopt_apply(f, &s);
        else
                log_error_errno(r, "federation: %s", err);
        g_clear_pointer(&s.domains, g_ptr_array_unref);
        return r;
}

/* ---- asynchronous ------------------------------------------------------------ */

static void adopt_scan_done(Federation *f, int r, const char *error, void *userdata);

static void adopt_scan_start(Federation *f, AdoptScan *s) {
        s->n_scans++;
        f->adopt_events = 0;
        virt_job_call(f, NULL, adopt_scan, adopt_scan_done, s, (GDestroyNotify) adopt_scan_free);
}

static void adopt_scan_done(Federation *f, int r, const char *error, void *userdata) {
        AdoptScan *s = userdata;
        FederationLoadedFn loaded = s->loaded;
        void *loaded_userdata = s->userdata;
        g_autofree char *message = NULL;

        if (r >= 0 && f->adopt_events > 0 && s->n_scans < ADOPT_MAX_SCANS) {
                log_debug("federation: %u domain event(s) during the scan of libvirt's domains; scanning again",
                          f->adopt_events);
                adopt_scan_start(f, s);
                return;
        }
        if (r >= 0) {
                r = adopt_apply(f, s);
                if (r < 0)
                        message = g_strdup_printf("cannot sweep orphan disposables: %s", g_strerror(-r));
        } else
                message = g_strdup(error ? error : g_strerror(-r));
        adopt_scan_free(s);
        f->loading = false;
        loaded(f, r, message, loaded_userdata);
}

void federation_adopt_async(Federation *f, FederationLoadedFn loaded, void *userdata) {
        AdoptScan *s = g_new0(AdoptScan, 1);
        s->prefix = g_strdup(f->prefix);
        s->loaded = loaded;
        s->userdata = userdata;
        f->loading = true;
        adopt_scan_start(f, s);
}
