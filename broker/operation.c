/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/operation.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "broker/errors.h"
#include "broker/vm-events.h"
#include "common/log.h"
#include "common/macro.h"

struct Operation {
        Broker *broker;
        char *id;
        char *what;
        sd_bus_message *call; /* NULL: internal */
        OperationDoneFn done;
        void *userdata;
        FederationCallbacks cb;
        int64_t t0; /* monotonic µs when it began, for the log (and the switch benchmark) */
        int r;         /* the library's result, while its end waits in the event queue */
        char *message;
};

struct OperationSet {
        GHashTable *pending; /* id → Operation* */
};

OperationSet *operation_set_new(void) {
        OperationSet *s = g_new0(OperationSet, 1);
        s->pending = g_hash_table_new(g_str_hash, g_str_equal);
        return s;
}

OperationSet *operation_set_free(OperationSet *s) {
        if (!s)
                return NULL;
        g_hash_table_unref(s->pending);
        g_free(s);
        return NULL;
}

static uint64_t next_internal_id = 1;

static void on_progress(const char *line, void *userdata) {
        operation_progress(userdata, line);
}

static void finish_deferred(void *userdata) {
        Operation *op = userdata;
        g_autofree char *message = steal_pointer(&op->message);
        operation_finish(op, op->r, message);
}

/*
 * The library is done with it: no longer pending (operation_abandon_all()
 * cannot reach it), and ended behind the VM events queued so far, so that
 * the state changes it made are on the bus before its call is answered.
 */
static void on_done(int r, const char *message, void *userdata) {
        Operation *op = userdata;

        g_hash_table_steal(broker_operations(op->broker)->pending, op->id);
        op->r = r;
        op->message = g_strdup(message);
        vm_events_defer(broker_vm_events(op->broker), finish_deferred, op);
}

Operation *operation_new(Broker *b, sd_bus_message *m, const char *what, OperationDoneFn done, void *userdata) {
        Operation *op = g_new0(Operation, 1);
        uint64_t cookie = 0;

        op->broker = b;
        op->t0 = g_get_monotonic_time();
        op->what = g_strdup(what);
        op->done = done;
        op->userdata = userdata;
        if (m) {
                op->call = sd_bus_message_ref(m);
                (void) sd_bus_message_get_cookie(m, &cookie);
                op->id = g_strdup_printf("%s/%" PRIu64, sd_bus_message_get_sender(m) ?: "?", cookie);
        } else
                op->id = g_strdup_printf("vmfedd/%" PRIu64, next_internal_id++);
        op->cb = (FederationCallbacks) { .progress = on_progress, .done = on_done, .userdata = op };
        /* Two calls cannot share a sender and a cookie; keep the id unique anyway. */
        while (g_hash_table_contains(broker_operations(b)->pending, op->id)) {
                char *id = g_strdup_printf("%s+", op->id);
                g_free(op->id);
                op->id = id;
        }
        g_hash_table_insert(broker_operations(b)->pending, op->id, op);
        log_debug("Operation %s: %s.", op->id, op->what);
        return op;
}

const char *operation_id(Operation *op) {
        return op->id;
}

const FederationCallbacks *operation_callbacks(Operation *op) {
        return &op->cb;
}

void operation_progress(Operation *op, const char *line) {
        Broker *b = op->broker;

        log_debug("Operation %s: %s", op->id, line);
        if (broker_bus(b))
                (void) sd_bus_emit_signal(broker_bus(b), BROKER_ROOT_PATH, MANAGER_INTERFACE, "Progress", "ss", op->id,
                                          line);
}

void operation_finish(Operation *op, int r, const char *message) {
        Broker *b = op->broker;

        double ms = (g_get_monotonic_time() - op->t0) / 1000.0;

        if (r < 0)
                log_warning("%s failed after %.1f ms: %s", op->what, ms, message ? message : strerror(-r));
        else
                log_info("%s: done in %.3f ms.", op->what, ms);
        /* Unregister first: done may start another operation or abandon all. */
        g_hash_table_steal(broker_operations(b)->pending, op->id);
        if (op->done)
                op->done(b, r, message, op->userdata);
        if (op->call) {
                if (r < 0) {
                        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                        /* Passthrough checks say EPERM/ENODEV: that is no AccessDenied, it is Failed. */
                        (void) errors_set_errno(&error, r == -EALREADY || r == -EPERM ? -EIO : r, "%s failed: %s", op->what,
                                                message ? message : strerror(-r));
                        (void) sd_bus_reply_method_error(op->call, &error);
                } else
                        (void) sd_bus_reply_method_return(op->call, NULL);
                sd_bus_message_unref(op->call);
        }
        g_free(op->what);
        g_free(op->id);
        g_free(op);
}

void operation_cancel(Operation *op) {
        g_hash_table_steal(broker_operations(op->broker)->pending, op->id);
        if (op->call)
                sd_bus_message_unref(op->call);
        g_free(op->what);
        g_free(op->id);
        g_free(op);
}

void operation_abandon_all(Broker *b, int r, const char *message) {
        GHashTableIter it;
        gpointer value;

        while (g_hash_table_size(broker_operations(b)->pending) > 0) {
                g_hash_table_iter_init(&it, broker_operations(b)->pending);
                if (!g_hash_table_iter_next(&it, NULL, &value))
                        break;
                operation_finish(value, r, message);
        }
}
