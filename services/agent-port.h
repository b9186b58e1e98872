/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * AgentPort: the agent's end of one stream port (virtio-serial
 * org.vmfed.stream.I in a VM; in tests a unix socket the agent accepted,
 * standing in for QEMU) and the frame engine of docs/streams.md on it.
 *
 * A port has a *reader* (frames from the broker → the sink fd of a stream:
 * an app's socket, a handler's stdin) and a *writer* (the source fd of a
 * stream: an app's socket, a handler's stdout → frames to the broker).
 * Bindings belong to streams; the byte state belongs to the port, so a
 * frame half read or half written when a stream lets go is finished
 * (dropped, resp. written whole under its old tag) before the next stream
 * uses the port:
 *
 *   - Frames whose tag is not the bound reader's are dropped whole;
 *     garbage (a bad magic, a length over 65536, a tag 0) is skipped up to
 *     the next possible header (stream_frame_scan()).
 *   - Nothing is read while no reader is bound: bytes of the next stream
 *     stay in the port (or in the port's buffer) until their tag is known.
 *   - A second reader bound while one is bound waits until the first one's
 *     EOF frame (or until the first one is unbound): the previous stream
 *     loses none of its bytes.
 *   - A connection given to the port (agent_port_set_fd()) first gets
 *     STREAM_PAD_BYTES zeros: an earlier agent may have died mid-frame.
 *
 * At most one frame is buffered per direction (STREAM_FRAME_HEADER +
 * STREAM_FRAME_MAX bytes each); when the sink cannot take more the port is
 * not read, when the port cannot take more the source is not read.  All
 * fds are non-blocking and watched on the default main context; the
 * callbacks (AgentPortOps) run from there, never from inside a call into
 * this module, and may bind and unbind.  SIGPIPE must be ignored (a
 * handler's stdin is a pipe).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/stream-frame.h"

#define STREAM_PAD_BYTES (STREAM_FRAME_MAX + STREAM_FRAME_HEADER)

typedef struct AgentPort AgentPort;

typedef struct AgentPortOps {
        /* The reader's EOF frame came and every byte before it went to the sink; the reader is unbound. */
        void (*reader_eof)(void *userdata);
        /* Writing to the sink failed (EPIPE, the peer hung up): the rest up to the EOF frame is dropped. */
        void (*reader_failed)(void *userdata, int error);
        /* The writer's EOF frame is written (the writer stays bound until unbound). */
        void (*writer_eof)(void *userdata);
        /* Reading the source failed: an EOF frame is written instead of the rest. */
        void (*writer_failed)(void *userdata, int error);
} AgentPortOps;

AgentPort *agent_port_new(unsigned index, const AgentPortOps *ops);
/* Closes its fd; the sinks and sources stay the streams'. */
AgentPort *agent_port_free(AgentPort *p);
unsigned agent_port_index(const AgentPort *p);

/*
 * The port's connection (owned from now on), replacing and closing an
 * earlier one.  The broker hanging up a socket closes it (fd -EBADF until
 * the next one); a virtio port that hangs up (no host side connected) is
 * polled again a little later.
 */
void agent_port_set_fd(AgentPort *p, int fd);
int agent_port_fd(const AgentPort *p);

/*
 * Bind a reader: frames with tag go to sink_fd (non-blocking, not owned).
 * With one bound already it waits in line: each takes over at the EOF frame
 * of the one before (the port holds the streams' frames in that order).
 */
void agent_port_bind_reader(AgentPort *p, uint32_t tag, int sink_fd, void *userdata);
/* Unbind userdata's reader (bound or waiting); the rest of a frame it was reading is dropped. */
void agent_port_unbind_reader(AgentPort *p, void *userdata);
/* The bound reader's userdata (NULL: none); *ret_dropping: its sink failed, it only drops. */
void *agent_port_reader(const AgentPort *p, bool *ret_dropping);

/* Bind the writer: what source_fd gives goes out in frames with tag; replaces a bound writer. */
void agent_port_bind_writer(AgentPort *p, uint32_t tag, int source_fd, void *userdata);
void agent_port_unbind_writer(AgentPort *p, void *userdata);
/* Read no more from the source: after what is buffered comes the EOF frame. */
void agent_port_finish_writer(AgentPort *p, void *userdata);
void *agent_port_writer(const AgentPort *p);
