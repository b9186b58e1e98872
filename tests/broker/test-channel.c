/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Guest channels of a running vmfedd (started by test_channel.py):
 *   - the caller's identity is the channel's VM, whatever the message says
 *     (sender field, destination, object path, arguments);
 *   - only the Guest interface is served on a channel;
 *   - one connection per channel: a new one replaces the old;
 *   - garbage, a broken handshake and a peer that floods without reading
 *     its replies are disconnected while other channels keep being served.
 *
 * Usage: test-channel STATE_DIR
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "common/macro.h"
#include <systemd/sd-bus.h>

#define ROOT "/org/vmfed/Federation1"
#define GUEST "org.vmfed.Federation1.Guest"

static const char *state_dir;

static char *sock_path(const char *vm) {
        return g_strdup_printf("%s/channels/%s.sock", state_dir, vm);
}

static sd_bus *guest_connect(const char *vm) {
        g_autofree char *path = sock_path(vm);
        g_autofree char *address = g_strdup_printf("unix:path=%s", path);
        sd_bus *bus = NULL;

        /* The listen backlog may be full right after a burst of connections: retry like an agent. */
        for (int attempt = 0;; attempt++) {
                g_assert_cmpint(sd_bus_new(&bus), >=, 0);
                g_assert_cmpint(sd_bus_set_address(bus, address), >=, 0);
                g_assert_cmpint(sd_bus_set_anonymous(bus, 1), >=, 0);
                int r = sd_bus_start(bus);
                if (r >= 0)
                        return bus;
                g_assert_cmpint(r, ==, -EAGAIN);
                g_assert_cmpint(attempt, <, 500);
                bus = sd_bus_unref(bus);
                usleep(10000);
        }
}

/* Call Hello with whatever the caller fakes; returns the VM name in the reply (g_free) or NULL. */
static char *hello_as(sd_bus *bus, const char *fake_sender, const char *destination, const char *path,
                      const char *arg, int *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *vm, *version;
        int r;

        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, destination, path, GUEST, "Hello"), >=, 0);
        if (fake_sender)
                g_assert_cmpint(sd_bus_message_set_sender(m, fake_sender), >=, 0);
        g_assert_cmpint(sd_bus_message_append(m, "s", arg), >=, 0);
        r = sd_bus_call(bus, m, 5 * 1000000ULL, &error, &reply);
        if (ret)
                *ret = r;
        if (r < 0)
                return NULL;
        g_assert_cmpint(sd_bus_message_read(reply, "ss", &vm, &version), >=, 0);
        return g_strdup(vm);
}

static char *ping(sd_bus *bus, int *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *vm;
        int r = sd_bus_call_method(bus, NULL, ROOT, GUEST, "Ping", &error, &reply, NULL);
        if (ret)
                *ret = r;
        if (r < 0)
                return NULL;
        g_assert_cmpint(sd_bus_message_read(reply, "s", &vm), >=, 0);
        return g_strdup(vm);
}

static void assert_ping(const char *vm) {
        sd_bus *bus = guest_connect(vm);
        g_autofree char *got = ping(bus, NULL);
        g_assert_cmpstr(got, ==, vm);
        sd_bus_flush_close_unref(bus);
}

static void test_identity(void) {
        sd_bus *a = guest_connect("rivendale");
        const char *fake_senders[] = { NULL, "org.vmfed.vm.gondor", ":1.1", "org.vmfed.Federation1", "org.freedesktop.DBus" };
        const char *destinations[] = { NULL, "org.vmfed.vm.gondor", "org.vmfed.Federation1" };
        const char *args[] = { "gondor", "rivendale", "", "@host", "gondor\n" };

        for (size_t s = 0; s < G_N_ELEMENTS(fake_senders); s++)
                for (size_t d = 0; d < G_N_ELEMENTS(destinations); d++)
                        for (size_t i = 0; i < G_N_ELEMENTS(args); i++) {
                                int r;
                                g_autofree char *vm = hello_as(a, fake_senders[s], destinations[d], ROOT,
                                                               args[i], &r);
                                g_assert_cmpint(r, >=, 0);
                                g_assert_cmpstr(vm, ==, "rivendale");
                        }

        /* Other object paths do not make it another VM: there is nothing there. */
        int r;
        g_autofree char *vm = hello_as(a, "org.vmfed.vm.gondor", NULL, ROOT "/vm/gondor", "gondor", &r);
        g_assert_null(vm);
        g_assert_cmpint(r, <, 0);

        /* The admin API is not reachable from a channel. */
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        r = sd_bus_call_method(a, NULL, ROOT, "org.vmfed.Federation1.Policy", "ReplaceFile", &error, NULL, "sss",
                               "99-evil.policy", "vmfed.OpenURL * @anyvm @anyvm allow\n", "");
        g_assert_cmpint(r, <, 0);
        g_assert_true(sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_METHOD) ||
                      sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_INTERFACE) ||
                      sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_OBJECT));
        sd_bus_error_free(&error);
        r = sd_bus_call_method(a, NULL, ROOT, "org.vmfed.Federation1.Manager", "Reload", &error, NULL, NULL);
        g_assert_cmpint(r, <, 0);

        /* The same connection still works and is still rivendale. */
        g_autofree char *again = ping(a, NULL);
        g_assert_cmpstr(again, ==, "rivendale");

        /* Gondor's channel says gondor. */
        sd_bus *b = guest_connect("gondor");
        g_autofree char *vb = hello_as(b, "org.vmfed.vm.rivendale", NULL, ROOT, "rivendale", NULL);
        g_assert_cmpstr(vb, ==, "gondor");

        sd_bus_flush_close_unref(a);
        sd_bus_flush_close_unref(b);
}

static void test_replace_connection(void) {
        sd_bus *old = guest_connect("rivendale");
        g_autofree char *v1 = ping(old, NULL);
        g_assert_cmpstr(v1, ==, "rivendale");

        sd_bus *new = guest_connect("rivendale");
        g_autofree char *v2 = ping(new, NULL);
        g_assert_cmpstr(v2, ==, "rivendale");

        /* The old one was dropped. */
        int r;
        g_autofree char *v3 = ping(old, &r);
        g_assert_null(v3);
        g_assert_cmpint(r, <, 0);

        sd_bus_flush_close_unref(old);
        sd_bus_flush_close_unref(new);
}

static int raw_connect(const char *vm) {
        g_autofree char *path = sock_path(vm);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_assert_cmpint(fd, >=, 0);
        strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
        for (int attempt = 0; connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0; attempt++) {
                g_assert_cmpint(errno, ==, EAGAIN);
                g_assert_cmpint(attempt, <, 500);
                usleep(10000);
        }
        return fd;
}

/* The broker must close fd within a few seconds (read returns 0 or an error). */
static void assert_closed_by_broker(int fd) {
        char buf[4096];
        for (int i = 0; i < 1000; i++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 5000) <= 0)
                        g_error("broker did not close a misbehaving connection");
                ssize_t k = read(fd, buf, sizeof buf);
                if (k <= 0)
                        return;
        }
        g_error("broker keeps talking to a misbehaving connection");
}

static void write_some(int fd, const void *p, size_t n) {
        /* May fail once the broker hung up: fine, but without SIGPIPE killing us. */
        (void) !send(fd, p, n, MSG_NOSIGNAL);
}

static void test_garbage(void) {
        /* Garbage instead of the SASL handshake. */
        int fd = raw_connect("rivendale");
        char junk[65536];
        for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (char) (i * 7919 + 13);
        write_some(fd, "\0", 1);
        write_some(fd, junk, sizeof junk);
        assert_closed_by_broker(fd);
        close(fd);
        assert_ping("gondor");
        assert_ping("rivendale");

        /* A valid handshake, then a message header that lies about its size. */
        fd = raw_connect("rivendale");
        static const char auth[] = "\0AUTH ANONYMOUS\r\n";
        write_some(fd, auth, sizeof auth - 1);
        char line[256] = {};
        g_assert_cmpint(read(fd, line, sizeof line - 1), >, 0);
        if (g_str_has_prefix(line, "DATA")) {
                /* sd-bus asks for the (empty) ANONYMOUS trace. */
                write_some(fd, "DATA\r\n", 6);
                memset(line, 0, sizeof line);
                g_assert_cmpint(read(fd, line, sizeof line - 1), >, 0);
        }
        if (!g_str_has_prefix(line, "OK "))
                g_error("handshake answer: %s", line);
        write_some(fd, "BEGIN\r\n", 7);
        static const unsigned char bad[] = {
                'l', 1, 0, 1, 0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f,
        };
        write_some(fd, bad, sizeof bad);
        write_some(fd, junk, 4096);
        assert_closed_by_broker(fd);
        close(fd);
        assert_ping("gondor");
        assert_ping("rivendale");

        /* A peer that connects and hangs up at once. */
        for (int i = 0; i < 50; i++)
                close(raw_connect("rivendale"));
        assert_ping("rivendale");
}

/* Append a D-Bus string-ish header field (code, signature char, value) at 8-alignment. */
static void put_field(GByteArray *a, uint8_t code, char sig, const char *value) {
        static const uint8_t zero[8] = {};
        uint32_t len = (uint32_t) strlen(value);
        g_byte_array_append(a, zero, (8 - a->len % 8) % 8);
        uint8_t head[4] = { code, 1, (uint8_t) sig, 0 };
        g_byte_array_append(a, head, 4);
        g_byte_array_append(a, (const uint8_t *) &len, 4);
        g_byte_array_append(a, (const uint8_t *) value, len + 1);
}

/* A little-endian method call ROOT GUEST.Ping with no body. */
static GByteArray *ping_message(void) {
        GByteArray *a = g_byte_array_new();
        static const uint8_t fixed[16] = { 'l', 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
        static const uint8_t zero[8] = {};
        g_byte_array_append(a, fixed, 16);
        put_field(a, 1, 'o', ROOT);
        put_field(a, 2, 's', GUEST);
        put_field(a, 3, 's', "Ping");
        uint32_t fields_len = a->len - 16;
        memcpy(a->data + 12, &fields_len, 4);
        g_byte_array_append(a, zero, (8 - a->len % 8) % 8);
        return a;
}

static void test_flood(void) {
        /* A peer that authenticates, then sends calls and never reads a reply. */
        int fd = raw_connect("rivendale");
        static const char auth[] = "\0AUTH ANONYMOUS\r\n";
        char line[256] = {};
        write_some(fd, auth, sizeof auth - 1);
        g_assert_cmpint(read(fd, line, sizeof line - 1), >, 0);
        if (g_str_has_prefix(line, "DATA")) {
                write_some(fd, "DATA\r\n", 6);
                memset(line, 0, sizeof line);
                g_assert_cmpint(read(fd, line, sizeof line - 1), >, 0);
        }
        g_assert_true(g_str_has_prefix(line, "OK "));
        write_some(fd, "BEGIN\r\n", 7);

        g_autoptr(GByteArray) msg = ping_message();
        GByteArray *batch = g_byte_array_new();
        for (uint32_t serial = 1; serial <= 200000; serial++) {
                memcpy(msg->data + 8, &serial, 4);
                g_byte_array_append(batch, msg->data, msg->len);
        }
        /* Blocking writes: they stall when the broker stops reading, or fail when it hangs up. */
        struct timeval tv = { .tv_sec = 10 };
        g_assert_cmpint(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), ==, 0);
        size_t off = 0;
        bool hung_up = false;
        while (off < batch->len) {
                ssize_t k = send(fd, batch->data + off, batch->len - off, MSG_NOSIGNAL);
                if (k < 0) {
                        g_assert_true(errno == EPIPE || errno == ECONNRESET || errno == EAGAIN);
                        hung_up = errno != EAGAIN;
                        break;
                }
                off += (size_t) k;
        }
        g_test_message("flood: wrote %zu of %u bytes before the broker %s", off, batch->len,
                       hung_up ? "hung up" : "stopped reading");
        g_byte_array_unref(batch);
        /* Others are served meanwhile / afterwards. */
        assert_ping("gondor");
        assert_closed_by_broker(fd);
        close(fd);
        assert_ping("rivendale");
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: test-channel STATE_DIR | --introspect STATE_DIR VM\n");
                return 2;
        }
        if (strcmp(argv[1], "--introspect") == 0 && argc == 4) {
                /* Print the introspection XML a guest sees on VM argv[3]'s channel. */
                state_dir = argv[2];
                sd_bus *bus = guest_connect(argv[3]);
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *xml;
                g_assert_cmpint(sd_bus_call_method(bus, NULL, ROOT, "org.freedesktop.DBus.Introspectable",
                                                   "Introspect", NULL, &reply, NULL), >=, 0);
                g_assert_cmpint(sd_bus_message_read(reply, "s", &xml), >=, 0);
                fputs(xml, stdout);
                sd_bus_flush_close_unref(bus);
                return 0;
        }
        g_test_init(&argc, &argv, NULL);
        state_dir = argv[1];
        g_test_add_func("/channel/identity", test_identity);
        g_test_add_func("/channel/replace", test_replace_connection);
        g_test_add_func("/channel/garbage", test_garbage);
        g_test_add_func("/channel/flood", test_flood);
        return g_test_run();
}
