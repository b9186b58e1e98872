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
