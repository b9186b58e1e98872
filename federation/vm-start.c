/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Starting a VM: its NetVM first, define (or keep) the domain, boot or
 * restore it in the worker; federation_start_vm().
 */
#include "federation/federation.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "federation/federation-internal.h"

/* ---- start ---------------------------------------------------------------- */

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

typedef struct StartCtx {
        char *name;
        bool restoring;
        FederationCallbacks cb;
        VmDoneFn done;
        void *userdata;
        /* Handed to the worker (the loop does not touch them while a job runs). */
        char *domain_name;
        char uuid[VIR_UUID_STRING_BUFLEN]; /* "" without a domain */
        int active, saved;
        char *old_hash;
        char *xml;               /* to define; NULL: keep the domain as it is */
        bool remove_save;
        char *warning;           /* from the worker, logged on the loop */
} StartCtx;

static void start_ctx_free(gpointer p) {
        StartCtx *c = p;
        g_free(c->name);
        g_free(c->domain_name);
        g_free(c->old_hash);
        g_free(c->xml);
        g_free(c->warning);
        g_free(c);
}

static void start_ctx_finish(Federation *f, StartCtx *c, int r, const char *error) {
        c->done(f, r, error, c->userdata);
        start_ctx_free(c);
}

/* A step failed: the VM is stopped again, the start fails with "cannot <what> NAME: error". */
static void start_fail(Federation *f, StartCtx *c, int r, const char *what, const char *error) {
        Vm *vm = federation_find_vm(f, c->name);
        g_autofree char *msg = g_strdup_printf("cannot %s %s: %s", what, c->name, error ? error : g_strerror(-r));

        if (vm && vm->state == FEDERATION_VM_STARTING)
                vm_set_state(vm, FEDERATION_VM_STOPPED, "failed to start");
        start_ctx_finish(f, c, r, msg);
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

/*
 * A start runs in steps, every libvirt call in the worker:
 *   start_lookup_work   (worker) what libvirt has: the domain, its UUID, state, saved image, config hash
 *   start_looked_up     (loop)   build the XML; decide whether to (re)define
 *   start_define_work   (worker) discard a stale saved image, define
 *   start_defined       (loop)   the agent channel's listener
 *   start_create_work   (worker) boot or restore
 *   start_created       (loop)
 */
static int start_lookup_work(virConnectPtr conn, void *userdata, char **ret_error) {
        StartCtx *c = userdata;
        _cleanup_(virDomainFreep) virDomainPtr dom = NULL;

        c->uuid[0] = 0;
        c->active = c->saved = 0;
        if (virt_lookup(conn, c->domain_name, &dom, NULL) < 0) {
                virResetLastError();
                return 0; /* not defined yet */
        }
        if (VIRT_CALL(virDomainGetUUIDString(dom, c->uuid)) < 0)
                c->uuid[0] = 0;
        virResetLastError();
        c->active = VIRT_CALL(virDomainIsActive(dom));
        c->saved = VIRT_CALL(virDomainHasManagedSaveImage(dom, 0));
        c->old_hash = domain_config_hash(dom);
        virResetLastError();
        return 1;
}

static int start_define_work(virConnectPtr conn, void *userdata, char **ret_error) {
        StartCtx *c = userdata;
        _cleanup_(virDomainFreep) virDomainPtr dom = NULL;

        if (c->remove_save && virt_lookup(conn, c->domain_name, &dom, NULL) >= 0 &&
            VIRT_CALL(virDomainManagedSaveRemove(dom, 0)) < 0)
                c->warning = g_strdup_printf("cannot remove saved state: %s", virGetLastErrorMessage());
        virResetLastError();
        g_clear_pointer(&dom, virDomainFree);
        if (!c->xml)
                return 0;
        dom = VIRT_CALL(virDomainDefineXML(conn, c->xml));
        if (!dom)
                return virt_error("virDomainDefineXML", ret_error);
        return 0;
}

static int start_create_work(virConnectPtr conn, void *userdata, char **ret_error) {
        StartCtx *c = userdata;
        _cleanup_(virDomainFreep) virDomainPtr dom = NULL;
        int r = virt_lookup(conn, c->domain_name, &dom, ret_error);

        if (r < 0)
                return r;
        if (VIRT_CALL(virDomainCreate(dom)) < 0)
                return virt_error("virDomainCreate", ret_error);
        return 0;
}

static void start_defined(Federation *f, int r, const char *error, void *userdata) {
        StartCtx *c = userdata;
        Vm *vm = federation_find_vm(f, c->name);
        g_autofree char *err = NULL;

        if (c->warning)
                log_warning("federation: %s: %s", c->name, c->warning);
        if (r < 0)
                return start_fail(f, c, r, "define", error);
        if (!vm)
                return start_ctx_finish(f, c, -ENOENT, "VM vanished from the configuration");
        r = federation_prepare_channel(f, c->name, &err);
        if (r < 0) {
                vm_set_state(vm, FEDERATION_VM_STOPPED, "failed to start");
                g_autofree char *msg = g_strdup_printf("cannot start %s", err);
                return start_ctx_finish(f, c, r, msg);
        }
        c->restoring = vm->restoring = c->saved == 1;
        progress(&c->cb, c->restoring ? "restoring %s from its saved state" : "booting %s", c->name);
        virt_job_call(f, c->domain_name, start_create_work, start_created, c, start_ctx_free);
}

static void start_looked_up(Federation *f, int found, const char *error, void *userdata) {
        StartCtx *c = userdata;
        const VmSpec *s = vm_spec_find(f->specs, c->name);
        Vm *vm = federation_find_vm(f, c->name);
        g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *xml = NULL, *hash = NULL;
        char uuid[DOMAIN_XML_UUID_MAX];
        DomainXmlParams p;
        int r;

        if (!s || !vm)
                return start_ctx_finish(f, c, -ENOENT, "VM vanished from the configuration");
        federation_domain_params(f, s, s->name, owned, &p);
        domain_xml_stable_uuid(c->domain_name, uuid);
        p.uuid = found > 0 && c->uuid[0] ? c->uuid : uuid; /* libvirt's TPM state follows the UUID */
        r = domain_xml_build(s, &p, &xml);
        if (r < 0)
                return start_ctx_finish(f, c, r, "cannot build the domain XML");
        hash = xml_config_hash(xml);
        if (found > 0 && c->active == 1) {
                vm_set_state(vm, FEDERATION_VM_RUNNING, "already running");
                return start_ctx_finish(f, c, 0, NULL);
        }
        if (found <= 0 || !c->old_hash || !hash || strcmp(c->old_hash, hash) != 0) {
                if (c->saved == 1) {
                        progress(&c->cb, "%s: the configuration changed since it was saved; discarding the saved state",
                                 c->name);
                        c->remove_save = true;
                }
                c->xml = steal_pointer(&xml);
                c->saved = 0;
        }
        virt_job_call(f, c->domain_name, start_define_work, start_defined, c, start_ctx_free);
}

/* Define (or keep) the persistent domain, then boot or restore it. */
static void start_define_and_create(Federation *f, StartCtx *c) {
        const VmSpec *s = vm_spec_find(f->specs, c->name);
        Vm *vm = federation_find_vm(f, c->name);
        g_autofree char *err = NULL;
        int r;

        if (!s || !vm)
                return start_ctx_finish(f, c, -ENOENT, "VM vanished from the configuration");
        r = federation_check_files(f, s, &err);
        if (r < 0) {
                vm_set_state(vm, FEDERATION_VM_STOPPED, "failed to start");
                g_autofree char *msg = g_strdup_printf("cannot start %s", err);
                return start_ctx_finish(f, c, r, msg);
        }
        c->domain_name = g_strdup(vm->domain_name);
        virt_job_call(f, c->domain_name, start_lookup_work, start_looked_up, c, start_ctx_free);
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
        const VmSpec *s = vm_get_spec(f, vm);
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
                const VmSpec *ns = vm_get_spec(f, netvm);
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

int federation_start_vm(Federation *f, const char *name, const FederationCallbacks *cb, char **ret_error) {
        FEDERATION_BUSY(f);
        Vm *vm = federation_find_vm(f, name);
        const VmSpec *s = vm ? vm_get_spec(f, vm) : NULL;
        int r;

        if (!s)
                return federation_refuse(ret_error, -ENOENT, "no VM named '%s' in vms.d/", name);
        if (s->role == VM_ROLE_DISPOSABLE_TEMPLATE)
                return federation_refuse(ret_error, -EINVAL, "%s is a disposable template: start @dispvm:%s instead",
                                         name, name);
        if (vm_is_active(vm))
                return federation_refuse(ret_error, -EALREADY, "%s is already %s", name,
                                         federation_vm_state_to_string(vm->state));
        if (vm->releasing)
                return federation_refuse(ret_error, -EBUSY, "%s is still being torn down by libvirt", name);
        if (f->sw && s->role == VM_ROLE_PERSONA)
                return federation_refuse(ret_error, -EBUSY, "a persona switch is under way");
        r = federation_check_start(f, s, NULL, ret_error);
        if (r < 0)
                return r;
        vm_start_async(f, vm, cb, federation_op_done, federation_op_new(cb));
        return 0;
}
