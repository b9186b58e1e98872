/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/agent-port.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "common/log.h"
#include "common/macro.h"
#include "services/fd-watch.h"

#define BUF_CAP (STREAM_FRAME_HEADER + STREAM_FRAME_MAX)
/* Reads of one fd per run before the loop gets its turn (the fd stays watched: poll comes back at once). */
#define PUMP_READS 16
/* A virtio port without its host side polls POLLHUP continuously: look again this much later. */
#define HANGUP_RETRY_MS 200

typedef enum ReadState {
        READ_HEADER,  /* looking for the next header */
        READ_PAYLOAD, /* a frame of the bound reader: its payload goes to the sink */
        READ_DROP,    /* a frame of another tag (or of a reader that let go): skipped */
} ReadState;

typedef enum EventKind {
        EVENT_NONE,
        EVENT_EOF,
        EVENT_FAILED,
} EventKind;

typedef struct Event {
        EventKind kind;
        void *userdata;
        int error;
} Event;

typedef struct Reader {
        void *userdata; /* NULL: none */
        uint32_t tag;
        int sink;
        bool sink_is_socket;
        bool dropping; /* the sink failed */
        FdWatch *watch;
} Reader;

typedef struct Writer {
        void *userdata;
        uint32_t tag;
        int source;
        bool no_splice;  /* the source cannot be spliced from: read() */
        bool finish;     /* no more reading: the EOF frame next */
        bool eof_queued; /* the EOF frame is in out[] or written */
        FdWatch *watch;
} Writer;

struct AgentPort {
        unsigned index;
        const AgentPortOps *ops;
        int fd;
        bool is_socket;
        bool paused;
        FdWatch *watch;
        guint kick_id, retry_id;

        Reader rd;
        GQueue waiting; /* Reader *: the next streams' readers, in the order of their frames in the port */
        uint8_t *in;
        size_t in_start, in_end;
        ReadState rstate;
        uint32_t left;
        uint64_t dropped; /* garbage and stale bytes, for the debug log */
        bool want_in, want_sink;

        Writer wr;
        /* The frame being written: out[out_off..out_len), then pipe_left bytes of payload in pipe[]
         * (spliced from the source, spliced into the port: the payload never passes through here). */
        uint8_t *out;
        size_t out_off, out_len;
        int pipe[2];            /* -EBADF until the first splice */
        size_t pipe_left;
        bool no_splice;         /* the port cannot be spliced into: the payload is read out of the pipe */
        void *out_eof_of; /* out[] holds this writer's EOF frame */
        uint64_t zeros;
        bool want_out, want_source;

        Event rev, wev; /* at most one per direction per run, delivered at its end */
};

static const uint8_t zero_block[16384];

static void port_run(AgentPort *p);

static gboolean port_on_kick(gpointer userdata) {
        AgentPort *p = userdata;
        p->kick_id = 0;
        port_run(p);
        return G_SOURCE_REMOVE;
}

/* Run from an idle: never from inside the caller's call (the callbacks may bind and unbind). */
static void port_kick(AgentPort *p) {
        if (!p->kick_id)
                p->kick_id = g_idle_add(port_on_kick, p);
}

static ssize_t fd_send(int fd, bool is_socket, const void *buf, size_t n) {
        if (is_socket)
                return send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        return write(fd, buf, n);
}

static bool fd_is_socket(int fd) {
        struct stat st;
        return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* ---- the writer: source → frames ------------------------------------------------------- */

static void writer_queue_eof(AgentPort *p) {
        stream_frame_encode(&(StreamFrameHeader) { .tag = p->wr.tag, .len = 0 }, p->out);
        p->out_off = 0;
        p->out_len = STREAM_FRAME_HEADER;
        p->out_eof_of = p->wr.userdata;
        p->wr.eof_queued = true;
}

/* The port takes no splice (a file in a test, an old driver): the payload in the pipe goes to out[]. */
static int writer_unpipe(AgentPort *p) {
        while (p->pipe_left > 0) {
                ssize_t n = read(p->pipe[0], p->out + p->out_len, p->pipe_left);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                p->out_len += (size_t) n;
                p->pipe_left -= (size_t) n;
        }
        return 0;
}

/* A frame begun on a connection that is gone: its payload still in the pipe goes too. */
static void writer_drop_piped(AgentPort *p) {
        uint8_t scratch[4096];
        while (p->pipe_left > 0) {
                ssize_t n = read(p->pipe[0], scratch, MIN(sizeof scratch, p->pipe_left));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) { /* cannot be; never let those bytes start another frame */
                        p->pipe[0] = safe_close(p->pipe[0]);
                        p->pipe[1] = safe_close(p->pipe[1]);
                        break;
                }
                p->pipe_left -= (size_t) n;
        }
        p->pipe_left = 0;
}

/* Write what is owed: padding, then the frame's header, then its payload in the pipe.  1: all written, 0:
 * blocked, <0: the port failed. */
static int writer_flush(AgentPort *p) {
        while (p->zeros > 0 || p->out_off < p->out_len || p->pipe_left > 0) {
                bool pad = p->zeros > 0;
                ssize_t n;
                if (!pad && p->out_off == p->out_len) {
                        n = splice(p->pipe[0], NULL, p->fd, NULL, p->pipe_left, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
                        if (n < 0 && errno == EINVAL) { /* the pipe is emptied into out[]: no second time */
                                log_debug("Stream port %u takes no splice: its payload is copied.", p->index);
                                p->no_splice = true;
                                int r = writer_unpipe(p);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                } else {
                        size_t k = pad ? MIN(p->zeros, (uint64_t) sizeof zero_block) : p->out_len - p->out_off;
                        n = fd_send(p->fd, p->is_socket, pad ? zero_block : p->out + p->out_off, k);
                }
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                p->want_out = true;
                                return 0;
                        }
                        return -errno;
                }
                if (pad)
                        p->zeros -= (uint64_t) n;
                else if (p->out_off < p->out_len)
                        p->out_off += (size_t) n;
                else
                        p->pipe_left -= (size_t) n;
        }
        p->out_off = p->out_len = 0;
        return 1;
}

/* The next payload of the source, at most a frame's: into the pipe (0 copies) or into out[].  >0: its size,
 * 0: the source's EOF, <0: -errno. */
static ssize_t writer_take(AgentPort *p) {
        bool use_splice = !p->wr.no_splice && !p->no_splice;
        if (use_splice && p->pipe[0] < 0 && pipe2(p->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                log_debug_errno(-errno, "Stream port %u: no pipe to splice through (%m): its payload is copied.",
                                p->index);
                p->no_splice = true;
                use_splice = false;
        }
        if (use_splice) {
                ssize_t n = splice(p->wr.source, NULL, p->pipe[1], NULL, STREAM_FRAME_MAX,
                                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
                if (n > 0)
                        p->pipe_left = (size_t) n;
                if (n >= 0 || errno != EINVAL)
                        return n < 0 ? -errno : n;
                p->wr.no_splice = true;
        }
        ssize_t n = read(p->wr.source, p->out + STREAM_FRAME_HEADER, STREAM_FRAME_MAX);
        return n < 0 ? -errno : n;
}

static int writer_pump(AgentPort *p) {
        for (unsigned reads = 0;;) {
                int r = writer_flush(p);
                if (r <= 0)
                        return r;
                if (p->out_eof_of) {
                        void *of = steal_pointer(&p->out_eof_of);
                        if (of == p->wr.userdata)
                                p->wev = (Event) { EVENT_EOF, of, 0 };
                        port_kick(p);
                        return 0;
                }
                if (!p->wr.userdata || p->wr.eof_queued)
                        return 0;
                if (p->wr.finish) {
                        writer_queue_eof(p);
                        continue;
                }
                if (reads++ == PUMP_READS) {
                        p->want_source = true;
                        return 0;
                }
                ssize_t n = writer_take(p);
                if (n > 0) {
                        stream_frame_encode(&(StreamFrameHeader) { .tag = p->wr.tag, .len = (uint32_t) n }, p->out);
                        p->out_off = 0;
                        p->out_len = STREAM_FRAME_HEADER + (p->pipe_left ? 0 : (size_t) n);
                } else if (n == 0)
                        writer_queue_eof(p);
                else if (n == -EAGAIN) {
                        p->want_source = true;
                        return 0;
                } else if (n != -EINTR) {
                        p->wev = (Event) { EVENT_FAILED, p->wr.userdata, (int) n };
                        writer_queue_eof(p);
                        port_kick(p);
                        return 0;
                }
        }
}

/* ---- the reader: frames → sink --------------------------------------------------------- */

typedef enum Step {
        STEP_MORE,      /* go on */
        STEP_NEED_DATA, /* read the port */
        STEP_BLOCKED,   /* the sink is full */
        STEP_EVENT,     /* an event for the reader: stop this run */
} Step;

static void reader_drop_binding(Reader *r) {
        r->watch = fd_watch_free(r->watch);
        *r = (Reader) { .sink = -EBADF };
}

/* The first waiting reader becomes the bound one (none: unbound). */
static void reader_take_next(AgentPort *p) {
        Reader *next = g_queue_pop_head(&p->waiting);
        if (next) {
                p->rd = *next;
                g_free(next);
        } else
                p->rd = (Reader) { .sink = -EBADF };
}

static void reader_eof(AgentPort *p) {
        p->rev = (Event) { EVENT_EOF, p->rd.userdata, 0 };
        reader_drop_binding(&p->rd);
        reader_take_next(p); /* the next stream's frames come after this EOF */
}

static Step reader_header(AgentPort *p, const uint8_t *b, size_t avail) {
        StreamFrameHeader h;
        size_t skip = stream_frame_scan(b, avail);

        if (skip > 0) {
                p->in_start += skip;
                p->dropped += skip;
                return STEP_MORE;
        }
        if (avail < STREAM_FRAME_HEADER)
                return STEP_NEED_DATA;
        if (stream_frame_decode(b, &h) < 0) { /* cannot be: the scan found a valid header here */
                p->in_start++;
                return STEP_MORE;
        }
        p->in_start += STREAM_FRAME_HEADER;
        p->left = h.len;
        if (h.tag != p->rd.tag) {
                p->rstate = h.len > 0 ? READ_DROP : READ_HEADER;
                p->dropped += STREAM_FRAME_HEADER + h.len;
                return STEP_MORE;
        }
        if (h.len > 0) {
                p->rstate = READ_PAYLOAD;
                return STEP_MORE;
        }
        reader_eof(p);
        return STEP_EVENT;
}

static Step reader_step(AgentPort *p) {
        Reader *rd = &p->rd;
        size_t avail = p->in_end - p->in_start;
        const uint8_t *b = p->in + p->in_start;

        if (p->rstate == READ_HEADER)
                return reader_header(p, b, avail);
        if (avail == 0)
                return STEP_NEED_DATA;
        size_t k = MIN(avail, (size_t) p->left);
        if (p->rstate == READ_PAYLOAD && !rd->dropping) {
                ssize_t n = fd_send(rd->sink, rd->sink_is_socket, b, k);
                if (n < 0) {
                        if (errno == EINTR)
                                return STEP_MORE;
                        if (errno == EAGAIN) {
                                p->want_sink = true;
                                return STEP_BLOCKED;
                        }
                        rd->dropping = true;
                        p->rev = (Event) { EVENT_FAILED, rd->userdata, -errno };
                        return STEP_EVENT;
                }
                k = (size_t) n;
        }
        p->in_start += k;
        p->left -= (uint32_t) k;
        if (p->left == 0)
                p->rstate = READ_HEADER;
        return STEP_MORE;
}

static int reader_pump(AgentPort *p) {
        unsigned reads = 0;

        while (p->rd.userdata) {
                Step s = reader_step(p);
                if (s == STEP_MORE)
                        continue;
                if (s == STEP_BLOCKED)
                        return 0;
                if (s == STEP_EVENT) {
                        port_kick(p);
                        return 0;
                }
                /* Need data: what is left (less than a header) goes to the front, the rest is free. */
                if (p->in_start > 0) {
                        memmove(p->in, p->in + p->in_start, p->in_end - p->in_start);
                        p->in_end -= p->in_start;
                        p->in_start = 0;
                }
                if (reads++ == PUMP_READS) {
                        p->want_in = true;
                        return 0;
                }
                ssize_t n = read(p->fd, p->in + p->in_end, BUF_CAP - p->in_end);
                if (n > 0)
                        p->in_end += (size_t) n;
                else if (n == 0)
                        return -ECONNRESET;
                else if (errno == EAGAIN) {
                        p->want_in = true;
                        return 0;
                } else if (errno != EINTR)
                        return -errno;
        }
        return 0;
}

/* ---- the port's connection --------------------------------------------------------------- */

static void port_on_fd(void *userdata, GIOCondition rev);

static gboolean port_on_retry(gpointer userdata) {
        AgentPort *p = userdata;
        p->retry_id = 0;
        p->paused = false;
        port_run(p);
        return G_SOURCE_REMOVE;
}

static void port_pause(AgentPort *p) {
        p->paused = true;
        fd_watch_set(p->watch, 0);
        if (!p->retry_id)
                p->retry_id = g_timeout_add(HANGUP_RETRY_MS, port_on_retry, p);
}

static void port_close(AgentPort *p) {
        p->watch = fd_watch_free(p->watch);
        p->fd = safe_close(p->fd);
        p->in_start = p->in_end = 0;
        p->rstate = READ_HEADER;
        p->left = 0;
}

/* The connection hung up or failed: a socket is closed (the broker connects anew), a virtio port waits. */
static void port_lost(AgentPort *p, int error) {
        if (!p->is_socket && error == -ECONNRESET) {
                port_pause(p);
                return;
        }
        log_info("Stream port %u: %s; closed until the broker connects again.", p->index,
                 error == -ECONNRESET ? "the broker hung up" : strerror(-error));
        port_close(p);
}

static void port_update_watches(AgentPort *p) {
        if (p->watch && !p->paused)
                fd_watch_set(p->watch, (p->want_in ? G_IO_IN : 0) | (p->want_out ? G_IO_OUT : 0));
        /* A sink whose peer hung up is a failure even when there is nothing to write. */
        if (p->rd.watch)
                fd_watch_set(p->rd.watch, p->want_sink ? G_IO_OUT | G_IO_HUP | G_IO_ERR
                                          : p->rd.dropping ? 0 : G_IO_HUP | G_IO_ERR);
        if (p->wr.watch)
                fd_watch_set(p->wr.watch, p->want_source ? G_IO_IN : 0);
}

static void port_emit(AgentPort *p) {
        Event e = p->rev;
        p->rev = (Event) {};
        if (e.kind == EVENT_EOF && p->ops->reader_eof)
                p->ops->reader_eof(e.userdata);
        else if (e.kind == EVENT_FAILED && p->ops->reader_failed)
                p->ops->reader_failed(e.userdata, e.error);

        e = p->wev;
        p->wev = (Event) {};
        if (e.kind == EVENT_NONE || e.userdata != p->wr.userdata) /* let go in the reader's callback */
                return;
        if (e.kind == EVENT_EOF && p->ops->writer_eof)
                p->ops->writer_eof(e.userdata);
        else if (e.kind == EVENT_FAILED && p->ops->writer_failed)
                p->ops->writer_failed(e.userdata, e.error);
}

static void port_run(AgentPort *p) {
        p->want_in = p->want_out = p->want_sink = p->want_source = false;
        if (p->fd >= 0 && !p->paused) {
                int r = writer_pump(p);
                if (r >= 0)
                        r = reader_pump(p);
                if (r < 0)
                        port_lost(p, r);
        }
        if (p->dropped >= STREAM_PAD_BYTES) {
                log_debug("Stream port %u: %" PRIu64 " bytes of garbage or of other streams dropped.", p->index,
                          p->dropped);
                p->dropped = 0;
        }
        port_update_watches(p);
        port_emit(p);
}

static void port_on_fd(void *userdata, GIOCondition rev) {
        AgentPort *p = userdata;
        if ((rev & G_IO_HUP) && !p->is_socket) {
                port_pause(p); /* bytes it still holds are read at the retry */
                return;
        }
        port_run(p);
}

static void port_on_sink(void *userdata, GIOCondition rev) {
        AgentPort *p = userdata;
        if ((rev & (G_IO_HUP | G_IO_ERR)) && p->rd.userdata && !p->rd.dropping) {
                /* Reported on its own: a run could reach the EOF frame and report only that. */
                p->rd.dropping = true;
                p->rev = (Event) { EVENT_FAILED, p->rd.userdata, -EPIPE };
                p->want_sink = false;
                port_update_watches(p);
                port_emit(p);
                port_kick(p);
                return;
        }
        port_run(p);
}

static void port_on_source(void *userdata, GIOCondition rev) {
        port_run(userdata);
}

/* ---- public ------------------------------------------------------------------------------ */

AgentPort *agent_port_new(unsigned index, const AgentPortOps *ops) {
        AgentPort *p = g_new0(AgentPort, 1);
        p->index = index;
        p->ops = ops;
        p->fd = -EBADF;
        p->rd.sink = -EBADF;
        g_queue_init(&p->waiting);
        p->wr.source = -EBADF;
        p->pipe[0] = p->pipe[1] = -EBADF;
        p->in = g_malloc(BUF_CAP);
        p->out = g_malloc(BUF_CAP);
        return p;
}

AgentPort *agent_port_free(AgentPort *p) {
        if (!p)
                return NULL;
        if (p->kick_id)
                g_source_remove(p->kick_id);
        if (p->retry_id)
                g_source_remove(p->retry_id);
        reader_drop_binding(&p->rd);
        for (Reader *w; (w = g_queue_pop_head(&p->waiting));) {
                reader_drop_binding(w);
                g_free(w);
        }
        p->wr.watch = fd_watch_free(p->wr.watch);
        port_close(p);
        safe_close(p->pipe[0]);
        safe_close(p->pipe[1]);
        g_free(p->in);
        g_free(p->out);
        g_free(p);
        return NULL;
}

unsigned agent_port_index(const AgentPort *p) {
        return p->index;
}

void agent_port_set_fd(AgentPort *p, int fd) {
        port_close(p);
        if (p->retry_id)
                g_source_remove(p->retry_id);
        p->retry_id = 0;
        p->paused = false;
        p->fd = fd;
        p->is_socket = fd_is_socket(fd);
        p->watch = fd_watch_new(fd, port_on_fd, p);
        p->zeros = STREAM_PAD_BYTES;
        if (p->out_off > 0) {
                /* The new connection never saw that frame's start: an EOF frame is written again, data is lost. */
                if (p->out_eof_of)
                        p->out_off = 0;
                else {
                        p->out_off = p->out_len = 0;
                        writer_drop_piped(p);
                }
        }
        port_kick(p);
}

int agent_port_fd(const AgentPort *p) {
        return p->fd;
}

void agent_port_bind_reader(AgentPort *p, uint32_t tag, int sink_fd, void *userdata) {
        Reader r = {
                .userdata = userdata,
                .tag = tag,
                .sink = sink_fd,
                .sink_is_socket = fd_is_socket(sink_fd),
                .watch = fd_watch_new(sink_fd, port_on_sink, p),
        };
        if (!p->rd.userdata)
                p->rd = r;
        else
                g_queue_push_tail(&p->waiting, g_memdup2(&r, sizeof r));
        port_kick(p);
}

void agent_port_unbind_reader(AgentPort *p, void *userdata) {
        if (p->rev.userdata == userdata)
                p->rev = (Event) {};
        for (GList *l = p->waiting.head; l; l = l->next) {
                Reader *w = l->data;
                if (w->userdata == userdata) {
                        reader_drop_binding(w);
                        g_free(w);
                        g_queue_delete_link(&p->waiting, l);
                        return;
                }
        }
        if (p->rd.userdata != userdata)
                return;
        reader_drop_binding(&p->rd);
        if (p->rstate == READ_PAYLOAD)
                p->rstate = READ_DROP; /* the rest of its frame */
        reader_take_next(p);
        port_kick(p);
}

void *agent_port_reader(const AgentPort *p, bool *ret_dropping) {
        if (ret_dropping)
                *ret_dropping = p->rd.dropping;
        return p->rd.userdata;
}

void agent_port_bind_writer(AgentPort *p, uint32_t tag, int source_fd, void *userdata) {
        if (p->wr.userdata)
                agent_port_unbind_writer(p, p->wr.userdata);
        p->wr = (Writer) {
                .userdata = userdata,
                .tag = tag,
                .source = source_fd,
                .watch = fd_watch_new(source_fd, port_on_source, p),
        };
        port_kick(p);
}

void agent_port_unbind_writer(AgentPort *p, void *userdata) {
        if (p->wr.userdata != userdata)
                return;
        if (p->wev.userdata == userdata)
                p->wev = (Event) {};
        if (p->out_eof_of == userdata)
                p->out_eof_of = NULL; /* still written: a frame is never left half */
        p->wr.watch = fd_watch_free(p->wr.watch);
        p->wr = (Writer) { .source = -EBADF };
        port_kick(p);
}

void agent_port_finish_writer(AgentPort *p, void *userdata) {
        if (p->wr.userdata != userdata || p->wr.finish)
                return;
        p->wr.finish = true;
        port_kick(p);
}

void *agent_port_writer(const AgentPort *p) {
        return p->wr.userdata;
}
