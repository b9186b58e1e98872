/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/channel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "broker/audit.h"
#include "common/bus-p2p.h"
#include "common/bus-source.h"
#include "broker/errors.h"
#include "broker/guest-services.h"
#include "broker/route.h"
#include "broker/vm-events.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"

struct Channel {
        Broker *broker;
        char *vm_name;
        char *path;
        int listen_fd;
        guint listen_id;
        GuestConnection *conn;
        uint64_t n_connections;
};

struct GuestConnection {
        Channel *channel;
        uint64_t id;
        sd_bus *bus;
        GSource *source;
        guint reap_id;
        bool agent_ready; /* Hello answered: Agent1 calls may go out */
        bool throttled;   /* channel_set_throttled(): too many requests in flight */
        guint retry_id;   /* not read for a moment: too many replies unread */
        uint64_t queued_at_pause; /* replies queued when retry_id was armed */
        unsigned stalls;  /* pauses in a row after which none of them had been read */
};

/* Read the connection unless one of the two kinds of backpressure holds it. */
static void guest_connection_update_paused(GuestConnection *g) {
        bus_source_set_paused(g->source, g->throttled || g->retry_id);
}

static gboolean guest_connection_retry(gpointer userdata) {
        GuestConnection *g = userdata;
        uint64_t n = 0;

        g->retry_id = 0;
        (void) sd_bus_get_n_queued_write(g->bus, &n);
        g->stalls = n >= g->queued_at_pause ? g->stalls + 1 : 0;
        guest_connection_update_paused(g); /* flushes what the peer has room for, reads on */
        return G_SOURCE_REMOVE;
}

static void guest_connection_free(GuestConnection *g) {
        if (!g)
                return;
        if (g->reap_id)
                g_source_remove(g->reap_id);
        if (g->retry_id)
                g_source_remove(g->retry_id);
        g->source = bus_source_free(g->source);
        if (g->bus) {
                sd_bus_close(g->bus); /* never flush: a peer that does not read would block us */
                sd_bus_unref(g->bus);
                g->bus = NULL;
        }
        g_free(g);
}

/*
 * The end of a connection, after the channel let go of it: calls in flight
 * to its agent fail (never count as done), then it is freed.  Whatever
 * route_agent_lost() sets off (a request's end, a disposable's release)
 * may free the channel itself: nothing here reads the channel.
 */
static void guest_connection_lost(Broker *b, const char *vm, GuestConnection *g) {
        if (!g)
                return;
        g->channel = NULL;
        if (g->agent_ready) {
                g->agent_ready = false;
                broker_post_agent_lost(b, vm);
                route_agent_lost(b, vm);
        }
        guest_connection_free(g);
}

/* Drop a channel's connection (not from inside its own dispatch: see reap). */
static void channel_drop_connection(Channel *c, const char *why) {
        if (!c->conn)
                return;
        log_info("Channel %s: connection %" PRIu64 " closed: %s.", c->vm_name, c->conn->id, why);
        Broker *b = c->broker;
        g_autofree char *vm = g_strdup(c->vm_name);
        guest_connection_lost(b, vm, steal_pointer(&c->conn));
        /* c may be gone here. */
}

static gboolean reap_connection(gpointer userdata) {
        GuestConnection *g = userdata;
        Channel *c = g->channel;

        g->reap_id = 0;
        if (c->conn == g)
                channel_drop_connection(c, "peer gone");
        return G_SOURCE_REMOVE;
}

static void guest_connection_schedule_reap(GuestConnection *g);

static void guest_connection_closed(void *userdata, int error) {
        GuestConnection *g = userdata;

        if (error != -ECONNRESET && error != -ENOTCONN && error != -EPIPE)
                log_warning_errno(error, "Channel %s: dropping connection %" PRIu64 ": %m",
                                  g->channel->vm_name, g->id);
        /* We are inside the source's dispatch: free from an idle callback. */
        guest_connection_schedule_reap(g);
}

/* ---- org.vmfed.Federation1.Guest --------------------------------------- */

static void guest_connection_schedule_reap(GuestConnection *g) {
        /* Above the bus sources' priority: a flooding peer must not starve its own removal. */
        if (!g->reap_id)
                g->reap_id = g_idle_add_full(G_PRIORITY_HIGH, reap_connection, g, NULL);
}

int guest_connection_check_flood(GuestConnection *g) {
        uint64_t n = 0;

        if (g->reap_id)
                return -ENOBUFS;
        if (sd_bus_get_n_queued_write(g->bus, &n) >= 0 &&
            (n > CHANNEL_MAX_QUEUED_REPLIES || (n >= CHANNEL_PAUSE_QUEUED_REPLIES && g->stalls >= CHANNEL_MAX_STALLS))) {
                log_warning("Channel %s: peer does not read its replies (%" PRIu64 " queued); disconnecting.",
                            g->channel->vm_name, n);
                guest_connection_schedule_reap(g);
                return -ENOBUFS;
        }
        /*
         * A peer that reads slower than it writes: stop reading it for a moment (this
         * message is the last one), then read on, one message per pause while its
         * replies stay unread; one that reads none of them in CHANNEL_MAX_STALLS pauses
         * in a row, or lets more than CHANNEL_MAX_QUEUED_REPLIES pile up, is cut off above.
         */
        if (n < CHANNEL_PAUSE_QUEUED_REPLIES)
                g->stalls = 0;
        else if (!g->retry_id && route_n_sent(g->channel->broker, g->channel->vm_name) == 0) {
                g->queued_at_pause = n;
                g->retry_id = g_timeout_add(CHANNEL_PAUSE_MSEC, guest_connection_retry, g);
                guest_connection_update_paused(g);
        }
        return 0;
}

static int method_hello(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        const char *untrusted_agent_version;
        int r;

        r = sd_bus_message_read(m, "s", &untrusted_agent_version);
        if (r < 0)
                return r;
        if (guest_connection_check_flood(g) < 0)
                return 1;
        /* The identity is the channel's, whatever the message claims. */
        log_debug("Channel %s: Hello from agent (%zu bytes of version).", g->channel->vm_name,
                  strlen(untrusted_agent_version));
        r = sd_bus_reply_method_return(m, "ss", g->channel->vm_name, VMFED_VERSION);
        if (r >= 0 && !g->agent_ready && g->channel->conn == g) {
                g->agent_ready = true;
                route_agent_ready(g->channel->broker, g->channel->vm_name);
                broker_post_agent_ready(g->channel->broker, g->channel->vm_name);
        }
        return r;
}

static int method_ping(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;

        if (guest_connection_check_flood(g) < 0)
                return 1;
        return sd_bus_reply_method_return(m, "s", g->channel->vm_name);
}

static const sd_bus_vtable guest_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Hello", SD_BUS_ARGS("s", agent_version),
                                SD_BUS_RESULT("s", vm, "s", broker_version), method_hello,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Ping", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", vm), method_ping,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        GUEST_SERVICES_VTABLE_METHODS,
        SD_BUS_VTABLE_END,
};

/*
 * Every call that is not one of ours leaves an audit line (it is a request
 * that crossed a VM boundary and was refused); sd-bus then answers it with
 * UnknownMethod/UnknownObject.
 */
static int guest_filter(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GuestConnection *g = userdata;
        const char *iface, *member;

        uint8_t type;
        if (sd_bus_message_get_type(m, &type) < 0 || type != SD_BUS_MESSAGE_METHOD_CALL)
                return 0;
        if (guest_connection_check_flood(g) < 0)
                return 1; /* swallow: the connection is going away */

        iface = sd_bus_message_get_interface(m);
        member = sd_bus_message_get_member(m);

        /* sd-bus checks a string (UTF-8, no NUL) only when a handler reads it, and then answers just
         * "Bad message": check every argument first and say which one is malformed. */
        for (unsigned arg = 1; sd_bus_message_at_end(m, true) == 0; arg++) {
                const char *contents = NULL;
                const void *p;
                size_t n;
                char t;
                int r = sd_bus_message_peek_type(m, &t, &contents);
                /* An array of bytes or numbers holds no strings: one step, not one per element. */
                if (r >= 0 && t == SD_BUS_TYPE_ARRAY && contents && strlen(contents) == 1 &&
                    strchr("ynqiuxtdb", contents[0]))
                        r = sd_bus_message_read_array(m, contents[0], &p, &n);
                else if (r >= 0)
                        r = sd_bus_message_skip(m, NULL);
                if (r < 0) {
                        (void) sd_bus_reply_method_errorf(
                                m, VMFED_ERROR_INVALID_ARGS,
                                "Argument %u of %.120s.%.120s is malformed (a string that is not UTF-8, or an "
                                "array over 64 MiB): %s", arg,
                                iface ? iface : "?", member ? member : "?", strerror(-r));
                        return 1;
                }
        }
        (void) sd_bus_message_rewind(m, true);

        if (iface && (strcmp(iface, GUEST_INTERFACE) == 0 || g_str_has_prefix(iface, "org.freedesktop.DBus.")))
                return 0;

        char service[300];
        snprintf(service, sizeof service, "%.120s.%.120s", iface ? iface : "?", member ? member : "?");
        audit_log(&(AuditRecord) {
                .request_id = broker_next_request_id(g->channel->broker),
                .source = g->channel->vm_name,
                .caller = "channel",
                .target = "@host",
                .service = service,
                .decision = "deny",
                .rule = "no-such-service",
        });
        return 0;
}

static int guest_connection_new(Channel *c, int fd, GuestConnection **ret) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        GuestConnection *g;
        int r;

        /* A guest may never pass us file descriptors. */
        r = bus_p2p_new(fd, /* server= */ true, /* accept_fds= */ false, c->vm_name, &bus);
        if (r < 0)
                return r;

        g = g_new0(GuestConnection, 1);
        g->channel = c;
        g->id = ++c->n_connections;

        r = sd_bus_add_filter(bus, NULL, guest_filter, g);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, BROKER_ROOT_PATH, GUEST_INTERFACE, guest_vtable, g);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r >= 0)
                r = bus_source_attach(bus, guest_connection_closed, g, &g->source);
        if (r < 0) {
                g_free(g);
                return r;
        }
        g->bus = steal_pointer(&bus);
        *ret = g;
        return 0;
}

void channel_adopt_connection(Channel *c, int cfd) {
        GuestConnection *g = NULL;
        struct ucred ucred = {};
        socklen_t len = sizeof ucred;
        int r;

        (void) getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &ucred, &len);
        /*
         * Bound what a guest that does not read can make the kernel buffer for
         * us; past that, replies pile up in sd-bus' write queue, which
         * guest_check_flood() bounds.
         */
        int sndbuf = CHANNEL_SNDBUF;
        (void) setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

        /* One guest, one connection: the newest wins (the agent or QEMU reconnected). */
        Broker *b = c->broker;
        g_autofree char *vm = g_strdup(c->vm_name);
        GuestConnection *old = steal_pointer(&c->conn);
        if (old)
                log_info("Channel %s: connection %" PRIu64 " closed: replaced by a new connection.", vm, old->id);

        r = guest_connection_new(c, cfd, &g);
        if (r < 0)
                log_full_errno(r == -ECONNRESET || r == -EPIPE ? LOG_DEBUG : LOG_WARNING, r,
                               "Channel %s: cannot set up a D-Bus server connection: %m", vm);
        else {
                c->conn = g;
                log_info("Channel %s: connection %" PRIu64 " from pid %d uid %u.", vm, g->id, (int) ucred.pid,
                         (unsigned) ucred.uid);
        }
        /* Last: the old connection's calls fail, and what that sets off may free c. */
        guest_connection_lost(b, vm, old);
}

static gboolean channel_on_accept(gint fd, GIOCondition condition, gpointer userdata) {
        Channel *c = userdata;

        /* A bounded batch per wakeup; the newest connection ends up the one kept. */
        for (unsigned i = 0; i < CHANNEL_BACKLOG; i++) {
                int cfd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(negative_errno(), "Channel %s: accept failed: %m", c->vm_name);
                        break;
                }
                channel_adopt_connection(c, cfd);
        }
        return G_SOURCE_CONTINUE;
}

static int channel_listen(Channel *c) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        int fd;

        if (strlen(c->path) >= sizeof sa.sun_path)
                return log_error_errno(-ENAMETOOLONG, "Channel path too long: %s", c->path);
        strcpy(sa.sun_path, c->path);

        /* A socket left over by a previous broker: replace it.  Anything else: refuse. */
        if (lstat(c->path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(-EEXIST, "%s exists and is not a socket; not touching it.",
                                               c->path);
                if (unlink(c->path) < 0)
                        return log_error_errno(negative_errno(), "Cannot remove stale %s: %m", c->path);
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        mode_t old = umask(0117);
        int r = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (r < 0 || listen(fd, CHANNEL_BACKLOG) < 0) {
                r = negative_errno();
                safe_close(fd);
                return log_error_errno(r, "Cannot listen on %s: %m", c->path);
        }
        c->listen_fd = fd;
        c->listen_id = g_unix_fd_add(fd, G_IO_IN, channel_on_accept, c);
        return 0;
}

static void channel_free(void *p);

static int channel_new(Broker *b, const char *vm_name, Channel **ret) {
        Channel *c = g_new0(Channel, 1);
        int r;

        c->broker = b;
        c->vm_name = g_strdup(vm_name);
        c->path = g_strdup_printf("%s/%s.sock", broker_channel_dir(b), vm_name);
        c->listen_fd = -EBADF;

        r = channel_listen(c);
        if (r < 0) {
                channel_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

static void channel_free(void *p) {
        Channel *c = p;
        if (!c)
                return;
        if (c->conn)
                log_info("Channel %s: connection %" PRIu64 " closed: channel removed.", c->vm_name, c->conn->id);
        if (c->listen_id)
                g_source_remove(c->listen_id);
        if (c->listen_fd >= 0) {
                safe_close(c->listen_fd);
                (void) unlink(c->path);
        }
        Broker *b = c->broker;
        g_autofree char *vm = steal_pointer(&c->vm_name);
        GuestConnection *g = steal_pointer(&c->conn);
        g_free(c->path);
        g_free(c);
        /* Last, with the channel gone: what this sets off cannot reach it. */
        guest_connection_lost(b, vm, g);
}

/* ---- the table ---------------------------------------------------------------- */

struct ChannelTable {
        GHashTable *channels; /* VM name → Channel* (owning) */
        VmEvents *vm_events;
        unsigned watch;
};

/* A disposable of ours is down: its job's channel goes (broker/vm-events.h). */
static void channel_table_on_vm_event(const VmEvent *e, void *userdata) {
        ChannelTable *t = userdata;

        if (e->disposable && federation_vm_state_is_down(e->state))
                g_hash_table_remove(t->channels, e->vm);
}

ChannelTable *channel_table_new(Broker *b) {
        ChannelTable *t = g_new0(ChannelTable, 1);

        t->channels = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, channel_free);
        t->vm_events = broker_vm_events(b);
        t->watch = vm_events_watch_add(t->vm_events, channel_table_on_vm_event, t, NULL);
        return t;
}

ChannelTable *channel_table_free(ChannelTable *t) {
        if (!t)
                return NULL;
        vm_events_watch_remove(t->vm_events, t->watch);
        g_hash_table_unref(t->channels);
        g_free(t);
        return NULL;
}

static Channel *channel_find(Broker *b, const char *vm) {
        ChannelTable *t = broker_channel_table(b);
        return t ? g_hash_table_lookup(t->channels, vm) : NULL;
}

int channel_ensure(Broker *b, const char *vm, Channel **ret) {
        ChannelTable *t = broker_channel_table(b);
        Channel *c = channel_find(b, vm);
        int r;

        if (!t)
                return -ENXIO;
        if (!c) {
                r = channel_new(b, vm, &c);
                if (r < 0)
                        return r;
                g_hash_table_insert(t->channels, g_strdup(vm), c);
                r = 1;
        } else
                r = 0;
        if (ret)
                *ret = c;
        return r;
}

const char *channel_path(Channel *c) {
        return c->path;
}

bool channel_is_connected(Channel *c) {
        return c && c->conn;
}

sd_bus *channel_agent_bus(Broker *b, const char *vm) {
        Channel *c = channel_find(b, vm);
        return c && c->conn && c->conn->agent_ready && !c->conn->reap_id ? c->conn->bus : NULL;
}

static GuestConnection *channel_connection_of(Broker *b, const char *vm) {
        Channel *c = channel_find(b, vm);
        return c && c->conn && !c->conn->reap_id ? c->conn : NULL;
}

bool channel_set_throttled(Broker *b, const char *vm, bool throttled) {
        GuestConnection *g = channel_connection_of(b, vm);

        if (!g)
                return false;
        if (throttled == g->throttled)
                return throttled;
        /*
         * Answers of vm's agent come in the same stream as vm's requests: while the
         * broker waits for one, not reading could deadlock (A waits for B's answers,
         * B for A's).  Then no throttling; the caller refuses the excess instead.
         */
        if (throttled && route_n_sent(b, vm) > 0)
                return false;
        log_debug("Channel %s: %s reading (backpressure).", vm, throttled ? "stopped" : "resumed");
        g->throttled = throttled;
        guest_connection_update_paused(g);
        return throttled;
}

void channel_agent_call_sent(Broker *b, const char *vm) {
        GuestConnection *g = channel_connection_of(b, vm);

        if (g && (g->throttled || g->retry_id)) {
                log_debug("Channel %s: reading again for its agent's answer.", vm);
                g->throttled = false;
                if (g->retry_id)
                        g_source_remove(g->retry_id);
                g->retry_id = 0;
                guest_connection_update_paused(g);
        }
}

Broker *guest_connection_broker(GuestConnection *g) {
        return g->channel->broker;
}

const char *guest_connection_vm(GuestConnection *g) {
        return g->channel->vm_name;
}

int channel_sync_all(Broker *b) {
        GHashTableIter it;
        gpointer key, value;
        int r, ret = 0;

        ChannelTable *t = broker_channel_table(b);
        const char *dir = broker_channel_dir(b);
        VmModel *model = broker_model(b);

        if (!t)
                return -ENXIO;
        r = mkdir_parents(dir, 0750);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", dir);
        (void) chmod(dir, 0750);

        g_hash_table_iter_init(&it, t->channels);
        while (g_hash_table_iter_next(&it, &key, &value))
                if (!broker_find_vm(b, key) && !broker_dispvm_is_running(b, key))
                        g_hash_table_iter_remove(&it);

        for (guint i = 0; i < vm_model_n_vms(model); i++) {
                r = channel_ensure(b, vm_model_vm(model, i)->name, NULL);
                if (r < 0)
                        ret = r;
        }
        return ret;
}
