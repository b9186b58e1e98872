/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the StreamTable (services/stream.h): stream.c owns the table, the
 * ports and what both ends share; stream-caller.c the streams an app of
 * this VM opened, stream-target.c those whose handler runs here.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "common/stream-frame.h"

typedef struct StreamTable StreamTable;
typedef struct Stream Stream;
typedef struct AgentPort AgentPort;
typedef struct FdWatch FdWatch;

#define STREAM_ERROR_INVALID_ARGS "org.vmfed.Federation1.Error.InvalidArgs"
#define STREAM_ERROR_NOT_FOUND "org.vmfed.Federation1.Error.NotFound"
#define STREAM_ERROR_FAILED "org.vmfed.Federation1.Error.Failed"
#define STREAM_ERROR_NO_HANDLER "org.vmfed.Agent1.Error.NoHandler"
#define STREAM_ERROR_AGENT_FAILED "org.vmfed.Agent1.Error.Failed"
#define STREAM_RESULTS_KEPT 256 /* ended streams whose WaitStream answer is kept */

typedef enum StreamRole {
        STREAM_CALLER, /* an app of this VM opened it */
        STREAM_TARGET, /* its handler runs here */
} StreamRole;

/* The handler's child watch finds its stream through this: the stream may be gone first. */
typedef struct StreamChild {
        Stream *stream;
        GPid pid;
        guint watch;
} StreamChild;

struct Stream {
        StreamTable *table;
        StreamRole role;
        uint64_t id; /* the broker's */
        unsigned port;
        uint32_t tag;
        bool in_done;  /* the inbound direction is over: EOF passed on (or dropped) */
        bool out_done; /* our EOF frame is written (or the port was taken from us) */
        int status;    /* caller: StreamEnded's; target: the handler's exit */
        char *message;

        /* caller */
        uint64_t local_id; /* what Guest1 calls it: unique for the agent's life, unlike the broker's */
        int app_fd;        /* our end of the app's socketpair */
        bool ended;        /* StreamEnded came */
        bool answered;     /* WaitStream's answer is known */
        GPtrArray *waiters; /* WaitStream calls (sd_bus_message *) */

        /* target */
        StreamChild *child; /* NULL: exited (reaped) */
        GPid pgid;
        int stdin_fd, stdout_fd;
        bool exited;
        void *spawn;              /* the handler still to start (stream-target.c), freed with the stream */
        GDestroyNotify spawn_free;
        guint spawn_id;           /* the idle that starts it, after StartService's reply */
};

typedef struct StreamResult {
        uint64_t local_id; /* the key of StreamTable.results */
        int status;
        char *message;
} StreamResult;

typedef struct PortSlot {
        StreamTable *table;
        unsigned index;
        AgentPort *port; /* made at first use */
        char *socket_path; /* emulated: we listen there */
        int listen_fd;
        FdWatch *listen_watch;
} PortSlot;

struct StreamTable {
        char *socket_prefix, *sysfs_root, *services_dir, *service_user;
        StreamBrokerCallFn call;
        void *call_userdata;
        unsigned n_ports; /* valid port numbers: emulated ones, or STREAM_PORTS_MAX in a VM */
        PortSlot *slots;
        GHashTable *streams; /* &id → Stream (both roles) */
        GHashTable *callers; /* &local_id → Stream */
        GHashTable *results; /* &local_id → StreamResult of ended caller streams */
        GQueue results_order; /* the same StreamResult *, oldest first */
        uint64_t next_local_id;
};

/* stream.c */
Stream *stream_new(StreamTable *t, StreamRole role, uint64_t id, unsigned port, uint32_t tag);
void stream_free(Stream *s);
/* The port open (a VM) or its connection taken if there is one (emulated).  -errno and *ret_why. */
int stream_table_ensure_port(StreamTable *t, unsigned index, char **ret_why);
/* Bind s to its port: sink gets the inbound payload, source gives the outbound. */
void stream_attach(Stream *s, int sink, int source);
void stream_finish_output(Stream *s);
void stream_progress(Stream *s);
void stream_tell_broker(StreamTable *t, const char *member, const char *types, ...);

/* stream-caller.c */
void stream_caller_progress(Stream *s);
/* End it now with this status (an abort: -1 and why): WaitStream answered, the app's socket closed. */
void stream_caller_finish(Stream *s, int status, const char *message);
void stream_result_free(void *p);

/* stream-target.c */
void stream_target_progress(Stream *s);
/* Kill its handler's process group and forget the stream. */
void stream_target_kill(Stream *s, const char *why);
/* At the agent's exit: kill, reap and forget. */
void stream_target_reap(Stream *s);
