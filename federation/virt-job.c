/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The worker thread for long libvirt calls (virt_job_run()) and completions
 * delivered later from an idle source (federation_complete_later()).
 */
#include "federation/federation.h"

#include <errno.h>
#include <gio/gio.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

/* ---- worker-thread libvirt calls ----------------------------------------- */

typedef struct VirtJobData {
        Federation *f;
        VirtJob job;
        VirtWorkFn work;
        virDomainPtr dom;
        char *xml;
        VmDoneFn done;
        void *userdata;
        GDestroyNotify userdata_free;
        int r;
        char *error;
} VirtJobData;

static void virt_job_data_free(VirtJobData *d) {
        if (d->dom)
                virDomainFree(d->dom);
        g_free(d->xml);
        g_free(d->error);
        g_free(d);
}

static void virt_job_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *c) {
        VirtJobData *d = task_data;
        int k = -1;
        const char *what = "libvirt";

        switch (d->job) {
        case VIRT_JOB_CREATE:
                what = "virDomainCreate";
                k = virDomainCreate(d->dom);
                break;
        case VIRT_JOB_CREATE_XML: {
                virDomainPtr dom;
                what = "virDomainCreateXML";
                dom = virDomainCreateXML(d->f->conn, d->xml, 0);
                if (dom) {
                        virDomainFree(dom);
                        k = 0;
                }
                break;
        }
        case VIRT_JOB_MANAGED_SAVE:
                what = "virDomainManagedSave";
                k = virDomainManagedSave(d->dom, 0);
                break;
        case VIRT_JOB_DESTROY:
                what = "virDomainDestroy";
                k = virDomainDestroy(d->dom);
                break;
        case VIRT_JOB_CALL:
                d->r = d->work(d->f->conn, d->userdata, &d->error);
                g_task_return_boolean(task, true);
                return;
        }
        d->r = k < 0 ? virt_error(what, &d->error) : 0;
        g_task_return_boolean(task, true);
}

static void virt_job_done(GObject *source, GAsyncResult *res, gpointer userdata) {
        VirtJobData *d = g_task_get_task_data(G_TASK(res));
        Federation *f = d->f;

        if (!f->dead) {
                FEDERATION_BUSY(f);
                d->done(f, d->r, d->error, d->userdata);
        } else if (d->userdata_free)
                d->userdata_free(d->userdata);
        federation_unref(f);
}

void virt_job_run(Federation *f, VirtJob job, virDomainPtr dom, const char *xml, VmDoneFn done, void *userdata,
                  GDestroyNotify userdata_free) {
        g_autoptr(GTask) task = g_task_new(NULL, NULL, virt_job_done, NULL);
        VirtJobData *d = g_new0(VirtJobData, 1);

        d->f = federation_ref(f);
        d->job = job;
        if (dom) {
                virDomainRef(dom);
                d->dom = dom;
        }
        d->xml = g_strdup(xml);
        d->done = done;
        d->userdata = userdata;
        d->userdata_free = userdata_free;
        g_task_set_task_data(task, d, (GDestroyNotify) virt_job_data_free);
        g_task_run_in_thread(task, virt_job_thread);
}

typedef struct Later {
        Federation *f;
        VmDoneFn done;
        void *userdata;
        int r;
        char *error;
} Later;

static gboolean later_dispatch(gpointer p) {
        Later *l = p;
        if (!l->f->dead) {
                FEDERATION_BUSY(l->f);
                l->done(l->f, l->r, l->error, l->userdata);
        }
        federation_unref(l->f);
        g_free(l->error);
        g_free(l);
        return G_SOURCE_REMOVE;
}

void federation_complete_later(Federation *f, VmDoneFn done, void *userdata, int r, const char *error) {
        Later *l = g_new0(Later, 1);
        l->f = federation_ref(f);
        l->done = done;
        l->userdata = userdata;
        l->r = r;
        l->error = g_strdup(error);
        g_idle_add(later_dispatch, l);
}

void virt_job_call(Federation *f, VirtWorkFn work, VmDoneFn done, void *userdata, GDestroyNotify userdata_free) {
        g_autoptr(GTask) task = g_task_new(NULL, NULL, virt_job_done, NULL);
        VirtJobData *d = g_new0(VirtJobData, 1);

        d->f = federation_ref(f);
        d->job = VIRT_JOB_CALL;
        d->work = work;
        d->done = done;
        d->userdata = userdata;
        d->userdata_free = userdata_free;
        g_task_set_task_data(task, d, (GDestroyNotify) virt_job_data_free);
        g_task_run_in_thread(task, virt_job_thread);
}

/* ---- helpers for work functions (worker side) ----------------------------- */

int virt_lookup(virConnectPtr conn, const char *domain_name, virDomainPtr *ret, char **ret_error) {
        virDomainPtr dom = VIRT_CALL(virDomainLookupByName(conn, domain_name));
        if (!dom) {
                const virError *e = virGetLastError();
                bool missing = e && e->code == VIR_ERR_NO_DOMAIN;
                int r = virt_error("virDomainLookupByName", ret_error);
                return missing ? -ENOENT : r;
        }
        *ret = dom;
        return 0;
}

/* ---- one libvirt call on a domain by name ---------------------------------- */

typedef struct DomainJob {
        char *domain_name;
        VirtDomainOp op;
        VmDoneFn done;
        void *userdata;
        GDestroyNotify userdata_free;
} DomainJob;

static void domain_job_free(void *p) {
        DomainJob *j = p;
        if (j->userdata_free)
                j->userdata_free(j->userdata);
        g_free(j->domain_name);
        g_free(j);
}

static int domain_job_work(virConnectPtr conn, void *userdata, char **ret_error) {
        DomainJob *j = userdata;
        _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
        int r = virt_lookup(conn, j->domain_name, &dom, ret_error), k = 0;
        const char *what = "libvirt";

        if (r < 0)
                return r;
        switch (j->op) {
        case VIRT_DOMAIN_DESTROY:
                what = "virDomainDestroy";
                k = VIRT_CALL(virDomainDestroy(dom));
                break;
        case VIRT_DOMAIN_SHUTDOWN:
                what = "virDomainShutdown";
                k = VIRT_CALL(virDomainShutdownFlags(dom, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN));
                if (k < 0) {
                        /* Drivers without the flag (the test driver) take the default method. */
                        virResetLastError();
                        k = VIRT_CALL(virDomainShutdownFlags(dom, 0));
                }
                break;
        case VIRT_DOMAIN_MANAGED_SAVE:
                what = "virDomainManagedSave";
                k = VIRT_CALL(virDomainManagedSave(dom, 0));
                break;
        case VIRT_DOMAIN_SAVE_REMOVE:
                what = "virDomainManagedSaveRemove";
                k = VIRT_CALL(virDomainManagedSaveRemove(dom, 0));
                break;
        case VIRT_DOMAIN_IS_ACTIVE:
                what = "virDomainIsActive";
                k = VIRT_CALL(virDomainIsActive(dom));
                if (k >= 0)
                        return k;
                break;
        case VIRT_DOMAIN_UNDEFINE:
                what = "virDomainUndefine";
                /* Drivers without NVRAM support (the test driver) refuse that flag: retry without. */
                k = VIRT_CALL(virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_NVRAM));
                if (k < 0) {
                        virResetLastError();
                        k = VIRT_CALL(virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE));
                }
                break;
        }
        return k < 0 ? virt_error(what, ret_error) : 0;
}

static void domain_job_done(Federation *f, int r, const char *error, void *userdata) {
        DomainJob *j = userdata;
        j->done(f, r, error, j->userdata);
        j->userdata_free = NULL; /* done took it */
        domain_job_free(j);
}

void virt_domain_job(Federation *f, const char *domain_name, VirtDomainOp op, VmDoneFn done, void *userdata,
                     GDestroyNotify userdata_free) {
        DomainJob *j = g_new0(DomainJob, 1);
        j->domain_name = g_strdup(domain_name);
        j->op = op;
        j->done = done;
        j->userdata = userdata;
        j->userdata_free = userdata_free;
        virt_job_call(f, domain_job_work, domain_job_done, j, domain_job_free);
}
