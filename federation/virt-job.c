/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The worker: every libvirt call that waits for libvirtd runs in a thread
 * (virt_job_run(), virt_job_call(), virt_domain_job()) and completes on the
 * loop; and completions delivered later from an idle source
 * (federation_complete_later()).
 */
#include "federation/federation.h"

#include <errno.h>
#include <gio/gio.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

/* ---- worker-thread libvirt calls -----------------------------------------
 *
 * Jobs run in GLib's task thread pool, so a slow call on one domain (a boot,
 * a restore, a managed save) does not hold up the others.  Jobs with the same
 * key (the domain name) run one after the other, in the order they were
 * submitted: a VM's define, create, shutdown, destroy and undefine never
 * overtake each other.  f->virt_queues: key → GQueue of GTasks waiting.
 */

typedef struct VirtJobData {
        Federation *f;
        VirtJob job;
        char *key;       /* serialize with other jobs of this key; NULL: none */
        VirtWorkFn work;
        char *xml;
        VmDoneFn done;
        void *userdata;
        GDestroyNotify userdata_free;
        int r;
        char *error;
} VirtJobData;

static void virt_job_data_free(VirtJobData *d) {
        g_free(d->key);
        g_free(d->xml);
        g_free(d->error);
        g_free(d);
}

static void virt_job_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *c) {
        VirtJobData *d = task_data;

        switch (d->job) {
        case VIRT_JOB_CREATE_XML: {
                virDomainPtr dom = VIRT_CALL(virDomainCreateXML(d->f->conn, d->xml, 0));
                if (dom)
                        virDomainFree(dom);
                d->r = dom ? 0 : virt_error("virDomainCreateXML", &d->error);
                break;
        }
        case VIRT_JOB_CALL:
                d->r = d->work(d->f->conn, d->userdata, &d->error);
                break;
        }
        g_task_return_boolean(task, true);
}

/* Drop a job that never ran (the federation was freed): its userdata is released, done not called. */
static void virt_job_drop(GTask *task) {
        VirtJobData *d = g_task_get_task_data(task);
        Federation *f = d->f;

        if (d->userdata_free)
                d->userdata_free(d->userdata);
        g_object_unref(task);
        federation_unref(f);
}

/* The job of key finished: start the next one of that key. */
static void virt_job_next(Federation *f, const char *key) {
        GQueue *q = key && f->virt_queues ? g_hash_table_lookup(f->virt_queues, key) : NULL;
        GTask *next;

        if (!q)
                return;
        while (f->dead && !g_queue_is_empty(q))
                virt_job_drop(g_queue_pop_head(q));
        next = g_queue_pop_head(q);
        if (!next) {
                g_hash_table_remove(f->virt_queues, key);
                return;
        }
        g_task_run_in_thread(next, virt_job_thread);
        g_object_unref(next);
}

static void virt_job_done(GObject *source, GAsyncResult *res, gpointer userdata) {
        VirtJobData *d = g_task_get_task_data(G_TASK(res));
        Federation *f = d->f;

        /* The next job of this VM may start now; its answer comes after this one's done. */
        virt_job_next(f, d->key);
        if (!f->dead) {
                FEDERATION_BUSY(f);
                d->done(f, d->r, d->error, d->userdata);
        } else if (d->userdata_free)
                d->userdata_free(d->userdata);
        federation_unref(f);
}

static void virt_job_submit(Federation *f, VirtJobData *d) {
        GTask *task = g_task_new(NULL, NULL, virt_job_done, NULL);
        GQueue *q;

        d->f = federation_ref(f);
        g_task_set_task_data(task, d, (GDestroyNotify) virt_job_data_free);
        if (d->key) {
                if (!f->virt_queues)
                        f->virt_queues = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                                               (GDestroyNotify) g_queue_free);
                q = g_hash_table_lookup(f->virt_queues, d->key);
                if (q) {
                        g_queue_push_tail(q, task); /* runs when the jobs before it are done */
                        return;
                }
                g_hash_table_insert(f->virt_queues, g_strdup(d->key), g_queue_new());
        }
        g_task_run_in_thread(task, virt_job_thread);
        g_object_unref(task);
}

void virt_job_run(Federation *f, VirtJob job, const char *key, const char *xml, VmDoneFn done, void *userdata,
                  GDestroyNotify userdata_free) {
        VirtJobData *d = g_new0(VirtJobData, 1);

        d->job = job;
        d->key = g_strdup(key);
        d->xml = g_strdup(xml);
        d->done = done;
        d->userdata = userdata;
        d->userdata_free = userdata_free;
        virt_job_submit(f, d);
}

void virt_job_call(Federation *f, const char *key, VirtWorkFn work, VmDoneFn done, void *userdata,
                   GDestroyNotify userdata_free) {
        VirtJobData *d = g_new0(VirtJobData, 1);

        d->job = VIRT_JOB_CALL;
        d->key = g_strdup(key);
        d->work = work;
        d->done = done;
        d->userdata = userdata;
        d->userdata_free = userdata_free;
        virt_job_submit(f, d);
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
                /*
                 * The VM's NVRAM (STATE/nvram/NAME.fd) and TPM state stay for the VM of that
                 * name (vmfed.vm(5)).  Drivers without NVRAM or TPM support (the test driver)
                 * refuse those flags: retry without.
                 */
                k = VIRT_CALL(virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                                                  VIR_DOMAIN_UNDEFINE_KEEP_NVRAM |
                                                                  VIR_DOMAIN_UNDEFINE_KEEP_TPM));
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
        virt_job_call(f, domain_name, domain_job_work, domain_job_done, j, domain_job_free);
}
