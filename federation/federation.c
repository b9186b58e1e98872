/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The federation object: creation (load, adopt, events), reference counting,
 * busy-time accounting, teardown.
 */
#include "federation/federation.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"
#include "federation/generation.h"

/* ---- reference counting and busy-time accounting ------------------------ */

Federation *federation_ref(Federation *f) {
        f->n_ref++;
        return f;
}

static void federation_destroy(Federation *f);

void federation_unref(Federation *f) {
        if (f && --f->n_ref == 0)
                federation_destroy(f);
}

void federation_busy_begin(Federation *f) {
        if (f->busy_depth++ == 0) {
                f->busy_t0 = virt_now_ns();
                f->busy_virt0 = virt_time_ns();
        }
}

void federation_busy_end(Federation **fp) {
        Federation *f = *fp;
        if (--f->busy_depth == 0)
                f->busy_ns += (virt_now_ns() - f->busy_t0) - (virt_time_ns() - f->busy_virt0);
}

uint64_t federation_busy_ns(Federation *f) {
        uint64_t ns = f->busy_ns;
        if (f->busy_depth > 0)
                ns += (virt_now_ns() - f->busy_t0) - (virt_time_ns() - f->busy_virt0);
        return ns;
}

void progress(const FederationCallbacks *cb, const char *fmt, ...) {
        g_autofree char *line = NULL;
        va_list ap;

        va_start(ap, fmt);
        line = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        log_debug("federation: %s", line);
        if (cb && cb->progress)
                cb->progress(line, cb->userdata);
}

static void federation_destroy(Federation *f) {
        g_clear_pointer(&f->vms, g_hash_table_unref);
        f->model = vm_model_unref(f->model);
        f->specs = NULL;
        g_clear_pointer(&f->virt_queues, g_hash_table_unref); /* empty: each queued job holds a reference */
        g_clear_pointer(&f->watches, g_ptr_array_unref);
        if (f->conn)
                virConnectClose(f->conn);
        g_free(f->config_dir);
        g_free(f->state_dir);
        g_free(f->prefix);
        g_free(f->sysfs_root);
        g_free(f->bridge);
        g_free(f->ovmf_dir);
        g_free(f);
}

Federation *federation_free(Federation *f) {
        if (!f)
                return NULL;
        f->dead = true;
        if (f->event_id >= 0)
                (void) virConnectDomainEventDeregisterAny(f->conn, f->event_id);
        f->event_id = -1;
        g_clear_pointer(&f->sw, switch_free);
        federation_events_clear(f);
        /* Timers point at VMs: drop them now, even if worker threads still hold a reference. */
        g_hash_table_remove_all(f->vms);
        federation_unref(f);
        return NULL;
}

static bool env_true(const char *name) {
        const char *v = g_getenv(name);
        return v && (strcmp(v, "1") == 0 || g_ascii_strcasecmp(v, "yes") == 0 || g_ascii_strcasecmp(v, "true") == 0);
}

/* federation_new() but the adoption. */
static int federation_create(virConnectPtr conn, const FederationOptions *o, Federation **ret, GPtrArray **ret_errors) {
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        Federation *f;
        int r;

        if (!conn || !o || !o->config_dir || !o->state_dir)
                return -EINVAL;
        if (o->domain_prefix && !g_str_has_prefix(o->domain_prefix, "vmfed-"))
                return -EINVAL;
        for (const char *const *d = (const char *const[]) { "channels", "consoles", "disposables", "nvram", NULL }; *d; d++) {
                g_autofree char *p = g_build_filename(o->state_dir, *d, NULL);
                r = mkdir_parents(p, 0755);
                if (r < 0)
                        return r;
        }
        /* Temporary files of atomic writes a killed broker left half-written (common/fileio.h). */
        for (const char *const *d = (const char *const[]) { "vms.d", "policy.d", NULL }; *d; d++) {
                g_autofree char *p = g_build_filename(o->config_dir, *d, NULL);
                r = remove_stale_atomic_temps(p);
                if (r > 0)
                        log_info("federation: removed %d half-written file(s) in %s", r, p);
        }
        for (const char *const *d = (const char *const[]) { "", "generations", NULL }; *d; d++) {
                g_autofree char *p = g_build_filename(o->state_dir, *d, NULL);
                r = remove_stale_atomic_temps(p);
                if (r > 0)
                        log_info("federation: removed %d half-written file(s) in %s", r, p);
        }
        r = generation_recover(o->config_dir, o->state_dir);
        if (r < 0)
                log_warning_errno(r, "federation: cannot finish an interrupted rollback: %s", g_strerror(-r));
        if (!o->model) {
                r = vm_spec_load_dir(o->config_dir, NULL, &specs, &errors);
                if (r < 0) {
                        if (ret_errors)
                                *ret_errors = steal_pointer(&errors);
                        return r;
                }
        }

        f = g_new0(Federation, 1);
        f->n_ref = 1;
        f->event_id = -1;
        virConnectRef(conn);
        f->conn = conn;
        f->config_dir = g_strdup(o->config_dir);
        f->state_dir = g_strdup(o->state_dir);
        f->prefix = g_strdup(o->domain_prefix ? o->domain_prefix : "vmfed-");
        f->sysfs_root = g_strdup(o->sysfs_root);
        f->bridge = g_strdup(o->bridge);
        f->ovmf_dir = g_strdup(o->ovmf_dir);
        f->channel_mode = o->channel_mode;
        f->prepare_channel = o->prepare_channel;
        f->prepare_channel_userdata = o->prepare_channel_userdata;
        f->force_tcg = o->force_tcg || env_true("VMFED_FORCE_TCG");
        f->fake_passthrough = o->fake_passthrough || env_true("VMFED_TEST_FAKE_PASSTHROUGH");
        f->kvm_available = access("/dev/kvm", R_OK | W_OK) == 0;
        f->vms = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) vm_free);
        virt_quiet_errors();
        /* A baseline to roll back to, and edits made while no broker ran become a generation too. */
        r = generation_record(o->config_dir, o->state_dir, "configuration found at start", NULL);
        if (r < 0)
                log_warning_errno(r, "federation: cannot record a generation: %s", g_strerror(-r));
        if (o->model)
                federation_take_model(f, vm_model_ref(o->model));
        else
                federation_take_specs(f, steal_pointer(&specs));

        f->event_id = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                       VIR_DOMAIN_EVENT_CALLBACK(federation_lifecycle_event), f, NULL);
        if (f->event_id < 0) {
                g_autofree char *err = NULL;
                r = virt_error("virConnectDomainEventRegisterAny", &err);
                log_error("federation: %s (was virEventRegisterDefaultImpl() called?)", err);
                federation_free(f);
                return r;
        }
        *ret = f;
        return 0;
}

int federation_new(virConnectPtr conn, const FederationOptions *o, Federation **ret, GPtrArray **ret_errors) {
        Federation *f = NULL;
        int r = federation_create(conn, o, &f, ret_errors);
        if (r < 0)
                return r;
        r = federation_adopt(f);
        if (r < 0) {
                federation_free(f);
                return r;
        }
        *ret = f;
        return 0;
}

int federation_new_async(virConnectPtr conn, const FederationOptions *o, FederationLoadedFn loaded, void *userdata,
                         Federation **ret, GPtrArray **ret_errors) {
        Federation *f = NULL;
        int r;

        if (!loaded)
                return -EINVAL;
        r = federation_create(conn, o, &f, ret_errors);
        if (r < 0)
                return r;
        federation_adopt_async(f, loaded, userdata);
        *ret = f;
        return 0;
}

bool federation_is_loaded(Federation *f) {
        return f && !f->loading;
}
