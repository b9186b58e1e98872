/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The target's end of a stream: Agent1.StartService runs the service's
 * handler (services/stream-handler.h) with its stdin and stdout on the
 * port.  Frames coming in go to its stdin (the EOF frame closes it), its
 * stdout goes out in frames (its EOF becomes the EOF frame).  Once it has
 * exited and that EOF frame is written, the broker gets StreamExited and
 * the stream is forgotten; StopStream kills its process group first.
 */
#include "services/stream.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "policy/name.h" /* the names' syntax only: the agent does not link the policy library */
#include "services/stream-handler.h"
#include "services/stream-internal.h"

void stream_target_progress(Stream *s) {
        if (!s->exited || !s->out_done)
                return;
        stream_tell_broker(s->table, "StreamExited", "tis", s->id, s->status, s->message ? s->message : "");
        stream_free(s);
}

void stream_target_kill(Stream *s, const char *why) {
        /* Also when it exited: what it started may still hold its stdout, which is why the stream is not over. */
        if (s->pgid > 0 && kill(-s->pgid, SIGKILL) < 0 && errno != ESRCH)
                log_warning_errno(-errno, "Cannot kill the handler of stream %" PRIu64 ": %m", s->id);
        if (s->pgid > 0)
                log_info("Stream %" PRIu64 ": %s; its handler (process group %d) is killed.", s->id, why, (int) s->pgid);
        else
                log_info("Stream %" PRIu64 ": %s before its handler was started.", s->id, why);
        stream_free(s);
}

void stream_target_reap(Stream *s) {
        StreamChild *c = steal_pointer(&s->child);
        if (s->pgid > 0)
                (void) kill(-s->pgid, SIGKILL);
        if (c) {
                (void) waitpid(c->pid, NULL, 0);
                g_source_remove(c->watch); /* frees c */
        }
        stream_free(s);
}

static void target_child_exited(GPid pid, gint wait_status, gpointer userdata) {
        StreamChild *c = userdata;
        Stream *s = c->stream;

        g_spawn_close_pid(pid);
        if (!s)
                return;
        s->child = NULL; /* c goes with its watch */
        s->exited = true;
        g_free(s->message);
        s->status = stream_handler_status(wait_status, &s->message);
        log_info("Stream %" PRIu64 ": the handler (pid %d) ended: status %d%s%s.", s->id, (int) pid, s->status,
                 s->message ? ", " : "", s->message ? s->message : "");
        stream_target_progress(s);
}

/* StartService's arguments: 0, or an error set. */
static int start_check(StreamTable *t, uint64_t untrusted_id, const char *untrusted_service, const char *untrusted_arg,
                       const char *untrusted_source, uint32_t untrusted_port, uint32_t untrusted_tag,
                       sd_bus_error *error) {
        if (policy_service_invalid_at(untrusted_service, strlen(untrusted_service)) >= 0 ||
            policy_arg_invalid_at(untrusted_arg, strlen(untrusted_arg)) >= 0)
                return sd_bus_error_set(error, STREAM_ERROR_INVALID_ARGS,
                                        "The service or its argument is not a policy name.");
        /* A VM, or @host for a stream from the admin side (vmfedctl run). */
        if (strcmp(untrusted_source, "@host") != 0 &&
            policy_vm_name_invalid_at(untrusted_source, strlen(untrusted_source)) >= 0)
                return sd_bus_error_set(error, STREAM_ERROR_INVALID_ARGS, "The source is not a VM name or @host.");
        if (untrusted_port >= t->n_ports || untrusted_tag == 0)
                return sd_bus_error_setf(error, STREAM_ERROR_INVALID_ARGS,
                                         "Port %" PRIu32 " with tag %" PRIu32 " is not one of the %u stream ports here.",
                                         untrusted_port, untrusted_tag, t->n_ports);
        if (g_hash_table_contains(t->streams, &untrusted_id))
                return sd_bus_error_setf(error, STREAM_ERROR_INVALID_ARGS, "Stream %" PRIu64 " exists here already.",
                                         untrusted_id);
        return 0;
}

/* What the idle after StartService's reply needs to start the handler. */
typedef struct PendingSpawn {
        char *path;
        char **env;
        StreamUser user;
        int child_fds[2]; /* the handler's ends of its pipes */
} PendingSpawn;

static void pending_spawn_free(void *p) {
        PendingSpawn *ps = p;
        if (!ps)
                return;
        g_free(ps->path);
        g_strfreev(ps->env);
        stream_user_done(&ps->user);
        safe_close(ps->child_fds[0]);
        safe_close(ps->child_fds[1]);
        g_free(ps);
}

/*
 * After the reply: fork+exec costs milliseconds, the caller need not wait for
 * them (its bytes wait in the pipe, then in the port).  A handler that then
 * cannot run ends the stream as one that ran and failed: status -1 and why.
 */
static gboolean target_spawn_idle(gpointer userdata) {
        Stream *s = userdata;
        PendingSpawn *ps = steal_pointer(&s->spawn);
        g_autofree char *why = NULL;
        GPid pid;

        s->spawn_id = 0;
        int r = stream_handler_spawn_on(ps->path, ps->env, &ps->user, ps->child_fds, &pid, &why);
        if (r < 0) {
                log_warning("Stream %" PRIu64 " cannot start: %s", s->id, why);
                s->exited = true;
                s->status = -1;
                g_free(s->message);
                s->message = steal_pointer(&why);
        } else {
                log_info("Stream %" PRIu64 ": %s runs as %s (pid %d).", s->id, ps->path, ps->user.name, (int) pid);
                s->pgid = pid; /* setsid(): its own session and process group */
                s->child = g_new0(StreamChild, 1);
                s->child->stream = s;
                s->child->pid = pid;
                s->child->watch = g_child_watch_add_full(G_PRIORITY_DEFAULT, pid, target_child_exited, s->child, g_free);
        }
        /* Its ends close here: with no handler, our writes fail and its stdout reads EOF. */
        pending_spawn_free(ps);
        stream_target_progress(s);
        return G_SOURCE_REMOVE;
}

int stream_table_start_service(StreamTable *t, sd_bus_message *m, sd_bus_error *error) {
        const char *untrusted_service, *untrusted_arg, *untrusted_source;
        uint32_t untrusted_port, untrusted_tag;
        uint64_t untrusted_id;
        g_autofree char *path = NULL, *why = NULL;
        int r;

        r = sd_bus_message_read(m, "tsssuu", &untrusted_id, &untrusted_service, &untrusted_arg, &untrusted_source,
                                &untrusted_port, &untrusted_tag);
        if (r < 0)
                return r;
        r = start_check(t, untrusted_id, untrusted_service, untrusted_arg, untrusted_source, untrusted_port,
                        untrusted_tag, error);
        if (r < 0)
                return r;
        const char *service = untrusted_service, *arg = untrusted_arg, *source = untrusted_source;
        uint64_t id = untrusted_id;
        unsigned port = untrusted_port;
        uint32_t tag = untrusted_tag;

        r = stream_handler_find(t->services_dir, service, arg, &path, &why);
        if (r < 0) {
                log_info("Stream %" PRIu64 " from %s refused: %s", id, source, why);
                return sd_bus_error_setf(error, r == -ENOENT || r == -EACCES ? STREAM_ERROR_NO_HANDLER
                                                                              : STREAM_ERROR_AGENT_FAILED,
                                         "%s", why);
        }
        PendingSpawn *ps = g_new0(PendingSpawn, 1);
        ps->child_fds[0] = ps->child_fds[1] = -EBADF;
        int ours[2] = { -EBADF, -EBADF };
        r = stream_table_ensure_port(t, port, &why);
        if (r >= 0)
                r = stream_user_resolve(t->service_user, &ps->user, &why);
        if (r >= 0) {
                r = stream_handler_pipes(ours, ps->child_fds);
                if (r < 0)
                        why = g_strdup_printf("Cannot make the handler's pipes: %s", strerror(-r));
        }
        if (r < 0) {
                pending_spawn_free(ps);
                log_warning("Stream %" PRIu64 " from %s cannot start: %s", id, source, why);
                return sd_bus_error_setf(error, STREAM_ERROR_AGENT_FAILED, "%s", why);
        }
        ps->env = stream_handler_env(&ps->user, source, service, arg, id);
        log_info("Stream %" PRIu64 ": %s%s%s for %s starts %s as %s.", id, service, *arg ? "+" : "", arg, source, path,
                 ps->user.name);
        ps->path = steal_pointer(&path);

        Stream *s = stream_new(t, STREAM_TARGET, id, port, tag);
        s->stdin_fd = ours[0];
        s->stdout_fd = ours[1];
        s->spawn = ps;
        s->spawn_free = pending_spawn_free;
        s->spawn_id = g_idle_add_full(G_PRIORITY_DEFAULT, target_spawn_idle, s, NULL);
        stream_attach(s, s->stdin_fd, s->stdout_fd);
        return sd_bus_reply_method_return(m, NULL);
}

int stream_table_stop_stream(StreamTable *t, sd_bus_message *m, sd_bus_error *error) {
        const char *untrusted_why;
        uint64_t untrusted_id;
        int r;

        r = sd_bus_message_read(m, "ts", &untrusted_id, &untrusted_why);
        if (r < 0)
                return r;
        Stream *s = g_hash_table_lookup(t->streams, &untrusted_id);
        if (!s || s->role != STREAM_TARGET)
                return sd_bus_error_setf(error, STREAM_ERROR_NOT_FOUND, "No handler of stream %" PRIu64 " runs here.",
                                         untrusted_id);
        g_autofree char *why = g_strdup_printf("stopped by the broker (%.200s)", untrusted_why);
        stream_target_kill(s, why);
        return sd_bus_reply_method_return(m, NULL);
}
