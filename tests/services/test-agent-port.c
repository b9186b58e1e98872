/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The agent's frame engine (services/agent-port.c) between real sockets:
 * the test is the broker on the other end of a socketpair, a second
 * socketpair is the stream's app.  Garbage and stale tags dropped, EOF each
 * way, a 64 KiB frame written in odd pieces, the padding of a new
 * connection, a reader waiting for the previous stream's EOF, a sink that
 * goes away, a reader let go of in the middle of a frame, a connection
 * replaced while a frame (its payload spliced through a pipe) is half out.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "common/macro.h"
#include "services/agent-port.h"

typedef struct Ends {
        int eofs, failures, wrote_eof, read_failures;
} Ends;

static void on_reader_eof(void *ud) {
        ((Ends *) ud)->eofs++;
}

static void on_reader_failed(void *ud, int error) {
        ((Ends *) ud)->failures++;
}

static void on_writer_eof(void *ud) {
        ((Ends *) ud)->wrote_eof++;
}

static void on_writer_failed(void *ud, int error) {
        ((Ends *) ud)->read_failures++;
}

static const AgentPortOps ops = {
        .reader_eof = on_reader_eof,
        .reader_failed = on_reader_failed,
        .writer_eof = on_writer_eof,
        .writer_failed = on_writer_failed,
};

static void pair(int fds[2]) {
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), ==, 0);
}

/* Run the loop until cond(ud) or 10 s. */
static void spin(gboolean (*cond)(gpointer), gpointer ud) {
        gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        while (!cond(ud)) {
                g_assert_cmpint(g_get_monotonic_time(), <, end);
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(500);
        }
}

static void spin_a_while(void) {
        for (int i = 0; i < 200; i++)
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(200);
}

/* Write all of buf to fd in pieces of the sizes in steps (cycled), letting the loop run in between. */
static void feed(int fd, const uint8_t *buf, size_t n, const size_t *steps, size_t n_steps) {
        for (size_t off = 0, i = 0; off < n;) {
                size_t k = MIN(steps[i++ % n_steps], n - off);
                ssize_t w = write(fd, buf + off, k);
                if (w < 0) {
                        g_assert_cmpint(errno, ==, EAGAIN);
                        w = 0;
                }
                off += (size_t) w;
                spin_a_while();
        }
}

static void feed_all(int fd, const void *buf, size_t n) {
        const size_t step = 1 << 20;
        feed(fd, buf, n, &step, 1);
}

static void frame(GByteArray *b, uint32_t tag, const void *payload, uint32_t len) {
        uint8_t h[STREAM_FRAME_HEADER];
        stream_frame_encode(&(StreamFrameHeader) { .tag = tag, .len = len }, h);
        g_byte_array_append(b, h, sizeof h);
        if (len)
                g_byte_array_append(b, payload, len);
}

typedef struct Sink {
        int fd;
        GByteArray *got;
        size_t want;
} Sink;

static gboolean sink_has(gpointer ud) {
        Sink *s = ud;
        uint8_t buf[65536];
        ssize_t k;
        while ((k = read(s->fd, buf, sizeof buf)) > 0)
                g_byte_array_append(s->got, buf, (guint) k);
        return s->got->len >= s->want;
}

static gboolean ends_eof(gpointer ud) {
        return ((Ends *) ud)->eofs > 0;
}

static gboolean ends_wrote_eof(gpointer ud) {
        return ((Ends *) ud)->wrote_eof > 0;
}

static gboolean ends_failed(gpointer ud) {
        return ((Ends *) ud)->failures > 0;
}

static void test_reader_drops(void) {
        int port[2], app[2];
        Ends e = {};
        g_autoptr(GByteArray) b = g_byte_array_new();
        Sink sink = { .got = g_byte_array_new(), .want = 10 };

        pair(port);
        pair(app);
        sink.fd = app[1];
        AgentPort *p = agent_port_new(0, &ops);
        agent_port_set_fd(p, port[0]);
        agent_port_bind_reader(p, 42, app[0], &e);

        g_byte_array_append(b, (const uint8_t *) "\0\0\0garbageMVF", 14);
        frame(b, 41, "stale", 5);
        frame(b, 42, "hello", 5);
        frame(b, 41, NULL, 0); /* a stale EOF */
        uint8_t bogus[STREAM_FRAME_HEADER];
        stream_frame_encode(&(StreamFrameHeader) { .tag = 42, .len = 70000 }, bogus);
        g_byte_array_append(b, bogus, sizeof bogus); /* a length over 65536: garbage */
        frame(b, 42, "world", 5);
        frame(b, 42, NULL, 0);
        frame(b, 42, "after", 5); /* after our EOF: the port is not read any more */
        feed_all(port[1], b->data, b->len);

        spin(ends_eof, &e);
        spin(sink_has, &sink);
        spin_a_while();
        sink_has(&sink);
        g_assert_cmpmem(sink.got->data, sink.got->len, "helloworld", 10);
        g_assert_cmpint(e.eofs, ==, 1);
        g_assert_cmpint(e.failures, ==, 0);
        g_assert_null(agent_port_reader(p, NULL));

        agent_port_free(p);
        g_byte_array_unref(sink.got);
        close(port[1]);
        close(app[0]);
        close(app[1]);
}

static void test_big_frame_in_pieces(void) {
        static const size_t steps[] = { 1, 7, 13, 4099, 3, 12, 65521, 2 };
        int port[2], app[2];
        Ends e = {};
        g_autoptr(GByteArray) b = g_byte_array_new();
        g_autofree uint8_t *payload = g_malloc(STREAM_FRAME_MAX);
        Sink sink = { .got = g_byte_array_new(), .want = 2 * STREAM_FRAME_MAX };

        for (size_t i = 0; i < STREAM_FRAME_MAX; i++)
                payload[i] = (uint8_t) (i * 7 + i / 251);
        pair(port);
        pair(app);
        sink.fd = app[1];
        AgentPort *p = agent_port_new(1, &ops);
        agent_port_set_fd(p, port[0]);
        agent_port_bind_reader(p, 7, app[0], &e);
        frame(b, 7, payload, STREAM_FRAME_MAX);
        frame(b, 8, payload, 100);
        frame(b, 7, payload, STREAM_FRAME_MAX);
        frame(b, 7, NULL, 0);
        feed(port[1], b->data, b->len, steps, G_N_ELEMENTS(steps));

        spin(sink_has, &sink);
        spin(ends_eof, &e);
        g_assert_cmpuint(sink.got->len, ==, 2 * STREAM_FRAME_MAX);
        g_assert_cmpmem(sink.got->data, STREAM_FRAME_MAX, payload, STREAM_FRAME_MAX);
        g_assert_cmpmem(sink.got->data + STREAM_FRAME_MAX, STREAM_FRAME_MAX, payload, STREAM_FRAME_MAX);

        agent_port_free(p);
        g_byte_array_unref(sink.got);
        close(port[1]);
        close(app[0]);
        close(app[1]);
}

/* Parse what the agent wrote: padding and garbage skipped, frames of tag collected. */
static void parse_frames(const GByteArray *b, uint32_t tag, GByteArray *payload, unsigned *n_frames, bool *eof) {
        size_t off = 0;
        *n_frames = 0;
        *eof = false;
        while (off < b->len) {
                off += stream_frame_scan(b->data + off, b->len - off);
                if (b->len - off < STREAM_FRAME_HEADER)
                        break;
                StreamFrameHeader h;
                g_assert_cmpint(stream_frame_decode(b->data + off, &h), ==, 0);
                g_assert_cmpuint(h.tag, ==, tag);
                g_assert_false(*eof);
                off += STREAM_FRAME_HEADER;
                g_assert_cmpuint(b->len - off, >=, h.len);
                if (h.len == 0)
                        *eof = true;
                g_byte_array_append(payload, b->data + off, h.len);
                off += h.len;
                (*n_frames)++;
        }
}

static void test_writer(void) {
        int port[2], app[2];
        Ends e = {};
        size_t n = 200000;
        g_autofree uint8_t *data = g_malloc(n);
        Sink broker = { .got = g_byte_array_new(), .want = STREAM_PAD_BYTES };
        g_autoptr(GByteArray) payload = g_byte_array_new();
        unsigned frames;
        bool eof;

        for (size_t i = 0; i < n; i++)
                data[i] = (uint8_t) (i % 253);
        pair(port);
        pair(app);
        broker.fd = port[1];
        AgentPort *p = agent_port_new(2, &ops);
        agent_port_set_fd(p, port[0]);
        agent_port_bind_writer(p, 99, app[0], &e);
        /* The padding comes first, even before there is anything to send. */
        spin(sink_has, &broker);
        for (size_t i = 0; i < STREAM_PAD_BYTES; i++)
                g_assert_cmpuint(broker.got->data[i], ==, 0);
        g_byte_array_set_size(broker.got, 0);

        for (size_t off = 0; off < n;) { /* the app writes as fast as the engine takes it */
                ssize_t k = write(app[1], data + off, n - off);
                if (k > 0)
                        off += (size_t) k;
                sink_has(&broker);
                spin_a_while();
        }
        shutdown(app[1], SHUT_WR);
        spin(ends_wrote_eof, &e);
        broker.want = n + STREAM_FRAME_HEADER;
        spin(sink_has, &broker);
        parse_frames(broker.got, 99, payload, &frames, &eof);
        g_assert_true(eof);
        g_assert_cmpuint(frames, >=, 1 + (n + STREAM_FRAME_MAX - 1) / STREAM_FRAME_MAX);
        g_assert_cmpmem(payload->data, payload->len, data, n);
        g_assert_cmpint(e.read_failures, ==, 0);

        agent_port_free(p);
        g_byte_array_unref(broker.got);
        close(port[1]);
        close(app[0]);
        close(app[1]);
}

/*
 * Streams B and C bound while A still reads (a slow app: the broker reused the port twice): A gets
 * all of its data and its EOF, then B its own, then C — none of the waiting ones is dropped.
 */
static void test_waiting_reader(void) {
        int port[2], app_a[2], app_b[2], app_c[2];
        Ends a = {}, bb = {}, c = {};
        g_autoptr(GByteArray) b = g_byte_array_new();
        Sink sa = { .got = g_byte_array_new(), .want = 3 }, sb = { .got = g_byte_array_new(), .want = 3 },
             sc = { .got = g_byte_array_new(), .want = 3 };

        pair(port);
        pair(app_a);
        pair(app_b);
        pair(app_c);
        sa.fd = app_a[1];
        sb.fd = app_b[1];
        sc.fd = app_c[1];
        AgentPort *p = agent_port_new(3, &ops);
        agent_port_set_fd(p, port[0]);
        agent_port_bind_reader(p, 1, app_a[0], &a);
        agent_port_bind_reader(p, 2, app_b[0], &bb);
        agent_port_bind_reader(p, 3, app_c[0], &c);
        g_assert_true(agent_port_reader(p, NULL) == &a);
        frame(b, 1, "one", 3);
        frame(b, 2, "xxx", 3); /* B's before A's EOF: not B's yet, dropped */
        frame(b, 1, NULL, 0);
        frame(b, 2, "two", 3);
        frame(b, 2, NULL, 0);
        frame(b, 3, "six", 3);
        frame(b, 3, NULL, 0);
        feed_all(port[1], b->data, b->len);

        spin(ends_eof, &a);
        spin(ends_eof, &bb);
        spin(ends_eof, &c);
        spin(sink_has, &sa);
        spin(sink_has, &sb);
        spin(sink_has, &sc);
        g_assert_cmpmem(sa.got->data, sa.got->len, "one", 3);
        g_assert_cmpmem(sb.got->data, sb.got->len, "two", 3);
        g_assert_cmpmem(sc.got->data, sc.got->len, "six", 3);

        agent_port_free(p);
        g_byte_array_unref(sa.got);
        g_byte_array_unref(sb.got);
        g_byte_array_unref(sc.got);
        close(port[1]);
        int fds[] = { app_a[0], app_a[1], app_b[0], app_b[1], app_c[0], app_c[1] };
        for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
                close(fds[i]);
}

static void test_sink_gone(void) {
        int port[2], app[2], app2[2];
        Ends e = {}, e2 = {};
        g_autoptr(GByteArray) b = g_byte_array_new();
        Sink s2 = { .got = g_byte_array_new(), .want = 4 };

        pair(port);
        pair(app);
        pair(app2);
        s2.fd = app2[1];
        AgentPort *p = agent_port_new(4, &ops);
        agent_port_set_fd(p, port[0]);
        agent_port_bind_reader(p, 5, app[0], &e);
        close(app[1]);
        spin(ends_failed, &e);
        bool dropping = false;
        g_assert_true(agent_port_reader(p, &dropping) == &e);
        g_assert_true(dropping);

        frame(b, 5, "lost", 4);
        frame(b, 5, NULL, 0);
        frame(b, 6, "next", 4);
        feed_all(port[1], b->data, b->len);
        spin(ends_eof, &e);
        agent_port_bind_reader(p, 6, app2[0], &e2);
        spin(sink_has, &s2);
        g_assert_cmpmem(s2.got->data, s2.got->len, "next", 4);
        g_assert_cmpint(e.failures, ==, 1);

        agent_port_free(p);
        g_byte_array_unref(s2.got);
        close(port[1]);
        close(app[0]);
        close(app2[0]);
        close(app2[1]);
}

/* A reader let go of mid-frame (an abort): the rest of that frame is not taken for a header. */
static void test_unbind_mid_frame(void) {
        int port[2], app[2], app2[2];
        Ends e = {}, e2 = {};
        g_autoptr(GByteArray) b = g_byte_array_new();
        uint8_t inner[STREAM_FRAME_HEADER + 1];
        Sink s1 = { .got = g_byte_array_new(), .want = 5 }, s2 = { .got = g_byte_array_new(), .want = 2 };

        pair(port);
        pair(app);
        pair(app2);
        s1.fd = app[1];
        s2.fd = app2[1];
        AgentPort *p = agent_port_new(5, &ops);
        agent_port_set_fd(p, port[0]);
        agent_port_bind_reader(p, 10, app[0], &e);
        /* The payload holds what looks like a frame of the next stream: it must not be taken for one. */
        stream_frame_encode(&(StreamFrameHeader) { .tag = 11, .len = 1 }, inner);
        inner[STREAM_FRAME_HEADER] = '!';
        uint8_t payload[5 + sizeof inner];
        memcpy(payload, "first", 5);
        memcpy(payload + 5, inner, sizeof inner);
        frame(b, 10, payload, sizeof payload);
        feed_all(port[1], b->data, 12 + 5);
        spin(sink_has, &s1);
        agent_port_unbind_reader(p, &e);
        agent_port_bind_reader(p, 11, app2[0], &e2);
        g_byte_array_set_size(b, 0);
        g_byte_array_append(b, inner, sizeof inner); /* the rest of the frame */
        frame(b, 11, "ok", 2);
        feed_all(port[1], b->data, b->len);
        spin(sink_has, &s2);
        spin_a_while();
        sink_has(&s2);
        g_assert_cmpmem(s2.got->data, s2.got->len, "ok", 2);
        g_assert_cmpint(e.eofs + e2.eofs, ==, 0);

        agent_port_free(p);
        g_byte_array_unref(s1.got);
        g_byte_array_unref(s2.got);
        close(port[1]);
        close(app[0]);
        close(app[1]);
        close(app2[0]);
        close(app2[1]);
}

/* finish: the EOF frame although the source has more; a new connection gets the padding again. */
static void test_finish_and_reconnect(void) {
        int port[2], port2[2], app[2];
        Ends e = {};
        Sink broker = { .got = g_byte_array_new(), .want = STREAM_PAD_BYTES };
        g_autoptr(GByteArray) payload = g_byte_array_new();
        unsigned frames;
        bool eof;
        char c;

        pair(port);
        pair(port2);
        pair(app);
        AgentPort *p = agent_port_new(6, &ops);
        agent_port_set_fd(p, port[0]);
        broker.fd = port[1];
        spin(sink_has, &broker); /* the padding and nothing else */
        g_byte_array_set_size(broker.got, 0);

        agent_port_set_fd(p, port2[0]); /* the broker connects again: the first one is closed */
        g_assert_cmpint(read(port[1], &c, 1), ==, 0);
        agent_port_bind_writer(p, 3, app[0], &e);
        agent_port_finish_writer(p, &e);
        g_assert_cmpint(write(app[1], "unread", 6), ==, 6);
        broker.fd = port2[1];
        broker.want = STREAM_PAD_BYTES + STREAM_FRAME_HEADER;
        spin(ends_wrote_eof, &e);
        spin(sink_has, &broker);
        parse_frames(broker.got, 3, payload, &frames, &eof);
        g_assert_true(eof);
        g_assert_cmpuint(frames, ==, 1);
        g_assert_cmpuint(payload->len, ==, 0);

        agent_port_free(p);
        g_byte_array_unref(broker.got);
        close(port[1]);
        close(port2[1]);
        close(app[0]);
        close(app[1]);
}

/*
 * The broker connects again while a frame is half written (its payload still partly in the engine's
 * pipe): the rest of that frame never reaches the new connection — after the padding comes a header.
 */
static void test_reconnect_mid_frame(void) {
        int port[2], port2[2], app[2];
        Ends e = {};
        size_t n = 3 * STREAM_FRAME_MAX;
        g_autofree uint8_t *data = g_malloc(n);
        Sink old = { .got = g_byte_array_new() };
        Sink broker = { .got = g_byte_array_new(), .want = STREAM_PAD_BYTES + 2 * STREAM_FRAME_HEADER + 4 };

        memset(data, 0xab, n);
        /* The first connection a one-page pipe (the engine only writes to it): a frame never fits. */
        g_assert_cmpint(pipe2(port, O_NONBLOCK | O_CLOEXEC), ==, 0);
        g_assert_cmpint(fcntl(port[1], F_SETPIPE_SZ, 4096), ==, 4096);
        pair(port2);
        pair(app);
        AgentPort *p = agent_port_new(5, &ops);
        agent_port_set_fd(p, port[1]);
        agent_port_bind_writer(p, 8, app[0], &e);
        g_assert_cmpint(write(app[1], data, STREAM_FRAME_MAX), ==, STREAM_FRAME_MAX);
        /* Read the padding and a little of the frame: the rest is stuck in the small socket buffer. */
        for (int i = 0; i < 500 && old.got->len < STREAM_PAD_BYTES + 100; i++) {
                uint8_t buf[4096];
                ssize_t k = read(port[0], buf, MIN(sizeof buf, STREAM_PAD_BYTES + 100 - old.got->len));
                if (k > 0)
                        g_byte_array_append(old.got, buf, (guint) k);
                spin_a_while();
        }
        spin_a_while();
        g_assert_cmpuint(old.got->len, >, STREAM_PAD_BYTES + STREAM_FRAME_HEADER);
        g_assert_cmpuint(old.got->len, <, STREAM_PAD_BYTES + STREAM_FRAME_HEADER + STREAM_FRAME_MAX);

        agent_port_set_fd(p, port2[0]);
        g_assert_cmpint(write(app[1], "next", 4), ==, 4);
        shutdown(app[1], SHUT_WR);
        broker.fd = port2[1];
        spin(ends_wrote_eof, &e);
        spin(sink_has, &broker);
        for (size_t i = 0; i < STREAM_PAD_BYTES; i++)
                g_assert_cmpuint(broker.got->data[i], ==, 0);
        /* Strictly frames from here on, no garbage to scan past: "next", then the EOF. */
        size_t off = STREAM_PAD_BYTES;
        StreamFrameHeader h;
        g_assert_cmpint(stream_frame_decode(broker.got->data + off, &h), ==, 0);
        g_assert_cmpuint(h.tag, ==, 8);
        g_assert_cmpuint(h.len, ==, 4);
        g_assert_cmpmem(broker.got->data + off + STREAM_FRAME_HEADER, 4, "next", 4);
        off += STREAM_FRAME_HEADER + 4;
        g_assert_cmpint(stream_frame_decode(broker.got->data + off, &h), ==, 0);
        g_assert_cmpuint(h.len, ==, 0);
        g_assert_cmpuint(broker.got->len, ==, off + STREAM_FRAME_HEADER);

        agent_port_free(p);
        g_byte_array_unref(old.got);
        g_byte_array_unref(broker.got);
        close(port[0]);
        close(port2[1]);
        close(app[0]);
        close(app[1]);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        signal(SIGPIPE, SIG_IGN);
        g_test_add_func("/agent-port/reader-drops", test_reader_drops);
        g_test_add_func("/agent-port/big-frame-in-pieces", test_big_frame_in_pieces);
        g_test_add_func("/agent-port/writer", test_writer);
        g_test_add_func("/agent-port/waiting-reader", test_waiting_reader);
        g_test_add_func("/agent-port/sink-gone", test_sink_gone);
        g_test_add_func("/agent-port/unbind-mid-frame", test_unbind_mid_frame);
        g_test_add_func("/agent-port/finish-and-reconnect", test_finish_and_reconnect);
        g_test_add_func("/agent-port/reconnect-mid-frame", test_reconnect_mid_frame);
        return g_test_run();
}
