/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The federation object: VMs of vms.d/ and running disposables, their state
 * from libvirt's lifecycle events, adoption of running domains, start and
 * stop.  Switching is in switch.c, disposables in disposable.c.
 */
#include "federation/federation.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib-unix.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"
#include "federation/generation.h"
#include "federation/passthrough.h"

#define VM_PRESS_INTERVAL 3 /* seconds between power-button presses during a graceful stop */

static const char *const state_names[_FEDERATION_VM_STATE_MAX] = {
        [FEDERATION_VM_STOPPED] = "stopped",   [FEDERATION_VM_STARTING] = "starting",
        [FEDERATION_VM_RUNNING] = "running",   [FEDERATION_VM_PAUSED] = "paused",
        [FEDERATION_VM_STOPPING] = "stopping", [FEDERATION_VM_SAVED] = "saved",
};

const char *federation_vm_state_to_string(FederationVmState s) {
        return s >= 0 && s < _FEDERATION_VM_STATE_MAX ? state_names[s] : NULL;
}

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

/* ---- VMs ------------------------------------------------------------------- */

static void vm_free(Vm *vm) {
        if (!vm)
                return;
        if (vm->stop_timer)
                g_source_remove(vm->stop_timer);
        if (vm->press_timer)
                g_source_remove(vm->press_timer);
        if (vm->settle_timer)
                g_source_remove(vm->settle_timer);
        if (vm->qemu_watch)
                g_source_remove(vm->qemu_watch);
        safe_close(vm->qemu_pidfd);
        /* Waiters never woken (the federation is freed mid-stop): free what they hold. */
        for (guint i = 0; i < vm->stop_waiters->len; i++) {
                Waiter *w = vm->stop_waiters->pdata[i];
                if (w->free_userdata)
                        w->free_userdata(w->userdata);
        }
        g_ptr_array_unref(vm->stop_waiters);
        g_free(vm->name);
        g_free(vm->domain_name);
        g_free(vm->template_name);
        g_free(vm->overlay);
        g_free(vm);
}

static Vm *vm_new(Federation *f, const char *name) {
        Vm *vm = g_new0(Vm, 1);
        vm->f = f;
        vm->name = g_strdup(name);
        vm->domain_name = g_strconcat(f->prefix, name, NULL);
        vm->state = FEDERATION_VM_STOPPED;
        vm->qemu_pidfd = -EBADF;
        vm->stop_waiters = g_ptr_array_new_with_free_func(g_free);
        g_hash_table_replace(f->vms, vm->name, vm);
        return vm;
}

Vm *vm_new_disposable(Federation *f, const char *name, const char *template_name, const char *overlay) {
        Vm *vm = vm_new(f, name);
        vm->disposable = true;
        vm->template_name = g_strdup(template_name);
        vm->overlay = g_strdup(overlay);
        return vm;
}

Vm *federation_find_vm(Federation *f, const char *name) {
        return name ? g_hash_table_lookup(f->vms, name) : NULL;
}

static Vm *find_vm_by_domain(Federation *f, const char *domain_name) {
        if (!domain_name || !g_str_has_prefix(domain_name, f->prefix))
                return NULL;
        return federation_find_vm(f, domain_name + strlen(f->prefix));
}

bool vm_is_active(const Vm *vm) {
        return vm->state == FEDERATION_VM_STARTING || vm->state == FEDERATION_VM_RUNNING ||
               vm->state == FEDERATION_VM_PAUSED || vm->state == FEDERATION_VM_STOPPING;
}

static bool vm_holds_resources(const Vm *vm) {
        return vm_is_active(vm) || vm->releasing;
}

static void vm_unwatch_qemu(Vm *vm) {
        g_clear_handle_id(&vm->qemu_watch, g_source_remove);
        vm->qemu_pidfd = safe_close(vm->qemu_pidfd);
}

void vm_set_state(Vm *vm, FederationVmState s, const char *reason) {
        Federation *f = vm->f;
        if (vm->state == s)
                return;
        log_debug("federation: %s: %s → %s (%s)", vm->name, state_names[vm->state], state_names[s],
                  reason ? reason : "-");
        vm->state = s;
        if (f->state_fn)
                f->state_fn(vm->name, s, reason, f->state_userdata);
}

static const VmSpec *vm_spec(Federation *f, const Vm *vm) {
        return vm->configured ? vm_spec_find(f->specs, vm->name) : NULL;
}

/* libvirt reported the domain inactive: settle state, wake waiters, drop disposables. */
static void vm_domain_stopped(Vm *vm, const char *reason, bool saved) {
        Federation *f = vm->f;
        g_autoptr(GPtrArray) waiters = NULL;
        g_autofree char *name = g_strdup(vm->name);

        g_clear_handle_id(&vm->stop_timer, g_source_remove);
        g_clear_handle_id(&vm->press_timer, g_source_remove);
        g_clear_handle_id(&vm->settle_timer, g_source_remove);
        vm_unwatch_qemu(vm);
        vm->releasing = false;
        if (vm->disposable)
                disposable_stopped(f, vm);
        vm_set_state(vm, saved ? FEDERATION_VM_SAVED : FEDERATION_VM_STOPPED, reason);
        waiters = steal_pointer(&vm->stop_waiters);
        vm->stop_waiters = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; i < waiters->len; i++) {
                Waiter *w = waiters->pdata[i];
                w->fn(f, 0, NULL, w->userdata);
        }
        vm = federation_find_vm(f, name);
        if (vm && vm->disposable && !vm_is_active(vm))
                g_hash_table_remove(f->vms, name);
}

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

static void vm_watch_qemu(Federation *f, Vm *vm) {
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

static int lifecycle_event(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        Federation *f = opaque;
        FEDERATION_BUSY(f);
        Vm *vm = find_vm_by_domain(f, virDomainGetName(dom));

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

/* ---- worker-thread libvirt calls ----------------------------------------- */

typedef struct VirtJobData {
        Federation *f;
        VirtJob job;
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

/* ---- start ---------------------------------------------------------------- */

static char *bridge_for_netvm(Federation *f, const char *netvm) {
        const VmSpec *n = vm_spec_find(f->specs, netvm);
        if (!f->bridge)
                return NULL;
        if (n && n->default_netvm)
                return g_strdup(f->bridge);
        return g_strdup_printf("vmfbr-%.9s", netvm);
}

static bool vm_is_used_as_netvm(Federation *f, const char *name) {
        for (guint i = 0; i < f->specs->len; i++) {
                const VmSpec *s = f->specs->pdata[i];
                if (s->netvm && strcmp(s->netvm, name) == 0)
                        return true;
        }
        return false;
}

void federation_domain_params(Federation *f, const VmSpec *s, const char *vm_name, GPtrArray *owned,
                              DomainXmlParams *p) {
        char *domain_name = g_strconcat(f->prefix, vm_name, NULL);
        char *channel = g_strdup_printf("%s/channels/%s.sock", f->state_dir, vm_name);
        char *console = g_strdup_printf("%s/consoles/%s.log", f->state_dir, vm_name);
        char *bridge = NULL;

        if (s->netvm)
                bridge = bridge_for_netvm(f, s->netvm);
        else if (s->role == VM_ROLE_SERVICE && (s->default_netvm || vm_is_used_as_netvm(f, s->name)))
                bridge = bridge_for_netvm(f, s->name);
        g_ptr_array_add(owned, domain_name);
        g_ptr_array_add(owned, channel);
        g_ptr_array_add(owned, console);
        if (bridge)
                g_ptr_array_add(owned, bridge);
        *p = (DomainXmlParams) {
                .domain_name = domain_name,
                .generation = f->generation,
                .bridge = bridge,
                .isolated_port = s->netvm != NULL,
                .channel_path = channel,
                .channel_mode = f->channel_mode,
                .console_path = console,
                .force_tcg = f->force_tcg,
                .fake_passthrough = f->fake_passthrough,
                .kvm_available = f->kvm_available,
        };
}

int federation_prepare_channel(Federation *f, const char *vm_name, char **ret_error) {
        g_autofree char *path = NULL;
        int r;

        if (f->channel_mode != DOMAIN_CHANNEL_CONNECT || !f->prepare_channel)
                return 0;
        path = g_strdup_printf("%s/channels/%s.sock", f->state_dir, vm_name);
        r = f->prepare_channel(vm_name, path, f->prepare_channel_userdata);
        if (r < 0 && ret_error)
                *ret_error = g_strdup_printf("%s: nothing listens on the agent channel %s: %s", vm_name, path,
                                             g_strerror(-r));
        return r;
}

static int check_files(const VmSpec *s, char **ret_error) {
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
                os = vm_spec(f, other);
                if (!os)
                        continue;
                if (s->role == VM_ROLE_PERSONA && os->role == VM_ROLE_PERSONA) {
                        if (ret_error)
                                *ret_error = g_strdup_printf("cannot start persona %s: persona %s is %s; "
                                                             "switch personas instead",
                                                             s->name, other->name,
                                                             other->releasing ? "being torn down by libvirt"
                                                                              : state_names[other->state]);
                        return -EBUSY;
                }
                dev = passthrough_shared_device(s->devices, os->devices);
                if (dev) {
                        if (ret_error)
                                *ret_error = g_strdup_printf("cannot start %s: PCI device %s is held by %s (%s)",
                                                             s->name, dev, other->name,
                                                             other->releasing ? "being torn down by libvirt"
                                                                              : state_names[other->state]);
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
        return check_files(s, ret_error);
}

typedef struct StartCtx {
        char *name;
        bool restoring;
        FederationCallbacks cb;
        VmDoneFn done;
        void *userdata;
} StartCtx;

static void start_ctx_free(gpointer p) {
        StartCtx *c = p;
        g_free(c->name);
        g_free(c);
}

static void start_ctx_finish(Federation *f, StartCtx *c, int r, const char *error) {
        c->done(f, r, error, c->userdata);
        start_ctx_free(c);
}

static void start_created(Federation *f, int r, const char *error, void *userdata) {
        StartCtx *c = userdata;
        Vm *vm = federation_find_vm(f, c->name);
        g_autofree char *msg = NULL;

        if (vm)
                vm->restoring = false;
        if (r < 0) {
                msg = g_strdup_printf("cannot start %s: %s", c->name, error);
                if (vm && vm->state == FEDERATION_VM_STARTING)
                        vm_set_state(vm, FEDERATION_VM_STOPPED, "failed to start");
                start_ctx_finish(f, c, r, msg);
                return;
        }
        if (vm && vm->state == FEDERATION_VM_STARTING)
                vm_set_state(vm, FEDERATION_VM_RUNNING, c->restoring ? "restored" : "booted");
        progress(&c->cb, "%s is running", c->name);
        start_ctx_finish(f, c, 0, NULL);
}

static char *xml_config_hash(const char *xml) {
        const char *b = xml ? strstr(xml, "config-hash>") : NULL, *e;
        if (!b)
                return NULL;
        b += strlen("config-hash>");
        e = strchr(b, '<');
        return e ? g_strndup(b, e - b) : NULL;
}

static char *domain_config_hash(virDomainPtr dom) {
        g_autofree char *meta = VIRT_CALL(virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, DOMAIN_XML_NS, 0));
        DomainMetadata m;
        char *hash;

        if (!meta) {
                virResetLastError();
                return NULL;
        }
        if (domain_metadata_parse(meta, &m) < 0)
                return NULL;
        hash = steal_pointer(&m.config_hash);
        domain_metadata_done(&m);
        return hash;
}

/* Define (or keep) the persistent domain, then boot or restore it. */
static void start_define_and_create(Federation *f, StartCtx *c) {
        const VmSpec *s = vm_spec_find(f->specs, c->name);
        Vm *vm = federation_find_vm(f, c->name);
        g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *xml = NULL, *hash = NULL, *old_hash = NULL, *err = NULL;
        _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
        char uuid[VIR_UUID_STRING_BUFLEN];
        DomainXmlParams p;
        int r, active = 0, saved = 0;

        if (!s || !vm)
                return start_ctx_finish(f, c, -ENOENT, "VM vanished from the configuration");
        federation_domain_params(f, s, s->name, owned, &p);
        r = check_files(s, &err);
        if (r < 0) {
                vm_set_state(vm, FEDERATION_VM_STOPPED, "failed to start");
                g_autofree char *msg = g_strdup_printf("cannot start %s", err);
                return start_ctx_finish(f, c, r, msg);
        }

        dom = VIRT_CALL(virDomainLookupByName(f->conn, vm->domain_name));
        if (dom && VIRT_CALL(virDomainGetUUIDString(dom, uuid)) == 0)
                p.uuid = uuid;
        virResetLastError();
        r = domain_xml_build(s, &p, &xml);
        if (r < 0)
                return start_ctx_finish(f, c, r, "cannot build the domain XML");
        hash = xml_config_hash(xml);
        if (dom) {
                active = VIRT_CALL(virDomainIsActive(dom));
                if (active == 1) {
                        vm_set_state(vm, FEDERATION_VM_RUNNING, "already running");
                        return start_ctx_finish(f, c, 0, NULL);
                }
                saved = VIRT_CALL(virDomainHasManagedSaveImage(dom, 0));
                old_hash = domain_config_hash(dom);
        } else
                virResetLastError();

        if (!dom || !old_hash || !hash || strcmp(old_hash, hash) != 0) {
                if (saved == 1) {
                        progress(&c->cb, "%s: the configuration changed since it was saved; discarding the saved state",
                                 c->name);
                        if (VIRT_CALL(virDomainManagedSaveRemove(dom, 0)) < 0)
                                log_warning("federation: %s: cannot remove saved state: %s", c->name,
                                            virGetLastErrorMessage());
                }
                g_clear_pointer(&dom, virDomainFree);
                dom = VIRT_CALL(virDomainDefineXML(f->conn, xml));
                if (!dom) {
                        r = virt_error("virDomainDefineXML", &err);
                        vm_set_state(vm, FEDERATION_VM_STOPPED, "failed to start");
                        g_autofree char *msg = g_strdup_printf("cannot define %s: %s", c->name, err);
                        return start_ctx_finish(f, c, r, msg);
                }
                saved = 0;
        }
        r = federation_prepare_channel(f, c->name, &err);
        if (r < 0) {
                vm_set_state(vm, FEDERATION_VM_STOPPED, "failed to start");
                g_autofree char *msg = g_strdup_printf("cannot start %s", err);
                return start_ctx_finish(f, c, r, msg);
        }
        c->restoring = vm->restoring = saved == 1;
        progress(&c->cb, c->restoring ? "restoring %s from its saved state" : "booting %s", c->name);
        virt_job_run(f, VIRT_JOB_CREATE, dom, NULL, start_created, c, start_ctx_free);
}

static void start_after_netvm(Federation *f, int r, const char *error, void *userdata) {
        StartCtx *c = userdata;
        Vm *vm = federation_find_vm(f, c->name);

        if (r < 0) {
                g_autofree char *msg = g_strdup_printf("cannot start %s: its NetVM failed: %s", c->name, error);
                if (vm && vm->state == FEDERATION_VM_STARTING)
                        vm_set_state(vm, FEDERATION_VM_STOPPED, "NetVM failed");
                return start_ctx_finish(f, c, r, msg);
        }
        start_define_and_create(f, c);
}

static void start_failed(Federation *f, int r, const char *error, void *userdata) {
        StartCtx *c = userdata;
        g_autofree char *msg = g_strdup_printf("cannot start %s: %s", c->name, error);
        start_ctx_finish(f, c, r, msg);
}

void vm_start_async(Federation *f, Vm *vm, const FederationCallbacks *cb, VmDoneFn done, void *userdata) {
        const VmSpec *s = vm_spec(f, vm);
        StartCtx *c = g_new0(StartCtx, 1);
        Vm *netvm;

        c->name = g_strdup(vm->name);
        c->cb = cb ? *cb : (FederationCallbacks) {};
        c->done = done;
        c->userdata = userdata;
        if (!s) {
                federation_complete_later(f, start_failed, c, -ENOENT, "not configured in vms.d/");
                return;
        }
        vm_set_state(vm, FEDERATION_VM_STARTING, "start requested");

        /* Service VMs first: a VM's NetVM runs before it. */
        netvm = s->netvm ? federation_find_vm(f, s->netvm) : NULL;
        if (netvm && !vm_is_active(netvm)) {
                g_autofree char *err = NULL;
                const VmSpec *ns = vm_spec(f, netvm);
                int r = ns ? federation_check_start(f, ns, NULL, &err) : -ENOENT;
                if (r < 0) {
                        federation_complete_later(f, start_after_netvm, c, r, err ? err : "not configured");
                        return;
                }
                progress(cb, "starting %s, the NetVM of %s", netvm->name, vm->name);
                vm_start_async(f, netvm, cb, start_after_netvm, c);
                return;
        }
        federation_complete_later(f, start_after_netvm, c, 0, NULL);
}

/* ---- stop ------------------------------------------------------------------ */

typedef struct StopCtx {
        char *name;
        FederationCallbacks cb;
        VmDoneFn done;
        void *userdata;
} StopCtx;

static void stop_ctx_free(void *userdata) {
        StopCtx *c = userdata;
        g_free(c->name);
        g_free(c);
}

static void stop_waiter_done(Federation *f, int r, const char *error, void *userdata) {
        StopCtx *c = userdata;
        Vm *vm = federation_find_vm(f, c->name);

        progress(&c->cb, "%s is %s", c->name, vm ? state_names[vm->state] : "gone");
        c->done(f, r, error, c->userdata);
        stop_ctx_free(c);
}

static gboolean settle_check(gpointer userdata) {
        Vm *vm = userdata;
        Federation *f = vm->f;
        FEDERATION_BUSY(f);
        _cleanup_(virDomainFreep) virDomainPtr dom = NULL;

        vm->settle_timer = 0;
        dom = VIRT_CALL(virDomainLookupByName(f->conn, vm->domain_name));
        if (!dom || VIRT_CALL(virDomainIsActive(dom)) == 0) {
                virResetLastError();
                log_warning("federation: %s: no stopped event from libvirt; it is inactive", vm->name);
                vm_domain_stopped(vm, "destroyed", false);
        }
        return G_SOURCE_REMOVE;
}

static void destroy_done(Federation *f, int r, const char *error, void *userdata) {
        char *name = userdata;
        Vm *vm = federation_find_vm(f, name);

        if (r < 0)
                log_debug("federation: %s", error);
        /* The stopped event normally arrives right away; if not, look once. */
        if (vm && vm_is_active(vm) && !vm->settle_timer)
                vm->settle_timer = g_timeout_add_seconds(3, settle_check, vm);
        g_free(name);
}

static void vm_destroy(Federation *f, Vm *vm) {
        _cleanup_(virDomainFreep) virDomainPtr dom = VIRT_CALL(virDomainLookupByName(f->conn, vm->domain_name));

        if (!dom) {
                virResetLastError();
                vm_domain_stopped(vm, "gone", false);
                return;
        }
        virt_job_run(f, VIRT_JOB_DESTROY, dom, NULL, destroy_done, g_strdup(vm->name), g_free);
}

static gboolean stop_timeout(gpointer userdata) {
        Vm *vm = userdata;
        FEDERATION_BUSY(vm->f);

        vm->stop_timer = 0;
        g_clear_handle_id(&vm->press_timer, g_source_remove);
        log_notice("federation: %s did not stop within %u s; destroying it", vm->name, vm->stop_timeout);
        vm_destroy(vm->f, vm);
        return G_SOURCE_REMOVE;
}

/* A guest that was still booting may have missed the first press (no ACPI daemon yet): press again. */
static gboolean press_again(gpointer userdata) {
        Vm *vm = userdata;
        FEDERATION_BUSY(vm->f);
        _cleanup_(virDomainFreep) virDomainPtr dom = NULL;

        if (vm->state != FEDERATION_VM_STOPPING) {
                vm->press_timer = 0;
                return G_SOURCE_REMOVE;
        }
        dom = VIRT_CALL(virDomainLookupByName(vm->f->conn, vm->domain_name));
        if (dom && VIRT_CALL(virDomainShutdownFlags(dom, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)) < 0)
                (void) VIRT_CALL(virDomainShutdownFlags(dom, 0));
        virResetLastError();
        return G_SOURCE_CONTINUE;
}

static void vm_shutdown(Federation *f, Vm *vm, const FederationCallbacks *cb) {
        _cleanup_(virDomainFreep) virDomainPtr dom = VIRT_CALL(virDomainLookupByName(f->conn, vm->domain_name));
        const VmSpec *s = vm_spec(f, vm);
        int k;

        if (!dom) {
                virResetLastError();
                vm_domain_stopped(vm, "gone", false);
                return;
        }
        vm->stop_timeout = s ? s->stop_timeout : VM_SPEC_STOP_TIMEOUT_DEFAULT;
        if (vm->disposable) {
                const VmSpec *t = vm_spec_find(f->specs, vm->template_name);
                vm->stop_timeout = t ? t->stop_timeout : VM_SPEC_STOP_TIMEOUT_DEFAULT;
        }
        k = VIRT_CALL(virDomainShutdownFlags(dom, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN));
        if (k < 0) {
                /* Drivers without the flag (the test driver) take the default method. */
                virResetLastError();
                k = VIRT_CALL(virDomainShutdownFlags(dom, 0));
        }
        if (k < 0) {
                g_autofree char *err = NULL;
                (void) virt_error("virDomainShutdown", &err);
                progress(cb, "%s: %s; destroying it", vm->name, err);
                vm_destroy(f, vm);
                return;
        }
        progress(cb, "shutting down %s (ACPI power button; destroyed after %u s)", vm->name, vm->stop_timeout);
        if (vm_is_active(vm) && !vm->stop_timer)
                vm->stop_timer = g_timeout_add_seconds(vm->stop_timeout, stop_timeout, vm);
        if (vm_is_active(vm) && !vm->press_timer && vm->stop_timeout > VM_PRESS_INTERVAL)
                vm->press_timer = g_timeout_add_seconds(VM_PRESS_INTERVAL, press_again, vm);
}

typedef struct SaveCtx {
        char *name;
        FederationCallbacks cb;
} SaveCtx;

static void save_ctx_free(gpointer p) {
        SaveCtx *c = p;
        g_free(c->name);
        g_free(c);
}

static void save_done(Federation *f, int r, const char *error, void *userdata) {
        SaveCtx *c = userdata;
        Vm *vm = federation_find_vm(f, c->name);

        if (r < 0 && vm && vm_is_active(vm)) {
                progress(&c->cb, "cannot save %s (%s); shutting it down", c->name, error);
                vm_shutdown(f, vm, &c->cb);
        }
        g_free(c->name);
        g_free(c);
}

void vm_stop_async(Federation *f, Vm *vm, StopMode mode, const FederationCallbacks *cb, VmDoneFn done,
                   void *userdata) {
        StopCtx *c;
        Waiter *w;

        if (!vm_is_active(vm)) {
                if (mode == STOP_FORCE && vm->state == FEDERATION_VM_SAVED) {
                        _cleanup_(virDomainFreep) virDomainPtr dom =
                                VIRT_CALL(virDomainLookupByName(f->conn, vm->domain_name));
                        if (dom && VIRT_CALL(virDomainManagedSaveRemove(dom, 0)) >= 0)
                                vm_set_state(vm, FEDERATION_VM_STOPPED, "saved state discarded");
                        virResetLastError();
                }
                federation_complete_later(f, done, userdata, 0, NULL);
                return;
        }
        c = g_new0(StopCtx, 1);
        c->name = g_strdup(vm->name);
        c->cb = cb ? *cb : (FederationCallbacks) {};
        c->done = done;
        c->userdata = userdata;
        w = g_new0(Waiter, 1);
        w->fn = stop_waiter_done;
        w->userdata = c;
        w->free_userdata = stop_ctx_free;
        g_ptr_array_add(vm->stop_waiters, w);

        if (vm->state == FEDERATION_VM_STOPPING && mode != STOP_FORCE)
                return; /* already on its way down: just wait */
        vm_set_state(vm, FEDERATION_VM_STOPPING, mode == STOP_SAVE ? "saving" : "stop requested");
        switch (mode) {
        case STOP_FORCE:
                progress(cb, "destroying %s", vm->name);
                vm_destroy(f, vm);
                break;
        case STOP_SAVE: {
                _cleanup_(virDomainFreep) virDomainPtr dom =
                        VIRT_CALL(virDomainLookupByName(f->conn, vm->domain_name));
                SaveCtx *s;
                if (!dom) {
                        virResetLastError();
                        vm_domain_stopped(vm, "gone", false);
                        break;
                }
                s = g_new0(SaveCtx, 1);
                s->name = g_strdup(vm->name);
                s->cb = c->cb;
                progress(cb, "saving %s (managed save)", vm->name);
                virt_job_run(f, VIRT_JOB_MANAGED_SAVE, dom, NULL, save_done, s, save_ctx_free);
                break;
        }
        case STOP_GRACEFUL:
                vm_shutdown(f, vm, cb);
                break;
        }
}

/* ---- public operations ----------------------------------------------------- */

typedef struct OpCtx {
        FederationCallbacks cb;
} OpCtx;

static OpCtx *op_new(const FederationCallbacks *cb) {
        OpCtx *o = g_new0(OpCtx, 1);
        o->cb = cb ? *cb : (FederationCallbacks) {};
        return o;
}

static void op_done(Federation *f, int r, const char *error, void *userdata) {
        OpCtx *o = userdata;
        if (o->cb.done)
                o->cb.done(r, error, o->cb.userdata);
        g_free(o);
}

static int refuse(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int refuse(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;
        if (ret_error) {
                va_start(ap, fmt);
                *ret_error = g_strdup_vprintf(fmt, ap);
                va_end(ap);
        }
        return r;
}

int federation_start_vm(Federation *f, const char *name, const FederationCallbacks *cb, char **ret_error) {
        FEDERATION_BUSY(f);
        Vm *vm = federation_find_vm(f, name);
        const VmSpec *s = vm ? vm_spec(f, vm) : NULL;
        int r;

        if (!s)
                return refuse(ret_error, -ENOENT, "no VM named '%s' in vms.d/", name);
        if (s->role == VM_ROLE_DISPOSABLE_TEMPLATE)
                return refuse(ret_error, -EINVAL, "%s is a disposable template: start @dispvm:%s instead", name,
                              name);
        if (vm_is_active(vm))
                return refuse(ret_error, -EALREADY, "%s is already %s", name, state_names[vm->state]);
        if (vm->releasing)
                return refuse(ret_error, -EBUSY, "%s is still being torn down by libvirt", name);
        if (f->sw && s->role == VM_ROLE_PERSONA)
                return refuse(ret_error, -EBUSY, "a persona switch is under way");
        r = federation_check_start(f, s, NULL, ret_error);
        if (r < 0)
                return r;
        vm_start_async(f, vm, cb, op_done, op_new(cb));
        return 0;
}

int federation_stop_vm(Federation *f, const char *name, bool force, const FederationCallbacks *cb, char **ret_error) {
        FEDERATION_BUSY(f);
        Vm *vm = federation_find_vm(f, name);
        const VmSpec *s;

        if (!vm)
                return refuse(ret_error, -ENOENT, "no VM named '%s'", name);
        s = vm_spec(f, vm);
        if (s && s->role == VM_ROLE_SERVICE && !force) {
                GHashTableIter it;
                gpointer value;
                g_hash_table_iter_init(&it, f->vms);
                while (g_hash_table_iter_next(&it, NULL, &value)) {
                        Vm *o = value;
                        /* Disposables use their template's network. */
                        const VmSpec *os = o->disposable ? vm_spec_find(f->specs, o->template_name) : vm_spec(f, o);
                        if (vm_is_active(o) && os && os->netvm && strcmp(os->netvm, name) == 0)
                                return refuse(ret_error, -EBUSY, "%s is the NetVM of running VM %s; stop that "
                                              "first or force", name, o->name);
                }
        }
        if (f->sw && s && s->role == VM_ROLE_PERSONA)
                return refuse(ret_error, -EBUSY, "a persona switch is under way");
        vm_stop_async(f, vm, force ? STOP_FORCE : STOP_GRACEFUL, cb, op_done, op_new(cb));
        return 0;
}

/* ---- autostart ------------------------------------------------------------ */

typedef struct AutostartCtx {
        GPtrArray *names;
        guint next;
        FederationCallbacks cb;
        int first_r;
        GString *errors;
} AutostartCtx;

static void autostart_step(Federation *f, AutostartCtx *c);

static void autostart_record(AutostartCtx *c, int r, const char *error) {
        if (r >= 0 || r == -EALREADY)
                return;
        if (c->first_r == 0)
                c->first_r = r;
        if (c->errors->len > 0)
                g_string_append(c->errors, "; ");
        g_string_append(c->errors, error);
}

static void autostart_started(Federation *f, int r, const char *error, void *userdata) {
        AutostartCtx *c = userdata;
        autostart_record(c, r, error);
        autostart_step(f, c);
}

static void autostart_step(Federation *f, AutostartCtx *c) {
        while (c->next < c->names->len) {
                const char *name = c->names->pdata[c->next++];
                Vm *vm = federation_find_vm(f, name);
                const VmSpec *s = vm ? vm_spec(f, vm) : NULL;
                g_autofree char *err = NULL;
                int r;

                if (!s || vm_is_active(vm))
                        continue;
                r = federation_check_start(f, s, NULL, &err);
                if (r < 0) {
                        progress(&c->cb, "not starting %s: %s", name, err);
                        autostart_record(c, r, err);
                        continue;
                }
                progress(&c->cb, "autostarting %s", name);
                vm_start_async(f, vm, &c->cb, autostart_started, c);
                return;
        }
        if (c->cb.done)
                c->cb.done(c->first_r, c->first_r < 0 ? c->errors->str : NULL, c->cb.userdata);
        g_ptr_array_unref(c->names);
        g_string_free(c->errors, true);
        g_free(c);
}

static void autostart_begin(Federation *f, int r, const char *error, void *userdata) {
        autostart_step(f, userdata);
}

static gint autostart_order(gconstpointer a, gconstpointer b) {
        const VmSpec *x = *(VmSpec *const *) a, *y = *(VmSpec *const *) b;
        bool sx = x->role == VM_ROLE_SERVICE, sy = y->role == VM_ROLE_SERVICE;
        return sx != sy ? (sx ? -1 : 1) : strcmp(x->name, y->name);
}

int federation_autostart(Federation *f, const FederationCallbacks *cb, char **ret_error) {
        FEDERATION_BUSY(f);
        g_autoptr(GPtrArray) order = g_ptr_array_new();
        AutostartCtx *c;

        if (f->sw) {
                if (ret_error)
                        *ret_error = g_strdup("a persona switch is under way");
                return -EBUSY;
        }
        for (guint i = 0; i < f->specs->len; i++)
                if (((VmSpec *) f->specs->pdata[i])->autostart)
                        g_ptr_array_add(order, f->specs->pdata[i]);
        g_ptr_array_sort(order, autostart_order);
        c = g_new0(AutostartCtx, 1);
        c->names = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; i < order->len; i++)
                g_ptr_array_add(c->names, g_strdup(((VmSpec *) order->pdata[i])->name));
        c->cb = cb ? *cb : (FederationCallbacks) {};
        c->errors = g_string_new(NULL);
        federation_complete_later(f, autostart_begin, c, 0, NULL);
        return 0;
}

/* ---- queries ------------------------------------------------------------- */

static gint compare_strings(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

char **federation_list_vms(Federation *f) {
        g_autoptr(GPtrArray) names = g_ptr_array_new();
        GHashTableIter it;
        gpointer key;

        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, &key, NULL))
                g_ptr_array_add(names, g_strdup(key));
        g_ptr_array_sort(names, compare_strings);
        g_ptr_array_add(names, NULL);
        return (char **) g_ptr_array_free(steal_pointer(&names), false);
}

FederationVmState federation_vm_state(Federation *f, const char *name) {
        Vm *vm = federation_find_vm(f, name);
        return vm ? vm->state : -ENOENT;
}

bool federation_vm_is_disposable(Federation *f, const char *name) {
        Vm *vm = federation_find_vm(f, name);
        return vm && vm->disposable;
}

const VmSpec *federation_vm_spec(Federation *f, const char *name) {
        return vm_spec_find(f->specs, name);
}

const char *federation_vm_domain_name(Federation *f, const char *name) {
        Vm *vm = federation_find_vm(f, name);
        return vm ? vm->domain_name : NULL;
}

const char *federation_active_persona(Federation *f) {
        GHashTableIter it;
        gpointer value;

        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                Vm *vm = value;
                const VmSpec *s = vm_spec(f, vm);
                if (s && s->role == VM_ROLE_PERSONA && vm_is_active(vm) && vm->state != FEDERATION_VM_STOPPING)
                        return vm->name;
        }
        return NULL;
}

bool federation_switch_in_progress(Federation *f) {
        return f->sw != NULL;
}

uint64_t federation_generation(Federation *f) {
        return f->generation;
}

uint64_t federation_last_switch_overhead_ns(Federation *f) {
        return f->last_switch_overhead_ns;
}

void federation_set_state_callback(Federation *f, FederationStateFn fn, void *userdata) {
        f->state_fn = fn;
        f->state_userdata = userdata;
}

/* ---- configuration ------------------------------------------------------ */

/* Swap in a model (taking the reference): new VMs appear, removed ones stay while they run. */
static void federation_take_model(Federation *f, VmModel *model) {
        GPtrArray *specs = vm_model_specs(model);
        GHashTableIter it;
        gpointer value;

        vm_model_unref(f->model);
        f->model = model;
        f->specs = specs;
        g_hash_table_iter_init(&it, f->vms);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                Vm *vm = value;
                if (vm->disposable)
                        continue;
                vm->configured = vm_spec_find(specs, vm->name) != NULL;
                if (!vm->configured && !vm_is_active(vm))
                        g_hash_table_iter_remove(&it);
        }
        for (guint i = 0; i < specs->len; i++) {
                VmSpec *s = specs->pdata[i];
                Vm *vm = federation_find_vm(f, s->name);
                if (vm && vm->disposable)
                        continue; /* a template named like a running disposable: unlikely, keep the disposable */
                if (!vm)
                        vm = vm_new(f, s->name);
                vm->configured = true;
        }
        f->generation = generation_latest(f->state_dir);
}

/* Specs loaded and validated here (vm_spec_load_dir()). */
static void federation_take_specs(Federation *f, GPtrArray *specs) {
        federation_take_model(f, vm_model_new(specs));
}

void federation_set_model(Federation *f, VmModel *m) {
        FEDERATION_BUSY(f);
        federation_take_model(f, vm_model_ref(m));
}

VmModel *federation_model(Federation *f) {
        return f->model;
}

int federation_reload(Federation *f, GPtrArray **ret_errors) {
        FEDERATION_BUSY(f);
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        int r;

        r = vm_spec_load_dir(f->config_dir, NULL, &specs, &errors);
        if (r < 0) {
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return r;
        }
        federation_take_specs(f, steal_pointer(&specs));
        return 0;
}

static int record_generation(Federation *f, const char *description) {
        int r = generation_record(f->config_dir, f->state_dir, description, &f->generation);
        if (r < 0)
                log_warning_errno(r, "federation: cannot record a generation: %s", g_strerror(-r));
        return r;
}

int federation_add_vm(Federation *f, const char *name, const char *untrusted_text, GPtrArray **ret_errors) {
        FEDERATION_BUSY(f);
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        g_autofree char *dir = g_build_filename(f->config_dir, "vms.d", NULL), *file = NULL, *desc = NULL;
        VmSpecOverride o = { .name = name, .text = untrusted_text };
        int r;

        if (!vm_spec_name_is_valid(name)) {
                errors = g_ptr_array_new_with_free_func(g_free);
                g_ptr_array_add(errors, g_strdup_printf("vms.d/%s.vm:0: '%s' is not a valid VM name", name, name));
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return -EINVAL;
        }
        r = vm_spec_load_dir(f->config_dir, &o, &specs, &errors);
        if (r < 0) {
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return r;
        }
        r = mkdir_parents(dir, 0755);
        if (r < 0)
                return r;
        file = g_strdup_printf("%s/%s.vm", dir, name);
        r = write_file_atomic(file, untrusted_text, strlen(untrusted_text), 0644);
        if (r < 0)
                return r;
        desc = g_strdup_printf("add VM %s", name);
        (void) record_generation(f, desc);
        /* The specs were validated against the files now on disk: take them. */
        federation_take_specs(f, steal_pointer(&specs));
        return 0;
}

int federation_remove_vm(Federation *f, const char *name, GPtrArray **ret_errors) {
        FEDERATION_BUSY(f);
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        g_autofree char *dir = g_build_filename(f->config_dir, "vms.d", NULL), *file = NULL, *desc = NULL;
        VmSpecOverride o = { .name = name, .text = NULL };
        _cleanup_close_ int dfd = -EBADF;
        Vm *vm = federation_find_vm(f, name);
        int r;

        if (!vm || !vm->configured)
                return -ENOENT;
        if (vm_is_active(vm)) {
                errors = g_ptr_array_new_with_free_func(g_free);
                g_ptr_array_add(errors, g_strdup_printf("vms.d/%s.vm:0: %s is %s; stop it first", name, name,
                                                        state_names[vm->state]));
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return -EBUSY;
        }
        r = vm_spec_load_dir(f->config_dir, &o, &specs, &errors);
        if (r < 0) {
                if (ret_errors)
                        *ret_errors = steal_pointer(&errors);
                return r;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        file = g_strdup_printf("%s.vm", name);
        r = unlink_durable_at(dfd, file);
        if (r < 0)
                return r;
        {
                _cleanup_(virDomainFreep) virDomainPtr dom =
                        VIRT_CALL(virDomainLookupByName(f->conn, vm->domain_name));
                /* Drivers without NVRAM support (the test driver) refuse that flag: retry without. */
                if (dom && VIRT_CALL(virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                                                         VIR_DOMAIN_UNDEFINE_NVRAM)) < 0 &&
                    VIRT_CALL(virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)) < 0)
                        log_warning("federation: cannot undefine %s: %s", vm->domain_name, virGetLastErrorMessage());
                virResetLastError();
        }
        desc = g_strdup_printf("remove VM %s", name);
        (void) record_generation(f, desc);
        federation_take_specs(f, steal_pointer(&specs));
        return 0;
}

int federation_record_generation(Federation *f, const char *description, uint64_t *ret_number) {
        FEDERATION_BUSY(f);
        int r = generation_record(f->config_dir, f->state_dir, description, &f->generation);
        if (r >= 0 && ret_number)
                *ret_number = f->generation;
        return r;
}

int federation_rollback(Federation *f, uint64_t n, uint64_t *ret_new, GPtrArray **ret_errors) {
        FEDERATION_BUSY(f);
        int r;

        if (f->sw)
                return -EBUSY;
        r = generation_rollback(f->config_dir, f->state_dir, n, ret_new);
        if (r < 0)
                return r;
        return federation_reload(f, ret_errors);
}

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

        vm = find_vm_by_domain(f, dname);
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
                log_info("federation: adopted %s (%s)", vm->name, state_names[vm->state]);
        } else if (active == 0)
                vm->state = VIRT_CALL(virDomainHasManagedSaveImage(dom, 0)) == 1 ? FEDERATION_VM_SAVED
                                                                                   : FEDERATION_VM_STOPPED;
        virResetLastError();
}

static int federation_adopt(Federation *f) {
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

static void federation_destroy(Federation *f) {
        g_clear_pointer(&f->vms, g_hash_table_unref);
        f->model = vm_model_unref(f->model);
        f->specs = NULL;
        if (f->conn)
                virConnectClose(f->conn);
        g_free(f->config_dir);
        g_free(f->state_dir);
        g_free(f->prefix);
        g_free(f->sysfs_root);
        g_free(f->bridge);
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
        /* Timers point at VMs: drop them now, even if worker threads still hold a reference. */
        g_hash_table_remove_all(f->vms);
        federation_unref(f);
        return NULL;
}

static bool env_true(const char *name) {
        const char *v = g_getenv(name);
        return v && (strcmp(v, "1") == 0 || g_ascii_strcasecmp(v, "yes") == 0 || g_ascii_strcasecmp(v, "true") == 0);
}

int federation_new(virConnectPtr conn, const FederationOptions *o, Federation **ret, GPtrArray **ret_errors) {
        g_autoptr(GPtrArray) specs = NULL, errors = NULL;
        Federation *f;
        int r;

        if (!conn || !o || !o->config_dir || !o->state_dir)
                return -EINVAL;
        if (o->domain_prefix && !g_str_has_prefix(o->domain_prefix, "vmfed-"))
                return -EINVAL;
        for (const char *const *d = (const char *const[]) { "channels", "consoles", "disposables", NULL }; *d; d++) {
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
                                                       VIR_DOMAIN_EVENT_CALLBACK(lifecycle_event), f, NULL);
        if (f->event_id < 0) {
                g_autofree char *err = NULL;
                r = virt_error("virConnectDomainEventRegisterAny", &err);
                log_error("federation: %s (was virEventRegisterDefaultImpl() called?)", err);
                federation_free(f);
                return r;
        }
        r = federation_adopt(f);
        if (r < 0) {
                federation_free(f);
                return r;
        }
        *ret = f;
        return 0;
}
