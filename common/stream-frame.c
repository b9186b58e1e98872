/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "common/stream-frame.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <glib.h>

static void put_le32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}

static uint32_t get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

void stream_frame_encode(const StreamFrameHeader *h, uint8_t buf[STREAM_FRAME_HEADER]) {
        put_le32(buf, STREAM_FRAME_MAGIC);
        put_le32(buf + 4, h->tag);
        put_le32(buf + 8, h->len);
}

int stream_frame_decode(const uint8_t buf[STREAM_FRAME_HEADER], StreamFrameHeader *ret) {
        uint32_t magic = get_le32(buf), tag = get_le32(buf + 4), len = get_le32(buf + 8);

        if (magic != STREAM_FRAME_MAGIC || tag == 0 || len > STREAM_FRAME_MAX)
                return -EBADMSG;
        *ret = (StreamFrameHeader) { .tag = tag, .len = len };
        return 0;
}

size_t stream_frame_scan(const uint8_t *buf, size_t n) {
        uint8_t magic[4];
        put_le32(magic, STREAM_FRAME_MAGIC);

        for (size_t i = 0; i < n; i++) {
                size_t have = n - i < 4 ? n - i : 4;
                if (memcmp(buf + i, magic, have) != 0)
                        continue;
                if (n - i < STREAM_FRAME_HEADER)
                        return i; /* could start here: wait for the rest */
                StreamFrameHeader h;
                if (stream_frame_decode(buf + i, &h) == 0)
                        return i;
        }
        return n;
}

uint32_t stream_frame_new_tag(void) {
        uint32_t t = 0;
        while (t == 0)
                if (getrandom(&t, sizeof t, GRND_NONBLOCK) != (ssize_t) sizeof t)
                        t = g_random_int();
        return t;
}
