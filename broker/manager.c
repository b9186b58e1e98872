/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/manager.h"

#include <errno.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/errors.h"
#include "broker/generations-iface.h"
#include "broker/stream-iface.h"
#include "broker/lifecycle-iface.h"
#include "broker/vm-config-iface.h"
#include "broker/vm-object.h"
#include "common/log.h"
#include "common/macro.h"

static int method_list_vms(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Broker *b = userdata;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssso)");
        if (r < 0)
                return r;
        for (guint i = 0; i < vm_model_n_vms(broker_model(b)); i++) {
                const VmSpec *c = vm_model_vm(broker_model(b), i);
                const VmObject *o = broker_find_vm(b, c->name);
                _cleanup_free_ char *path = vm_object_path(c->name);
                const char *role = vm_role_to_string(c->role);

                if (!path)
                        return -ENOMEM;
                r = sd_bus_message_append(reply, "(ssso)", c->name, role ? role : "",
                                          o ? o->state : "unknown", path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Broker *b = userdata;
        const char *untrusted_name;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_name);
        if (r < 0)
                return r;
        if (strlen(untrusted_name) > POLICY_NAME_MAX || !broker_find_vm(b, untrusted_name))
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                         "No VM named '%s' is defined in %s/vms.d (ListVMs shows the "
                                         "VMs that are).",
                                         ERRORS_EXCERPT(untrusted_name, 64), broker_config_dir(b));

        _cleanup_free_ char *path = vm_object_path(untrusted_name);
        if (!path)
                return -ENOMEM;
        return sd_bus_reply_method_return(m, "o", path);
}

static void reload_done(Broker *b, sd_bus_message *m, bool allowed, const char *how, const char *who,
                        void *userdata) {
        g_autoptr(GPtrArray) errors = NULL;
        int r;

        if (!auth_audit_decision(b, m, allowed, how, who, &(AuthAction) {
                        .service = "vmfed.Admin.Reload",
                        .activity = "Reloading the federation",
                }))
                return;

        r = broker_reload(b, &errors);
        if (r < 0) {
                g_autofree char *joined = errors_join(errors);
                (void) sd_bus_reply_method_errorf(
                        m, VMFED_ERROR_FAILED,
                        "Reloaded with errors (broken policy denies every request; broken VM "
                        "definitions keep the previous ones): %s",
                        joined ? joined : strerror(-r));
                return;
        }
        (void) sd_bus_reply_method_return(m, NULL);
}

static int method_reload(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Broker *b = userdata;

        /* No arguments, no no-op: authorize, then reload. */
        auth_check_manage(b, m, reload_done, NULL, NULL);
        return 1;
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", VMFED_VERSION);
}

static int property_get_active_persona(sd_bus *bus, const char *path, const char *interface,
                                       const char *property, sd_bus_message *reply, void *userdata,
                                       sd_bus_error *error) {
        Broker *b = userdata;
        return sd_bus_message_append(reply, "s", broker_active_persona(b) ? broker_active_persona(b) : "");
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ActivePersona", "s", property_get_active_persona, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListVMs", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssso)", vms), method_list_vms,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetVM", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", vm), method_get_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* The Manager interface is served by one vtable per noun: this one, lifecycle-iface.c (StartVM, StopVM,
 * SwitchPersona, Progress; also VM.Start/Stop), vm-config-iface.c (AddVM, RemoveVM) and
 * generations-iface.c (ListGenerations, Rollback); sd-bus merges them in introspection. */
static void manager_on_broker_event(Broker *b, const BrokerEvent *e, void *userdata) {
        if (e->kind == BROKER_EVENT_ACTIVE_PERSONA && broker_bus(b))
                (void) sd_bus_emit_properties_changed(broker_bus(b), BROKER_ROOT_PATH, MANAGER_INTERFACE,
                                                      "ActivePersona", NULL);
}

int manager_register(Broker *b) {
        int r;

        r = sd_bus_add_object_vtable(broker_bus(b), NULL, BROKER_ROOT_PATH, MANAGER_INTERFACE, manager_vtable, b);
        if (r < 0)
                return r;
        (void) broker_watch_add(b, manager_on_broker_event, NULL, NULL); /* ActivePersona's PropertiesChanged */
        r = lifecycle_iface_register(b);
        if (r < 0)
                return r;
        r = vm_config_iface_register(b);
        if (r < 0)
                return r;
        r = generations_iface_register(b);
        if (r < 0)
                return r;
        return stream_iface_register(b);
}
