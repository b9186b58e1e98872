/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writes the seed corpus of fuzz-guest-channel: what a guest's agent sends
 * on its channel, byte for byte.  The client side of each stream is real
 * sd-bus set up exactly as services/agent.c does (bus_p2p_new(), anonymous,
 * no fds), so the SASL handshake and the marshalling are the agent's own;
 * the broker's side of the handshake is answered by hand and everything
 * the client writes is captured.  Replies to the broker's Agent1 calls are
 * method returns for the serials the broker will use.
 *
 *   fuzz-guest-seeds DIR [NETVM_DIR]
 *
 * writes DIR/NAME.bin (fuzz-guest-channel's corpus) and NETVM_DIR/NAME.bin
 * (fuzz-netvm-link's: what vmfed-netd sends on the netvm's port, which is
 * set up the same way; the broker's first call there is SetState, serial
 * 1).  The corpora are checked in.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <systemd/sd-bus.h>

#include "common/bus-p2p.h"

#define GUEST_PATH "/org/vmfed/Federation1"
#define GUEST_IFACE "org.vmfed.Federation1.Guest"

typedef struct Stream {
        sd_bus *bus;
        int capture; /* the broker's end */
        GByteArray *bytes;
} Stream;

static void capture(Stream *s) {
        uint8_t buf[65536];
        ssize_t n;
        while ((n = read(s->capture, buf, sizeof buf)) > 0)
                g_byte_array_append(s->bytes, buf, (guint) n);
}

static void stream_open(Stream *s) {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
                abort();
        s->capture = fds[1];
        s->bytes = g_byte_array_new();
        if (bus_p2p_new(fds[0], /* server= */ false, /* accept_fds= */ false, "broker", &s->bus) < 0 ||
            sd_bus_start(s->bus) < 0)
                abort();
        /* The broker's answer to AUTH ANONYMOUS (and to NEGOTIATE_UNIX_FD, were it asked). */
        for (unsigned i = 0; i < 100 && sd_bus_is_ready(s->bus) <= 0; i++) {
                while (sd_bus_process(s->bus, NULL) > 0)
                        ;
                size_t before = s->bytes->len;
                capture(s);
                if (s->bytes->len > before) {
                        const void *text = s->bytes->data + before;
                        size_t len = s->bytes->len - before;
                        if (memmem(text, len, "AUTH", 4))
                                (void) !write(s->capture, "OK 0123456789abcdef0123456789abcdef\r\n", 37);
                        if (memmem(text, len, "NEGOTIATE_UNIX_FD", 17))
                                (void) !write(s->capture, "ERROR\r\n", 7);
                }
                (void) sd_bus_wait(s->bus, 10000);
        }
        if (sd_bus_is_ready(s->bus) <= 0) {
                fprintf(stderr, "handshake did not finish: %.*s\n", (int) s->bytes->len, (char *) s->bytes->data + 1);
                abort();
        }
        while (sd_bus_process(s->bus, NULL) > 0)
                ;
        capture(s);
}

static void stream_send(Stream *s, sd_bus_message *m) {
        uint64_t cookie;
        /* With a cookie pointer: a call expects its reply, as the agent's calls do. */
        if (sd_bus_send(s->bus, m, &cookie) < 0)
                abort();
        sd_bus_message_unref(m);
        for (;;) {
                uint64_t n = 0;
                capture(s);
                if (sd_bus_get_n_queued_write(s->bus, &n) < 0 || n == 0)
                        break;
                (void) sd_bus_process(s->bus, NULL);
        }
        capture(s);
}

static sd_bus_message *call(Stream *s, const char *iface, const char *member) {
        sd_bus_message *m = NULL;
        if (sd_bus_message_new_method_call(s->bus, &m, NULL, GUEST_PATH, iface ? iface : GUEST_IFACE, member) < 0)
                abort();
        return m;
}

static void send_call(Stream *s, const char *member, const char *types, ...) {
        sd_bus_message *m = call(s, NULL, member);
        va_list ap;
        va_start(ap, types);
        if (types && sd_bus_message_appendv(m, types, ap) < 0)
                abort();
        va_end(ap);
        stream_send(s, m);
}

static void send_bytes_call(Stream *s, const char *member, const char *str1, const void *data, size_t size,
                            const char *after) {
        sd_bus_message *m = call(s, NULL, member);
        if (sd_bus_message_append(m, "s", str1) < 0 || sd_bus_message_append_array(m, 'y', data, size) < 0)
                abort();
        if (after && sd_bus_message_append(m, "s", after) < 0)
                abort();
        stream_send(s, m);
}

/* A method return for the broker's call with this serial (an Agent1 call on this connection). */
static void send_return(Stream *s, uint32_t reply_serial, const char *types, ...) {
        sd_bus_message *c = NULL, *m = NULL;
        if (sd_bus_message_new_method_call(s->bus, &c, NULL, "/org/vmfed/Agent1", "org.vmfed.Agent1", "X") < 0 ||
            sd_bus_message_seal(c, reply_serial, 0) < 0 || sd_bus_message_new_method_return(c, &m) < 0)
                abort();
        va_list ap;
        va_start(ap, types);
        if (types && sd_bus_message_appendv(m, types, ap) < 0)
                abort();
        va_end(ap);
        sd_bus_message_unref(c);
        stream_send(s, m);
}

/* OpenFile's answer: (b changed, ay data). */
static void send_return_file(Stream *s, uint32_t reply_serial, int changed, const char *data) {
        sd_bus_message *c = NULL, *m = NULL;
        if (sd_bus_message_new_method_call(s->bus, &c, NULL, "/org/vmfed/Agent1", "org.vmfed.Agent1", "X") < 0 ||
            sd_bus_message_seal(c, reply_serial, 0) < 0 || sd_bus_message_new_method_return(c, &m) < 0 ||
            sd_bus_message_append(m, "b", changed) < 0 ||
            sd_bus_message_append_array(m, 'y', data, strlen(data)) < 0)
                abort();
        sd_bus_message_unref(c);
        stream_send(s, m);
}

static void send_error(Stream *s, uint32_t reply_serial, const char *name, const char *text) {
        sd_bus_message *c = NULL, *m = NULL;
        if (sd_bus_message_new_method_call(s->bus, &c, NULL, "/org/vmfed/Agent1", "org.vmfed.Agent1", "X") < 0 ||
            sd_bus_message_seal(c, reply_serial, 0) < 0 ||
            sd_bus_message_new_method_errorf(c, &m, name, "%s", text) < 0)
                abort();
        sd_bus_message_unref(c);
        stream_send(s, m);
}

static void stream_write(Stream *s, const char *dir, const char *name) {
        g_autofree char *p = g_strdup_printf("%s/%s.bin", dir, name);
        GError *e = NULL;
        if (!g_file_set_contents(p, (const char *) s->bytes->data, s->bytes->len, &e)) {
                fprintf(stderr, "%s: %s\n", p, e->message);
                exit(1);
        }
        printf("%s: %u bytes\n", p, s->bytes->len);
        sd_bus_flush_close_unref(s->bus);
        close(s->capture);
        g_byte_array_unref(s->bytes);
}

static void raw(const char *dir, const char *name, const char *bytes, size_t len) {
        g_autofree char *p = g_strdup_printf("%s/%s.bin", dir, name);
        if (!g_file_set_contents(p, bytes, (gssize) len, NULL))
                exit(1);
        printf("%s: %zu bytes\n", p, len);
}

/* Streams: set-up to each kind of target, bad names, and the ends of streams that are not there. */
static void write_stream_calls(const char *dir) {
        Stream s;

        stream_open(&s);
        send_call(&s, "Hello", "s", "0.1.0");
        send_call(&s, "OpenStream", "sss", "b", "test.Echo", "");
        send_call(&s, "OpenStream", "sss", "a", "test.Echo", "x+y");
        send_call(&s, "OpenStream", "sss", "@dispvm", "test.Echo", "");
        send_call(&s, "OpenStream", "sss", "@default", "test.Ask", "arg");
        send_call(&s, "OpenStream", "sss", "c", "bad/name", "");
        send_call(&s, "OpenStream", "sss", "c", "test.Echo", "../x");
        send_call(&s, "OpenStream", "sss", "nosuchvm", "test.Other", "");
        send_call(&s, "StreamExited", "tis", (uint64_t) 1, 0, "");
        send_call(&s, "StreamExited", "tis", (uint64_t) 7, 999, "status out of range");
        send_call(&s, "CloseStream", "t", (uint64_t) 1);
        send_call(&s, "CloseStream", "t", UINT64_MAX);
        stream_write(&s, dir, "streams");

        /* Streams to the broker itself: the clipboard's large copies and pastes, and what it refuses. */
        stream_open(&s);
        send_call(&s, "Hello", "s", "0.1.0");
        send_call(&s, "OpenStream", "sss", "@host", "vmfed.Clipboard.Copy", "");
        send_call(&s, "OpenStream", "sss", "@host", "vmfed.Clipboard.Copy", "");
        send_call(&s, "OpenStream", "sss", "@host", "vmfed.Clipboard.Paste", "");
        send_call(&s, "OpenStream", "sss", "@host", "vmfed.Clipboard.Copy", "text.plain");
        send_call(&s, "OpenStream", "sss", "@host", "test.Echo", "");
        send_call(&s, "StreamExited", "tis", (uint64_t) 1, 0, "");
        send_call(&s, "CloseStream", "t", (uint64_t) 1);
        stream_write(&s, dir, "clipboard-streams");
}

/* What an agent says on its channel, one seed per Guest service. */
static void write_guest_calls(const char *dir) {
        Stream s;

        /* Hello and Ping: what every agent does first. */
        stream_open(&s);
        send_call(&s, "Hello", "s", "0.1.0");
        send_call(&s, "Ping", NULL);
        stream_write(&s, dir, "hello-ping");

        /* Clipboard: copy, paste (own data), copy too much, bad mime. */
        stream_open(&s);
        send_call(&s, "Hello", "s", "0.1.0");
        send_bytes_call(&s, "Copy", "text/plain;charset=utf-8", "hello from a", 12, NULL);
        send_call(&s, "Paste", NULL);
        send_bytes_call(&s, "Copy", "image/png", "\x89PNG\r\n\x1a\n", 8, NULL);
        send_bytes_call(&s, "Copy", "", "", 0, NULL);
        send_call(&s, "Paste", NULL);
        stream_write(&s, dir, "clipboard");

        /* OpenURL to every kind of target. */
        stream_open(&s);
        send_call(&s, "Hello", "s", "0.1.0");
        send_call(&s, "OpenURL", "ss", "https://example.com/a?b=c#d", "b");
        send_call(&s, "OpenURL", "ss", "http://example.org", "@default");
        send_call(&s, "OpenURL", "ss", "https://example.net", "@dispvm");
        send_call(&s, "OpenURL", "ss", "mailto:x@example.com", "@dispvm:dvm");
        send_call(&s, "OpenURL", "ss", "https://example.com", "c");
        send_call(&s, "OpenURL", "ss", "javascript:alert(1)", "b");
        send_call(&s, "OpenURL", "ss", "https://example.com", "nosuchvm");
        send_call(&s, "OpenURL", "ss", "https://example.com", "../b");
        stream_write(&s, dir, "open-url");

        /*
         * Routed back to this VM: the broker calls Agent1.OpenURL here with its
         * serial 2 (1 answered Hello); the agent answers it, then once more
         * with an error for a call that never was.
         */
        stream_open(&s);
        send_call(&s, "Hello", "s", "0.1.0");
        send_call(&s, "OpenURL", "ss", "https://example.com", "a");
        send_return(&s, 2, NULL);
        send_call(&s, "Launch", "sass", "org.example.Self", 2, "new-window", "x", "a");
        send_error(&s, 4, "org.vmfed.Agent1.Error.Failed", "no such application");
        send_error(&s, 99, "org.freedesktop.DBus.Error.UnknownMethod", "never asked");
        stream_write(&s, dir, "route-to-self");

        /* OpenFile: to itself (@default → a), the agent sends the edited file back. */
        stream_open(&s);
        send_call(&s, "Hello", "s", "0.1.0");
        send_bytes_call(&s, "OpenFile", "notes.txt", "some text\n", 10, "a");
        send_return_file(&s, 2, 1, "edited");
        send_bytes_call(&s, "OpenFile", "../../etc/passwd", "x", 1, "b");
        send_bytes_call(&s, "OpenFile", "doc.pdf", "%PDF-1.4", 8, "@dispvm:dvm");
        send_bytes_call(&s, "OpenFile", "", "", 0, "@default");
        stream_write(&s, dir, "open-file");

        /* Launch. */
        stream_open(&s);
        send_call(&s, "Hello", "s", "0.1.0");
        send_call(&s, "Launch", "sass", "org.example.App", 2, "--new-window", "https://example.com", "b");
        send_call(&s, "Launch", "sass", "org.example.Viewer", 0, "@dispvm");
        send_call(&s, "Launch", "sass", "org.example.Other", 1, "x", "@default");
        send_call(&s, "Launch", "sass", "not an id!", 0, "b");
        send_call(&s, "Launch", "sass", "org.example.App", 1, "", "c");
        stream_write(&s, dir, "launch");

        /* PingVM. */
        stream_open(&s);
        send_call(&s, "Hello", "s", "0.1.0");
        send_call(&s, "PingVM", "s", "b");
        send_call(&s, "PingVM", "s", "a");
        send_call(&s, "PingVM", "s", "c");
        send_call(&s, "PingVM", "s", "@dispvm");
        send_call(&s, "PingVM", "s", "");
        send_return(&s, 3, NULL);
        stream_write(&s, dir, "ping-vm");

        /* Admin: what a guest may ask of the federation. */
        stream_open(&s);
        send_call(&s, "Hello", "s", "0.1.0");
        send_call(&s, "ListVMs", NULL);
        send_call(&s, "StartVM", "s", "b");
        send_call(&s, "StopVM", "s", "c");
        send_call(&s, "SwitchPersona", "s", "c");
        send_call(&s, "SwitchPersona", "s", "a");
        send_call(&s, "StartVM", "s", "nosuchvm");
        send_call(&s, "StopVM", "s", "../../x");
        stream_write(&s, dir, "admin");
}

/* What the broker refuses: other interfaces, wrong signatures, a signal, bare and bad handshakes. */
static void write_guest_refused(const char *dir) {
        Stream s;

        /* Not the Guest interface, wrong signatures, a signal: refused, audited, never acted on. */
        stream_open(&s);
        stream_send(&s, call(&s, "org.freedesktop.DBus.Peer", "Ping"));
        stream_send(&s, call(&s, "org.freedesktop.DBus.Introspectable", "Introspect"));
        {
                sd_bus_message *m = call(&s, "org.freedesktop.DBus.Properties", "GetAll");
                sd_bus_message_append(m, "s", GUEST_IFACE);
                stream_send(&s, m);
        }
        stream_send(&s, call(&s, "org.vmfed.Federation1.Manager", "SwitchPersona"));
        {
                sd_bus_message *m = call(&s, NULL, "Hello");
                sd_bus_message_append(m, "u", 7);
                stream_send(&s, m);
        }
        {
                sd_bus_message *m = NULL;
                sd_bus_message_new_signal(s.bus, &m, GUEST_PATH, GUEST_IFACE, "Hello");
                stream_send(&s, m);
        }
        send_call(&s, "OpenURL", "ss", "https://example.com", "b"); /* before any Hello */
        stream_write(&s, dir, "unknown");

        /* Handshakes only. */
        stream_open(&s);
        stream_write(&s, dir, "handshake");
        static const char ext[] = "\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n";
        raw(dir, "auth-external", ext, sizeof ext - 1);
        static const char data_step[] = "\0AUTH ANONYMOUS\r\nDATA\r\nBEGIN\r\n";
        raw(dir, "auth-data", data_step, sizeof data_step - 1);
        static const char junk[] = "\0CANCEL\r\nERROR\r\nAUTH FOO\r\nBEGIN\r\n";
        raw(dir, "auth-junk", junk, sizeof junk - 1);
}

/* What vmfed-netd says on the netvm's port (the broker's SetState is serial 1). */
static void write_netvm_seeds(const char *dir) {
        Stream s;

        /* vmfed-netd applied the state. */
        stream_open(&s);
        send_return(&s, 1, NULL);
        stream_write(&s, dir, "set-state-done");

        /* vmfed-netd refused it. */
        stream_open(&s);
        send_error(&s, 1, "org.vmfed.Federation1.Error.InvalidArgs",
                   "state:7: [Client dvm.1]: Address= 10.137.0.300 is not an IPv4 or IPv6 address");
        stream_write(&s, dir, "set-state-refused");

        /* A netvm that calls the broker, answers what was never asked, twice. */
        stream_open(&s);
        {
                sd_bus_message *m = NULL;
                if (sd_bus_message_new_method_call(s.bus, &m, NULL, "/org/vmfed/NetVM1", "org.vmfed.NetVM1",
                                                   "SetState") < 0 ||
                    sd_bus_message_append(m, "s", "[Uplink]\nInterface=eth1\n") < 0)
                        abort();
                stream_send(&s, m);
        }
        stream_send(&s, call(&s, "org.freedesktop.DBus.Peer", "Ping"));
        send_error(&s, 7, "org.freedesktop.DBus.Error.Failed", "");
        send_return(&s, 1, "s", "unexpected");
        send_return(&s, 1, NULL);
        stream_write(&s, dir, "calls-and-stray-replies");

        stream_open(&s);
        stream_write(&s, dir, "handshake");
}

int main(int argc, char **argv) {
        const char *dir = argc > 1 ? argv[1] : ".";

        write_guest_calls(dir);
        write_stream_calls(dir);
        write_guest_refused(dir);
        if (argc < 3)
                return 0;
        write_netvm_seeds(argv[2]);
        return 0;
}
