/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * StreamPort: the broker's end of one stream port of one VM — the unix
 * socket STATE/channels/NAME.stream.I.sock on which QEMU listens for
 * virtio-serial port org.vmfed.stream.I — and the frame engine that moves a
 * stream's bytes from one port to another (docs/streams.md).
 *
 * A port has a reader (frames coming from its guest) and a writer (frames
 * going to it).  A *flow* is one direction of a stream: the reader of port
 * `src` feeding the writer of port `dst`.  Headers are read and checked
 * (12 bytes at a time), rewritten with dst's tag, and payloads are moved
 * with splice(2) through a pipe, never copied to user space.  Frames with
 * another tag than the bound one are dropped; garbage is skipped byte by
 * byte (stream_frame_scan()).  The reader and writer states belong to the
 * port, not to the stream: a frame half read or half written when a stream
 * ends is finished (dropped, or completed with zero bytes) before the next
 * stream uses the port.  A port connected for the first time by this
 * broker writes STREAM_PAD_BYTES zeros first (a previous broker may have
 * died mid-frame).
 *
 * Everything is non-blocking and runs from a GSource per port on the
 * default main context.  What happens to a flow is reported through
 * StreamPortEvents to its owner (broker/stream.c).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/stream-frame.h"

#define STREAM_PAD_BYTES (STREAM_FRAME_MAX + STREAM_FRAME_HEADER)
/* Bytes one port moves per main-loop dispatch before it lets others run. */
#define STREAM_PORT_BUDGET (1024 * 1024)

typedef struct StreamPort StreamPort;

typedef enum StreamPortEventKind {
        STREAM_PORT_EOF_FORWARDED, /* the flow out of this port: its EOF frame was written to dst */
        STREAM_PORT_DISCARD_EOF,   /* the flow out of this port was being discarded: its EOF came */
        STREAM_PORT_FAILED,        /* the port's connection broke (QEMU went, an error): the port is closed */
} StreamPortEventKind;

typedef void (*StreamPortEventFn)(StreamPort *p, StreamPortEventKind kind, const char *why, void *userdata);

/* Connect to path (QEMU's listening socket).  -errno when it cannot (not running, no such port). */
int stream_port_connect(const char *path, const char *vm, unsigned index, StreamPortEventFn fn, void *userdata,
                        StreamPort **ret);
/*
 * A host end (vmfedctl run): fd (taken) carries plain bytes, no frames.  What is read from it becomes
 * frames for its flow's dst, its end of file an EOF frame; frames to it arrive as their payload, an
 * EOF frame as shutdown(SHUT_WR).  Nothing is padded or owed.
 */
int stream_port_new_raw(int fd, const char *name, StreamPortEventFn fn, void *userdata, StreamPort **ret);
/* Who hears the port's events from now on (NULL: nobody). */
void stream_port_set_handler(StreamPort *p, StreamPortEventFn fn, void *userdata);
StreamPort *stream_port_free(StreamPort *p);

const char *stream_port_vm(const StreamPort *p);
unsigned stream_port_index(const StreamPort *p);
bool stream_port_is_open(const StreamPort *p);

/*
 * Bind the port to a stream side with tag: frames read with that tag are
 * the stream's (flows to dst, see stream_port_set_flow()), others dropped;
 * frames written to it carry that tag.  tag 0: unbind (the port is idle: it
 * is not read; debts of its writer are still paid).
 */
void stream_port_bind(StreamPort *p, uint32_t tag);
uint32_t stream_port_tag(const StreamPort *p);

/*
 * Start moving this port's inbound frames to dst (NULL: stop reading).
 * discard: read the frames and drop them until the EOF frame
 * (STREAM_PORT_DISCARD_EOF), e.g. after the handler exited.
 */
void stream_port_set_flow(StreamPort *src, StreamPort *dst, bool discard);

/*
 * Stop the flow out of src where it is: bytes already taken from src but
 * not written to its dst become dst's debt (the rest of the header, then
 * zeros), the rest of the frame being read is dropped when src is read
 * again.  After this both ports may be bound to other streams.
 */
void stream_port_stop_flow(StreamPort *src);

/*
 * A host end (raw) whose service has exited: refuse what its caller still
 * sends (shutdown(SHUT_RD): the caller's writes fail, its poll sees the
 * hang-up once our output ended too); what is queued already is still read
 * and dropped up to the end of file.  Nothing for a VM's port: its agent
 * does the same on Agent1.StreamEnded.
 */
void stream_port_refuse_input(StreamPort *p);

/* Payload bytes the flow out of p has moved since the last bind. */
uint64_t stream_port_bytes(const StreamPort *p);
