/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Streams from the host (vmfedctl run): Manager.RunService and
 * Manager.WaitStream.  The caller must be allowed to manage the federation
 * (auth.c) and the policy must allow SERVICE+ARG from @host to the VM (an
 * ask counts as a refusal here: the admin side does not answer its own
 * questions).  The caller gets one end of a socket with plain bytes; its
 * stream runs in broker/stream.c like any other.
 */
#include "broker/stream-iface.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker/auth.h"
#include "broker/channel.h"
#include "broker/errors.h"
#include "broker/guest-services.h"
#include "broker/stream.h"
#include "common/log.h"
#include "common/macro.h"

#define RESULTS_KEPT 256 /* ended host streams nobody waited for yet */

typedef struct StreamIface {
        Broker *broker;
        GHashTable *runs; /* &id → HostRun, opened and not yet waited for */
        GQueue ended;     /* HostRun, ended, oldest first (at most RESULTS_KEPT) */
} StreamIface;

typedef struct HostRun {
        StreamIface *iface;
        sd_bus_message *m;    /* RunService, until answered */
        sd_bus_message *wait; /* WaitStream, while it waits */
        char *sender, *vm, *service, *arg;
        uint64_t id;
        bool ended;
        int status;
        char *message;
} HostRun;

static void host_run_free(HostRun *q) {
        if (!q)
                return;
        sd_bus_message_unref(q->m);
        sd_bus_message_unref(q->wait);
        g_free(q->sender);
        g_free(q->vm);
        g_free(q->service);
        g_free(q->arg);
        g_free(q->message);
        g_free(q);
}

static void host_run_forget(HostRun *q) {
        if (q->id)
                g_hash_table_remove(q->iface->runs, &q->id);
        g_queue_remove(&q->iface->ended, q);
        host_run_free(q);
}

static void run_ended(Broker *b, int status, const char *message, void *userdata);

/*
 * RunService was answered with the fd already (run_authorized()): a stream that could not even be
 * set up ends here (one the target refused, e.g. no handler, ends through run_ended()), and
 * WaitStream says why.
 */
static void run_opened(Broker *b, int r, const StreamOpened *o, const char *error_name, const char *error,
                       void *userdata) {
        if (r < 0)
                run_ended(b, -1, error ? error : strerror(-r), userdata);
}

static void run_ended(Broker *b, int status, const char *message, void *userdata) {
        HostRun *q = userdata;
        q->ended = true;
        q->status = status;
        q->message = g_strdup(message ? message : "");
        if (q->wait) {
                (void) sd_bus_reply_method_return(q->wait, "is", q->status, q->message);
                host_run_forget(q);
                return;
        }
        g_queue_push_tail(&q->iface->ended, q);
        if (q->iface->ended.length > RESULTS_KEPT)
                host_run_forget(g_queue_peek_head(&q->iface->ended));
}

static void run_authorized(Broker *b, sd_bus_message *m, bool allowed, const char *how, const char *who,
                           void *userdata) {
        HostRun *q = userdata;
        StreamIface *s = q->iface;
        static const StreamCallbacks cb = { .opened = run_opened, .ended = run_ended };
        PolicyDecision d;
        char rule[300];
        int fd = -1, r;

        if (!auth_audit_decision(b, m, allowed, how, who, &(AuthAction) {
                        .target = q->vm, .service = "vmfed.Admin.RunService", .arg = q->service,
                        .activity = "Running services in VMs" })) {
                host_run_free(q);
                return;
        }
        r = guest_services_evaluate(b, q->service, q->arg, "@host", q->vm, &d, rule, sizeof rule);
        guest_services_audit(b, "@host", q->vm, q->service, q->arg,
                             r < 0 ? "deny" : d.action == POLICY_ACTION_ASK ? "deny" : policy_action_to_string(d.action),
                             rule, false);
        if (r < 0 || d.action != POLICY_ACTION_ALLOW) {
                (void) sd_bus_reply_method_errorf(m, VMFED_ERROR_ACCESS_DENIED,
                                                  "The policy does not allow %s from @host to %s (%s)%s.", q->service,
                                                  q->vm, rule,
                                                  r >= 0 && d.action == POLICY_ACTION_ASK ? "; it asks, and the host "
                                                  "does not answer its own questions: allow it for @host" : "");
                host_run_free(q);
                return;
        }
        g_free(q->vm);
        q->vm = g_strdup(d.target ? d.target : q->vm);
        /* A connected agent means the VM runs, whatever libvirt said last (as for guests' requests). */
        const char *state = guest_services_vm_state(b, q->vm);
        if (!channel_agent_bus(b, q->vm) && (!state || strcmp(state, "running") != 0)) {
                (void) sd_bus_reply_method_errorf(m, VMFED_ERROR_FAILED, "%s is not running; start it first.", q->vm);
                host_run_free(q);
                return;
        }
        StreamTable *t = guest_services_streams(b);
        q->m = sd_bus_message_ref(m);
        r = t ? stream_open_host(t, q->vm, q->service, q->arg, &cb, q, &fd, &q->id) : -ESHUTDOWN;
        if (r < 0) {
                (void) sd_bus_reply_method_errorf(m, r == -EBUSY ? VMFED_ERROR_BUSY : VMFED_ERROR_FAILED,
                                                  "Cannot open a stream to %s: %s", q->vm, strerror(-r));
                host_run_free(q);
                return;
        }
        g_hash_table_insert(s->runs, &q->id, q);
        /* The fd goes now: a handler that cannot start ends the stream (WaitStream says why). */
        (void) sd_bus_reply_method_return(m, "ht", fd, q->id);
        close(fd);
        q->m = sd_bus_message_unref(q->m);
        log_info("Stream %" PRIu64 " from the host (%s) to %s %s opened.", q->id, who, q->vm, q->service);
}

static int method_run_service(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        StreamIface *s = userdata;
        const char *untrusted_vm, *untrusted_service, *untrusted_arg;
        int r = sd_bus_message_read(m, "sss", &untrusted_vm, &untrusted_service, &untrusted_arg);
        if (r < 0)
                return r;
        if (!policy_vm_name_is_valid(untrusted_vm, strlen(untrusted_vm)))
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS, "'%s' is not a VM name.",
                                         ERRORS_EXCERPT(untrusted_vm, 64));
        if (policy_service_invalid_at(untrusted_service, strlen(untrusted_service)) >= 0 ||
            policy_arg_invalid_at(untrusted_arg, strlen(untrusted_arg)) >= 0)
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "'%s' '%s' is not a service name ([A-Za-z0-9_.-]) and argument "
                                         "([A-Za-z0-9_.+-]).",
                                         ERRORS_EXCERPT(untrusted_service, 64), ERRORS_EXCERPT(untrusted_arg, 64));
        HostRun *q = g_new0(HostRun, 1);
        q->iface = s;
        q->sender = g_strdup(sd_bus_message_get_sender(m));
        q->vm = g_strdup(untrusted_vm);
        q->service = g_strdup(untrusted_service);
        q->arg = *untrusted_arg ? g_strdup(untrusted_arg) : NULL;
        auth_check_manage(s->broker, m, run_authorized, q, NULL);
        return 1;
}

static int method_wait_stream(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        StreamIface *s = userdata;
        uint64_t untrusted_id;
        int r = sd_bus_message_read(m, "t", &untrusted_id);
        if (r < 0)
                return r;
        HostRun *q = g_hash_table_lookup(s->runs, &untrusted_id);
        if (!q || q->wait || g_strcmp0(q->sender, sd_bus_message_get_sender(m)) != 0)
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                         "No stream %" PRIu64 " of this connection to wait for.", untrusted_id);
        if (q->ended) {
                r = sd_bus_reply_method_return(m, "is", q->status, q->message);
                host_run_forget(q);
                return r;
        }
        q->wait = sd_bus_message_ref(m);
        return 1;
}

static const sd_bus_vtable stream_manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("RunService", SD_BUS_ARGS("s", vm, "s", service, "s", argument),
                                SD_BUS_RESULT("h", fd, "t", stream), method_run_service, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("WaitStream", SD_BUS_ARGS("t", stream), SD_BUS_RESULT("i", status, "s", message),
                                method_wait_stream, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static void stream_iface_free(void *userdata) {
        StreamIface *s = userdata;
        GHashTableIter it;
        gpointer value;
        g_hash_table_iter_init(&it, s->runs);
        while (g_hash_table_iter_next(&it, NULL, &value))
                host_run_free(value); /* their streams are gone: guest_services_stop() came first */
        g_hash_table_unref(s->runs);
        g_queue_clear(&s->ended);
        g_free(s);
}

int stream_iface_register(Broker *b) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        StreamIface *s = g_new0(StreamIface, 1);
        s->broker = b;
        s->runs = g_hash_table_new(g_int64_hash, g_int64_equal);
        g_queue_init(&s->ended);
        int r = sd_bus_add_object_vtable(broker_bus(b), &slot, BROKER_ROOT_PATH, MANAGER_INTERFACE,
                                         stream_manager_vtable, s);
        if (r < 0) {
                stream_iface_free(s);
                return r;
        }
        (void) sd_bus_slot_set_destroy_callback(slot, stream_iface_free);
        return sd_bus_slot_set_floating(slot, 1);
}
