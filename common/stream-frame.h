/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stream frames: the framing of every byte on a stream port
 * (org.vmfed.stream.I), shared by the broker and the agent.  The protocol
 * is in docs/streams.md: a 12-byte header (magic, tag, length; little
 * endian) and up to STREAM_FRAME_MAX bytes of payload; length 0 is EOF.
 *
 * stream_frame_scan() finds the next valid header in untrusted bytes: a
 * reader skips garbage one byte at a time, never trusting a length it has
 * not checked.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STREAM_FRAME_MAGIC 0x5346564du /* "MVFS" */
#define STREAM_FRAME_HEADER 12
#define STREAM_FRAME_MAX 65536u
#define STREAM_PORT_NAME_PREFIX "org.vmfed.stream."
#define STREAM_PORTS_DEFAULT 8
#define STREAM_PORTS_MAX 28 /* with the agent's and a netvm's port: 30, one virtio-serial controller */

/* StreamExited/StreamEnded: an exit code 0-255, 128+signal, or -1 (none); a message of at most this. */
#define STREAM_MESSAGE_MAX 512
static inline bool stream_status_is_valid(int status) {
        return status >= -1 && status <= 255 + 128;
}

typedef struct StreamFrameHeader {
        uint32_t tag; /* never 0 */
        uint32_t len; /* 0 … STREAM_FRAME_MAX; 0: end of file */
} StreamFrameHeader;

/* Write the 12 header bytes for h into buf. */
void stream_frame_encode(const StreamFrameHeader *h, uint8_t buf[STREAM_FRAME_HEADER]);

/*
 * Parse 12 header bytes: 0 and *ret filled when the magic is right, the
 * tag not 0 and the length at most STREAM_FRAME_MAX; -EBADMSG otherwise.
 */
int stream_frame_decode(const uint8_t buf[STREAM_FRAME_HEADER], StreamFrameHeader *ret);

/*
 * In n untrusted bytes, the offset of the first position where a valid
 * header starts or could start (a prefix of the magic at the very end):
 * the bytes before it are garbage to drop.  Returns n when none could.
 */
size_t stream_frame_scan(const uint8_t *buf, size_t n);

/* A random tag, never 0 (getrandom(2), falling back to GLib's generator). */
uint32_t stream_frame_new_tag(void);
