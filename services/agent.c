/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfed-agent: the endpoint of the federation inside every VM.  See
 * services/agent.h for the two doors and services/README.md for options.
 */
#include "services/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>

#include "common/bulk-memory.h"
#include "common/bus-p2p.h"
#include "common/bus-source.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/stream-frame.h"
#include "policy/name.h" /* POLICY_NAME_MAX only: the agent does not link the policy library */
#include "services/bus-copy.h"
#include "services/stream-handler.h"
#include "services/stream.h"
#include "services/virtio-port.h"

#define RECONNECT_MS 500
#define BROKER_ERROR_FAILED "org.vmfed.Federation1.Error.Failed"

typedef struct PendingForward {
        Agent *agent;
        sd_bus_message *guest_call;
        sd_bus_slot *slot;
        AgentReplyConvert convert;
        void *userdata;
        void (*free_userdata)(void *);
} PendingForward;

static void pending_forward_free(void *p) {
        PendingForward *f = p;
        if (!f)
                return;
        f->slot = sd_bus_slot_unref(f->slot);
        if (f->free_userdata)
                f->free_userdata(f->userdata);
        sd_bus_message_unref(f->guest_call);
        g_free(f);
}

/* ---- the broker connection -------------------------------------------- */

static void agent_schedule_reconnect(Agent *a);

static void agent_drop_broker(Agent *a, const char *why) {
        GHashTableIter it;
        gpointer key;

        if (!a->broker)
                return;
        log_info("Broker connection closed: %s; reconnecting.", why);
        a->broker_source = bus_source_free(a->broker_source);
        /* Every forwarded call still waiting fails: it may or may not have been done. */
        g_hash_table_iter_init(&it, a->pending);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                PendingForward *f = key;
                f->slot = sd_bus_slot_unref(f->slot);
                (void) sd_bus_reply_method_errorf(f->guest_call, BROKER_ERROR_FAILED,
                                                  "The connection to the broker was lost before it answered; "
                                                  "the request may not have been carried out.");
                g_hash_table_iter_remove(&it);
        }
        sd_bus_close(a->broker);
        a->broker = sd_bus_unref(a->broker);
        a->ready = false;
        /* Every stream with it: handlers killed, apps' sockets closed, WaitStream answered; ports stay. */
        stream_table_broker_lost(a->streams);
        agent_schedule_reconnect(a);
}

static gboolean agent_drop_idle(gpointer userdata) {
        Agent *a = userdata;
        agent_drop_broker(a, "peer gone");
        return G_SOURCE_REMOVE;
}

static void broker_closed(void *userdata, int error) {
        Agent *a = userdata;
        /* Inside the source's dispatch: tear down from an idle callback. */
        g_idle_add_full(G_PRIORITY_HIGH, agent_drop_idle, a, NULL);
}

static int on_hello_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Agent *a = userdata;
        const char *vm, *version;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                log_warning("Broker refused Hello: %s", e && e->message ? e->message : "?");
                g_idle_add_full(G_PRIORITY_HIGH, agent_drop_idle, a, NULL);
                return 0;
        }
        if (sd_bus_message_read(reply, "ss", &vm, &version) < 0) {
                g_idle_add_full(G_PRIORITY_HIGH, agent_drop_idle, a, NULL);
                return 0;
        }
        if (!vm[0] || strlen(vm) > POLICY_NAME_MAX) {
                /* The broker names VMs by vms.d/'s rules (policy/name.h); anything else is not a broker's answer. */
                log_warning("Broker's Hello named a VM of %zu bytes (at most %d): not connecting.", strlen(vm),
                            POLICY_NAME_MAX);
                g_idle_add_full(G_PRIORITY_HIGH, agent_drop_idle, a, NULL);
                return 0;
        }
        g_free(a->vm_name);
        a->vm_name = g_strdup(vm);
        a->ready = true;
        log_info("Connected to broker %.32s as VM %s.", version, a->vm_name);
        return 0;
}

static int agent_connect(Agent *a) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        g_autofree char *path = NULL;
        struct stat st;
        int r;

        path = a->channel_path ? g_strdup(a->channel_path) : virtio_port_find(a->sysfs_root, AGENT_PORT_NAME);
        if (!path)
                return -ENOENT;

        if (stat(path, &st) < 0)
                return negative_errno();
        if (S_ISSOCK(st.st_mode)) {
                g_autofree char *address = g_strdup_printf("unix:path=%s", path);
                r = sd_bus_new(&bus);
                if (r < 0)
                        return r;
                r = sd_bus_set_address(bus, address);
                if (r >= 0)
                        r = bus_p2p_setup(bus, /* server= */ false, /* accept_fds= */ false, "broker");
        } else {
                /* The virtio port: plain read/write fds (the server end is a socket on the host). */
                int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return negative_errno();
                r = bus_p2p_new(fd, /* server= */ false, /* accept_fds= */ false, "broker", &bus);
        }
        if (r < 0)
                return r;
        /*
         * Agent1 is served only on this connection: the connection is the trust boundary.  Without
         * this, sd-bus checks each call's sender for privileges from the peer's credentials, which a
         * virtio port does not have (not a socket): every Agent1 call failed with ENODATA in a VM.
         */
        r = sd_bus_set_trusted(bus, 1);
        if (r < 0)
                return r;
        r = agent_iface_register(a, bus);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method_async(bus, NULL, NULL, BROKER_GUEST_PATH, BROKER_GUEST_INTERFACE, "Hello",
                                     on_hello_reply, a, "s", VMFED_VERSION);
        if (r < 0)
                return r;
        r = bus_source_attach(bus, broker_closed, a, &a->broker_source);
        if (r < 0)
                return r;
        a->broker = steal_pointer(&bus);
        a->n_connects++;
        return 0;
}

static gboolean agent_on_reconnect(gpointer userdata) {
        Agent *a = userdata;
        int r;

        a->reconnect_id = 0;
        r = agent_connect(a);
        if (r < 0) {
                log_debug_errno(r, "Cannot connect to the broker yet: %m");
                agent_schedule_reconnect(a);
        }
        return G_SOURCE_REMOVE;
}

static void agent_schedule_reconnect(Agent *a) {
        if (!a->reconnect_id)
                a->reconnect_id = g_timeout_add(RECONNECT_MS, agent_on_reconnect, a);
}

/* ---- forwarding Guest1 calls ------------------------------------------ */

int agent_new_broker_call(Agent *a, const char *member, sd_bus_message **ret) {
        if (!a->broker || !a->ready)
                return -ENOTCONN;
        return sd_bus_message_new_method_call(a->broker, ret, NULL, BROKER_GUEST_PATH, BROKER_GUEST_INTERFACE,
                                              member);
}

static int agent_stream_call(void *userdata, const char *member, sd_bus_message **ret) {
        return agent_new_broker_call(userdata, member, ret);
}

static int on_forward_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PendingForward *f = userdata;
        Agent *a = f->agent;
        int r;

        if (sd_bus_message_is_method_error(reply, NULL))
                r = sd_bus_reply_method_error(f->guest_call, sd_bus_message_get_error(reply));
        else if (f->convert)
                r = f->convert(f->guest_call, reply, f->userdata);
        else {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *out = NULL;
                r = sd_bus_message_new_method_return(f->guest_call, &out);
                if (r >= 0)
                        r = bus_copy_args(out, reply);
                if (r >= 0)
                        r = sd_bus_send(NULL, out, NULL);
        }
        if (r < 0)
                (void) sd_bus_reply_method_errorf(f->guest_call, BROKER_ERROR_FAILED,
                                                  "Cannot pass on the broker's answer: %s", strerror(-r));
        g_hash_table_remove(a->pending, f);
        return 0;
}

int agent_forward(Agent *a, sd_bus_message *m, sd_bus_message *fwd, AgentReplyConvert convert, void *userdata,
                  void (*free_userdata)(void *)) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = fwd;
        PendingForward *f;
        int r;

        if (!a->broker || !a->ready) {
                if (free_userdata)
                        free_userdata(userdata);
                return sd_bus_reply_method_errorf(m, BROKER_ERROR_FAILED,
                                                  "Not connected to the broker (reconnecting); nothing was done.");
        }
        f = g_new0(PendingForward, 1);
        f->agent = a;
        f->guest_call = sd_bus_message_ref(m);
        f->convert = convert;
        f->userdata = userdata;
        f->free_userdata = free_userdata;
        r = sd_bus_call_async(a->broker, &f->slot, call, on_forward_reply, f, AGENT_FORWARD_TIMEOUT_USEC);
        if (r < 0) {
                pending_forward_free(f);
                return sd_bus_reply_method_errorf(m, BROKER_ERROR_FAILED, "Cannot reach the broker: %s",
                                                  strerror(-r));
        }
        g_hash_table_add(a->pending, f);
        return 1;
}

/* ---- main ---------------------------------------------------------------- */

static void help(FILE *f) {
        fprintf(f,
                "Usage: vmfed-agent [OPTIONS]\n\n"
                "The vmfed agent inside a VM: talks to the broker over the virtio-serial port\n"
                AGENT_PORT_NAME " and offers org.vmfed.Guest1 to the guest's apps.\n\n"
                "  --channel PATH        broker connection: a virtio port device or (tests) a unix socket\n"
                "  --sysfs-root DIR      where to look for virtio-ports [/sys]\n"
                "  --guest-socket PATH   serve Guest1 on this socket (default: the system bus if there is\n"
                "                        one, else " AGENT_DEFAULT_GUEST_SOCKET ")\n"
                "  --apps-dir DIR        APPID.desktop files for Launch [/usr/share/applications]\n"
                "  --url-handler CMD     argv (split on spaces, no shell) that opens a URL [xdg-open]\n"
                "  --file-handler CMD    argv that opens a file and exits when done [xdg-open]\n"
                "  --files-dir DIR       where files from other VMs are put [/run/vmfed/files]\n"
                "  --url-schemes LIST    allowed URL schemes, comma-separated [http,https,ftp]\n"
                "  --net-interface NAME  interface for SetNetwork [eth0]\n"
                "  --resolv-conf PATH    DNS servers of SetNetwork go here [/etc/resolv.conf]\n"
                "  --services-dir DIR    stream handlers, vmfed.services(5) [" STREAM_SERVICES_DIR_DEFAULT "]\n"
                "  --service-user NAME   run them as NAME (when root) [the agent's user]\n"
                "  --stream-socket-prefix PREFIX\n"
                "                        tests: listen on PREFIX<I>.sock as QEMU would for the stream\n"
                "                        ports, instead of the virtio ports " STREAM_PORT_NAME_PREFIX "<I>\n"
                "  --streams N           how many ports to emulate [%d]\n"
                "  --debug, --help, --version\n",
                STREAM_PORTS_DEFAULT);
}

static gboolean on_quit_signal(gpointer userdata) {
        Agent *a = userdata;
        g_main_loop_quit(a->loop);
        return G_SOURCE_CONTINUE;
}

static char **split_argv(const char *s) {
        g_auto(GStrv) parts = g_strsplit(s, " ", -1);
        g_autoptr(GPtrArray) out = g_ptr_array_new();
        for (char **p = parts; *p; p++)
                if (**p)
                        g_ptr_array_add(out, g_strdup(*p));
        g_ptr_array_add(out, NULL);
        return (char **) g_ptr_array_free(g_steal_pointer(&out), FALSE);
}

/* The command line into *a: -1 to go on, else the exit status. */
static int agent_parse_args(Agent *a, int argc, char **argv) {
        enum {
                ARG_CHANNEL = 0x100, ARG_SYSFS, ARG_GUEST_SOCKET, ARG_APPS, ARG_URL, ARG_FILE, ARG_FILES_DIR,
                ARG_SCHEMES, ARG_NETIF, ARG_RESOLV, ARG_SERVICES_DIR, ARG_SERVICE_USER, ARG_STREAM_PREFIX, ARG_STREAMS,
                ARG_DEBUG, ARG_VERSION,
        };
        static const struct option options[] = {
                { "channel", required_argument, NULL, ARG_CHANNEL },
                { "sysfs-root", required_argument, NULL, ARG_SYSFS },
                { "guest-socket", required_argument, NULL, ARG_GUEST_SOCKET },
                { "apps-dir", required_argument, NULL, ARG_APPS },
                { "url-handler", required_argument, NULL, ARG_URL },
                { "file-handler", required_argument, NULL, ARG_FILE },
                { "files-dir", required_argument, NULL, ARG_FILES_DIR },
                { "url-schemes", required_argument, NULL, ARG_SCHEMES },
                { "net-interface", required_argument, NULL, ARG_NETIF },
                { "resolv-conf", required_argument, NULL, ARG_RESOLV },
                { "services-dir", required_argument, NULL, ARG_SERVICES_DIR },
                { "service-user", required_argument, NULL, ARG_SERVICE_USER },
                { "stream-socket-prefix", required_argument, NULL, ARG_STREAM_PREFIX },
                { "streams", required_argument, NULL, ARG_STREAMS },
                { "debug", no_argument, NULL, ARG_DEBUG },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        /* Each string option: where it goes. */
        char **strings[] = {
                [ARG_CHANNEL - ARG_CHANNEL] = &a->channel_path, [ARG_SYSFS - ARG_CHANNEL] = &a->sysfs_root,
                [ARG_GUEST_SOCKET - ARG_CHANNEL] = &a->guest_socket, [ARG_APPS - ARG_CHANNEL] = &a->apps_dir,
                [ARG_FILES_DIR - ARG_CHANNEL] = &a->files_dir, [ARG_NETIF - ARG_CHANNEL] = &a->net_interface,
                [ARG_RESOLV - ARG_CHANNEL] = &a->resolv_conf, [ARG_SERVICES_DIR - ARG_CHANNEL] = &a->services_dir,
                [ARG_SERVICE_USER - ARG_CHANNEL] = &a->service_user,
                [ARG_STREAM_PREFIX - ARG_CHANNEL] = &a->stream_socket_prefix,
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_CHANNEL: case ARG_SYSFS: case ARG_GUEST_SOCKET: case ARG_APPS:
                case ARG_FILES_DIR: case ARG_NETIF: case ARG_RESOLV: case ARG_SERVICES_DIR: case ARG_SERVICE_USER:
                case ARG_STREAM_PREFIX:
                        g_free(*strings[c - ARG_CHANNEL]);
                        *strings[c - ARG_CHANNEL] = g_strdup(optarg);
                        break;
                case ARG_URL:
                        g_strfreev(a->url_handler);
                        a->url_handler = split_argv(optarg);
                        break;
                case ARG_FILE:
                        g_strfreev(a->file_handler);
                        a->file_handler = split_argv(optarg);
                        break;
                case ARG_SCHEMES:
                        g_strfreev(a->url_schemes);
                        a->url_schemes = g_strsplit(optarg, ",", -1);
                        break;
                case ARG_STREAMS: {
                        char *end;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (!*optarg || *end || n > STREAM_PORTS_MAX) {
                                fprintf(stderr, "vmfed-agent: --streams takes 0 to %d\n", STREAM_PORTS_MAX);
                                return 2;
                        }
                        a->n_streams = (unsigned) n;
                        break;
                }
                case ARG_DEBUG:
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help(stdout);
                        return 0;
                case ARG_VERSION:
                        printf("vmfed-agent %s\n", VMFED_VERSION);
                        return 0;
                default:
                        help(stderr);
                        return 2;
                }
        }
        if (!a->url_handler[0] || !a->file_handler[0]) {
                fprintf(stderr, "vmfed-agent: empty handler command\n");
                return 2;
        }
        return -1;
}

static void agent_done(Agent *a) {
        if (a->reconnect_id)
                g_source_remove(a->reconnect_id);
        a->guest = guest_server_free(a->guest);
        a->streams = stream_table_free(a->streams);
        if (a->pending)
                g_hash_table_remove_all(a->pending);
        a->broker_source = bus_source_free(a->broker_source);
        if (a->broker)
                sd_bus_flush_close_unref(a->broker);
        g_clear_pointer(&a->pending, g_hash_table_unref);
        g_clear_pointer(&a->loop, g_main_loop_unref);
        g_free(a->channel_path);
        g_free(a->sysfs_root);
        g_free(a->guest_socket);
        g_free(a->apps_dir);
        g_free(a->files_dir);
        g_free(a->resolv_conf);
        g_free(a->net_interface);
        g_free(a->vm_name);
        g_free(a->stream_socket_prefix);
        g_free(a->services_dir);
        g_free(a->service_user);
        g_strfreev(a->url_handler);
        g_strfreev(a->file_handler);
        g_strfreev(a->url_schemes);
}

int main(int argc, char **argv) {
        Agent a = {
                .sysfs_root = g_strdup("/sys"),
                .apps_dir = g_strdup("/usr/share/applications"),
                .files_dir = g_strdup("/run/vmfed/files"),
                .resolv_conf = g_strdup("/etc/resolv.conf"),
                .net_interface = g_strdup("eth0"),
                .services_dir = g_strdup(STREAM_SERVICES_DIR_DEFAULT),
                .n_streams = STREAM_PORTS_DEFAULT,
        };
        int r;

        log_set_ident("vmfed-agent");
        a.url_handler = split_argv("xdg-open");
        a.file_handler = split_argv("xdg-open");
        a.url_schemes = g_strsplit("http,https,ftp", ",", -1);
        r = agent_parse_args(&a, argc, argv);
        if (r >= 0) {
                agent_done(&a);
                return r;
        }
        signal(SIGPIPE, SIG_IGN);
        /* Pastes and files of up to 64 MiB pass through here (common/bulk-memory.h). */
        if (bulk_memory_tune() < 0)
                log_debug("The C library refused the bulk-transfer memory settings; going on with its own.");

        a.loop = g_main_loop_new(NULL, FALSE);
        bulk_memory_trim_when_idle();
        a.pending = g_hash_table_new_full(g_direct_hash, g_direct_equal, pending_forward_free, NULL);
        g_unix_signal_add(SIGTERM, on_quit_signal, &a);
        g_unix_signal_add(SIGINT, on_quit_signal, &a);

        r = stream_table_new(&(StreamOptions) { .socket_prefix = a.stream_socket_prefix, .n_ports = a.n_streams,
                                                .sysfs_root = a.sysfs_root, .services_dir = a.services_dir,
                                                .service_user = a.service_user },
                             agent_stream_call, &a, &a.streams);
        if (r < 0) {
                log_error_errno(r, "Cannot set up the stream ports: %m");
                agent_done(&a);
                return 1;
        }

        r = guest_server_start(&a, &a.guest);
        if (r < 0) {
                log_error_errno(r, "Cannot offer " GUEST1_INTERFACE ": %m");
                agent_done(&a);
                return 1;
        }

        r = agent_connect(&a);
        if (r < 0) {
                log_full_errno(LOG_INFO, r, "Broker not reachable yet (%s): %m; retrying.",
                               a.channel_path ? a.channel_path : "virtio port " AGENT_PORT_NAME);
                agent_schedule_reconnect(&a);
        }

        g_main_loop_run(a.loop);

        r = a.exit_status;
        agent_done(&a);
        return r;
}
