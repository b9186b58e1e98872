/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The composition root of vmfedd: creates, wires, starts and frees every
 * module of the broker, and reloads the configuration through them.  Only
 * main.c and the fuzz harness include daemon.h; broker.c (the shared state)
 * reaches these modules only through the hooks set here (BrokerHooks).
 */
#include "broker/daemon.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <string.h>

#include "common/bus-source.h"
#include "broker/channel.h"
#include "broker/channel-access.h"
#include "broker/errors.h"
#include "broker/guest-services.h"
#include "broker/hypervisor.h"
#include "broker/lifecycle.h"
#include "broker/netvm-links.h"
#include "broker/operation.h"
#include "broker/generations-iface.h"
#include "broker/manager.h"
#include "broker/policy-iface.h"
#include "broker/vm-events.h"
#include "broker/vm-object.h"
#include "common/log.h"
#include "common/macro.h"

static void daemon_on_vm_event(const VmEvent *e, void *userdata) {
        Broker *b = userdata;
        const char *state = federation_vm_state_to_string(e->state);

        if (state)
                broker_set_vm_state(b, e->vm, state);
        broker_set_active_persona(b, e->active_persona);
}

static Federation *daemon_federation(Broker *b) {
        return lifecycle_federation(b->lifecycle, NULL);
}

static bool strv_equal0(char **a, char **b) {
        if (!a || !b)
                return a == b;
        return g_strv_equal((const char *const *) a, (const char *const *) b);
}

/* Take the model (its reference) and re-export the VM objects: each is a view of one of its specs. */
static void broker_set_model(Broker *b, VmModel *model) {
        g_autoptr(GHashTable) objects = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, vm_object_free);
        g_autoptr(VmModel) old_model = NULL;
        g_autoptr(GHashTable) old_objects = NULL;

        for (guint i = 0; i < vm_model_n_vms(model); i++) {
                const VmSpec *c = vm_model_vm(model, i);
                VmObject *old = broker_find_vm(b, c->name);
                const char *state = old ? old->state : hypervisor_domain_state(b->hypervisor, c->name);
                g_hash_table_insert(objects, c->name, vm_object_new(c, state));
        }

        /* Announce removals while the old objects still answer. */
        for (guint i = 0; i < vm_model_n_vms(b->model); i++) {
                const VmSpec *c = vm_model_vm(b->model, i);
                if (!g_hash_table_contains(objects, c->name))
                        vm_object_emit_removed(b, c->name);
        }

        old_model = steal_pointer(&b->model);
        old_objects = steal_pointer(&b->vm_objects);
        b->model = model;
        b->vm_objects = steal_pointer(&objects);

        for (guint i = 0; i < vm_model_n_vms(b->model); i++) {
                const VmSpec *c = vm_model_vm(b->model, i);
                VmObject *old = g_hash_table_lookup(old_objects, c->name);
                if (!old)
                        vm_object_emit_added(b, c->name);
                else if (old->spec->role != c->role || !strv_equal0(old->spec->tags, c->tags))
                        vm_object_emit_changed(b, c->name, "Role", "Tags", NULL);
        }
}

static int daemon_reload(Broker *b, VmModel *model, GPtrArray **ret_errors) {
        g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GPtrArray) vm_errors = NULL;
        PolicySnapshot *s = NULL;
        int r = 0;

        /* Strict: what the federation could not start gets no VM object either. */
        if (model)
                model = vm_model_ref(model);
        else
                r = vm_model_load(b->config_dir, NULL, 0, &model, &vm_errors);
        if (r < 0) {
                if (r != -EINVAL || !vm_errors) { /* vms.d/ itself unreadable */
                        g_clear_pointer(&vm_errors, g_ptr_array_unref);
                        vm_errors = g_ptr_array_new_with_free_func(g_free);
                        g_ptr_array_add(vm_errors, g_strdup_printf("%s/vms.d: %s", b->config_dir, strerror(-r)));
                }
                for (guint i = 0; i < vm_errors->len; i++) {
                        log_error("%s", (const char *) vm_errors->pdata[i]);
                        g_ptr_array_add(errors, g_strdup(vm_errors->pdata[i]));
                }
                g_free(b->model_error);
                b->model_error = errors_join(vm_errors);
                log_error("VM definitions in %s/vms.d not loaded; keeping the previous ones.", b->config_dir);
        } else {
                g_clear_pointer(&b->model_error, g_free);
                broker_set_model(b, model);
        }

        /* The federation gets the same model (or is created from it); it does not load vms.d/ itself. */
        if (b->lifecycle)
                (void) lifecycle_reload(b->lifecycle, errors);

        r = broker_rebuild_facts(b);
        if (r < 0)
                g_ptr_array_add(errors, g_strdup_printf("policy facts: %s", strerror(-r)));

        r = policy_snapshot_load(b->policy_dir, NULL, 0, &s);
        if (r < 0)
                return log_error_errno(r, "Cannot load the policy: %m");
        for (size_t i = 0; i < policy_snapshot_n_diagnostics(s); i++) {
                char *line = policy_diagnostic_format(policy_snapshot_diagnostic(s, i));
                if (line) {
                        log_error("%s/%s", b->policy_dir, line);
                        g_ptr_array_add(errors, line);
                }
        }
        broker_set_policy(b, s);
        policy_snapshot_unref(s);

        if (b->bus)
                (void) channel_sync_all(b);

        log_info("Configuration loaded: %u VMs, %zu policy rules, policy revision %" PRIu64 "%s.",
                 vm_model_n_vms(b->model), policy_snapshot_n_rules(b->policy), b->policy_revision,
                 policy_snapshot_is_valid(b->policy) ? "" : " (BROKEN: denying everything)");

        r = errors->len > 0 ? -EINVAL : 0;
        /* A configuration that loads is a generation (nothing is recorded when it equals the latest). */
        if (r == 0)
                (void) generations_record(b, "reload");
        if (ret_errors)
                *ret_errors = r < 0 ? steal_pointer(&errors) : NULL;
        return r;
}


int broker_new(const char *config_dir, const char *state_dir, const char *libvirt_uri,
               const char *bus_address, Broker **ret) {
        Broker *b = g_new0(Broker, 1);

        b->config_dir = g_strdup(config_dir);
        b->state_dir = g_strdup(state_dir);
        b->policy_dir = g_build_filename(config_dir, "policy.d", NULL);
        b->channel_dir = g_build_filename(state_dir, "channels", NULL);
        b->libvirt_uri = g_strdup(libvirt_uri);
        b->bus_address = g_strdup(bus_address);
        b->loop = g_main_loop_new(NULL, FALSE);
        b->vm_objects = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, vm_object_free);
        b->channels = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, channel_free);
        b->next_request_id = 1;
        b->hooks = (BrokerHooks) {
                .reload = daemon_reload,
                .federation = daemon_federation,
                .netvm_prepare = netvm_links_prepare,
                .record_generation = generations_record,
                .vm_ensure_running = lifecycle_vm_ensure_running,
                .dispvm_start = lifecycle_dispvm_start,
                .dispvm_release = lifecycle_dispvm_release,
                .dispvm_is_running = lifecycle_dispvm_is_running,
        };
        b->vm_events = vm_events_new();
        b->operations = operation_set_new();
        /* The first watches: VM objects and the persona, then the channels (disposables' go when they stop). */
        b->vm_events_watch = vm_events_watch_add(b->vm_events, daemon_on_vm_event, b, NULL);
        b->channels_watch = vm_events_watch_add(b->vm_events, channel_on_vm_event, b->channels, NULL);

        *ret = b;
        return 0;
}

Broker *broker_free(Broker *b) {
        if (!b)
                return NULL;
        guest_services_stop(b); /* fail pending requests while disposables can still be released */
        vm_events_flush(b->vm_events); /* what happened so far reaches its watches */
        b->lifecycle = lifecycle_free(b->lifecycle);
        vm_events_flush(b->vm_events); /* and the ends of operations abandoned there */
        b->netvm_links = netvm_links_free(b->netvm_links);
        vm_events_watch_remove(b->vm_events, b->channels_watch);
        vm_events_watch_remove(b->vm_events, b->vm_events_watch);
        g_clear_pointer(&b->channels, g_hash_table_unref);
        guest_services_free(b);
        b->hypervisor = hypervisor_free(b->hypervisor);
        b->bus_source = bus_source_free(b->bus_source);
        if (b->bus) {
                sd_bus_flush_close_unref(b->bus);
                b->bus = NULL;
        }
        g_clear_pointer(&b->vm_objects, g_hash_table_unref);
        b->model = vm_model_unref(b->model);
        g_free(b->model_error);
        b->policy = policy_snapshot_unref(b->policy);
        b->facts = policy_facts_unref(b->facts);
        broker_watches_free(b); /* their last events go with the VM events */
        b->vm_events = vm_events_free(b->vm_events);
        b->operations = operation_set_free(b->operations);
        g_clear_pointer(&b->loop, g_main_loop_unref);
        g_free(b->config_dir);
        g_free(b->state_dir);
        g_free(b->policy_dir);
        g_free(b->channel_dir);
        g_free(b->libvirt_uri);
        g_free(b->bus_address);
        g_free(b->active_persona);
        g_free(b->manage_group);
        g_free(b->domain_prefix);
        g_free(b->bridge);
        g_free(b);
        return NULL;
}

static void bus_closed(void *userdata, int error) {
        Broker *b = userdata;

        log_error_errno(error, "Lost the bus connection: %m; exiting.");
        b->exit_status = 1;
        g_main_loop_quit(b->loop);
}

static int broker_connect_bus(Broker *b) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (b->bus_address) {
                r = sd_bus_new(&bus);
                if (r < 0)
                        return r;
                r = sd_bus_set_address(bus, b->bus_address);
                if (r < 0)
                        return log_error_errno(r, "Bad bus address %s: %m", b->bus_address);
                r = sd_bus_set_bus_client(bus, 1);
                if (r < 0)
                        return r;
                /* Treat a private bus like the system bus: we authorize callers ourselves. */
                r = sd_bus_set_trusted(bus, 0);
                if (r < 0)
                        return r;
                r = sd_bus_start(bus);
                if (r < 0)
                        return log_error_errno(r, "Cannot connect to the bus at %s: %m", b->bus_address);
        } else {
                r = sd_bus_open_system(&bus);
                if (r < 0)
                        return log_error_errno(r, "Cannot connect to the system bus: %m");
        }
        (void) sd_bus_set_description(bus, "vmfedd");
        b->bus = steal_pointer(&bus);
        return 0;
}

int broker_start(Broker *b) {
        struct group *gr;
        int r;

        r = errors_register();
        if (r < 0)
                return r;
        r = hypervisor_init_event_loop();
        if (r < 0)
                return r;

        /* Resolved once here: NSS lookups never run on the loop. */
        gr = getgrnam(b->manage_group ? b->manage_group : "vmfed");
        if (gr) {
                b->have_vmfed_gid = true;
                b->vmfed_gid = gr->gr_gid;
        } else
                log_debug("No group %s: only root and polkit may change the federation.",
                          b->manage_group ? b->manage_group : "vmfed");

        (void) broker_reload(b, NULL);

        r = broker_connect_bus(b);
        if (r < 0)
                return r;

        r = manager_register(b);
        if (r >= 0)
                r = policy_iface_register(b);
        if (r >= 0)
                r = vm_object_register(b);
        if (r >= 0)
                r = guest_services_start(b);
        if (r >= 0)
                r = sd_bus_add_object_manager(b->bus, NULL, BROKER_ROOT_PATH);
        if (r < 0)
                return log_error_errno(r, "Cannot export objects: %m");

        r = netvm_links_new(b, &b->netvm_links); /* before the federation: it reports VMs as they run */
        if (r < 0)
                return r;
        r = lifecycle_new(b, b->domain_prefix, b->bridge, &b->lifecycle);
        if (r < 0)
                return r;
        r = hypervisor_new(b, b->libvirt_uri, &b->hypervisor);
        if (r < 0)
                return r;
        hypervisor_refresh_states(b->hypervisor);

        r = channel_sync_all(b);
        if (r < 0)
                log_warning_errno(r, "Some guest channels are not available: %m");
        channel_access_share(b, NULL); /* QEMU reconnects to sockets this broker re-created */

        r = sd_bus_request_name(b->bus, BROKER_BUS_NAME, 0);
        if (r == -EEXIST)
                return log_error_errno(r, "%s is already owned: is another vmfedd running?", BROKER_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Cannot own %s: %m", BROKER_BUS_NAME);

        r = bus_source_attach(b->bus, bus_closed, b, &b->bus_source);
        if (r < 0)
                return log_error_errno(r, "Cannot attach the bus to the main loop: %m");

        log_info("vmfedd %s serving %s (config %s, state %s, libvirt %s).", VMFED_VERSION, BROKER_BUS_NAME,
                 b->config_dir, b->state_dir, b->libvirt_uri);
        return 0;
}

int broker_run(Broker *b) {
        g_main_loop_run(b->loop);
        return b->exit_status;
}
