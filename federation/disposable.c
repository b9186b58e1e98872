/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Disposable VMs: a transient domain "dispNNNN" from a disposable-template
 * VM, on a fresh qcow2 overlay (qemu-img create -b TEMPLATE-DISK) in
 * STATE/disposables/, deleted when the domain stops however it stops; an
 * overlay whose domain is gone (the broker was down when it stopped) is
 * swept at federation_new().  Direct-boot templates without a disk get a
 * transient domain of their own, no overlay.  A UEFI template's disposable
 * gets a fresh NVRAM from the vars template, STATE/disposables/dispNNNN.fd,
 * deleted and swept with the overlay.
 */
#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

typedef struct DispCtx {
        char *name;
        char *template_name;
        char *overlay;
        FederationCallbacks cb;
} DispCtx;

static void disp_ctx_free(DispCtx *c) {
        g_free(c->name);
        g_free(c->template_name);
        g_free(c->overlay);
        g_free(c);
}

static void disp_ctx_free_cb(gpointer p) {
        disp_ctx_free(p);
}

char *disposable_nvram_path(Federation *f, const char *name) {
        return g_strdup_printf("%s/disposables/%s.fd", f->state_dir, name);
}

static void remove_nvram(Federation *f, const char *name) {
        g_autofree char *nvram = disposable_nvram_path(f, name);

        if (unlink(nvram) < 0 && errno != ENOENT)
                log_warning("federation: cannot remove %s: %m", nvram);
}

static void disp_finish(Federation *f, DispCtx *c, int r, const char *error) {
        if (r < 0) {
                Vm *vm = federation_find_vm(f, c->name);
                if (c->overlay && unlink(c->overlay) < 0 && errno != ENOENT)
                        log_warning("federation: cannot remove %s: %m", c->overlay);
                remove_nvram(f, c->name);
                if (vm && vm->disposable) {
                        g_clear_pointer(&vm->overlay, g_free);
                        vm_set_state(vm, FEDERATION_VM_STOPPED, "failed to start");
                        g_hash_table_remove(f->vms, c->name);
                }
        }
        federation_events_done(f, &c->cb, r, r < 0 ? error : c->name);
        disp_ctx_free(c);
}

static void disp_created(Federation *f, int r, const char *error, void *userdata) {
        DispCtx *c = userdata;
        Vm *vm = federation_find_vm(f, c->name);

        if (r < 0) {
                g_autofree char *msg = g_strdup_printf("cannot start disposable %s: %s", c->name, error);
                disp_finish(f, c, r, msg);
                return;
        }
        if (vm && vm->state == FEDERATION_VM_STARTING)
                vm_set_state(vm, FEDERATION_VM_RUNNING, "booted");
        progress(&c->cb, "disposable %s (from %s) is running", c->name, c->template_name);
        disp_finish(f, c, 0, NULL);
}

static void disp_create_domain(Federation *f, DispCtx *c) {
        const VmSpec *t = federation_vm_spec(f, c->template_name);
        g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *xml = NULL;
        char *no_devices[] = { NULL };
        DomainXmlParams p;
        VmSpec d;
        int r;

        if (!t) {
                disp_finish(f, c, -ENOENT, "the template vanished from the configuration");
                return;
        }
        d = *t;
        d.name = c->name;
        d.devices = no_devices;
        federation_domain_params(f, &d, c->name, owned, &p);
        p.role = "disposable";
        p.template_name = c->template_name;
        p.disk_override = c->overlay;
        p.nvram_path = disposable_nvram_path(f, c->name);
        g_ptr_array_add(owned, (char *) p.nvram_path);
        {
                g_autofree char *err = NULL;
                r = federation_prepare_channel(f, c->name, &err);
                if (r < 0) {
                        g_autofree char *msg = g_strdup_printf("cannot start disposable %s", err);
                        disp_finish(f, c, r, msg);
                        return;
                }
        }
        r = domain_xml_build(&d, &p, &xml);
        if (r < 0) {
                disp_finish(f, c, r, "cannot build the domain XML");
                return;
        }
        progress(&c->cb, "booting disposable %s", c->name);
        virt_job_run(f, VIRT_JOB_CREATE_XML, p.domain_name, xml, disp_created, c, disp_ctx_free_cb);
}

typedef struct ImgCtx {
        Federation *f;
        DispCtx *c;
} ImgCtx;

static void overlay_created(GObject *source, GAsyncResult *res, gpointer userdata) {
        ImgCtx *ic = userdata;
        Federation *f = ic->f;
        g_autoptr(GError) e = NULL;
        g_autofree char *out = NULL, *err = NULL;

        if (f->dead) {
                disp_ctx_free(ic->c);
        } else {
                FEDERATION_BUSY(f);
                if (!g_subprocess_communicate_utf8_finish(G_SUBPROCESS(source), res, &out, &err, &e) ||
                    !g_subprocess_get_successful(G_SUBPROCESS(source))) {
                        g_autofree char *msg = g_strdup_printf("cannot create the overlay %s: %s", ic->c->overlay,
                                                               e ? e->message : err ? g_strstrip(err) : "");
                        disp_finish(f, ic->c, -EIO, msg);
                } else
                        disp_create_domain(f, ic->c);
        }
        federation_unref(f);
        g_free(ic);
}

static void disp_after_netvm(Federation *f, int r, const char *error, void *userdata) {
        DispCtx *c = userdata;
        const VmSpec *t = federation_vm_spec(f, c->template_name);
        g_autoptr(GSubprocess) p = NULL;
        g_autoptr(GError) e = NULL;
        ImgCtx *ic;

        if (r < 0) {
                g_autofree char *msg = g_strdup_printf("cannot start disposable %s: its NetVM failed: %s", c->name, error);
                disp_finish(f, c, r, msg);
                return;
        }
        if (!t || !t->disk) {
                disp_create_domain(f, c);
                return;
        }
        progress(&c->cb, "creating overlay %s on %s", c->overlay, t->disk);
        p = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &e, "qemu-img",
                             "create", "-q", "-f", "qcow2", "-F", disk_image_format(t->disk), "-b", t->disk,
                             c->overlay, NULL);
        if (!p) {
                g_autofree char *msg = g_strdup_printf("cannot run qemu-img: %s", e->message);
                disp_finish(f, c, -ENOENT, msg);
                return;
        }
        ic = g_new0(ImgCtx, 1);
        ic->f = federation_ref(f);
        ic->c = c;
        g_subprocess_communicate_utf8_async(p, NULL, NULL, overlay_created, ic);
}

static char *pick_name(Federation *f) {
        for (;;) {
                g_autofree char *name = g_strdup_printf("disp%d", g_random_int_range(1000, 10000));
                g_autofree char *overlay = g_strdup_printf("%s/disposables/%s.qcow2", f->state_dir, name);
                g_autofree char *dname = g_strconcat(f->prefix, name, NULL);
                _cleanup_(virDomainFreep) virDomainPtr dom = NULL;

                if (federation_find_vm(f, name) || federation_vm_spec(f, name) || access(overlay, F_OK) == 0)
                        continue;
                dom = VIRT_CALL(virDomainLookupByName(f->conn, dname));
                virResetLastError();
                if (dom)
                        continue;
                return steal_pointer(&name);
        }
}

static const char *default_template(Federation *f, const char *caller, char **ret_error) {
        const VmSpec *cs = caller ? federation_vm_spec(f, caller) : NULL;
        const char *found = NULL;

        if (cs && cs->default_dispvm)
                return cs->default_dispvm;
        for (guint i = 0; i < f->specs->len; i++) {
                const VmSpec *s = f->specs->pdata[i];
                if (s->role != VM_ROLE_DISPOSABLE_TEMPLATE)
                        continue;
                if (found) {
                        *ret_error = g_strdup("several disposable templates and no DefaultDispVM=: name one "
                                              "(@dispvm:NAME)");
                        return NULL;
                }
                found = s->name;
        }
        if (!found)
                *ret_error = g_strdup("no VM has Role=disposable-template");
        return found;
}

int federation_start_disposable(Federation *f, const char *target, const char *caller, const FederationCallbacks *cb,
                                char **ret_error) {
        FEDERATION_BUSY(f);
        g_autofree char *err = NULL;
        const char *tname;
        const VmSpec *t;
        DispCtx *c;
        Vm *vm, *netvm;
        int r;

        if (!target || strcmp(target, "@dispvm") == 0)
                tname = default_template(f, caller, &err);
        else if (g_str_has_prefix(target, "@dispvm:"))
                tname = target + strlen("@dispvm:");
        else
                tname = target;
        if (!tname) {
                if (ret_error)
                        *ret_error = steal_pointer(&err);
                return -ENOENT;
        }
        t = federation_vm_spec(f, tname);
        if (!t || t->role != VM_ROLE_DISPOSABLE_TEMPLATE) {
                if (ret_error)
                        *ret_error = g_strdup_printf("'%s' is not a disposable-template VM", tname);
                return t ? -EINVAL : -ENOENT;
        }
        r = federation_check_start(f, t, NULL, ret_error);
        if (r < 0)
                return r;

        c = g_new0(DispCtx, 1);
        c->name = pick_name(f);
        c->template_name = g_strdup(tname);
        c->cb = cb ? *cb : (FederationCallbacks) {};
        if (t->disk)
                c->overlay = g_strdup_printf("%s/disposables/%s.qcow2", f->state_dir, c->name);
        vm = vm_new_disposable(f, c->name, tname, c->overlay);
        vm_set_state(vm, FEDERATION_VM_STARTING, "start requested");

        netvm = t->netvm ? federation_find_vm(f, t->netvm) : NULL;
        if (netvm && !vm_is_active(netvm)) {
                progress(cb, "starting %s, the NetVM of %s", netvm->name, c->name);
                vm_start_async(f, netvm, cb, disp_after_netvm, c);
        } else
                federation_complete_later(f, disp_after_netvm, c, 0, NULL);
        return 0;
}

void disposable_stopped(Federation *f, Vm *vm) {
        remove_nvram(f, vm->name);
        if (!vm->overlay)
                return;
        if (unlink(vm->overlay) < 0 && errno != ENOENT)
                log_warning("federation: cannot remove the overlay %s of %s: %m", vm->overlay, vm->name);
        else
                log_debug("federation: removed the overlay of %s", vm->name);
        g_clear_pointer(&vm->overlay, g_free);
}

int disposable_sweep(Federation *f, GHashTable *live_overlays) {
        g_autofree char *dir = g_build_filename(f->state_dir, "disposables", NULL);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *n;

        while (d && (n = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(dir, n, NULL);
                if (g_hash_table_contains(live_overlays, p))
                        continue;
                if (unlink(p) < 0)
                        log_warning("federation: cannot remove the orphan overlay %s: %m", p);
                else
                        log_info("federation: removed the orphan overlay %s", p);
        }
        return 0;
}
