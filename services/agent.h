/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Agent: the state of one vmfed-agent process inside a VM.
 *
 * Two doors, never mixed:
 *   - the *broker connection*: the VM's virtio-serial port
 *     org.vmfed.agent.0 (or, in tests, the broker's channel socket given
 *     with --channel).  D-Bus peer-to-peer, the broker is the server, we
 *     are the client.  We call org.vmfed.Federation1.Guest there and serve
 *     org.vmfed.Agent1 — only there: whatever Agent1 does (exec an app,
 *     open a URL or a file, configure the network) comes from the broker.
 *   - the *guest side*: org.vmfed.Guest1 for desktop apps, on the guest's
 *     system bus (name org.vmfed.Guest1) or on a private socket
 *     (/run/vmfed/guest.sock, --guest-socket).  Every Guest1 call is
 *     forwarded to the broker, which decides; nothing is executed locally.
 *
 * The broker connection is re-established (and re-handshaken with Hello)
 * whenever it drops: a broker restart makes QEMU reconnect the port.
 * Requests in flight when it drops fail with an error: a lost request is
 * never reported as success.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#define AGENT_PORT_NAME "org.vmfed.agent.0"
#define AGENT1_INTERFACE "org.vmfed.Agent1"
#define AGENT1_PATH "/org/vmfed/Agent1"
#define GUEST1_INTERFACE "org.vmfed.Guest1"
#define GUEST1_PATH "/org/vmfed/Guest1"
#define GUEST1_BUS_NAME "org.vmfed.Guest1"
#define BROKER_GUEST_INTERFACE "org.vmfed.Federation1.Guest"
#define BROKER_GUEST_PATH "/org/vmfed/Federation1"
#define AGENT_DEFAULT_GUEST_SOCKET "/run/vmfed/guest.sock"

/* Hard cap for one payload (clipboard, file) below sd-bus' 128 MiB message limit. */
#define AGENT_PAYLOAD_MAX (64u * 1024 * 1024)
/* Forwarded calls: asks and VM starts may take minutes. */
#define AGENT_FORWARD_TIMEOUT_USEC (15ULL * 60 * 1000000)
#define AGENT_MAX_GUEST_CONNECTIONS 64

typedef struct Agent Agent;
typedef struct GuestServer GuestServer;
typedef struct StreamTable StreamTable;

struct Agent {
        GMainLoop *loop;
        char *channel_path;     /* --channel, or the virtio port found in sysfs */
        char *sysfs_root;       /* "/sys" (tests may point elsewhere) */
        char *guest_socket;     /* --guest-socket, or NULL: system bus if any, else the default socket */
        bool use_system_bus;

        /* Exec configuration (Agent1): no shell anywhere, argv only. */
        char *apps_dir;         /* APPID.desktop files, default /usr/share/applications */
        char **url_handler;     /* argv prefix, the URL is appended; default xdg-open */
        char **file_handler;    /* argv prefix, the path is appended; waited for */
        char *files_dir;        /* where files from other VMs are put */
        char *resolv_conf;      /* SetNetwork's DNS goes here */
        char *net_interface;    /* SetNetwork's default interface */
        char **url_schemes;     /* allowed URL schemes (the broker checks them too) */

        /* Streams (docs/streams.md, services/stream.h). */
        char *stream_socket_prefix; /* --stream-socket-prefix: emulate the ports (tests); NULL: virtio ports */
        unsigned n_streams;         /* --streams: how many to emulate */
        char *services_dir;         /* --services-dir: the handlers, vmfed.services(5) */
        char *service_user;         /* --service-user, or NULL: the agent's own */
        StreamTable *streams;

        /* The broker connection. */
        sd_bus *broker;
        GSource *broker_source;
        bool ready;             /* Hello answered */
        char *vm_name;          /* from Hello */
        guint reconnect_id;
        uint64_t n_connects;
        GHashTable *pending;    /* PendingForward* set: calls waiting for the broker */

        GuestServer *guest;
        int exit_status;
};

/* agent.c */
/*
 * Forward a Guest1 call m to the broker's Guest.<member> with the body
 * `fwd` (a method call made with agent_new_broker_call(); consumed), and
 * reply to m with the broker's answer, converted by convert (may be NULL:
 * the broker's reply body is copied as it is).  Fails m at once when no
 * broker connection is up; fails m when the connection drops before the
 * answer.
 */
typedef int (*AgentReplyConvert)(sd_bus_message *guest_call, sd_bus_message *broker_reply, void *userdata);
int agent_new_broker_call(Agent *a, const char *member, sd_bus_message **ret);
int agent_forward(Agent *a, sd_bus_message *m, sd_bus_message *fwd, AgentReplyConvert convert, void *userdata,
                  void (*free_userdata)(void *));

/* agent-iface.c: org.vmfed.Agent1 on the broker connection. */
int agent_iface_register(Agent *a, sd_bus *broker);

/* guest-iface.c: org.vmfed.Guest1 for the guest's apps. */
int guest_server_start(Agent *a, GuestServer **ret);
GuestServer *guest_server_free(GuestServer *s);
