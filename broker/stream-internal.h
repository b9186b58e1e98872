/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The parts of broker/stream.c that broker/stream-start.c shares (setting
 * a stream up): the table's, a stream's and a VM's ports' state.  Nothing
 * outside the two includes it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "broker/stream.h"
#include "broker/stream-port.h"

enum { SIDE_CALLER, SIDE_TARGET, N_SIDES };

typedef enum StreamState {
        STREAM_QUEUED,   /* waiting for free ports */
        STREAM_STARTING, /* ports bound, StartService sent, the caller answered (its input not read yet) */
        STREAM_RUNNING,  /* the target's agent took it: the handler runs (or is about to) */
} StreamState;

typedef struct VmPorts VmPorts;
typedef struct Stream Stream;

/* The stream ports of one VM the broker has used. */
struct VmPorts {
        StreamTable *table;
        char *vm;
        unsigned n;
        StreamPort **port; /* [n], NULL: not connected yet (or closed) */
        Stream **owner;    /* [n], NULL: free */
};

struct Stream {
        StreamTable *table;
        uint64_t id;
        char *source, *target, *service, *arg;
        StreamCallbacks cb;
        void *userdata;
        StreamState state;
        unsigned port[N_SIDES];
        uint32_t tag[N_SIDES];
        bool have_port[N_SIDES];
        bool eof[N_SIDES];     /* the flow out of this side ended (forwarded or discarded) */
        bool exited;           /* StreamExited came */
        bool ended_sent;       /* StreamEnded went to the caller */
        bool answered;         /* the caller has its end (cb.opened): from here on it hears through StreamEnded */
        int status;
        char *message;
        int64_t started_usec;
        uint64_t bytes[N_SIDES]; /* payload out of each side */
        /* A side that is the host's (raw: plain bytes on a socket) instead of a VM's port: the caller of
         * a stream from the host (vmfedctl run), the target of one to the host (the clipboard's). */
        StreamPort *raw[N_SIDES];
        int host_fd;             /* the host service's end of raw[SIDE_TARGET] until it starts, else -1 */
};

/* What a StartService call's answer finds its stream by: the table may be gone by then. */
typedef struct TableRef {
        StreamTable *table; /* NULL once the table is freed */
} TableRef;

typedef struct StartCall {
        TableRef *ref; /* g_rc_box */
        uint64_t id;
        char *target;
} StartCall;

struct StreamTable {
        Broker *broker;
        TableRef *ref;
        GHashTable *vms;      /* name → VmPorts */
        GHashTable *streams;  /* &id → Stream */
        GQueue queue;         /* Stream, QUEUED, oldest first */
        GPtrArray *dead_hosts; /* ports to free from an idle (not inside their dispatch): host ends, closed ports */
        unsigned reap_id;
        unsigned watch;
        uint64_t next_id;
};

/* stream.c */
void stream_abort(Stream *s, const char *error_name, const char *why);
void stream_progress(Stream *s);
StreamPort *stream_side_port(Stream *s, int side);
void stream_tell_vm(Broker *b, const char *vm, const char *member, const char *types, ...);
Stream *stream_table_lookup(StreamTable *t, uint64_t id);
VmPorts *vm_ports_get(StreamTable *t, const char *vm);
int vm_ports_free_index(VmPorts *v);
unsigned vm_ports_held_by(VmPorts *target, const char *source);
int vm_ports_connect(VmPorts *v, unsigned i);

/* stream-start.c: start what the queue holds and has ports for now. */
void stream_table_try_start(StreamTable *t);
