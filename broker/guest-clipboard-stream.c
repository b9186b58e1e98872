/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The clipboard's streams: a copy or a paste too large for one D-Bus message
 * (over CLIPBOARD_MESSAGE_MAX) travels through a stream between the guest and
 * the broker itself, OpenStream with target "@host" (services/clipboard-wire.h
 * has the bytes, docs/dbus-api.md "Clipboard" the rules).  The data lands in
 * the same sealed memfd as a small copy's, so what a paste gets, how the
 * policy decides it and what the admin sees do not depend on the way it came.
 *
 * A copy is read into a memfd of the size its header declares (at most
 * [Clipboard] MaxSize=) through a small buffer, and replaces the clipboard only once all of it
 * and the end of file came: a copy cut short, aborted, or longer than it said
 * leaves the clipboard as it was.  One copy stream per VM at a time (Busy).
 * A paste is decided as Guest.Paste is (guest-clipboard.c), then its header
 * and the memfd are written with sendfile(2).  Both run in the main loop,
 * non-blocking, at most CHUNK bytes per dispatch.
 */
#include "broker/guest-services.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>

#include "broker/channel.h"
#include "broker/clipboard.h"
#include "broker/errors.h"
#include "broker/stream.h"
#include "common/log.h"
#include "common/macro.h"
#include "services/clipboard-wire.h"

#define CHUNK (4u << 20) /* bytes moved per dispatch, then the loop runs others */
/* A copy is read through this buffer and written into the memfd (pwrite): a small buffer stays in the
 * cache.  64 MiB took 40-49 ms so, 135 ms read straight into a MAP_POPULATE'd mapping of the memfd and
 * 224 ms into one faulted in page by page (services-clipboard-stream, this machine, December 2026). */
#define BUF_SIZE (256u << 10)

typedef struct ClipStream {
        Broker *broker;
        sd_bus_message *m; /* the OpenStream call until it is answered */
        bool paste;
        char *vm;          /* the copy's owner, the paste's target */
        uint64_t id;
        int fd;            /* the host's end of the stream */
        unsigned watch;
        bool finished;     /* stream_exited was called */
        /* copy */
        char line[CLIPBOARD_WIRE_LINE_MAX + 1];
        size_t line_len;
        bool have_header;
        char mime[SERVICE_ARGS_MIME_MAX + 1];
        /* both: the data */
        int memfd;
        uint8_t *buf;      /* copy: BUF_SIZE bytes between the socket and memfd */
        uint64_t size, done;
        /* paste */
        char header[CLIPBOARD_WIRE_LINE_MAX + 2];
        size_t header_len, header_done;
        char source[CLIPBOARD_WIRE_SOURCE_MAX + 1];
        uint64_t generation; /* the clipboard's when the paste took it */
} ClipStream;

static void clip_stream_free(ClipStream *cs) {
        if (!cs)
                return;
        if (cs->watch)
                g_source_remove(cs->watch);
        g_free(cs->buf);
        safe_close(cs->memfd);
        safe_close(cs->fd);
        if (!cs->paste) {
                GHashTable *copying = guest_services_copying(cs->broker);
                if (copying)
                        g_hash_table_remove(copying, cs->vm);
        }
        sd_bus_message_unref(cs->m);
        g_free(cs->vm);
        g_free(cs);
}

static ClipStream *clip_stream_new(Broker *b, sd_bus_message *m, const char *vm, bool paste) {
        ClipStream *cs = g_new0(ClipStream, 1);
        cs->broker = b;
        cs->m = sd_bus_message_ref(m);
        cs->vm = g_strdup(vm);
        cs->paste = paste;
        cs->fd = cs->memfd = -EBADF;
        return cs;
}

/* The service is over: its status to the stream (which may end it, and free cs, at once). */
static void clip_stream_finish(ClipStream *cs, int status, const char *message) {
        StreamTable *t = guest_services_streams(cs->broker);
        uint64_t id = cs->id;

        if (cs->finished)
                return;
        cs->finished = true;
        if (cs->watch) {
                g_source_remove(cs->watch);
                cs->watch = 0;
        }
        if (cs->fd >= 0)
                (void) shutdown(cs->fd, SHUT_WR); /* the EOF of our output */
        if (t && stream_exited(t, CLIPBOARD_WIRE_HOST, id, status, message ? message : "") < 0)
                log_debug("Clipboard stream %" PRIu64 " was over before its service ended.", id);
}

/* ---- copy: guest -> broker ------------------------------------------------------------------ */

static void copy_refuse(ClipStream *cs, const char *decision, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void copy_refuse(ClipStream *cs, const char *decision, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        g_autofree char *why = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        guest_services_audit(cs->broker, cs->vm, CLIPBOARD_WIRE_HOST, CLIPBOARD_WIRE_COPY_SERVICE, NULL, "deny",
                             decision, false);
        log_info("Clipboard: a copy stream from %s was refused: %s", cs->vm, why);
        clip_stream_finish(cs, 1, why);
}

/* The header line is complete: check it, make the memfd. */
static int copy_begin(ClipStream *cs) {
        Clipboard *c = guest_services_clipboard(cs->broker);
        const char *why = NULL;
        char source[CLIPBOARD_WIRE_SOURCE_MAX + 1];
        int r;

        r = clipboard_wire_parse(cs->line, cs->line_len, false, &cs->size, cs->mime, source, &why);
        if (r < 0) {
                copy_refuse(cs, "bad-header", "The copy's header is not valid: %s; nothing was copied (InvalidArgs).",
                            why);
                return r;
        }
        if (!c || cs->size > clipboard_max_size(c)) {
                copy_refuse(cs, "too-large",
                            "The clipboard takes at most %" PRIu64 " bytes; %" PRIu64 " bytes were not copied "
                            "(nothing was truncated) (TooLarge).",
                            c ? clipboard_max_size(c) : 0, cs->size);
                return -EFBIG;
        }
        r = cs->memfd = clipboard_memfd_new(cs->size);
        if (r < 0) {
                copy_refuse(cs, "error", "Cannot store %" PRIu64 " bytes for the clipboard: %s (Failed).", cs->size,
                            strerror(-r));
                return r;
        }
        cs->buf = g_malloc(BUF_SIZE);
        cs->have_header = true;
        return 0;
}

/* All of it and the end of file came: it becomes the clipboard. */
static void copy_commit(ClipStream *cs) {
        Broker *b = cs->broker;
        g_autofree char *why = NULL;

        int r = clipboard_copy_memfd(b, guest_services_clipboard(b), cs->vm, cs->mime, steal_fd(&cs->memfd),
                                     (size_t) cs->size, &why);
        guest_services_audit(b, cs->vm, CLIPBOARD_WIRE_HOST, CLIPBOARD_WIRE_COPY_SERVICE, NULL,
                             r < 0 ? "deny" : "allow",
                             r == -EFBIG    ? "too-large"
                             : r == -EILSEQ ? "not-utf-8"
                             : r < 0        ? "error"
                                            : "copy-stream",
                             false);
        if (r < 0) {
                g_autofree char *m = g_strdup_printf("%s (%s)", why,
                                                     r == -EFBIG    ? "TooLarge"
                                                     : r == -EILSEQ ? "InvalidArgs"
                                                                    : "Failed");
                log_info("Clipboard: a copy stream from %s was refused: %s", cs->vm, m);
                clip_stream_finish(cs, 1, m);
                return;
        }
        log_info("Clipboard: %" PRIu64 " bytes of %s copied from %s through a stream.", cs->size, cs->mime, cs->vm);
        clip_stream_finish(cs, 0, NULL);
}

/* Read what is there; false: the copy is over (cs may be gone). */
static bool copy_step(ClipStream *cs, int fd) {
        size_t moved = 0;

        while (moved < CHUNK) {
                ssize_t k;
                if (!cs->have_header) {
                        char ch;
                        k = read(fd, &ch, 1);
                        if (k == 1) {
                                if (ch == '\n') {
                                        cs->line[cs->line_len] = 0;
                                        if (copy_begin(cs) < 0)
                                                return false;
                                        continue;
                                }
                                if (cs->line_len >= CLIPBOARD_WIRE_LINE_MAX) {
                                        copy_refuse(cs, "bad-header", "The copy's header line is longer than %d bytes; "
                                                    "nothing was copied (InvalidArgs).", CLIPBOARD_WIRE_LINE_MAX);
                                        return false;
                                }
                                cs->line[cs->line_len++] = ch;
                                continue;
                        }
                } else if (cs->done < cs->size) {
                        k = read(fd, cs->buf, (size_t) MIN(cs->size - cs->done, (uint64_t) BUF_SIZE));
                        if (k > 0) {
                                ssize_t w = pwrite(cs->memfd, cs->buf, (size_t) k, (off_t) cs->done);
                                if (w != k) {
                                        copy_refuse(cs, "error", "Cannot store the copy: %s (Failed).",
                                                    w < 0 ? strerror(errno) : "short write");
                                        return false;
                                }
                                cs->done += (uint64_t) k;
                                moved += (size_t) k;
                                continue;
                        }
                } else {
                        char extra;
                        k = read(fd, &extra, 1);
                        if (k == 0) {
                                copy_commit(cs);
                                return false;
                        }
                        if (k > 0) {
                                copy_refuse(cs, "bad-header", "The copy sent more than the %" PRIu64 " bytes its "
                                            "header declared; nothing was copied (InvalidArgs).", cs->size);
                                return false;
                        }
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        return true;
                if (k == 0 && !cs->have_header)
                        copy_refuse(cs, "cut-short", "The copy ended before its header line was complete; the "
                                    "clipboard is unchanged (Failed).");
                else if (k == 0)
                        copy_refuse(cs, "cut-short",
                                    "The copy ended after %" PRIu64 " of %" PRIu64 " bytes; the clipboard is "
                                    "unchanged (Failed).",
                                    cs->done, cs->size);
                else
                        copy_refuse(cs, "error", "Reading the copy failed: %s; the clipboard is unchanged (Failed).",
                                    strerror(errno));
                return false;
        }
        return true;
}

/* ---- paste: broker -> guest ------------------------------------------------------------------ */

/* Write what fits; false: the paste is over (cs may be gone). */
static bool paste_step(ClipStream *cs, int fd) {
        size_t moved = 0;

        while (moved < CHUNK) {
                ssize_t k;
                if (cs->header_done < cs->header_len) {
                        k = send(fd, cs->header + cs->header_done, cs->header_len - cs->header_done, MSG_NOSIGNAL);
                        if (k > 0) {
                                cs->header_done += (size_t) k;
                                continue;
                        }
                } else if (cs->done < cs->size) {
                        off_t off = (off_t) cs->done;
                        k = sendfile(fd, cs->memfd, &off, (size_t) MIN(cs->size - cs->done, (uint64_t) CHUNK - moved));
                        if (k > 0) {
                                cs->done += (uint64_t) k;
                                moved += (size_t) k;
                                continue;
                        }
                        if (k == 0)
                                errno = ENODATA; /* the sealed memfd cannot shrink: not reached */
                } else {
                        log_info("Clipboard: %" PRIu64 " bytes of %s pasted from %s into %s through a stream.",
                                 cs->size, cs->mime, cs->source, cs->vm);
                        clip_stream_finish(cs, 0, NULL);
                        return false;
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        return true;
                g_autofree char *why = g_strdup_printf("Writing the paste failed after %" PRIu64 " of %" PRIu64
                                                       " bytes: %s (Failed).",
                                                       cs->done, cs->size, strerror(errno));
                clip_stream_finish(cs, 1, why);
                return false;
        }
        return true;
}

/* The watch: cs->watch is 0 while a step runs, so that finishing (which may free cs) leaves the
 * source to return G_SOURCE_REMOVE itself. */
static gboolean clip_stream_ready(int fd, GIOCondition cond, gpointer userdata) {
        ClipStream *cs = userdata;
        unsigned self = cs->watch;
        cs->watch = 0;
        if (!(cs->paste ? paste_step(cs, fd) : copy_step(cs, fd)))
                return G_SOURCE_REMOVE;
        cs->watch = self;
        return G_SOURCE_CONTINUE;
}

/* ---- the stream's callbacks -------------------------------------------------------------------- */

static void clip_opened(Broker *b, int r, const StreamOpened *o, const char *error_name, const char *error,
                        void *userdata) {
        ClipStream *cs = userdata;
        if (r < 0) {
                (void) sd_bus_reply_method_errorf(cs->m, error_name ? error_name : VMFED_ERROR_FAILED, "%s",
                                                  error ? error : strerror(-r));
                clip_stream_free(cs); /* no `ended` after a failed `opened` */
                return;
        }
        cs->id = o->id;
        (void) sd_bus_reply_method_return(cs->m, "suut", o->vm, (uint32_t) o->port, o->tag, o->id);
        cs->m = sd_bus_message_unref(cs->m);
        Clipboard *c = guest_services_clipboard(b);
        /* A paste, as one in a message: emptied, unless something else was copied meanwhile. */
        if (cs->paste && c && clipboard_clear_after_paste(c) && clipboard_generation(c) == cs->generation)
                clipboard_clear(b, c, "pasted");
}

static void clip_host_start(Broker *b, uint64_t id, int fd, void *userdata) {
        ClipStream *cs = userdata;
        cs->fd = fd;
        cs->watch = g_unix_fd_add(fd, cs->paste ? G_IO_OUT : G_IO_IN | G_IO_HUP | G_IO_ERR, clip_stream_ready, cs);
}

static void clip_ended(Broker *b, int status, const char *message, void *userdata) {
        ClipStream *cs = userdata;
        if (status < 0 && !cs->finished)
                log_info("Clipboard: the %s stream of %s was aborted: %s; the clipboard is unchanged by it.",
                         cs->paste ? "paste" : "copy", cs->vm, message ? message : "");
        clip_stream_free(cs);
}

static const StreamCallbacks clip_callbacks = {
        .opened = clip_opened,
        .ended = clip_ended,
        .host_start = clip_host_start,
};

static int clip_stream_open(ClipStream *cs, const char *service) {
        StreamTable *t = guest_services_streams(cs->broker);
        int r = t ? stream_open_to_host(t, cs->vm, service, NULL, &clip_callbacks, cs) : -ESHUTDOWN;
        if (r >= 0)
                return 0;
        if (r == -EBUSY)
                (void) sd_bus_reply_method_errorf(cs->m, VMFED_ERROR_BUSY,
                                                  "Too many streams of %s are waiting for a port; try again later.",
                                                  cs->vm);
        else if (r == -ENXIO)
                (void) sd_bus_reply_method_errorf(cs->m, VMFED_ERROR_FAILED, "%s has no stream ports (Streams=0).",
                                                  cs->vm);
        else
                (void) sd_bus_reply_method_errorf(cs->m, VMFED_ERROR_FAILED, "Cannot open a clipboard stream: %s",
                                                  strerror(-r));
        clip_stream_free(cs);
        return 1;
}

int guest_clipboard_stream_paste(Broker *b, sd_bus_message *m, const char *target) {
        Clipboard *c = guest_services_clipboard(b);
        const char *owner, *mime;
        const void *data;
        size_t size;

        if (!c || clipboard_peek(c, &owner, &mime, &data, &size) < 0)
                return sd_bus_reply_method_errorf(m, VMFED_ERROR_NOT_FOUND, "The clipboard is empty.");
        ClipStream *cs = clip_stream_new(b, m, target, true);
        cs->memfd = clipboard_dup_memfd(c);
        cs->size = size;
        g_strlcpy(cs->mime, mime, sizeof cs->mime);
        g_strlcpy(cs->source, owner, sizeof cs->source);
        if (cs->memfd < 0 || clipboard_wire_format(cs->header, size, mime, owner) < 0) {
                (void) sd_bus_reply_method_errorf(m, VMFED_ERROR_FAILED, "Cannot read the clipboard for the paste.");
                clip_stream_free(cs);
                return 1;
        }
        cs->header_len = strlen(cs->header);
        /* From here on the data is this paste's (its own memfd reference); the clipboard is emptied
         * (ClearAfterPaste=) once the caller has its stream, not when the stream cannot be had. */
        cs->generation = clipboard_generation(c);
        return clip_stream_open(cs, CLIPBOARD_WIRE_PASTE_SERVICE);
}

int guest_clipboard_open_stream(sd_bus_message *m, GuestConnection *g, const char *untrusted_service,
                                const char *untrusted_arg, sd_bus_error *error) {
        Broker *b = guest_connection_broker(g);
        const char *vm = guest_connection_vm(g);

        if (*untrusted_arg)
                return sd_bus_error_setf(error, VMFED_ERROR_INVALID_ARGS,
                                         "The host's %s stream takes no argument (the type is in its header).",
                                         ERRORS_EXCERPT(untrusted_service, 64));
        if (strcmp(untrusted_service, CLIPBOARD_WIRE_PASTE_SERVICE) == 0)
                return guest_clipboard_paste_stream(m, g, error);
        if (strcmp(untrusted_service, CLIPBOARD_WIRE_COPY_SERVICE) != 0)
                return sd_bus_error_setf(error, VMFED_ERROR_NOT_FOUND,
                                         "The host serves no stream '%s' (only " CLIPBOARD_WIRE_COPY_SERVICE
                                         " and " CLIPBOARD_WIRE_PASTE_SERVICE ").",
                                         ERRORS_EXCERPT(untrusted_service, 64));
        /* A copy is an explicit user action in that VM: no policy, as Guest.Copy. */
        GHashTable *copying = guest_services_copying(b);
        if (!copying)
                return sd_bus_error_set(error, VMFED_ERROR_FAILED, "The broker is shutting down.");
        if (g_hash_table_contains(copying, vm))
                return sd_bus_error_setf(error, VMFED_ERROR_BUSY,
                                         "A copy of %s is still under way; one at a time.", vm);
        g_hash_table_add(copying, g_strdup(vm));
        return clip_stream_open(clip_stream_new(b, m, vm, false), CLIPBOARD_WIRE_COPY_SERVICE);
}
