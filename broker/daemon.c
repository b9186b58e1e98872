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

struct Daemon {
        Broker *broker;
        char *libvirt_uri;
        char *bus_address; /* NULL: the system bus */
        char *domain_prefix;
        GMainLoop *loop;
        int exit_status;
        GSource *bus_source;
        Hypervisor *hypervisor;
};

static Federation *daemon_federation(Broker *b) {
        return lifecycle_federation(broker_lifecycle(b), NULL);
}

static bool strv_equal0(char **a, char **b) {
        if (!a || !b)
                return a == b;
        return g_strv_equal((const char *const *) a, (const char *const *) b);
}

static const char *daemon_vm_state(const char *vm, void *userdata) {
        return lifecycle_vm_state(broker_lifecycle(userdata), vm);
}

/* Take the model (its reference) and re-export the VM objects: each is a view of one of its specs. */
static void daemon_set_model(Broker *b, VmModel *model) {
        VmModel *current = broker_model(b);
        g_autoptr(VmModel) old = NULL;

        /* Announce removals while the old objects still answer. */
        for (guint i = 0; i < vm_model_n_vms(current); i++) {
                const VmSpec *c = vm_model_vm(current, i);
                if (!vm_model_find(model, c->name))
                        vm_object_emit_removed(b, c->name);
        }

        old = broker_set_model(b, model, daemon_vm_state, b);

        for (guint i = 0; i < vm_model_n_vms(model); i++) {
                const VmSpec *c = vm_model_vm(model, i);
                const VmSpec *was = old ? vm_model_find(old, c->name) : NULL;
                if (!was)
                        vm_object_emit_added(b, c->name);
                else if (was->role != c->role || !strv_equal0(was->tags, c->tags))
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
                r = vm_model_load(broker_config_dir(b), NULL, 0, &model, &vm_errors);
        if (r < 0) {
                if (r != -EINVAL || !vm_errors) { /* vms.d/ itself unreadable */
                        g_clear_pointer(&vm_errors, g_ptr_array_unref);
                        vm_errors = g_ptr_array_new_with_free_func(g_free);
                        g_ptr_array_add(vm_errors, g_strdup_printf("%s/vms.d: %s", broker_config_dir(b), strerror(-r)));
                }
                for (guint i = 0; i < vm_errors->len; i++) {
                        log_error("%s", (const char *) vm_errors->pdata[i]);
                        g_ptr_array_add(errors, g_strdup(vm_errors->pdata[i]));
                }
                g_autofree char *joined = errors_join(vm_errors);
                broker_set_model_error(b, joined);
                log_error("VM definitions in %s/vms.d not loaded; keeping the previous ones.", broker_config_dir(b));
        } else {
                broker_set_model_error(b, NULL);
                daemon_set_model(b, model);
        }

        /* The federation gets the same model (or is created from it); it does not load vms.d/ itself. */
        if (broker_lifecycle(b))
                (void) lifecycle_reload(broker_lifecycle(b), errors);

        r = broker_rebuild_facts(b);
        if (r < 0)
                g_ptr_array_add(errors, g_strdup_printf("policy facts: %s", strerror(-r)));

        r = policy_snapshot_load(broker_policy_dir(b), NULL, 0, &s);
        if (r < 0)
                return log_error_errno(r, "Cannot load the policy: %m");
        for (size_t i = 0; i < policy_snapshot_n_diagnostics(s); i++) {
                char *line = policy_diagnostic_format(policy_snapshot_diagnostic(s, i));
                if (line) {
                        log_error("%s/%s", broker_policy_dir(b), line);
                        g_ptr_array_add(errors, line);
                }
        }
        broker_set_policy(b, s);
        policy_snapshot_unref(s);

        if (broker_bus(b))
                (void) channel_sync_all(b);

        log_info("Configuration loaded: %u VMs, %zu policy rules, policy revision %" PRIu64 "%s.",
                 vm_model_n_vms(broker_model(b)), policy_snapshot_n_rules(broker_policy(b)), broker_policy_revision(b),
                 policy_snapshot_is_valid(broker_policy(b)) ? "" : " (BROKEN: denying everything)");

        r = errors->len > 0 ? -EINVAL : 0;
        /* A configuration that loads is a generation (nothing is recorded when it equals the latest). */
        if (r == 0)
                (void) generations_record(b, "reload");
        if (ret_errors)
                *ret_errors = r < 0 ? steal_pointer(&errors) : NULL;
        return r;
}


static const BrokerHooks daemon_hooks = {
        .reload = daemon_reload,
        .federation = daemon_federation,
        .netvm_prepare = netvm_links_prepare,
        .record_generation = generations_record,
        .vm_ensure_running = lifecycle_vm_ensure_running,
        .dispvm_start = lifecycle_dispvm_start,
        .dispvm_release = lifecycle_dispvm_release,
        .dispvm_is_running = lifecycle_dispvm_is_running,
};

int daemon_new(const DaemonOptions *o, Daemon **ret) {
        BrokerOptions bo = { .config_dir = o->config_dir, .state_dir = o->state_dir, .bridge = o->bridge };
        Daemon *d = g_new0(Daemon, 1);
        Broker *b;
        int r;

        /* Resolved once here: NSS lookups never run on the loop. */
        if (o->manage_group) {
                struct group *gr = getgrnam(o->manage_group);
                if (gr) {
                        bo.have_manage_gid = true;
                        bo.manage_gid = gr->gr_gid;
                } else
                        log_debug("No group %s: only root and polkit may change the federation.", o->manage_group);
        }
        r = broker_new(&bo, &daemon_hooks, &b);
        if (r < 0) {
                g_free(d);
                return r;
        }
        d->broker = b;
        d->libvirt_uri = g_strdup(o->libvirt_uri);
        d->bus_address = g_strdup(o->bus_address);
        d->domain_prefix = g_strdup(o->domain_prefix);
        d->loop = g_main_loop_new(NULL, FALSE);
        broker_set_operations(b, operation_set_new());
        /* The second VM events watch, after the broker's own: the channels (disposables' go when they stop). */
        broker_set_channel_table(b, channel_table_new(b));
        *ret = d;
        return 0;
}

Broker *daemon_broker(Daemon *d) {
        return d->broker;
}

Daemon *daemon_free(Daemon *d) {
        if (!d)
                return NULL;
        Broker *b = d->broker;
        guest_services_stop(b); /* fail pending requests while disposables can still be released */
        vm_events_flush(broker_vm_events(b)); /* what happened so far reaches its watches */
        lifecycle_free(broker_lifecycle(b));
        broker_set_lifecycle(b, NULL);
        vm_events_flush(broker_vm_events(b)); /* and the ends of operations abandoned there */
        netvm_links_free(broker_netvm_links(b));
        broker_set_netvm_links(b, NULL);
        channel_table_free(broker_channel_table(b));
        broker_set_channel_table(b, NULL);
        guest_services_free(b);
        d->hypervisor = hypervisor_free(d->hypervisor);
        d->bus_source = bus_source_free(d->bus_source);
        if (broker_bus(b)) {
                sd_bus_flush_close_unref(broker_bus(b));
                broker_set_bus(b, NULL);
        }
        OperationSet *operations = broker_operations(b);
        broker_free(b); /* runs the ends of operations still queued: the set goes after it */
        operation_set_free(operations);
        g_clear_pointer(&d->loop, g_main_loop_unref);
        g_free(d->libvirt_uri);
        g_free(d->bus_address);
        g_free(d->domain_prefix);
        g_free(d);
        return NULL;
}

static void bus_closed(void *userdata, int error) {
        Daemon *d = userdata;

        log_error_errno(error, "Lost the bus connection: %m; exiting.");
        d->exit_status = 1;
        g_main_loop_quit(d->loop);
}

static int daemon_connect_bus(Daemon *d) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (d->bus_address) {
                r = sd_bus_new(&bus);
                if (r < 0)
                        return r;
                r = sd_bus_set_address(bus, d->bus_address);
                if (r < 0)
                        return log_error_errno(r, "Bad bus address %s: %m", d->bus_address);
                r = sd_bus_set_bus_client(bus, 1);
                if (r < 0)
                        return r;
                /* Treat a private bus like the system bus: we authorize callers ourselves. */
                r = sd_bus_set_trusted(bus, 0);
                if (r < 0)
                        return r;
                r = sd_bus_start(bus);
                if (r < 0)
                        return log_error_errno(r, "Cannot connect to the bus at %s: %m", d->bus_address);
        } else {
                r = sd_bus_open_system(&bus);
                if (r < 0)
                        return log_error_errno(r, "Cannot connect to the system bus: %m");
        }
        (void) sd_bus_set_description(bus, "vmfedd");
        broker_set_bus(d->broker, steal_pointer(&bus));
        return 0;
}

int daemon_start(Daemon *d) {
        Broker *b = d->broker;
        sd_bus *bus;
        Lifecycle *l = NULL;
        NetvmLinks *n = NULL;
        int r;

        r = errors_register();
        if (r < 0)
                return r;
        r = hypervisor_init_event_loop();
        if (r < 0)
                return r;

        (void) broker_reload(b, NULL);

        r = daemon_connect_bus(d);
        if (r < 0)
                return r;
        bus = broker_bus(b);

        r = manager_register(b);
        if (r >= 0)
                r = policy_iface_register(b);
        if (r >= 0)
                r = vm_object_register(b);
        if (r >= 0)
                r = guest_services_start(b);
        if (r >= 0)
                r = sd_bus_add_object_manager(bus, NULL, BROKER_ROOT_PATH);
        if (r < 0)
                return log_error_errno(r, "Cannot export objects: %m");

        r = netvm_links_new(b, &n); /* before the federation: it reports VMs as they run */
        if (r < 0)
                return r;
        broker_set_netvm_links(b, n);
        r = lifecycle_new(b, d->domain_prefix, broker_bridge(b), &l);
        if (r < 0)
                return r;
        broker_set_lifecycle(b, l);
        r = hypervisor_new(b, d->libvirt_uri, &d->hypervisor);
        if (r < 0)
                return r;
        hypervisor_refresh_states(d->hypervisor);

        r = channel_sync_all(b);
        if (r < 0)
                log_warning_errno(r, "Some guest channels are not available: %m");
        channel_access_share(b, NULL); /* QEMU reconnects to sockets this broker re-created */

        r = sd_bus_request_name(bus, BROKER_BUS_NAME, 0);
        if (r == -EEXIST)
                return log_error_errno(r, "%s is already owned: is another vmfedd running?", BROKER_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Cannot own %s: %m", BROKER_BUS_NAME);

        r = bus_source_attach(bus, bus_closed, d, &d->bus_source);
        if (r < 0)
                return log_error_errno(r, "Cannot attach the bus to the main loop: %m");

        log_info("vmfedd %s serving %s (config %s, state %s, libvirt %s).", VMFED_VERSION, BROKER_BUS_NAME,
                 broker_config_dir(b), broker_state_dir(b), d->libvirt_uri);
        return 0;
}

int daemon_run(Daemon *d) {
        g_main_loop_run(d->loop);
        return d->exit_status;
}

void daemon_quit(Daemon *d) {
        g_main_loop_quit(d->loop);
}
