/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "common/stream-frame.h"

static void test_roundtrip(void) {
        uint8_t b[STREAM_FRAME_HEADER];
        StreamFrameHeader h = { .tag = 0xdeadbeef, .len = STREAM_FRAME_MAX }, o;

        stream_frame_encode(&h, b);
        g_assert_cmpmem(b, 4, "MVFS", 4);
        g_assert_cmpint(stream_frame_decode(b, &o), ==, 0);
        g_assert_cmpuint(o.tag, ==, h.tag);
        g_assert_cmpuint(o.len, ==, h.len);
}

static void test_rejects(void) {
        uint8_t b[STREAM_FRAME_HEADER];
        StreamFrameHeader o;

        stream_frame_encode(&(StreamFrameHeader) { .tag = 0, .len = 1 }, b);
        g_assert_cmpint(stream_frame_decode(b, &o), ==, -EBADMSG); /* tag 0 */
        stream_frame_encode(&(StreamFrameHeader) { .tag = 7, .len = STREAM_FRAME_MAX + 1 }, b);
        g_assert_cmpint(stream_frame_decode(b, &o), ==, -EBADMSG); /* too long */
        stream_frame_encode(&(StreamFrameHeader) { .tag = 7, .len = 1 }, b);
        b[0] ^= 1;
        g_assert_cmpint(stream_frame_decode(b, &o), ==, -EBADMSG); /* magic */
}

static void test_scan(void) {
        uint8_t buf[64];
        memset(buf, 'x', sizeof buf);
        g_assert_cmpuint(stream_frame_scan(buf, sizeof buf), ==, sizeof buf);

        /* a valid header after garbage, and a bogus one (length too big) before it */
        stream_frame_encode(&(StreamFrameHeader) { .tag = 9, .len = 0xffffffff }, buf + 3);
        stream_frame_encode(&(StreamFrameHeader) { .tag = 9, .len = 5 }, buf + 20);
        g_assert_cmpuint(stream_frame_scan(buf, sizeof buf), ==, 20);

        /* a partial magic at the end could still start a header: keep it */
        memset(buf, 'x', sizeof buf);
        memcpy(buf + 62, "MV", 2);
        g_assert_cmpuint(stream_frame_scan(buf, sizeof buf), ==, 62);
        memcpy(buf + 50, "MVFS", 4); /* a full magic with too few bytes after it */
        g_assert_cmpuint(stream_frame_scan(buf, 56), ==, 50);
}

static void test_tags(void) {
        for (int i = 0; i < 1000; i++)
                g_assert_cmpuint(stream_frame_new_tag(), !=, 0);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/stream-frame/roundtrip", test_roundtrip);
        g_test_add_func("/stream-frame/rejects", test_rejects);
        g_test_add_func("/stream-frame/scan", test_scan);
        g_test_add_func("/stream-frame/tags", test_tags);
        return g_test_run();
}
