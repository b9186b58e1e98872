/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/ask.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "broker/audit.h"
#include "broker/auth.h"
#include "broker/errors.h"
#include "broker/guest-services.h"
#include "common/log.h"
#include "common/macro.h"

typedef struct Ask {
        AskQueue *queue;
        uint64_t id;
        char *source;
        char *service;
        char **candidates;
        char *default_target;
        AskAnswerFn answer;
        void *userdata;
        guint timeout_id;
        bool notify; /* the rule said notify=yes: the outcome is also Policy.RequestNotified */
} Ask;

struct AskQueue {
        unsigned timeout_sec;
        uint64_t next_id;
        GHashTable *asks; /* id → Ask* */
};

static void ask_free(void *p) {
        Ask *a = p;
        if (!a)
                return;
        if (a->timeout_id)
                g_source_remove(a->timeout_id);
        g_free(a->source);
        g_free(a->service);
        g_strfreev(a->candidates);
        g_free(a->default_target);
        g_free(a);
}

AskQueue *ask_queue_new(unsigned timeout_sec) {
        AskQueue *q = g_new0(AskQueue, 1);
        q->timeout_sec = timeout_sec;
        q->next_id = 1;
        q->asks = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, ask_free);
        return q;
}

AskQueue *ask_queue_free(AskQueue *q) {
        if (!q)
                return NULL;
        g_hash_table_unref(q->asks);
        g_free(q);
        return NULL;
}

static AskQueue *ask_queue_of(Broker *b) {
        return guest_services_asks(b);
}

/* id, source, service, candidates, default_target */
static int ask_append(sd_bus_message *m, Ask *a) {
        int r = sd_bus_message_append(m, "tss", a->id, a->source, a->service);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, a->candidates);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", a->default_target);
        return r;
}

static void ask_emit_finished(Broker *b, uint64_t id, const char *outcome, const char *target) {
        if (broker_bus(b))
                (void) sd_bus_emit_signal(broker_bus(b), BROKER_ROOT_PATH, ASK_INTERFACE, "AskFinished", "tss", id,
                                          outcome, target ? target : "");
}

/* Remove the ask from the queue and return it (the caller frees it). */
static Ask *ask_take(AskQueue *q, uint64_t id) {
        Ask *a = g_hash_table_lookup(q->asks, &id);
        if (a)
                g_hash_table_steal(q->asks, &id);
        return a;
}

static void ask_audit(Broker *b, Ask *a, const char *decision, const char *target, const char *rule) {
        uint64_t id = broker_next_request_id(b);

        if (a->notify && strcmp(decision, "ask") != 0) {
                /* a->service is "SERVICE[+ARG]" */
                const char *plus = strchr(a->service, '+');
                g_autofree char *service = plus ? g_strndup(a->service, plus - a->service) : g_strdup(a->service);
                BrokerRequestNotice n = { .id = id, .service = service, .arg = plus ? plus + 1 : "",
                                          .source = a->source, .target = target, .decision = decision, .rule = rule };
                broker_post_request_notified(b, &n);
        }
        audit_log(&(AuditRecord) {
                .request_id = id,
                .source = a->source,
                .caller = "ask",
                .target = target ? target : "",
                .service = a->service,
                .decision = decision,
                .rule = rule,
        });
}

/* The timeout needs the broker: keep it next to the ask. */
typedef struct AskTimeout {
        Broker *broker;
        uint64_t id;
} AskTimeout;

static gboolean ask_timeout_fired(gpointer userdata) {
        AskTimeout *t = userdata;
        AskQueue *q = ask_queue_of(t->broker);
        Ask *a = q ? ask_take(q, t->id) : NULL;

        if (!a)
                return G_SOURCE_REMOVE;
        a->timeout_id = 0; /* this source is being removed by returning */
        log_info("Ask %" PRIu64 " (%s from %s) timed out: denied.", a->id, a->service, a->source);
        ask_audit(t->broker, a, "deny", NULL, "ask:timeout");
        ask_emit_finished(t->broker, a->id, "timeout", NULL);
        (void) a->answer(t->broker, NULL, "Nobody answered the question in time; denied.", NULL, a->userdata);
        ask_free(a);
        return G_SOURCE_REMOVE;
}

int64_t ask_new(Broker *b, const char *source, const char *service, char **candidates, const char *default_target,
                bool notify, AskAnswerFn answer, void *userdata) {
        AskQueue *q = ask_queue_of(b);

        if (!q || g_hash_table_size(q->asks) >= ASK_MAX_PENDING)
                return -EBUSY;
        GHashTableIter it;
        gpointer value;
        unsigned from_source = 0;
        g_hash_table_iter_init(&it, q->asks);
        while (g_hash_table_iter_next(&it, NULL, &value))
                from_source += strcmp(((Ask *) value)->source, source) == 0;
        if (from_source >= ASK_MAX_PENDING_PER_SOURCE)
                return -EBUSY;
        Ask *a = g_new0(Ask, 1);
        a->queue = q;
        a->id = q->next_id++;
        a->source = g_strdup(source);
        a->service = g_strdup(service);
        a->candidates = g_strdupv(candidates);
        a->default_target = g_strdup(default_target ? default_target : "");
        a->answer = answer;
        a->userdata = userdata;
        a->notify = notify;
        AskTimeout *t = g_new0(AskTimeout, 1);
        t->broker = b;
        t->id = a->id;
        a->timeout_id = g_timeout_add_seconds_full(G_PRIORITY_DEFAULT, q->timeout_sec, ask_timeout_fired, t, g_free);
        g_hash_table_insert(q->asks, &a->id, a);

        ask_audit(b, a, "ask", a->default_target, "ask:pending");
        if (broker_bus(b)) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *sig = NULL;
                int r = sd_bus_message_new_signal(broker_bus(b), &sig, BROKER_ROOT_PATH, ASK_INTERFACE, "AskRequested");
                if (r >= 0)
                        r = ask_append(sig, a);
                if (r >= 0)
                        r = sd_bus_send(broker_bus(b), sig, NULL);
                if (r < 0)
                        log_warning_errno(r, "Cannot announce question %" PRIu64 ": %m", a->id);
        }
        return (int64_t) a->id;
}

void ask_queue_cancel_all(Broker *b) {
        AskQueue *q = ask_queue_of(b);
        if (!q)
                return;
        g_autoptr(GList) ids = g_hash_table_get_keys(q->asks);
        g_autoptr(GArray) copy = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        for (GList *l = ids; l; l = l->next)
                g_array_append_val(copy, *(uint64_t *) l->data);
        for (guint i = 0; i < copy->len; i++) {
                Ask *a = ask_take(q, g_array_index(copy, uint64_t, i));
                if (!a)
                        continue;
                ask_audit(b, a, "deny", NULL, "ask:cancelled");
                ask_emit_finished(b, a->id, "cancelled", NULL);
                (void) a->answer(b, NULL, "The broker is shutting down; nothing was done.", NULL, a->userdata);
                ask_free(a);
        }
}

/* ---- org.vmfed.Federation1.Ask ---------------------------------------------------- */

typedef struct AnswerCall {
        uint64_t id;
        char *target; /* NULL: DenyAsk */
} AnswerCall;

static void answer_call_free(void *p) {
        AnswerCall *c = p;
        if (!c)
                return;
        g_free(c->target);
        g_free(c);
}

static void answer_auth_done(Broker *b, sd_bus_message *m, bool allowed, const char *how, const char *who,
                             void *userdata) {
        AnswerCall *c = userdata;
        AskQueue *q = ask_queue_of(b);
        g_autofree char *why = NULL;

        /* Only a refusal is audited here; an answer is audited as the question's outcome (ask_audit). */
        if (!allowed) {
                (void) auth_audit_decision(b, m, false, how, who, &(AuthAction) {
                        .service = c->target ? "vmfed.Admin.AnswerAsk" : "vmfed.Admin.DenyAsk",
                        .activity = "Answering questions",
                });
                return;
        }
        /* Answered meanwhile (or timed out) while polkit was asked. */
        Ask *a = q ? ask_take(q, c->id) : NULL;
        if (!a) {
                (void) sd_bus_reply_method_errorf(m, VMFED_ERROR_NOT_FOUND,
                                                  "Question %" PRIu64 " is not pending any more.", c->id);
                return;
        }
        if (!c->target) {
                ask_audit(b, a, "deny", NULL, who);
                ask_emit_finished(b, a->id, "denied", NULL);
                (void) a->answer(b, NULL, "The request was denied when asked.", NULL, a->userdata);
                ask_free(a);
                (void) sd_bus_reply_method_return(m, NULL);
                return;
        }
        int r = a->answer(b, c->target, NULL, &why, a->userdata);
        if (r < 0) {
                ask_audit(b, a, "deny", c->target, "ask:answer-refused-by-policy");
                ask_emit_finished(b, a->id, "denied", c->target);
                ask_free(a);
                (void) sd_bus_reply_method_errorf(m, VMFED_ERROR_ACCESS_DENIED, "%s",
                                                  why ? why : "The policy does not allow that target.");
                return;
        }
        ask_audit(b, a, "allow", c->target, who);
        ask_emit_finished(b, a->id, "allowed", c->target);
        ask_free(a);
        (void) sd_bus_reply_method_return(m, NULL);
}

static int method_answer(sd_bus_message *m, void *userdata, sd_bus_error *error, bool deny) {
        Broker *b = userdata;
        AskQueue *q = ask_queue_of(b);
        const char *untrusted_target = NULL;
        uint64_t id;
        int r;

        r = sd_bus_message_read(m, "t", &id);
        if (r < 0)
                return r;
        if (!deny) {
                r = sd_bus_message_read(m, "s", &untrusted_target);
                if (r < 0)
                        return r;
        }
        Ask *a = q ? g_hash_table_lookup(q->asks, &id) : NULL;
        if (!a)
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                         "No pending question %" PRIu64 " (answered, timed out or never asked).", id);
        if (!deny) {
                if (!*untrusted_target)
                        untrusted_target = a->default_target;
                if (!*untrusted_target || !g_strv_contains((const char *const *) a->candidates, untrusted_target))
                        return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                                 "'%s' is not one of the targets offered for question %" PRIu64 ".",
                                                 ERRORS_EXCERPT(untrusted_target, 64), id);
        }
        AnswerCall *c = g_new0(AnswerCall, 1);
        c->id = id;
        c->target = deny ? NULL : g_strdup(untrusted_target);
        auth_check_manage(b, m, answer_auth_done, c, answer_call_free);
        return 1;
}

static int method_answer_ask(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_answer(m, userdata, error, false);
}

static int method_deny_ask(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_answer(m, userdata, error, true);
}

static int method_list_asks(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Broker *b = userdata;
        AskQueue *q = ask_queue_of(b);
        g_autoptr(GList) values = q ? g_hash_table_get_values(q->asks) : NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(tssass)");
        if (r < 0)
                return r;
        for (GList *l = values; l; l = l->next) {
                Ask *a = l->data;
                r = sd_bus_message_open_container(reply, 'r', "tssass");
                if (r >= 0)
                        r = ask_append(reply, a);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static const sd_bus_vtable ask_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("ListAsks", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(tssass)", asks), method_list_asks,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AnswerAsk", SD_BUS_ARGS("t", id, "s", target), SD_BUS_NO_RESULT, method_answer_ask,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DenyAsk", SD_BUS_ARGS("t", id), SD_BUS_NO_RESULT, method_deny_ask,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("AskRequested",
                                SD_BUS_ARGS("t", id, "s", source, "s", service, "as", candidates, "s",
                                            default_target),
                                0),
        SD_BUS_SIGNAL_WITH_ARGS("AskFinished", SD_BUS_ARGS("t", id, "s", outcome, "s", target), 0),
        SD_BUS_VTABLE_END,
};

int ask_register(Broker *b) {
        return sd_bus_add_object_vtable(broker_bus(b), NULL, BROKER_ROOT_PATH, ASK_INTERFACE, ask_vtable, b);
}
