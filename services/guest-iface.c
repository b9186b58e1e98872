/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.vmfed.Guest1 on /org/vmfed/Guest1: what the guest's desktop apps (and
 * vmfed-guest) call.  Served on the guest's system bus as org.vmfed.Guest1
 * when there is one (and no --guest-socket), else on a private socket
 * (peer-to-peer, the agent is the server, fd passing allowed).
 *
 * Nothing here acts: every call is passed to the broker's
 * org.vmfed.Federation1.Guest, which checks the policy.  The checks here
 * only keep obviously bad requests off the channel.
 */
#include "services/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "common/bus-p2p.h"
#include "common/bus-source.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/macro.h"
#include "services/bus-copy.h"
#include "services/stream.h"

#define GUEST_ERROR_INVALID_ARGS "org.vmfed.Federation1.Error.InvalidArgs"
#define GUEST_ERROR_TOO_LARGE "org.vmfed.Federation1.Error.TooLarge"
#define GUEST_ERROR_FAILED "org.vmfed.Federation1.Error.Failed"

typedef struct GuestClient {
        GuestServer *server;
        sd_bus *bus;
        GSource *source;
        guint reap_id;
} GuestClient;

struct GuestServer {
        Agent *agent;
        sd_bus *system_bus; /* when serving on the system bus */
        GSource *system_source;
        char *socket_path;
        int listen_fd;
        guint listen_id;
        GHashTable *clients; /* GuestClient* set */
};

/* ---- methods -------------------------------------------------------------- */

/* Forward the call's arguments unchanged to the broker's method of the same name. */
static int forward_same(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *fwd = NULL;
        int r;

        r = agent_new_broker_call(a, sd_bus_message_get_member(m), &fwd);
        if (r == -ENOTCONN)
                return sd_bus_error_set(error, GUEST_ERROR_FAILED,
                                        "Not connected to the broker (reconnecting); nothing was done.");
        if (r < 0)
                return r;
        r = bus_copy_args(fwd, m);
        if (r < 0)
                return r;
        return agent_forward(a, m, steal_pointer(&fwd), NULL, NULL, NULL);
}

static int method_copy(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *fwd = NULL;
        const char *mime;
        const void *data;
        size_t size;
        int r;

        r = sd_bus_message_read(m, "s", &mime);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(m, 'y', &data, &size);
        if (r < 0)
                return r;
        if (size > AGENT_PAYLOAD_MAX)
                return sd_bus_error_setf(error, GUEST_ERROR_TOO_LARGE,
                                         "%zu bytes is more than the agent ever sends (%u); nothing was copied.",
                                         size, AGENT_PAYLOAD_MAX);
        r = agent_new_broker_call(a, "Copy", &fwd);
        if (r == -ENOTCONN)
                return sd_bus_error_set(error, GUEST_ERROR_FAILED,
                                        "Not connected to the broker (reconnecting); nothing was copied.");
        if (r >= 0)
                r = sd_bus_message_append(fwd, "s", mime);
        if (r >= 0)
                r = sd_bus_message_append_array(fwd, 'y', data, size);
        if (r < 0)
                return r;
        return agent_forward(a, m, steal_pointer(&fwd), NULL, NULL, NULL);
}

/* OpenFile: the guest passes an fd; the channel carries the bytes. */
typedef struct OpenFileCtx {
        int fd;
} OpenFileCtx;

static void open_file_ctx_free(void *p) {
        OpenFileCtx *c = p;
        if (!c)
                return;
        safe_close(c->fd);
        g_free(c);
}

static int open_file_convert(sd_bus_message *guest_call, sd_bus_message *reply, void *userdata) {
        OpenFileCtx *c = userdata;
        const char *vm;
        int changed;
        const void *data;
        size_t size;
        int r;

        r = sd_bus_message_read(reply, "sb", &vm, &changed);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &data, &size);
        if (r < 0)
                return r;
        if (changed) {
                /* Write the edited file back into the caller's file. */
                if (ftruncate(c->fd, 0) < 0)
                        return sd_bus_reply_method_errorf(guest_call, GUEST_ERROR_FAILED,
                                                          "The file was changed in %s but cannot be written "
                                                          "back (open it read-write): %m",
                                                          vm);
                for (size_t off = 0; off < size;) {
                        ssize_t k = pwrite(c->fd, (const char *) data + off, size - off, (off_t) off);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return sd_bus_reply_method_errorf(guest_call, GUEST_ERROR_FAILED,
                                                                  "Writing back the changed file failed: %m");
                        }
                        off += (size_t) k;
                }
        }
        return sd_bus_reply_method_return(guest_call, "sb", vm, changed);
}

static int method_open_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *fwd = NULL;
        _cleanup_free_ char *content = NULL;
        const char *untrusted_name, *target;
        size_t size = 0;
        struct stat st;
        int fd, r;

        r = sd_bus_message_read(m, "hss", &fd, &untrusted_name, &target);
        if (r < 0)
                return r;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return sd_bus_error_set(error, GUEST_ERROR_INVALID_ARGS, "OpenFile needs a regular file.");
        if ((uint64_t) st.st_size > AGENT_PAYLOAD_MAX)
                return sd_bus_error_setf(error, GUEST_ERROR_TOO_LARGE,
                                         "The file is larger than %u bytes: open it through a vmfed.OpenFile "
                                         "stream (vmfed-guest open-file does so by itself).",
                                         AGENT_PAYLOAD_MAX);
        content = malloc((size_t) st.st_size + 1);
        if (!content)
                return -ENOMEM;
        while (size < (size_t) st.st_size) {
                ssize_t k = pread(fd, content + size, (size_t) st.st_size - size, (off_t) size);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return sd_bus_error_set_errnof(error, errno, "Cannot read the file: %m");
                if (k == 0)
                        break;
                size += (size_t) k;
        }
        r = agent_new_broker_call(a, "OpenFile", &fwd);
        if (r == -ENOTCONN)
                return sd_bus_error_set(error, GUEST_ERROR_FAILED,
                                        "Not connected to the broker (reconnecting); nothing was done.");
        if (r >= 0)
                r = sd_bus_message_append(fwd, "s", untrusted_name);
        if (r >= 0)
                r = sd_bus_message_append_array(fwd, 'y', content, size);
        if (r >= 0)
                r = sd_bus_message_append(fwd, "s", target);
        if (r < 0)
                return r;

        OpenFileCtx *c = g_new0(OpenFileCtx, 1);
        c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (c->fd < 0) {
                open_file_ctx_free(c);
                return -errno;
        }
        return agent_forward(a, m, steal_pointer(&fwd), open_file_convert, c, open_file_ctx_free);
}

/* Streams (docs/streams.md): the broker sets it up, services/stream.c runs our end. */
static int open_stream_convert(sd_bus_message *guest_call, sd_bus_message *reply, void *userdata) {
        return stream_table_opened(userdata, guest_call, reply);
}

static int method_open_stream(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *fwd = NULL;
        const char *target, *service, *argument;
        int r;

        r = stream_table_check_open(m, &target, &service, &argument, error);
        if (r < 0)
                return r;
        r = agent_new_broker_call(a, "OpenStream", &fwd);
        if (r == -ENOTCONN)
                return sd_bus_error_set(error, GUEST_ERROR_FAILED,
                                        "Not connected to the broker (reconnecting); nothing was done.");
        if (r >= 0)
                r = sd_bus_message_append(fwd, "sss", target, service, argument);
        if (r < 0)
                return r;
        return agent_forward(a, m, steal_pointer(&fwd), open_stream_convert, a->streams, NULL);
}

static int method_wait_stream(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        return stream_table_wait_stream(a->streams, m, error);
}

static int method_status(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Agent *a = userdata;
        return sd_bus_reply_method_return(m, "sb", a->vm_name ? a->vm_name : "", a->ready);
}

static const sd_bus_vtable guest1_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Status", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", vm, "b", connected), method_status,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Copy", SD_BUS_ARGS("s", mime, "ay", data), SD_BUS_NO_RESULT, method_copy,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Paste", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", source, "s", mime, "ay", data),
                                forward_same, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenURL", SD_BUS_ARGS("s", url, "s", target), SD_BUS_RESULT("s", vm),
                                forward_same, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenFile", SD_BUS_ARGS("h", fd, "s", name, "s", target),
                                SD_BUS_RESULT("s", vm, "b", changed), method_open_file,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Launch", SD_BUS_ARGS("s", app_id, "as", args, "s", target),
                                SD_BUS_RESULT("s", vm), forward_same, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PingVM", SD_BUS_ARGS("s", target), SD_BUS_RESULT("s", vm), forward_same,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SwitchPersona", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, forward_same,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StartVM", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, forward_same,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StopVM", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, forward_same,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListVMs", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ss)", vms), forward_same,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenStream",
                                SD_BUS_ARGS("s", target, "s", service, "s", argument, "a{sv}", options),
                                SD_BUS_RESULT("h", fd, "t", stream), method_open_stream, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("WaitStream", SD_BUS_ARGS("t", stream), SD_BUS_RESULT("i", status, "s", message),
                                method_wait_stream, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- private socket ------------------------------------------------------ */

static void guest_client_free(void *p) {
        GuestClient *c = p;
        if (!c)
                return;
        if (c->reap_id)
                g_source_remove(c->reap_id);
        c->source = bus_source_free(c->source);
        if (c->bus) {
                sd_bus_close(c->bus);
                c->bus = sd_bus_unref(c->bus);
        }
        g_free(c);
}

static gboolean guest_server_on_accept(gint fd, GIOCondition condition, gpointer userdata);

static gboolean guest_client_reap(gpointer userdata) {
        GuestClient *c = userdata;
        GuestServer *s = c->server;
        c->reap_id = 0;
        g_hash_table_remove(s->clients, c);
        /* A place is free: the connections waiting in the listen queue are taken again. */
        if (s->listen_fd >= 0 && !s->listen_id && g_hash_table_size(s->clients) < AGENT_MAX_GUEST_CONNECTIONS)
                s->listen_id = g_unix_fd_add(s->listen_fd, G_IO_IN, guest_server_on_accept, s);
        return G_SOURCE_REMOVE;
}

static void guest_client_closed(void *userdata, int error) {
        GuestClient *c = userdata;
        if (!c->reap_id)
                c->reap_id = g_idle_add(guest_client_reap, c);
}

static void guest_server_accept_one(GuestServer *s, int fd) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = bus_p2p_new(fd, /* server= */ true, /* accept_fds= */ true, NULL, &bus);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, GUEST1_PATH, GUEST1_INTERFACE, guest1_vtable, s->agent);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                log_debug_errno(r, "Cannot set up a Guest1 connection: %m");
                return;
        }
        GuestClient *c = g_new0(GuestClient, 1);
        c->server = s;
        r = bus_source_attach(bus, guest_client_closed, c, &c->source);
        if (r < 0) {
                g_free(c);
                return;
        }
        c->bus = steal_pointer(&bus);
        g_hash_table_add(s->clients, c);
}

/*
 * At most AGENT_MAX_GUEST_CONNECTIONS clients at a time; the next ones wait
 * in the listen queue (their connect() has returned, their first call
 * waits) until one leaves: backpressure, not a refusal.
 */
static gboolean guest_server_on_accept(gint fd, GIOCondition condition, gpointer userdata) {
        GuestServer *s = userdata;
        for (int i = 0; i < 16; i++) {
                if (g_hash_table_size(s->clients) >= AGENT_MAX_GUEST_CONNECTIONS) {
                        log_debug("%d Guest1 clients: the next ones wait for one of them to leave.",
                                  AGENT_MAX_GUEST_CONNECTIONS);
                        s->listen_id = 0;
                        return G_SOURCE_REMOVE;
                }
                int cfd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0)
                        break;
                guest_server_accept_one(s, cfd);
        }
        return G_SOURCE_CONTINUE;
}

static int guest_server_listen(GuestServer *s, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        g_autofree char *dir = g_path_get_dirname(path);
        struct stat st;
        int fd, r;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        r = mkdir_parents(dir, 0755);
        if (r < 0)
                return r;
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(-EEXIST, "%s exists and is not a socket.", path);
                (void) unlink(path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        /* Every user of the guest may use its services: the VM is one security domain. */
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || chmod(path, 0666) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = negative_errno();
                safe_close(fd);
                return r;
        }
        s->listen_fd = fd;
        s->socket_path = g_strdup(path);
        s->listen_id = g_unix_fd_add(fd, G_IO_IN, guest_server_on_accept, s);
        return 0;
}

static void system_bus_closed(void *userdata, int error) {
        GuestServer *s = userdata;
        log_error_errno(error, "Lost the guest's system bus: %m; exiting.");
        s->agent->exit_status = 1;
        g_main_loop_quit(s->agent->loop);
}

static int guest_server_on_system_bus(GuestServer *s) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(bus, NULL, GUEST1_PATH, GUEST1_INTERFACE, guest1_vtable, s->agent);
        if (r < 0)
                return r;
        r = sd_bus_request_name(bus, GUEST1_BUS_NAME, 0);
        if (r < 0)
                return r;
        r = bus_source_attach(bus, system_bus_closed, s, &s->system_source);
        if (r < 0)
                return r;
        s->system_bus = steal_pointer(&bus);
        return 0;
}

int guest_server_start(Agent *a, GuestServer **ret) {
        GuestServer *s = g_new0(GuestServer, 1);
        int r;

        s->agent = a;
        s->listen_fd = -EBADF;
        s->clients = g_hash_table_new_full(g_direct_hash, g_direct_equal, guest_client_free, NULL);

        if (!a->guest_socket && (getenv("DBUS_SYSTEM_BUS_ADDRESS") || access("/run/dbus/system_bus_socket", F_OK) == 0)) {
                r = guest_server_on_system_bus(s);
                if (r >= 0) {
                        log_info("Serving " GUEST1_INTERFACE " on the system bus.");
                        *ret = s;
                        return 0;
                }
                log_warning_errno(r, "Cannot serve on the system bus (%m); using %s.", AGENT_DEFAULT_GUEST_SOCKET);
        }
        r = guest_server_listen(s, a->guest_socket ? a->guest_socket : AGENT_DEFAULT_GUEST_SOCKET);
        if (r < 0) {
                guest_server_free(s);
                return r;
        }
        log_info("Serving " GUEST1_INTERFACE " on %s.", s->socket_path);
        *ret = s;
        return 0;
}

GuestServer *guest_server_free(GuestServer *s) {
        if (!s)
                return NULL;
        g_clear_pointer(&s->clients, g_hash_table_unref);
        if (s->listen_id)
                g_source_remove(s->listen_id);
        if (s->listen_fd >= 0) {
                safe_close(s->listen_fd);
                (void) unlink(s->socket_path);
        }
        s->system_source = bus_source_free(s->system_source);
        if (s->system_bus)
                sd_bus_flush_close_unref(s->system_bus);
        g_free(s->socket_path);
        g_free(s);
        return NULL;
}
