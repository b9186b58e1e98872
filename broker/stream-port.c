/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "broker/stream-port.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib-unix.h>

#include "common/log.h"
#include "common/macro.h"

#define PIPE_CAP (STREAM_FRAME_MAX)

typedef enum ReadState {
        READ_HEADER,  /* collecting the 12 header bytes */
        READ_PAYLOAD, /* moving a frame of ours to dst */
        READ_DROP,    /* skipping a frame that is not ours */
} ReadState;

typedef struct PortSource {
        GSource source;
        StreamPort *port;
        gpointer fd_tag;
        GIOCondition events;
} PortSource;

struct StreamPort {
        PortSource *source;
        int fd;
        char *vm;
        unsigned index;
        StreamPortEventFn fn;
        void *userdata;
        uint32_t tag; /* 0: idle */
        bool closed;
        bool raw;     /* a host end: plain bytes on fd, no frames (stream_port_new_raw()) */

        /* reader: frames from the guest */
        ReadState rstate;
        uint8_t hdr[STREAM_FRAME_HEADER];
        size_t hdr_have;
        uint64_t skipped;    /* garbage (a new connection's padding) skipped since the last header */
        uint32_t left;       /* payload of the current inbound frame still in fd */
        StreamPort *dst;     /* the flow out of this port, NULL: none */
        bool discard;        /* reading to drop until our EOF */
        bool eof_pending;    /* our EOF header is in dst's out[]: reported once written */
        int pipe[2];
        size_t fill;         /* payload in the pipe, not yet written to dst */
        uint64_t bytes;
        bool want_read;
        bool again;          /* the budget ran out: dispatch again */

        /* writer: frames to the guest */
        StreamPort *feeder;  /* the port whose flow writes here */
        uint8_t out[STREAM_FRAME_HEADER];
        size_t out_off, out_len;
        uint64_t zeros;      /* zero bytes owed before anything else (padding, debts) */
        bool want_write;
};

static const uint8_t zero_block[16384];

static void port_update_events(StreamPort *p);

/*
 * Stop polling p's fd at all: poll(2) reports a hang-up whatever was asked
 * for, so a dead fd left in the source would make it ready in every
 * iteration (and starve every idle of the loop).
 */
static void port_unwatch(StreamPort *p) {
        if (p->source && p->source->fd_tag) {
                g_source_remove_unix_fd(&p->source->source, p->source->fd_tag);
                p->source->fd_tag = NULL;
        }
}

static void port_fail(StreamPort *p, const char *why) {
        if (p->closed)
                return;
        log_info("Stream port %u of %s: %s; closing it.", p->index, p->vm, why);
        p->closed = true;
        p->want_read = p->want_write = false;
        port_unwatch(p);
        if (p->fn)
                p->fn(p, STREAM_PORT_FAILED, why, p->userdata);
}

/* Pay d's debts: the rest of a header, then zeros.  0, -EAGAIN, or another -errno (d failed). */
static int writer_flush(StreamPort *d) {
        while (d->out_off < d->out_len) {
                ssize_t n = send(d->fd, d->out + d->out_off, d->out_len - d->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0)
                        return errno == EINTR ? 0 : -errno;
                d->out_off += (size_t) n;
        }
        d->out_off = d->out_len = 0;
        while (d->zeros > 0) {
                size_t k = d->zeros < sizeof zero_block ? (size_t) d->zeros : sizeof zero_block;
                ssize_t n = send(d->fd, zero_block, k, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0)
                        return errno == EINTR ? 0 : -errno;
                d->zeros -= (uint64_t) n;
        }
        return 0;
}

static int port_ensure_pipe(StreamPort *p) {
        if (p->pipe[0] >= 0)
                return 0;
        if (pipe2(p->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
                return -errno;
        (void) fcntl(p->pipe[1], F_SETPIPE_SZ, PIPE_CAP);
        return 0;
}

static void port_close_pipe(StreamPort *p) {
        if (p->pipe[0] >= 0)
                close(p->pipe[0]);
        if (p->pipe[1] >= 0)
                close(p->pipe[1]);
        p->pipe[0] = p->pipe[1] = -1;
        p->fill = 0;
}

/* In garbage (the 64 KiB of padding of a new connection; never between good frames, where it would cost a
 * copy per frame): skipped by the block, looked at with MSG_PEEK and taken up to where a header could start.
 * 1: skipped some, 0: a header could start here, <0. */
static int reader_skip(StreamPort *s) {
        uint8_t buf[16384];
        ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_PEEK);
        if (n == 0)
                return -ECONNRESET;
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        size_t off = stream_frame_scan(buf, (size_t) n);
        if (off == 0)
                return 0;
        n = recv(s->fd, buf, off, MSG_DONTWAIT);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        s->skipped += (uint64_t) n;
        return 1;
}

/* Read into the header buffer; a complete, valid header → *h.  1: got one, 0: need more (or garbage skipped), <0. */
static int reader_header(StreamPort *s, StreamFrameHeader *h) {
        if (s->hdr_have == 0 && s->skipped > 0) {
                int r = reader_skip(s);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        ssize_t n = recv(s->fd, s->hdr + s->hdr_have, sizeof s->hdr - s->hdr_have, MSG_DONTWAIT);
        if (n == 0)
                return -ECONNRESET;
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        s->hdr_have += (size_t) n;
        if (s->hdr_have < sizeof s->hdr)
                return 0;
        if (stream_frame_decode(s->hdr, h) < 0) {
                size_t off = stream_frame_scan(s->hdr, sizeof s->hdr);
                if (off == 0)
                        off = 1; /* what starts at 0 did not decode */
                memmove(s->hdr, s->hdr + off, sizeof s->hdr - off);
                s->hdr_have -= off;
                s->skipped += off;
                return 0;
        }
        if (s->skipped > 0)
                log_debug("Stream port %u of %s: %" PRIu64 " bytes of garbage skipped.", s->index, s->vm, s->skipped);
        s->skipped = 0;
        s->hdr_have = 0;
        return 1;
}

static int reader_drop(StreamPort *s, size_t *budget) {
        uint8_t scratch[16384];
        if (s->left == 0) {
                /* The frame's payload was all in the pipe when its flow stopped: nothing to read
                 * (a recv of 0 bytes would return 0 and look like the connection's end). */
                s->rstate = READ_HEADER;
                return 0;
        }
        size_t k = s->left < sizeof scratch ? s->left : sizeof scratch;
        ssize_t n = recv(s->fd, scratch, k, MSG_DONTWAIT);
        if (n == 0)
                return -ECONNRESET;
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        s->left -= (uint32_t) n;
        *budget = *budget > (size_t) n ? *budget - (size_t) n : 0;
        if (s->left == 0)
                s->rstate = READ_HEADER;
        return 0;
}

/* Move payload src → pipe → dst.  1 progressed, 0 blocked (wants set), <0 error (*failed: which port). */
static int reader_payload(StreamPort *s, StreamPort *d, size_t *budget, StreamPort **failed) {
        bool progressed = false, read_blocked = false, write_blocked = false;
        int r = port_ensure_pipe(s);
        if (r < 0)
                return *failed = s, r;
        if (s->left > 0 && s->fill < PIPE_CAP) {
                ssize_t n = splice(s->fd, NULL, s->pipe[1], NULL, MIN((size_t) s->left, PIPE_CAP - s->fill),
                                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
                if (n == 0)
                        return *failed = s, -ECONNRESET;
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        return *failed = s, -errno;
                if (n > 0) {
                        s->left -= (uint32_t) n;
                        s->fill += (size_t) n;
                        progressed = true;
                } else
                        read_blocked = errno == EAGAIN;
        }
        if (s->fill > 0) {
                ssize_t n = splice(s->pipe[0], NULL, d->fd, NULL, s->fill, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        return *failed = d, -errno;
                if (n > 0) {
                        s->fill -= (size_t) n;
                        s->bytes += (uint64_t) n;
                        *budget = *budget > (size_t) n ? *budget - (size_t) n : 0;
                        progressed = true;
                } else
                        write_blocked = errno == EAGAIN;
        }
        if (s->left == 0 && s->fill == 0) {
                s->rstate = READ_HEADER;
                return 1;
        }
        if (progressed)
                return 1;
        s->want_read = read_blocked && s->left > 0 && s->fill < PIPE_CAP;
        d->want_write = write_blocked;
        return 0;
}

/* A header of ours came: queue it for dst with dst's tag (a raw dst gets none; its EOF is a shutdown). */
static void reader_forward_header(StreamPort *s, StreamPort *d, const StreamFrameHeader *h) {
        if (!d->raw) {
                stream_frame_encode(&(StreamFrameHeader) { .tag = d->tag, .len = h->len }, d->out);
                d->out_off = 0;
                d->out_len = sizeof d->out;
        } else if (h->len == 0)
                (void) shutdown(d->fd, SHUT_WR);
        if (h->len == 0)
                s->eof_pending = true;
        else {
                s->rstate = READ_PAYLOAD;
                s->left = h->len;
        }
}

/*
 * A raw source: what is there (up to a frame) goes into the pipe first, then
 * its header is queued for dst; end of file is the EOF frame.  1, 0 blocked, <0.
 */
static int reader_raw(StreamPort *s, StreamPort *d, StreamPort **failed) {
        int r = port_ensure_pipe(s);
        if (r < 0)
                return *failed = s, r;
        ssize_t n = splice(s->fd, NULL, s->pipe[1], NULL, PIPE_CAP, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n < 0 && errno == EAGAIN) {
                s->want_read = true;
                return 0;
        }
        if (n < 0)
                return errno == EINTR ? 1 : (*failed = s, -errno);
        if (s->discard || !d) {
                port_close_pipe(s); /* dropped */
                if (n == 0 && s->discard) {
                        s->discard = false;
                        if (s->fn)
                                s->fn(s, STREAM_PORT_DISCARD_EOF, NULL, s->userdata);
                        return 0;
                }
                return n > 0;
        }
        reader_forward_header(s, d, &(StreamFrameHeader) { .tag = s->tag, .len = (uint32_t) n });
        s->left = 0;
        s->fill = (size_t) n;
        return 1;
}

/* One step of the flow out of s.  1: go on, 0: blocked or done, <0: *failed broke. */
static int flow_step(StreamPort *s, size_t *budget, StreamPort **failed) {
        StreamPort *d = s->dst;
        StreamFrameHeader h;
        int r;

        if (d) {
                r = writer_flush(d);
                if (r == -EAGAIN) {
                        d->want_write = true;
                        return 0;
                }
                if (r < 0)
                        return *failed = d, r;
                if (s->eof_pending) {
                        s->eof_pending = false;
                        s->dst = NULL;
                        d->feeder = NULL;
                        if (s->fn)
                                s->fn(s, STREAM_PORT_EOF_FORWARDED, NULL, s->userdata);
                        return 0;
                }
        }
        if (s->raw && s->rstate == READ_HEADER)
                return reader_raw(s, d, failed);
        switch (s->rstate) {
        case READ_HEADER:
                r = reader_header(s, &h);
                if (r == -EAGAIN) {
                        s->want_read = true;
                        return 0;
                }
                if (r <= 0)
                        return r < 0 ? (*failed = s, r) : 1;
                if (h.tag != s->tag || s->discard || !d) {
                        if (h.tag == s->tag && h.len == 0 && s->discard) {
                                s->discard = false;
                                if (s->fn)
                                        s->fn(s, STREAM_PORT_DISCARD_EOF, NULL, s->userdata);
                                return 0;
                        }
                        s->rstate = READ_DROP;
                        s->left = h.len;
                        if (s->left == 0)
                                s->rstate = READ_HEADER;
                        return 1;
                }
                reader_forward_header(s, d, &h);
                return 1;
        case READ_DROP:
                r = reader_drop(s, budget);
                if (r == -EAGAIN) {
                        s->want_read = true;
                        return 0;
                }
                return r < 0 ? (*failed = s, r) : 1;
        case READ_PAYLOAD:
                return reader_payload(s, d, budget, failed);
        }
        return 0;
}

static void flow_run(StreamPort *s) {
        size_t budget = STREAM_PORT_BUDGET;
        StreamPort *failed = NULL;
        int r = 1;

        s->want_read = false;
        s->again = false;
        if (s->dst)
                s->dst->want_write = false;
        while (!s->closed && (s->dst || s->discard) && r > 0) {
                if (budget == 0) {
                        s->again = true;
                        break;
                }
                r = flow_step(s, &budget, &failed);
        }
        if (r < 0 && failed) {
                char why[128];
                snprintf(why, sizeof why, "%s", r == -ECONNRESET ? "its connection was closed" : strerror(-r));
                port_fail(failed, why);
        }
}

/* ---- the GSource of a port ------------------------------------------------------ */

static gboolean port_source_prepare(GSource *source, gint *timeout) {
        PortSource *ps = (PortSource *) source;
        *timeout = -1;
        return ps->port && ps->port->again && !ps->port->closed;
}

static gboolean port_source_dispatch(GSource *source, GSourceFunc cb, gpointer data) {
        PortSource *ps = (PortSource *) source;
        StreamPort *p = ps->port;
        GIOCondition rev = ps->fd_tag ? g_source_query_unix_fd(source, ps->fd_tag) : 0;

        if (p)
                p->again = false; /* also for a closed port: else it would be ready for ever, starving idles */
        if (!p || p->closed)
                return G_SOURCE_CONTINUE;
        if ((rev & (G_IO_ERR | G_IO_HUP)) && !(rev & G_IO_IN)) {
                if (!p->raw || (rev & G_IO_ERR)) {
                        port_fail(p, p->raw ? "the host's side broke" : "QEMU closed it");
                        return G_SOURCE_CONTINUE;
                }
                /*
                 * A host end both of whose directions are shut: the flow out of it reads
                 * its end of file; with none, there is nothing more to poll for.
                 */
                if (!p->dst && !p->discard) {
                        port_unwatch(p);
                        return G_SOURCE_CONTINUE;
                }
                p->want_read = true;
        }
        StreamPort *feeder = p->feeder;
        if (p->dst || p->discard)
                flow_run(p);
        if (feeder && !p->closed && feeder->dst == p) {
                flow_run(feeder);
                port_update_events(feeder);
        } else if (!p->closed && !p->feeder && (p->out_len || p->zeros)) {
                int r = writer_flush(p);
                p->want_write = r == -EAGAIN;
                if (r < 0 && r != -EAGAIN)
                        port_fail(p, strerror(-r));
        }
        if (!p->closed && p->dst)
                port_update_events(p->dst);
        port_update_events(p);
        return G_SOURCE_CONTINUE;
}

static GSourceFuncs port_source_funcs = {
        .prepare = port_source_prepare,
        .dispatch = port_source_dispatch,
};

static void port_update_events(StreamPort *p) {
        GIOCondition want = 0;
        if (!p->source || !p->source->fd_tag)
                return;
        if (!p->closed) {
                want = G_IO_ERR | G_IO_HUP;
                if (p->want_read)
                        want |= G_IO_IN;
                if (p->want_write)
                        want |= G_IO_OUT;
        }
        if (want != p->source->events) {
                g_source_modify_unix_fd(&p->source->source, p->source->fd_tag, want);
                p->source->events = want;
        }
}

/* Run the port's flows from an idle: after a bind or a new flow, nothing may be waiting for poll. */
static void port_kick(StreamPort *p) {
        p->again = true;
        g_main_context_wakeup(NULL);
}

/* ---- public ------------------------------------------------------------------------ */

static StreamPort *port_new(int fd, const char *vm, unsigned index, StreamPortEventFn fn, void *userdata);

int stream_port_connect(const char *path, const char *vm, unsigned index, StreamPortEventFn fn, void *userdata,
                        StreamPort **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0 && errno != EINPROGRESS)
                return -errno;

        StreamPort *p = port_new(steal_fd(&fd), vm, index, fn, userdata);
        p->zeros = STREAM_PAD_BYTES; /* an earlier broker may have died mid-frame */
        p->want_write = true;
        port_update_events(p);
        *ret = p;
        return 0;
}

static StreamPort *port_new(int fd, const char *vm, unsigned index, StreamPortEventFn fn, void *userdata) {
        StreamPort *p = g_new0(StreamPort, 1);
        p->fd = fd;
        p->vm = g_strdup(vm);
        p->index = index;
        p->fn = fn;
        p->userdata = userdata;
        p->pipe[0] = p->pipe[1] = -1;
        p->source = (PortSource *) g_source_new(&port_source_funcs, sizeof(PortSource));
        p->source->port = p;
        p->source->fd_tag = g_source_add_unix_fd(&p->source->source, p->fd, 0);
        g_source_set_name(&p->source->source, "vmfed stream port");
        g_source_attach(&p->source->source, NULL);
        return p;
}

int stream_port_new_raw(int fd, const char *name, StreamPortEventFn fn, void *userdata, StreamPort **ret) {
        if (!g_unix_set_fd_nonblocking(fd, TRUE, NULL))
                return -errno;
        StreamPort *p = port_new(fd, name, 0, fn, userdata);
        p->raw = true;
        port_update_events(p);
        *ret = p;
        return 0;
}

void stream_port_set_handler(StreamPort *p, StreamPortEventFn fn, void *userdata) {
        p->fn = fn;
        p->userdata = userdata;
}

StreamPort *stream_port_free(StreamPort *p) {
        if (!p)
                return NULL;
        if (p->dst && p->dst->feeder == p)
                p->dst->feeder = NULL;
        if (p->feeder && p->feeder->dst == p) {
                p->feeder->dst = NULL;
                p->feeder->want_read = false;
                port_update_events(p->feeder);
        }
        if (p->source) {
                p->source->port = NULL;
                g_source_destroy(&p->source->source);
                g_source_unref(&p->source->source);
        }
        port_close_pipe(p);
        if (p->fd >= 0)
                close(p->fd);
        g_free(p->vm);
        g_free(p);
        return NULL;
}

const char *stream_port_vm(const StreamPort *p) {
        return p->vm;
}

unsigned stream_port_index(const StreamPort *p) {
        return p->index;
}

bool stream_port_is_open(const StreamPort *p) {
        return p && !p->closed;
}

void stream_port_bind(StreamPort *p, uint32_t tag) {
        p->tag = tag;
        p->bytes = 0;
        port_kick(p);
}

uint32_t stream_port_tag(const StreamPort *p) {
        return p->tag;
}

void stream_port_set_flow(StreamPort *src, StreamPort *dst, bool discard) {
        if (src->dst && src->dst != dst)
                stream_port_stop_flow(src);
        src->dst = discard ? NULL : dst;
        src->discard = discard;
        if (src->dst)
                src->dst->feeder = src;
        port_kick(src);
}

void stream_port_refuse_input(StreamPort *p) {
        if (p->raw && !p->closed)
                (void) shutdown(p->fd, SHUT_RD);
}

void stream_port_stop_flow(StreamPort *src) {
        StreamPort *d = src->dst;

        if (d) {
                if (d->out_len && d->out_off == 0) {
                        /* A header not begun: it never happened (its frame is dropped from src below). */
                        d->out_len = 0;
                        if (src->rstate == READ_PAYLOAD)
                                src->rstate = READ_DROP;
                } else if (src->rstate == READ_PAYLOAD && !d->raw)
                        d->zeros += src->fill + src->left; /* finish the frame d has begun */
                if (src->rstate == READ_PAYLOAD)
                        src->rstate = src->raw ? READ_HEADER : READ_DROP; /* a raw source has no frame to finish */
                d->feeder = NULL;
                d->want_write = d->out_len || d->zeros;
                port_update_events(d);
        }
        port_close_pipe(src);
        src->eof_pending = false;
        src->dst = NULL;
        src->discard = false;
        src->want_read = false;
        port_update_events(src);
}

uint64_t stream_port_bytes(const StreamPort *p) {
        return p->bytes;
}
