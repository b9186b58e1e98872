/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The parameters of a VM's domain (federation_domain_params()): its name,
 * bridge, agent channel, console, NVRAM; and the domain XML the federation
 * would define for a VM, offline (federation_domain_xml(), for `vmfedctl vm
 * xml`).
 */
#include "federation/federation.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "federation/federation-internal.h"
#include "federation/generation.h"

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
        char *nvram = g_strdup_printf("%s/nvram/%s.fd", f->state_dir, vm_name);
        char *bridge = NULL;

        if (s->netvm)
                bridge = bridge_for_netvm(f, s->netvm);
        else if (s->role == VM_ROLE_SERVICE && (s->default_netvm || vm_is_used_as_netvm(f, s->name)))
                bridge = bridge_for_netvm(f, s->name);
        g_ptr_array_add(owned, domain_name);
        g_ptr_array_add(owned, channel);
        g_ptr_array_add(owned, console);
        g_ptr_array_add(owned, nvram);
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
                .nvram_path = nvram,
                .ovmf_dir = f->ovmf_dir,
        };
}

/* As federation_new() reads $VMFED_FORCE_TCG. */
static bool env_true(const char *name) {
        const char *v = g_getenv(name);
        return v && (strcmp(v, "1") == 0 || g_ascii_strcasecmp(v, "yes") == 0 || g_ascii_strcasecmp(v, "true") == 0);
}

int federation_domain_xml(GPtrArray *specs, const FederationOptions *o, const char *name, char **ret_xml,
                          char **ret_error) {
        g_autoptr(GPtrArray) owned = g_ptr_array_new_with_free_func(g_free);
        const VmSpec *s = vm_spec_find(specs, name);
        char uuid[DOMAIN_XML_UUID_MAX];
        DomainXmlParams p;
        /*
         * What federation_domain_params() reads of a federation, without a
         * libvirt connection: what federation_new() would take from o.
         */
        Federation f = {
                .specs = specs,
                .state_dir = (char *) o->state_dir,
                .prefix = (char *) (o->domain_prefix ? o->domain_prefix : "vmfed-"),
                .bridge = (char *) o->bridge,
                .ovmf_dir = (char *) o->ovmf_dir,
                .channel_mode = o->channel_mode,
                .force_tcg = o->force_tcg || env_true("VMFED_FORCE_TCG"),
                .fake_passthrough = o->fake_passthrough,
                .kvm_available = access("/dev/kvm", R_OK | W_OK) == 0,
                .generation = generation_latest(o->state_dir),
        };
        int r;

        if (!s)
                return federation_refuse(ret_error, -ENOENT, "no VM named '%s' in vms.d/", name);
        if (s->role == VM_ROLE_DISPOSABLE_TEMPLATE)
                return federation_refuse(ret_error, -EINVAL,
                                         "%s is a disposable template: its disposables are transient domains "
                                         "named dispNNNN",
                                         name);
        federation_domain_params(&f, s, s->name, owned, &p);
        domain_xml_stable_uuid(p.domain_name, uuid);
        p.uuid = uuid;
        r = domain_xml_build(s, &p, ret_xml);
        if (r < 0)
                return federation_refuse(ret_error, r, "%s: cannot build the domain XML (no Disk= or Kernel=?)", name);
        return 0;
}
