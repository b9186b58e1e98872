/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The caller's end of a stream: an app of this VM called Guest1.OpenStream,
 * the broker answered with a port and a tag, the app got one end of a
 * socketpair.  The app's writes go out in frames (its shutdown(SHUT_WR)
 * becomes the EOF frame), the frames coming in go to the app (the EOF
 * frame becomes our shutdown(SHUT_WR)).  Agent1.StreamEnded says the
 * stream is over at the broker; WaitStream answers once all the data up
 * to the EOF frame was passed to the app, or at once for an abort.
 */
#include "services/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "policy/name.h" /* the names' syntax only: the agent does not link the policy library */
#include "services/stream-internal.h"

#define KEY_SHOWN_MAX 64

void stream_result_free(void *p) {
        StreamResult *r = p;
        if (!r)
                return;
        g_free(r->message);
        g_free(r);
}

static void caller_answer(Stream *s) {
        StreamTable *t = s->table;

        if (s->answered)
                return;
        s->answered = true;
        for (guint i = 0; i < s->waiters->len; i++)
                (void) sd_bus_reply_method_return(s->waiters->pdata[i], "is", s->status, s->message ? s->message : "");
        g_ptr_array_set_size(s->waiters, 0);

        StreamResult *res = g_new0(StreamResult, 1);
        res->local_id = s->local_id;
        res->status = s->status;
        res->message = g_strdup(s->message);
        g_hash_table_replace(t->results, &res->local_id, res);
        g_queue_push_tail(&t->results_order, res);
        while (g_queue_get_length(&t->results_order) > STREAM_RESULTS_KEPT) {
                StreamResult *old = g_queue_pop_head(&t->results_order);
                g_hash_table_remove(t->results, &old->local_id);
        }
}

void stream_caller_progress(Stream *s) {
        if (!s->ended || !s->in_done)
                return;
        caller_answer(s);
        if (!s->out_done)
                return; /* our EOF frame is on its way */
        log_debug("Stream %" PRIu64 " (%" PRIu64 " here) ended: status %d.", s->id, s->local_id, s->status);
        stream_free(s);
}

void stream_caller_finish(Stream *s, int status, const char *message) {
        if (!s->answered) {
                s->status = status;
                g_free(s->message);
                s->message = g_strdup(message);
        }
        s->ended = true;
        caller_answer(s);
        stream_free(s); /* closes our end: the app reads EOF, its writes fail */
}

int stream_table_stream_ended(StreamTable *t, sd_bus_message *m, sd_bus_error *error) {
        const char *untrusted_message;
        uint64_t untrusted_id;
        int32_t untrusted_status;
        int r;

        r = sd_bus_message_read(m, "tis", &untrusted_id, &untrusted_status, &untrusted_message);
        if (r < 0)
                return r;
        if (!stream_status_is_valid(untrusted_status))
                return sd_bus_error_setf(error, STREAM_ERROR_INVALID_ARGS,
                                         "Exit status %d is not -1, an exit code (0-255) or 128+signal.",
                                         untrusted_status);
        if (strlen(untrusted_message) > STREAM_MESSAGE_MAX)
                return sd_bus_error_setf(error, STREAM_ERROR_INVALID_ARGS, "The message is longer than %d bytes.",
                                         STREAM_MESSAGE_MAX);
        Stream *s = g_hash_table_lookup(t->streams, &untrusted_id);
        if (!s || s->role != STREAM_CALLER)
                return sd_bus_error_setf(error, STREAM_ERROR_NOT_FOUND, "No stream %" PRIu64 " was opened here.",
                                         untrusted_id);
        if (s->ended)
                return sd_bus_reply_method_return(m, NULL);
        if (untrusted_status < 0) {
                log_info("Stream %" PRIu64 " failed: %s", s->id, untrusted_message);
                stream_caller_finish(s, -1, *untrusted_message ? untrusted_message : "the stream failed");
                return sd_bus_reply_method_return(m, NULL);
        }
        s->ended = true;
        s->status = untrusted_status;
        s->message = *untrusted_message ? g_strdup(untrusted_message) : NULL;
        if (!s->out_done) {
                /* The handler is gone: no more input; the app's further writes fail with EPIPE. */
                stream_finish_output(s);
                (void) shutdown(s->app_fd, SHUT_RD);
        }
        stream_caller_progress(s);
        return sd_bus_reply_method_return(m, NULL);
}

/* ---- Guest1 ------------------------------------------------------------------------------------ */

static int check_name(const char *what, const char *untrusted, long bad_at, const char *syntax, sd_bus_error *error) {
        if (bad_at < 0)
                return 0;
        if (strlen(untrusted) <= KEY_SHOWN_MAX) /* a D-Bus string: valid UTF-8 as a whole */
                return sd_bus_error_setf(error, STREAM_ERROR_INVALID_ARGS, "%s '%s' is not %s (first bad byte at %ld).",
                                         what, untrusted, syntax, bad_at);
        return sd_bus_error_setf(error, STREAM_ERROR_INVALID_ARGS, "The %s of %zu bytes is not %s.", what,
                                 strlen(untrusted), syntax);
}

int stream_table_check_open(sd_bus_message *m, const char **ret_target, const char **ret_service,
                            const char **ret_argument, sd_bus_error *error) {
        const char *untrusted_target, *untrusted_service, *untrusted_arg, *untrusted_key;
        int r;

        r = sd_bus_message_read(m, "sss", &untrusted_target, &untrusted_service, &untrusted_arg);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'e', "sv");
        if (r < 0)
                return r;
        if (r > 0) {
                r = sd_bus_message_read(m, "s", &untrusted_key);
                if (r < 0)
                        return r;
                if (strlen(untrusted_key) > KEY_SHOWN_MAX)
                        return sd_bus_error_setf(error, STREAM_ERROR_INVALID_ARGS,
                                                 "Unknown option (a key of %zu bytes): OpenStream takes none yet.",
                                                 strlen(untrusted_key));
                return sd_bus_error_setf(error, STREAM_ERROR_INVALID_ARGS,
                                         "Unknown option '%s': OpenStream takes none yet.", untrusted_key);
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        r = check_name("Service", untrusted_service, policy_service_invalid_at(untrusted_service, strlen(untrusted_service)),
                       "a service name ([A-Za-z0-9_.-], 1 to 127 characters)", error);
        if (r < 0)
                return r;
        r = check_name("Argument", untrusted_arg, policy_arg_invalid_at(untrusted_arg, strlen(untrusted_arg)),
                       "a service argument ([A-Za-z0-9_.+-], at most 127 characters)", error);
        if (r < 0)
                return r;
        if (!*untrusted_target)
                return sd_bus_error_set(error, STREAM_ERROR_INVALID_ARGS,
                                        "No target: a VM name, @default or @dispvm.");
        *ret_target = untrusted_target;
        *ret_service = untrusted_service;
        *ret_argument = untrusted_arg;
        return 0;
}

/* The app's socketpair, the stream bound to the port, the answer. */
static int caller_start(StreamTable *t, sd_bus_message *guest_call, uint64_t id, unsigned port, uint32_t tag,
                        char **ret_why) {
        int fds[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
                *ret_why = g_strdup_printf("Cannot make the stream's socket: %s", strerror(errno));
                return -errno;
        }
        _cleanup_close_ int app_end = fds[1]; /* blocking: the app's, as any socket it would make */
        (void) fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);

        Stream *s = stream_new(t, STREAM_CALLER, id, port, tag);
        s->app_fd = fds[0];
        stream_attach(s, s->app_fd, s->app_fd);
        log_debug("Stream %" PRIu64 " (%" PRIu64 " here) on port %u.", id, s->local_id, port);
        int r = sd_bus_reply_method_return(guest_call, "ht", app_end, s->local_id);
        if (r < 0) /* the app's end closes here: ours sees it go, and the stream closes */
                log_debug_errno(r, "Cannot answer OpenStream: %m");
        return 0;
}

int stream_table_opened(StreamTable *t, sd_bus_message *guest_call, sd_bus_message *broker_reply) {
        const char *untrusted_vm;
        uint32_t untrusted_port, untrusted_tag;
        uint64_t untrusted_id;
        g_autofree char *why = NULL;
        int r;

        r = sd_bus_message_read(broker_reply, "suut", &untrusted_vm, &untrusted_port, &untrusted_tag, &untrusted_id);
        if (r < 0)
                return r;
        bool duplicate = g_hash_table_contains(t->streams, &untrusted_id);
        if (!sd_bus_is_open(sd_bus_message_get_bus(guest_call)))
                why = g_strdup("The app went away before its stream was set up.");
        else if ((strcmp(untrusted_vm, "@host") != 0 /* the broker's own services (the clipboard's) */ &&
                  policy_vm_name_invalid_at(untrusted_vm, strlen(untrusted_vm)) >= 0) ||
                 untrusted_port >= t->n_ports ||
            untrusted_tag == 0 || duplicate)
                why = g_strdup_printf("The broker's answer (port %" PRIu32 ", tag %" PRIu32 ", stream %" PRIu64
                                      ") is not one this agent can use.",
                                      untrusted_port, untrusted_tag, untrusted_id);
        else if (stream_table_ensure_port(t, untrusted_port, &why) >= 0)
                r = caller_start(t, guest_call, untrusted_id, untrusted_port, untrusted_tag, &why);
        if (!why)
                return 0;
        log_warning("Stream %" PRIu64 " cannot start here: %s", untrusted_id, why);
        if (!duplicate) /* the broker's end is running: abort it */
                stream_tell_broker(t, "CloseStream", "t", untrusted_id);
        return sd_bus_reply_method_errorf(guest_call, STREAM_ERROR_FAILED, "%s", why);
}

int stream_table_wait_stream(StreamTable *t, sd_bus_message *m, sd_bus_error *error) {
        uint64_t untrusted_id;
        int r;

        r = sd_bus_message_read(m, "t", &untrusted_id);
        if (r < 0)
                return r;
        StreamResult *res = g_hash_table_lookup(t->results, &untrusted_id);
        if (res)
                return sd_bus_reply_method_return(m, "is", res->status, res->message ? res->message : "");
        Stream *s = g_hash_table_lookup(t->callers, &untrusted_id);
        if (!s)
                return sd_bus_error_setf(error, STREAM_ERROR_NOT_FOUND,
                                         "No stream %" PRIu64 " here (or it ended long ago).", untrusted_id);
        g_ptr_array_add(s->waiters, sd_bus_message_ref(m));
        return 1;
}
