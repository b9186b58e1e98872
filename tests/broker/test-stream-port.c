/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker's frame engine (broker/stream-port.c) between two real unix
 * sockets standing in for QEMU's listening stream ports: this test is
 * "guest A" and "guest B", writing and reading frames on the accepted ends.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <glib-unix.h>

#include "broker/stream-port.h"
#include "common/stream-frame.h"

typedef struct Guest {
        int listen_fd, fd;
        char *path;
} Guest;

typedef struct Fixture {
        char *dir;
        Guest a, b;
        StreamPort *pa, *pb;
        unsigned eof_a, discard_eof_a, failed;
} Fixture;

static void on_event(StreamPort *p, StreamPortEventKind kind, const char *why, void *userdata) {
        Fixture *f = userdata;
        if (kind == STREAM_PORT_EOF_FORWARDED && p == f->pa)
                f->eof_a++;
        else if (kind == STREAM_PORT_DISCARD_EOF && p == f->pa)
                f->discard_eof_a++;
        else if (kind == STREAM_PORT_FAILED)
                f->failed++;
}

static void guest_listen(Fixture *f, Guest *g, const char *name) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        g->path = g_build_filename(f->dir, name, NULL);
        g_strlcpy(sa.sun_path, g->path, sizeof sa.sun_path);
        g->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(bind(g->listen_fd, (struct sockaddr *) &sa, sizeof sa), ==, 0);
        g_assert_cmpint(listen(g->listen_fd, 4), ==, 0);
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        memset(f, 0, sizeof *f);
        f->dir = g_dir_make_tmp("test-stream-port-XXXXXX", NULL);
        guest_listen(f, &f->a, "a.sock");
        guest_listen(f, &f->b, "b.sock");
        g_assert_cmpint(stream_port_connect(f->a.path, "a", 0, on_event, f, &f->pa), ==, 0);
        g_assert_cmpint(stream_port_connect(f->b.path, "b", 3, on_event, f, &f->pb), ==, 0);
        f->a.fd = accept4(f->a.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        f->b.fd = accept4(f->b.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        g_assert_cmpint(f->a.fd, >=, 0);
        g_assert_cmpint(f->b.fd, >=, 0);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        f->pa = stream_port_free(f->pa);
        f->pb = stream_port_free(f->pb);
        Guest *gs[] = { &f->a, &f->b };
        for (unsigned i = 0; i < 2; i++) {
                close(gs[i]->fd);
                close(gs[i]->listen_fd);
                g_unlink(gs[i]->path);
                g_free(gs[i]->path);
        }
        g_rmdir(f->dir);
        g_free(f->dir);
}

static void spin(void) {
        for (int i = 0; i < 200; i++)
                g_main_context_iteration(NULL, FALSE);
}

static void write_all(int fd, const void *buf, size_t n) {
        const uint8_t *p = buf;
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EAGAIN) {
                        spin();
                        continue;
                }
                g_assert_cmpint(k, >, 0);
                p += k;
                n -= (size_t) k;
        }
}

static void send_frame(int fd, uint32_t tag, const void *data, uint32_t len) {
        uint8_t h[STREAM_FRAME_HEADER];
        stream_frame_encode(&(StreamFrameHeader) { .tag = tag, .len = len }, h);
        write_all(fd, h, sizeof h);
        if (len)
                write_all(fd, data, len);
}

/* Read exactly n bytes from a guest's end, running the loop meanwhile. */
static void read_exact(int fd, void *buf, size_t n) {
        uint8_t *p = buf;
        g_assert_true(g_unix_set_fd_nonblocking(fd, TRUE, NULL));
        for (int rounds = 0; n > 0; rounds++) {
                g_assert_cmpint(rounds, <, 100000);
                ssize_t k = read(fd, p, n);
                if (k < 0 && errno == EAGAIN) {
                        g_main_context_iteration(NULL, FALSE);
                        continue;
                }
                g_assert_cmpint(k, >, 0);
                p += k;
                n -= (size_t) k;
        }
}

/* Skip the padding a freshly connected port writes first. */
static void skip_padding(int fd) {
        g_autofree uint8_t *pad = g_malloc(STREAM_PAD_BYTES);
        read_exact(fd, pad, STREAM_PAD_BYTES);
        for (size_t i = 0; i < STREAM_PAD_BYTES; i++)
                g_assert_cmpuint(pad[i], ==, 0);
}

static void expect_frame(int fd, uint32_t tag, const void *data, uint32_t len) {
        uint8_t h[STREAM_FRAME_HEADER];
        StreamFrameHeader fh;
        read_exact(fd, h, sizeof h);
        g_assert_cmpint(stream_frame_decode(h, &fh), ==, 0);
        g_assert_cmphex(fh.tag, ==, tag);
        g_assert_cmpuint(fh.len, ==, len);
        if (len) {
                g_autofree uint8_t *got = g_malloc(len);
                read_exact(fd, got, len);
                g_assert_cmpmem(got, len, data, len);
        }
}

static void bind_both(Fixture *f) {
        stream_port_bind(f->pa, 0xa1);
        stream_port_bind(f->pb, 0xb1);
        stream_port_set_flow(f->pa, f->pb, false);
        stream_port_set_flow(f->pb, f->pa, false);
}

/* Frames of ours go through retagged; stale ones and garbage do not; EOF is reported once written. */
static void test_forward(Fixture *f, gconstpointer data) {
        g_autofree uint8_t *big = g_malloc(STREAM_FRAME_MAX);
        for (size_t i = 0; i < STREAM_FRAME_MAX; i++)
                big[i] = (uint8_t) (i * 7);
        bind_both(f);
        send_frame(f->a.fd, 0x5a1e, "stale bytes", 11); /* an earlier stream's frame */
        write_all(f->a.fd, "garbage!", 8);
        send_frame(f->a.fd, 0xa1, "hello", 5);
        send_frame(f->a.fd, 0xa1, big, STREAM_FRAME_MAX);
        send_frame(f->a.fd, 0xa1, NULL, 0);
        skip_padding(f->b.fd);
        expect_frame(f->b.fd, 0xb1, "hello", 5);
        expect_frame(f->b.fd, 0xb1, big, STREAM_FRAME_MAX);
        expect_frame(f->b.fd, 0xb1, NULL, 0);
        spin();
        g_assert_cmpuint(f->eof_a, ==, 1);
        g_assert_cmpuint(stream_port_bytes(f->pa), ==, 5 + STREAM_FRAME_MAX);

        /* the other direction still flows on its own */
        send_frame(f->b.fd, 0xb1, "back", 4);
        skip_padding(f->a.fd);
        expect_frame(f->a.fd, 0xa1, "back", 4);
        g_assert_cmpuint(f->failed, ==, 0);
}

/* A guest's padding and garbage before its frames, skipped by the block once the first header's worth was
 * garbage: a header straddling the end of a peeked block, padding between frames, nothing lost. */
static void test_padding(Fixture *f, gconstpointer data) {
        g_autofree uint8_t *zeros = g_malloc0(STREAM_PAD_BYTES);
        bind_both(f);
        /* 12 bytes read as a header, then a 16 KiB block peeked: the next header starts 5 bytes before its end. */
        write_all(f->a.fd, zeros, STREAM_FRAME_HEADER + 16384 - 5);
        send_frame(f->a.fd, 0xa1, "x", 1);
        write_all(f->a.fd, zeros, STREAM_PAD_BYTES);
        send_frame(f->a.fd, 0xa1, "yz", 2);
        send_frame(f->a.fd, 0xa1, NULL, 0);
        skip_padding(f->b.fd);
        expect_frame(f->b.fd, 0xb1, "x", 1);
        expect_frame(f->b.fd, 0xb1, "yz", 2);
        expect_frame(f->b.fd, 0xb1, NULL, 0);
        spin();
        g_assert_cmpuint(f->eof_a, ==, 1);
        g_assert_cmpuint(stream_port_bytes(f->pa), ==, 3);
        g_assert_cmpuint(f->failed, ==, 0);
}

/* Discarding: frames dropped until our EOF. */
static void test_discard(Fixture *f, gconstpointer data) {
        bind_both(f);
        stream_port_set_flow(f->pa, NULL, true);
        send_frame(f->a.fd, 0xa1, "dropped", 7);
        send_frame(f->a.fd, 0xa1, NULL, 0);
        for (int i = 0; i < 1000 && !f->discard_eof_a; i++)
                g_main_context_iteration(NULL, FALSE);
        g_assert_cmpuint(f->discard_eof_a, ==, 1);
        g_assert_cmpuint(stream_port_bytes(f->pa), ==, 0);
}

/* A flow stopped mid-frame: b gets its frame completed with zeros, and the next stream is clean. */
static void test_stop_midframe(Fixture *f, gconstpointer data) {
        uint8_t part[1000];
        memset(part, 'p', sizeof part);
        bind_both(f);
        uint8_t h[STREAM_FRAME_HEADER];
        stream_frame_encode(&(StreamFrameHeader) { .tag = 0xa1, .len = 5000 }, h);
        write_all(f->a.fd, h, sizeof h);
        write_all(f->a.fd, part, sizeof part); /* 1000 of 5000 */
        skip_padding(f->b.fd);
        uint8_t got[STREAM_FRAME_HEADER + sizeof part];
        read_exact(f->b.fd, got, sizeof got);
        stream_port_stop_flow(f->pa);
        stream_port_stop_flow(f->pb);

        /* the next stream on the same ports, new tags */
        stream_port_bind(f->pa, 0xa2);
        stream_port_bind(f->pb, 0xb2);
        stream_port_set_flow(f->pa, f->pb, false);
        for (int i = 0; i < 4; i++)
                write_all(f->a.fd, part, sizeof part); /* the rest of the old frame (4000): dropped */
        send_frame(f->a.fd, 0xa2, "next", 4);
        uint8_t zeros[4000];
        read_exact(f->b.fd, zeros, sizeof zeros); /* b's half frame, completed */
        for (size_t i = 0; i < sizeof zeros; i++)
                g_assert_cmpuint(zeros[i], ==, 0);
        expect_frame(f->b.fd, 0xb2, "next", 4);
}

/*
 * The handler exited while b (the caller) reads nothing: a's small frames sit whole in the
 * broker's pipe (nothing left to read of them) when its flow turns to discarding.  That is
 * not a port failure; a's EOF frame ends the discard (a 0-byte recv once looked like a hang-up).
 */
static void test_discard_after_pipe(Fixture *f, gconstpointer data) {
        static uint8_t small[16384]; /* whole in the pipe, which b cannot take all of */
        memset(small, 's', sizeof small);
        bind_both(f);
        g_assert_true(g_unix_set_fd_nonblocking(f->a.fd, TRUE, NULL));
        /* Until a's socket takes no more: b's is full and the broker holds what it read of a. */
        for (int stuck = 0; stuck < 20;) {
                static uint8_t frame[STREAM_FRAME_HEADER + sizeof small];
                stream_frame_encode(&(StreamFrameHeader) { .tag = 0xa1, .len = sizeof small }, frame);
                memcpy(frame + STREAM_FRAME_HEADER, small, sizeof small);
                ssize_t k = write(f->a.fd, frame, sizeof frame);
                if (k < 0 && errno == EAGAIN) {
                        stuck++;
                        spin();
                        continue;
                }
                g_assert_cmpint(k, ==, (ssize_t) sizeof frame); /* whole frames: a's buffer had room */
                stuck = 0;
        }
        g_assert_true(g_unix_set_fd_nonblocking(f->a.fd, FALSE, NULL));
        stream_port_set_flow(f->pa, NULL, true);
        /* What a's socket still holds is dropped; then its EOF. */
        for (int i = 0; i < 100; i++)
                spin();
        g_assert_cmpuint(f->failed, ==, 0);
        send_frame(f->a.fd, 0xa1, NULL, 0);
        for (int i = 0; i < 1000 && !f->discard_eof_a && !f->failed; i++)
                g_main_context_iteration(NULL, FALSE);
        g_assert_cmpuint(f->failed, ==, 0);
        g_assert_cmpuint(f->discard_eof_a, ==, 1);
        g_assert_true(stream_port_is_open(f->pa));
}

static gboolean set_flag(gpointer userdata) {
        *(bool *) userdata = true;
        return G_SOURCE_REMOVE;
}

/* The guest's side going away is a failure of that port. */
static void test_peer_gone(Fixture *f, gconstpointer data) {
        bind_both(f);
        close(f->a.fd);
        f->a.fd = -1;
        for (int i = 0; i < 1000 && !f->failed; i++)
                g_main_context_iteration(NULL, FALSE);
        g_assert_cmpuint(f->failed, ==, 1);
        g_assert_false(stream_port_is_open(f->pa));
        /* A dead port is not polled any more: an idle gets its turn (the hang-up is not ready for ever). */
        bool idle_ran = false;
        g_idle_add(set_flag, &idle_ran);
        for (int i = 0; i < 50 && !idle_ran; i++)
                g_main_context_iteration(NULL, FALSE);
        g_assert_true(idle_ran);
}

/* A host end (raw): plain bytes in, frames out to b; b's frames come out as plain bytes and EOF. */
static void test_raw(Fixture *f, gconstpointer data) {
        int sp[2];
        StreamPort *host = NULL;
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), ==, 0);
        g_assert_cmpint(stream_port_new_raw(sp[0], "@host", on_event, f, &host), ==, 0);
        stream_port_bind(host, 0x41);
        stream_port_bind(f->pb, 0xb1);
        stream_port_set_flow(host, f->pb, false);
        stream_port_set_flow(f->pb, host, false);

        write_all(sp[1], "plain bytes", 11);
        shutdown(sp[1], SHUT_WR);
        skip_padding(f->b.fd);
        expect_frame(f->b.fd, 0xb1, "plain bytes", 11);
        expect_frame(f->b.fd, 0xb1, NULL, 0);

        send_frame(f->b.fd, 0x5a1e, "stale", 5);
        send_frame(f->b.fd, 0xb1, "answer", 6);
        send_frame(f->b.fd, 0xb1, NULL, 0);
        char got[6];
        read_exact(sp[1], got, sizeof got);
        g_assert_cmpmem(got, 6, "answer", 6);
        char c;
        ssize_t n;
        for (int i = 0; i < 1000 && (n = read(sp[1], &c, 1)) < 0 && errno == EAGAIN; i++)
                g_main_context_iteration(NULL, FALSE);
        g_assert_cmpint(n, ==, 0); /* the EOF frame: end of file for the host */
        stream_port_free(host);
        close(sp[1]);
        g_assert_cmpuint(f->failed, ==, 0);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        signal(SIGPIPE, SIG_IGN);
        g_test_add("/stream-port/forward", Fixture, NULL, fixture_setup, test_forward, fixture_teardown);
        g_test_add("/stream-port/padding", Fixture, NULL, fixture_setup, test_padding, fixture_teardown);
        g_test_add("/stream-port/discard", Fixture, NULL, fixture_setup, test_discard, fixture_teardown);
        g_test_add("/stream-port/discard-after-pipe", Fixture, NULL, fixture_setup, test_discard_after_pipe,
                   fixture_teardown);
        g_test_add("/stream-port/stop-midframe", Fixture, NULL, fixture_setup, test_stop_midframe, fixture_teardown);
        g_test_add("/stream-port/raw", Fixture, NULL, fixture_setup, test_raw, fixture_teardown);
        g_test_add("/stream-port/peer-gone", Fixture, NULL, fixture_setup, test_peer_gone, fixture_teardown);
        return g_test_run();
}
