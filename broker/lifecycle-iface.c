/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/lifecycle-iface.h"

#include <errno.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/errors.h"
#include "broker/lifecycle.h"
#include "broker/operation.h"
#include "broker/vm-object.h"
#include "common/log.h"
#include "common/macro.h"

typedef enum RequestKind {
        REQUEST_START,
        REQUEST_STOP,
        REQUEST_SWITCH,
} RequestKind;

typedef struct Request {
        RequestKind kind;
        char *name;
        bool force;
} Request;

static void request_free(void *p) {
        Request *q = p;
        if (!q)
                return;
        g_free(q->name);
        g_free(q);
}

static const char *request_service(RequestKind k) {
        switch (k) {
        case REQUEST_START:
                return "vmfed.Admin.StartVM";
        case REQUEST_STOP:
                return "vmfed.Admin.StopVM";
        default:
                return "vmfed.Admin.SwitchPersona";
        }
}

static char *request_describe(const Request *q) {
        switch (q->kind) {
        case REQUEST_START:
                return g_strdup_printf("start %s", q->name);
        case REQUEST_STOP:
                return g_strdup_printf("%s %s", q->force ? "force-stop" : "stop", q->name);
        default:
                return g_strdup_printf("switch to persona %s", q->name);
        }
}

/* authorize → act; the reply comes when the operation ends. */
static void request_authorized(Broker *b, sd_bus_message *m, bool allowed, const char *how, const char *who,
                               void *userdata) {
        Request *q = userdata;
        const char *reason;
        Federation *f = lifecycle_federation(broker_lifecycle(b), &reason);
        g_autofree char *what = request_describe(q), *error = NULL;
        Operation *op;
        int r;

        if (!auth_audit_decision(b, m, allowed, how, who, &(AuthAction) {
                        .target = q->name,
                        .service = request_service(q->kind),
                        .arg = q->force ? "force" : NULL,
                        .activity = "Starting, stopping and switching VMs",
                }))
                return;
        if (!f) {
                (void) sd_bus_reply_method_errorf(m, VMFED_ERROR_FAILED, "Cannot %s: %s.", what, reason);
                return;
        }

        op = operation_new(b, m, what, NULL, NULL);
        switch (q->kind) {
        case REQUEST_START:
                r = federation_start_vm(f, q->name, operation_callbacks(op), &error);
                if (r == -EALREADY) /* started meanwhile: what the caller wanted */
                        r = 0, operation_finish(op, 0, NULL);
                break;
        case REQUEST_STOP:
                r = federation_stop_vm(f, q->name, q->force, operation_callbacks(op), &error);
                break;
        default:
                r = federation_switch_persona(f, q->name, operation_callbacks(op), &error);
                break;
        }
        if (r < 0)
                operation_finish(op, r, error ? error : strerror(-r));
}

/* parse → validate → no-op → authorize; shared by Manager and VM objects. */
static int request_begin(Broker *b, sd_bus_message *m, RequestKind kind, const char *untrusted_name, bool force,
                         sd_bus_error *error) {
        const char *reason;
        Federation *f = lifecycle_federation(broker_lifecycle(b), &reason);
        FederationVmState s;
        const VmSpec *spec;
        Request *q;

        /* validate */
        if (strlen(untrusted_name) > POLICY_NAME_MAX ||
            (!broker_find_vm(b, untrusted_name) && !(f && federation_vm_state(f, untrusted_name) >= 0)))
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                         "No VM named '%s' is defined in %s/vms.d (ListVMs shows the VMs that "
                                         "are).",
                                         ERRORS_EXCERPT(untrusted_name, 64), broker_config_dir(b));
        const char *name = untrusted_name;
        if (!f)
                return sd_bus_error_setf(error, VMFED_ERROR_FAILED, "Cannot act on %s: %s.", name, reason);
        s = federation_vm_state(f, name);
        spec = federation_vm_spec(f, name);
        if (kind == REQUEST_SWITCH && (!spec || spec->role != VM_ROLE_PERSONA))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "%s is %s VM, not a persona: start it with StartVM.", name,
                                         spec ? vm_role_to_string(spec->role) : "a disposable");
        if (kind == REQUEST_START && !spec)
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                         "%s is no longer defined in vms.d/ (it runs until stopped).", name);

        /* no-op */
        if (kind == REQUEST_START && s == FEDERATION_VM_RUNNING)
                return sd_bus_reply_method_return(m, NULL);
        if (kind == REQUEST_STOP && s == FEDERATION_VM_STOPPED)
                return sd_bus_reply_method_return(m, NULL);
        if (kind == REQUEST_SWITCH && !federation_switch_in_progress(f) &&
            g_strcmp0(federation_active_persona(f), name) == 0 && s == FEDERATION_VM_RUNNING)
                return sd_bus_reply_method_return(m, NULL);

        /* A second switch is refused before asking polkit (the library refuses it again after). */
        if (kind == REQUEST_SWITCH && federation_switch_in_progress(f))
                return sd_bus_error_setf(error, VMFED_ERROR_BUSY,
                                         "A persona switch is under way; try again when it has finished.");

        q = g_new0(Request, 1);
        *q = (Request) { .kind = kind, .name = g_strdup(name), .force = force };
        auth_check_manage(b, m, request_authorized, q, request_free);
        return 1;
}

/* ---- Manager ------------------------------------------------------------- */

static int method_start_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *untrusted_name;
        int r = sd_bus_message_read(m, "s", &untrusted_name);
        if (r < 0)
                return r;
        return request_begin(userdata, m, REQUEST_START, untrusted_name, false, error);
}

static int method_stop_vm(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *untrusted_name;
        int untrusted_force;
        int r = sd_bus_message_read(m, "sb", &untrusted_name, &untrusted_force);
        if (r < 0)
                return r;
        return request_begin(userdata, m, REQUEST_STOP, untrusted_name, untrusted_force, error);
}

static int method_switch_persona(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *untrusted_name;
        int r = sd_bus_message_read(m, "s", &untrusted_name);
        if (r < 0)
                return r;
        return request_begin(userdata, m, REQUEST_SWITCH, untrusted_name, false, error);
}

static const sd_bus_vtable lifecycle_manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("StartVM", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_start_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StopVM", SD_BUS_ARGS("s", name, "b", force), SD_BUS_NO_RESULT, method_stop_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SwitchPersona", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_switch_persona,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Progress", SD_BUS_ARGS("s", operation, "s", line), 0),
        SD_BUS_VTABLE_END,
};

/* ---- VM objects ------------------------------------------------------------- */

/* The VM's name from the object path the call was made on (the VM exists: the find callback checked). */
static int vm_name_of_call(sd_bus_message *m, char **ret) {
        if (sd_bus_path_decode(sd_bus_message_get_path(m), BROKER_VM_PATH_PREFIX, ret) <= 0)
                return -ENOENT;
        return 0;
}

static int method_vm_start(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *untrusted_name = NULL;
        int r = vm_name_of_call(m, &untrusted_name);
        if (r < 0)
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND, "No such VM object.");
        return request_begin(userdata, m, REQUEST_START, untrusted_name, false, error);
}

static int method_vm_stop(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *untrusted_name = NULL;
        int untrusted_force;
        int r = sd_bus_message_read(m, "b", &untrusted_force);
        if (r < 0)
                return r;
        r = vm_name_of_call(m, &untrusted_name);
        if (r < 0)
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND, "No such VM object.");
        return request_begin(userdata, m, REQUEST_STOP, untrusted_name, untrusted_force, error);
}

static const sd_bus_vtable lifecycle_vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Start", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_vm_start,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Stop", SD_BUS_ARGS("b", force), SD_BUS_NO_RESULT, method_vm_stop,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* Same objects as vm-object.c's vtable; the handlers get the Broker. */
static int vm_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                   sd_bus_error *error) {
        Broker *b = userdata;
        _cleanup_free_ char *untrusted_name = NULL;

        if (sd_bus_path_decode(path, BROKER_VM_PATH_PREFIX, &untrusted_name) <= 0)
                return 0;
        if (!broker_find_vm(b, untrusted_name))
                return 0;
        *found = b;
        return 1;
}

int lifecycle_iface_register(Broker *b) {
        int r;

        r = sd_bus_add_object_vtable(broker_bus(b), NULL, BROKER_ROOT_PATH, MANAGER_INTERFACE,
                                     lifecycle_manager_vtable, b);
        if (r < 0)
                return r;
        return sd_bus_add_fallback_vtable(broker_bus(b), NULL, BROKER_VM_PATH_PREFIX, VM_INTERFACE, lifecycle_vm_vtable,
                                          vm_find, b);
}
