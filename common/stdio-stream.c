/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "common/stdio-stream.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define STDIO_STREAM_CHUNK 65536

static int write_all(int fd, const char *buf, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, buf, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                buf += k;
                n -= (size_t) k;
        }
        return 0;
}

typedef struct RunCopy {
        int fd;              /* the stream's socket */
        char in[STDIO_STREAM_CHUNK];  /* stdin → stream */
        size_t in_off, in_len;
        bool in_eof;         /* stdin ended (or the stream takes no more): SHUT_WR sent */
        bool out_eof;        /* the stream's output ended */
} RunCopy;

static void run_end_input(RunCopy *c) {
        if (!c->in_eof)
                (void) shutdown(c->fd, SHUT_WR);
        c->in_eof = true;
        c->in_len = c->in_off = 0;
}

/* One round of the copy loop.  0, or -errno when stdout failed. */
static int run_step(RunCopy *c) {
        char out[STDIO_STREAM_CHUNK];
        /* After the output ended the socket is still watched: POLLHUP once the stream is over (the
         * service exited; the agent shut its end), which ends the input too. */
        struct pollfd p[2] = {
                { .fd = c->in_eof || c->in_len ? -1 : STDIN_FILENO, .events = POLLIN },
                { .fd = c->fd, .events = (c->out_eof ? 0 : POLLIN) | (c->in_len ? POLLOUT : 0) },
        };
        if (poll(p, 2, -1) < 0)
                return errno == EINTR ? 0 : -errno;
        if (c->out_eof && !c->in_len && (p[1].revents & (POLLHUP | POLLERR)))
                run_end_input(c);
        if (!c->out_eof && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t k = read(c->fd, out, sizeof out);
                if (k > 0) {
                        int r = write_all(STDOUT_FILENO, out, (size_t) k);
                        if (r < 0)
                                return r;
                } else if (k == 0 || errno != EINTR)
                        c->out_eof = true; /* EOF, or the stream broke: WaitStream says which */
        }
        if (p[0].revents) {
                ssize_t k = read(STDIN_FILENO, c->in, sizeof c->in);
                if (k > 0) {
                        c->in_off = 0;
                        c->in_len = (size_t) k;
                } else if (k == 0 || errno != EINTR)
                        run_end_input(c);
        }
        if (c->in_len && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
                ssize_t k = send(c->fd, c->in + c->in_off, c->in_len - c->in_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k > 0) {
                        c->in_off += (size_t) k;
                        if (c->in_off == c->in_len)
                                c->in_off = c->in_len = 0;
                } else if (k < 0 && errno != EAGAIN && errno != EINTR)
                        run_end_input(c); /* EPIPE: the service is gone; its output still comes */
        }
        return 0;
}

int stdio_stream_copy(int fd) {
        RunCopy *c = calloc(1, sizeof *c);
        int r = 0;
        if (!c)
                return -ENOMEM;
        c->fd = fd;
        /* Both ways: a service may close its output and go on reading (exec cat >/dev/null). */
        while (r == 0 && !(c->out_eof && c->in_eof))
                r = run_step(c);
        free(c);
        return r;
}
