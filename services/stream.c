/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The StreamTable itself: its ports (opened lazily, or listened for when
 * emulated), binding a stream to its port (the previous stream there gives
 * way: docs/streams.md, "Ports, ends and reuse"), the port's events, the
 * broker connection's loss.  Each end's own part is in stream-caller.c
 * and stream-target.c.
 */
#include "services/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "services/agent-port.h"
#include "services/fd-watch.h"
#include "services/stream-internal.h"
#include "services/virtio-port.h"

/* ---- the port's events ------------------------------------------------------------------ */

static void on_reader_eof(void *userdata) {
        Stream *s = userdata;
        s->in_done = true;
        if (s->role == STREAM_CALLER)
                (void) shutdown(s->app_fd, SHUT_WR); /* the app reads its EOF */
        else
                s->stdin_fd = safe_close(s->stdin_fd);
        stream_progress(s);
}

static void stream_local_failure(Stream *s, const char *what, int error) {
        if (s->role == STREAM_TARGET) {
                log_debug_errno(error, "Stream %" PRIu64 ": %s: %m", s->id, what);
                return;
        }
        if (s->ended)
                return;
        log_info("Stream %" PRIu64 ": %s (%s); closing it.", s->id, what, strerror(-error));
        stream_tell_broker(s->table, "CloseStream", "t", s->id);
}

static void on_reader_failed(void *userdata, int error) {
        Stream *s = userdata;
        /* A handler that closed its stdin only drops the rest of its input; an app that went is the end. */
        stream_local_failure(s, s->role == STREAM_CALLER ? "the app's socket went away" : "the handler's stdin closed",
                             error);
}

static void on_writer_eof(void *userdata) {
        Stream *s = userdata;
        s->out_done = true;
        stream_progress(s);
}

static void on_writer_failed(void *userdata, int error) {
        Stream *s = userdata;
        stream_local_failure(s, s->role == STREAM_CALLER ? "reading the app's socket failed"
                                                         : "reading the handler's stdout failed",
                             error);
}

static const AgentPortOps port_ops = {
        .reader_eof = on_reader_eof,
        .reader_failed = on_reader_failed,
        .writer_eof = on_writer_eof,
        .writer_failed = on_writer_failed,
};

/* ---- ports ---------------------------------------------------------------------------------- */

static AgentPort *slot_port(PortSlot *sl) {
        if (!sl->port)
                sl->port = agent_port_new(sl->index, &port_ops);
        return sl->port;
}

/* The broker's latest connection is the port (QEMU too serves one connection at a time). */
static void slot_accept(PortSlot *sl) {
        for (;;) {
                int fd = accept4(sl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(-errno, "Cannot accept on %s: %m", sl->socket_path);
                        if (errno != EINTR && errno != ECONNABORTED)
                                return;
                        continue;
                }
                log_debug("Stream port %u: the broker connected.", sl->index);
                agent_port_set_fd(slot_port(sl), fd);
        }
}

static void slot_on_accept(void *userdata, GIOCondition rev) {
        slot_accept(userdata);
}

static int slot_listen(PortSlot *sl) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        _cleanup_close_ int fd = -EBADF;

        if (strlen(sl->socket_path) >= sizeof sa.sun_path)
                return log_error_errno(-ENAMETOOLONG, "%s: the path is too long for a socket.", sl->socket_path);
        strcpy(sa.sun_path, sl->socket_path);
        if (lstat(sl->socket_path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(-EEXIST, "%s exists and is not a socket.", sl->socket_path);
                (void) unlink(sl->socket_path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(negative_errno(), "Cannot make a socket: %m");
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 4) < 0)
                return log_error_errno(negative_errno(), "Cannot listen on %s: %m", sl->socket_path);
        sl->listen_fd = steal_fd(&fd);
        sl->listen_watch = fd_watch_new(sl->listen_fd, slot_on_accept, sl);
        fd_watch_set(sl->listen_watch, G_IO_IN);
        return 0;
}

int stream_table_ensure_port(StreamTable *t, unsigned index, char **ret_why) {
        PortSlot *sl = &t->slots[index];
        AgentPort *p = slot_port(sl);

        if (agent_port_fd(p) >= 0)
                return 0;
        if (t->socket_prefix) {
                slot_accept(sl); /* the broker connects before it names a port: it is queued if not taken */
                return 0;       /* else the stream waits for the connection */
        }
        g_autofree char *name = g_strdup_printf(STREAM_PORT_NAME_PREFIX "%u", index);
        g_autofree char *dev = virtio_port_find(t->sysfs_root, name);
        if (!dev) {
                *ret_why = g_strdup_printf("This VM has no virtio port %s (Streams= of its VM file).", name);
                return -ENOENT;
        }
        int fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = negative_errno();
                *ret_why = g_strdup_printf("Cannot open the stream port %s (%s): %s", name, dev, strerror(-r));
                return r;
        }
        log_debug("Stream port %u is %s.", index, dev);
        agent_port_set_fd(p, fd);
        return 0;
}

/* ---- streams ---------------------------------------------------------------------------------- */

static void message_unref(gpointer m) {
        sd_bus_message_unref(m);
}

Stream *stream_new(StreamTable *t, StreamRole role, uint64_t id, unsigned port, uint32_t tag) {
        Stream *s = g_new0(Stream, 1);
        s->table = t;
        s->role = role;
        s->id = id;
        s->port = port;
        s->tag = tag;
        s->app_fd = s->stdin_fd = s->stdout_fd = -EBADF;
        g_hash_table_insert(t->streams, &s->id, s);
        if (role == STREAM_CALLER) {
                s->local_id = ++t->next_local_id;
                s->waiters = g_ptr_array_new_with_free_func(message_unref);
                g_hash_table_insert(t->callers, &s->local_id, s);
        }
        return s;
}

void stream_free(Stream *s) {
        StreamTable *t = s->table;
        AgentPort *p = t->slots[s->port].port;

        if (p) { /* before the fds close: the port's watches on them go first */
                agent_port_unbind_reader(p, s);
                agent_port_unbind_writer(p, s);
        }
        g_hash_table_remove(t->streams, &s->id);
        if (s->role == STREAM_CALLER)
                g_hash_table_remove(t->callers, &s->local_id);
        if (s->child)
                s->child->stream = NULL; /* its watch still reaps it */
        if (s->spawn_id)
                g_source_remove(s->spawn_id);
        if (s->spawn && s->spawn_free)
                s->spawn_free(s->spawn);
        safe_close(s->app_fd);
        safe_close(s->stdin_fd);
        safe_close(s->stdout_fd);
        if (s->waiters)
                g_ptr_array_unref(s->waiters);
        g_free(s->message);
        g_free(s);
}

/*
 * A new stream on the port: whatever the port had gives way — its writer at
 * once (its output is over: the broker reuses a port only then), its
 * reader only if it is dropping anyway; a caller's reader still passing
 * data to its app reads on up to its EOF, then the new one takes over.
 */
void stream_attach(Stream *s, int sink, int source) {
        AgentPort *p = slot_port(&s->table->slots[s->port]);
        Stream *gone[2] = {};
        size_t n = 0;
        bool dropping = false;

        Stream *w = agent_port_writer(p);
        if (w) {
                agent_port_unbind_writer(p, w);
                w->out_done = true;
                gone[n++] = w;
        }
        Stream *cur = agent_port_reader(p, &dropping);
        if (cur && (dropping || cur->role == STREAM_TARGET)) {
                agent_port_unbind_reader(p, cur);
                cur->in_done = true;
                gone[n++] = cur;
        }
        agent_port_bind_reader(p, s->tag, sink, s);
        agent_port_bind_writer(p, s->tag, source, s);

        for (size_t i = 0; i < n; i++) {
                bool seen = false;
                for (size_t j = 0; j < i; j++)
                        seen = seen || gone[j] == gone[i];
                if (seen)
                        continue;
                log_info("Stream %" PRIu64 " gives port %u up to stream %" PRIu64 ".", gone[i]->id, s->port, s->id);
                if (gone[i]->role == STREAM_TARGET)
                        stream_target_kill(gone[i], "its port was given to another stream");
                else
                        stream_progress(gone[i]);
        }
}

void stream_finish_output(Stream *s) {
        AgentPort *p = s->table->slots[s->port].port;
        if (p && !s->out_done)
                agent_port_finish_writer(p, s);
}

void stream_progress(Stream *s) {
        if (s->role == STREAM_CALLER)
                stream_caller_progress(s);
        else
                stream_target_progress(s);
}

static int on_broker_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        if (e)
                log_debug("The broker refused %s: %s", (const char *) userdata, e->message ? e->message : e->name);
        return 0;
}

void stream_tell_broker(StreamTable *t, const char *member, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        va_list ap;
        int r = t->call(t->call_userdata, member, &m);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r >= 0) /* member is a string literal: it outlives the call */
                r = sd_bus_call_async(NULL, NULL, m, on_broker_reply, (void *) member, 0);
        if (r < 0)
                log_debug_errno(r, "Cannot send %s to the broker: %m", member);
}

/* ---- the table ---------------------------------------------------------------------------------- */

int stream_table_new(const StreamOptions *o, StreamBrokerCallFn call, void *userdata, StreamTable **ret) {
        StreamTable *t = g_new0(StreamTable, 1);
        int r;

        t->socket_prefix = g_strdup(o->socket_prefix);
        t->sysfs_root = g_strdup(o->sysfs_root ? o->sysfs_root : "/sys");
        t->services_dir = g_strdup(o->services_dir);
        t->service_user = g_strdup(o->service_user);
        t->call = call;
        t->call_userdata = userdata;
        t->n_ports = o->socket_prefix ? MIN(o->n_ports, (unsigned) STREAM_PORTS_MAX) : STREAM_PORTS_MAX;
        t->slots = g_new0(PortSlot, MAX(t->n_ports, 1u));
        t->streams = g_hash_table_new(g_int64_hash, g_int64_equal);
        t->callers = g_hash_table_new(g_int64_hash, g_int64_equal);
        t->results = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, stream_result_free);
        g_queue_init(&t->results_order);
        for (unsigned i = 0; i < t->n_ports; i++) {
                t->slots[i] = (PortSlot) { .table = t, .index = i, .listen_fd = -EBADF };
                if (!t->socket_prefix)
                        continue;
                t->slots[i].socket_path = g_strdup_printf("%s%u.sock", t->socket_prefix, i);
                r = slot_listen(&t->slots[i]);
                if (r < 0) {
                        stream_table_free(t);
                        return r;
                }
        }
        if (t->service_user && geteuid() != 0)
                log_warning("Not running as root: stream handlers run as this agent's user, not %s.", t->service_user);
        *ret = t;
        return 0;
}

/* Every stream, one at a time: ending one may end no other, but look each up again anyway. */
static void table_end_all(StreamTable *t, bool exiting) {
        g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        GHashTableIter it;
        gpointer value;

        g_hash_table_iter_init(&it, t->streams);
        while (g_hash_table_iter_next(&it, NULL, &value))
                g_array_append_val(ids, ((Stream *) value)->id);
        for (guint i = 0; i < ids->len; i++) {
                Stream *s = g_hash_table_lookup(t->streams, &g_array_index(ids, uint64_t, i));
                if (!s)
                        continue;
                if (s->role == STREAM_CALLER)
                        stream_caller_finish(s, -1, exiting ? "the agent is exiting" : "the broker connection was lost");
                else if (exiting)
                        stream_target_reap(s);
                else
                        stream_target_kill(s, "the broker connection was lost");
        }
}

void stream_table_broker_lost(StreamTable *t) {
        if (t && g_hash_table_size(t->streams) > 0) {
                log_info("The broker connection was lost: %u streams end.", g_hash_table_size(t->streams));
                table_end_all(t, false);
        }
}

StreamTable *stream_table_free(StreamTable *t) {
        if (!t)
                return NULL;
        table_end_all(t, true);
        for (unsigned i = 0; i < t->n_ports; i++) {
                PortSlot *sl = &t->slots[i];
                sl->listen_watch = fd_watch_free(sl->listen_watch);
                if (sl->listen_fd >= 0) {
                        safe_close(sl->listen_fd);
                        (void) unlink(sl->socket_path);
                }
                agent_port_free(sl->port);
                g_free(sl->socket_path);
        }
        g_queue_clear(&t->results_order);
        g_hash_table_unref(t->results);
        g_hash_table_unref(t->callers);
        g_hash_table_unref(t->streams);
        g_free(t->slots);
        g_free(t->socket_prefix);
        g_free(t->sysfs_root);
        g_free(t->services_dir);
        g_free(t->service_user);
        g_free(t);
        return NULL;
}
