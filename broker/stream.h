/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Streams: the broker's side of the data plane between VMs (docs/streams.md).
 *
 * A stream is set up after the policy allowed it (broker/guest-request.c
 * decides, with asks, @dispvm and autostart, exactly as for Launch):
 * stream_open() queues it until the caller and the target each have a free
 * stream port (a VM holds at most half of another VM's ports, rounded up,
 * so one VM flooding streams only delays itself), binds both ports with
 * fresh tags, starts the target's flow (broker/stream-port.c), asks the
 * target's agent to start the handler (Agent1.StartService) and at once
 * gives `opened` the caller's side; the caller's flow starts when the
 * target's agent has answered (a refusal then aborts the stream, and the
 * caller hears it as StreamEnded -1: `ended`).  When the stream is over (both EOFs
 * passed and the handler's exit reported, or an abort), the caller's agent
 * gets Agent1.StreamEnded, an audit line is written and `ended` runs.
 *
 * Aborts: the caller's or the target's agent going away (the broker event
 * BROKER_EVENT_AGENT_LOST), a port whose connection breaks, CloseStream, a
 * handler that cannot start, stream_table_free().
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "broker/broker.h"

typedef struct StreamTable StreamTable;

/* OpenStream calls of one VM that may wait for a port; more get Busy. */
#define STREAM_MAX_QUEUED_PER_VM 256
/* The target's agent must have started the handler by then. */
#define STREAM_START_TIMEOUT_USEC (60ULL * 1000000)

typedef struct StreamOpened {
        const char *vm;  /* where the handler runs */
        unsigned port;   /* the caller's port */
        uint32_t tag;    /* the caller's tag */
        uint64_t id;
} StreamOpened;

typedef struct StreamCallbacks {
        /* Exactly once: r >= 0 with o, or r < 0 with error_name and error (the stream is gone). */
        void (*opened)(Broker *b, int r, const StreamOpened *o, const char *error_name, const char *error,
                       void *userdata);
        /* After a successful opened: the stream is over; the handler's status (-1 and why: aborted). */
        void (*ended)(Broker *b, int status, const char *message, void *userdata);
        /*
         * A stream to the host (stream_open_to_host()), right after opened: the broker's own service
         * runs now.  fd (taken; non-blocking) carries plain bytes: the caller's input is read from it up
         * to its end of file, what is written to it reaches the caller, shutdown(SHUT_WR) is the output's
         * EOF.  The service reports its end with stream_exited(t, "@host", id, ...), never from inside
         * this callback; ended comes after it (or instead, -1, when the stream is aborted).
         */
        void (*host_start)(Broker *b, uint64_t id, int fd, void *userdata);
} StreamCallbacks;

StreamTable *stream_table_new(Broker *b);
/* Aborts every stream ("the broker is shutting down"), calling back each. */
StreamTable *stream_table_free(StreamTable *t);

/*
 * Open a stream of service (+arg, may be NULL) from source to target, both
 * running VMs with agents.  -EBUSY when source has too many queued.
 */
int stream_open(StreamTable *t, const char *source, const char *target, const char *service, const char *arg,
                const StreamCallbacks *cb, void *userdata);

/*
 * The same from the host (source "@host", vmfedctl run): the caller's side is a socket, *ret_fd (the
 * caller's, to pass on) carries plain bytes, shutdown(SHUT_WR) ends its input; *ret_id is the stream's id.
 */
int stream_open_host(StreamTable *t, const char *target, const char *service, const char *arg,
                     const StreamCallbacks *cb, void *userdata, int *ret_fd, uint64_t *ret_id);

/*
 * A stream from source (a running VM with an agent) to the broker itself (target "@host"), for the
 * services the broker serves (the clipboard's large copies and pastes): cb.host_start gets the host's end.
 */
int stream_open_to_host(StreamTable *t, const char *source, const char *service, const char *arg,
                        const StreamCallbacks *cb, void *userdata);

/* From vm's channel (or "@host" for a service of the broker's): the handler of stream id (vm is its target) ended. */
int stream_exited(StreamTable *t, const char *vm, uint64_t id, int status, const char *message);
/* From vm's channel: vm (source or target) gives stream id up. */
int stream_close(StreamTable *t, const char *vm, uint64_t id);

/* Streams of vm (as source or target) open or queued now. */
unsigned stream_table_count(StreamTable *t, const char *vm);
