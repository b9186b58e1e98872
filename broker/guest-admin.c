/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Management requests from guests (Guest.SwitchPersona/StartVM/StopVM/
 * ListVMs): policy services vmfed.Admin.<Op> with the VM acted on as
 * target, carried out by the same federation operations as the Manager's.
 */
#include "broker/guest-services.h"

#include <errno.h>
#include <string.h>

#include "broker/ask.h"
#include "broker/channel.h"
#include "broker/errors.h"
#include "broker/lifecycle.h"
#include "broker/operation.h"
#include "common/log.h"
#include "common/macro.h"


/*
 * Switch, start and stop exactly as the host's Manager does them
 * (broker/lifecycle-iface.c): an Operation (Progress signals, tracked by
 * the lifecycle) around the federation library's call.  Only who decided
 * differs: the policy, for guests.
 */
typedef struct AdminOp {
        BrokerVmReadyFn cb;
        void *userdata;
        char *vm;
} AdminOp;

static void admin_op_done(Broker *b, int r, const char *message, void *userdata) {
        AdminOp *o = userdata;
        o->cb(b, r, o->vm, r < 0 ? message : NULL, o->userdata);
        g_free(o->vm);
        g_free(o);
}

int guest_admin_operation(Broker *b, GuestAdminKind kind, const char *name, BrokerVmReadyFn cb, void *userdata,
                           char **ret_error) {
        const char *reason;
        Federation *f = lifecycle_federation(broker_lifecycle(b), &reason);
        g_autofree char *error = NULL;
        int r;

        if (!f) {
                *ret_error = g_strdup(reason);
                return -ENXIO;
        }
        AdminOp *o = g_new0(AdminOp, 1);
        o->cb = cb;
        o->userdata = userdata;
        o->vm = g_strdup(name);
        g_autofree char *what = g_strdup_printf("%s %s (asked by a guest)",
                                                kind == GUEST_ADMIN_START ? "start" : kind == GUEST_ADMIN_STOP ? "stop" : "switch to",
                                                name);
        Operation *op = operation_new(b, NULL, what, admin_op_done, o);
        switch (kind) {
        case GUEST_ADMIN_START:
                r = federation_start_vm(f, name, operation_callbacks(op), &error);
                break;
        case GUEST_ADMIN_STOP:
                r = federation_stop_vm(f, name, false, operation_callbacks(op), &error);
                break;
        default:
                r = federation_switch_persona(f, name, operation_callbacks(op), &error);
                break;
        }
        if (r == -EALREADY) {
                operation_finish(op, 0, NULL); /* already running: what was asked for */
                return 0;
        }
        if (r < 0) {
                operation_cancel(op);
                g_free(o->vm);
                g_free(o);
                *ret_error = g_steal_pointer(&error);
                return r;
        }
        return 0;
}

static int admin_switch_persona(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error) {
        return guest_admin_operation(b, GUEST_ADMIN_SWITCH, name, cb, userdata, ret_error);
}

static int admin_stop_vm(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error) {
        return guest_admin_operation(b, GUEST_ADMIN_STOP, name, cb, userdata, ret_error);
}

static int admin_start_vm(Broker *b, const char *name, BrokerVmReadyFn cb, void *userdata, char **ret_error) {
        return guest_admin_operation(b, GUEST_ADMIN_START, name, cb, userdata, ret_error);
}

/* ---- management from guests: vmfed.Admin.<Op> ---------------------------------------- */

typedef struct AdminRequest {
        Broker *broker;
        sd_bus_message *m;
        char *op;   /* "SwitchPersona", "StartVM", "StopVM" */
        char *vm;
        char *source;
} AdminRequest;

static void admin_request_free(AdminRequest *a) {
        if (!a)
                return;
        sd_bus_message_unref(a->m);
        g_free(a->op);
        g_free(a->vm);
        g_free(a->source);
        g_free(a);
}

static void admin_done(Broker *b, int r, const char *vm, const char *error, void *userdata) {
        AdminRequest *a = userdata;
        if (r < 0)
                (void) sd_bus_reply_method_errorf(a->m, r == -EBUSY ? VMFED_ERROR_BUSY : VMFED_ERROR_FAILED, "%s %s: %s",
                                                  a->op, a->vm, error ? error : strerror(-r));
        else
                (void) sd_bus_reply_method_return(a->m, NULL);
        admin_request_free(a);
}

/* The same internal functions as the host's Manager; only who decides differs. */
static void admin_act(AdminRequest *a) {
        Broker *b = a->broker;
        g_autofree char *err = NULL;
        int r;

        if (strcmp(a->op, "StartVM") == 0)
                r = admin_start_vm(b, a->vm, admin_done, a, &err);
        else if (strcmp(a->op, "StopVM") == 0)
                r = admin_stop_vm(b, a->vm, admin_done, a, &err);
        else
                r = admin_switch_persona(b, a->vm, admin_done, a, &err);
        if (r < 0) {
                (void) sd_bus_reply_method_errorf(a->m,
                                                  r == -ENOENT  ? VMFED_ERROR_NOT_FOUND
                                                  : r == -EBUSY ? VMFED_ERROR_BUSY
                                                                : VMFED_ERROR_FAILED,
                                                  "%s %s: %s", a->op, a->vm, err ? err : strerror(-r));
                admin_request_free(a);
        }
}

static int admin_answered(Broker *b, const char *target, const char *why, char **ret_why, void *userdata) {
        AdminRequest *a = userdata;
        PolicyDecision d;
        char rule[300];
        g_autofree char *service = g_strdup_printf("vmfed.Admin.%s", a->op);

        if (!target) {
                (void) sd_bus_reply_method_errorf(a->m, VMFED_ERROR_ACCESS_DENIED, "%s", why);
                admin_request_free(a);
                return 0;
        }
        int r = guest_services_evaluate(b, service, NULL, a->source, a->vm, &d, rule, sizeof rule);
        if (r < 0 || d.action == POLICY_ACTION_DENY) {
                *ret_why = g_strdup_printf("The policy does not allow %s on %s now (%s).", service, a->vm, rule);
                (void) sd_bus_reply_method_errorf(a->m, VMFED_ERROR_ACCESS_DENIED, "%s", *ret_why);
                admin_request_free(a);
                return -EACCES;
        }
        admin_act(a);
        return 0;
}

int guest_admin_request(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        Broker *b = guest_connection_broker(g);
        const char *op = sd_bus_message_get_member(m);
        const char *untrusted_vm, *source = guest_connection_vm(g);
        char rule[300];
        PolicyDecision d;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_vm);
        if (r < 0)
                return r;
        if (guest_connection_check_flood(g) < 0)
                return 1;
        if (strlen(untrusted_vm) > POLICY_NAME_MAX || !broker_find_vm(b, untrusted_vm))
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND, "No VM named '%s'.",
                                         ERRORS_EXCERPT(untrusted_vm, 64));
        const char *vm = untrusted_vm;
        g_autofree char *service = g_strdup_printf("vmfed.Admin.%s", op);

        r = guest_services_evaluate(b, service, NULL, source, vm, &d, rule, sizeof rule);
        guest_services_audit(b, source, vm, service, NULL, r < 0 ? "deny" : policy_action_to_string(d.action), rule,
                             d.notify);
        if (r < 0 || d.action == POLICY_ACTION_DENY)
                return sd_bus_error_setf(error, VMFED_ERROR_ACCESS_DENIED, "The policy does not allow %s on %s (%s).",
                                         service, vm, rule);

        AdminRequest *a = g_new0(AdminRequest, 1);
        a->broker = b;
        a->m = sd_bus_message_ref(m);
        a->op = g_strdup(op);
        a->vm = g_strdup(vm);
        a->source = g_strdup(source);
        if (d.action == POLICY_ACTION_ALLOW) {
                admin_act(a);
                return 1;
        }
        char *cands[] = { (char *) vm, NULL };
        if (ask_new(b, source, service, cands, vm, d.notify, admin_answered, a) < 0) {
                admin_request_free(a);
                return sd_bus_error_set(error, VMFED_ERROR_BUSY, "Too many questions pending; try again.");
        }
        return 1;
}

int guest_admin_list_vms(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        GuestConnection *g = userdata;
        Broker *b = guest_connection_broker(g);
        const char *source = guest_connection_vm(g);
        PolicyDecision d;
        char rule[300];
        int r;

        if (guest_connection_check_flood(g) < 0)
                return 1;
        r = guest_services_evaluate(b, "vmfed.Admin.ListVMs", NULL, source, "@host", &d, rule, sizeof rule);
        guest_services_audit(b, source, "@host", "vmfed.Admin.ListVMs", NULL, r < 0 ? "deny" : policy_action_to_string(d.action),
              rule, d.notify);
        if (r < 0 || d.action != POLICY_ACTION_ALLOW)
                return sd_bus_error_setf(error, VMFED_ERROR_ACCESS_DENIED,
                                         "The policy does not allow vmfed.Admin.ListVMs (%s).", rule);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ss)");
        for (guint i = 0; r >= 0 && i < vm_model_n_vms(broker_model(b)); i++) {
                const VmSpec *c = vm_model_vm(broker_model(b), i);
                const char *state = guest_services_vm_state(b, c->name);
                r = sd_bus_message_append(reply, "(ss)", c->name, state ? state : "unknown");
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

