/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfed-guest: drive org.vmfed.Guest1 from a script or a desktop shortcut.
 *
 *   vmfed-guest copy [--stream] [--mime TYPE] [FILE]  (default: stdin, text/plain)
 *   vmfed-guest paste [--stream]              (data on stdout; source VM and type on stderr)
 *                                             (over 16 MiB, or --stream: through a clipboard stream)
 *   vmfed-guest open-url URL [TARGET]
 *   vmfed-guest open-file [--stream] FILE [TARGET]  (the file is updated when it was changed;
 *                                             over 16 MiB, or --stream: a vmfed.OpenFile stream)
 *   vmfed-guest launch APP_ID [TARGET] [-- ARG...]
 *   vmfed-guest ping TARGET
 *   vmfed-guest switch VM | start VM | stop VM | list | status
 *   vmfed-guest run TARGET SERVICE[+ARG]      (a stream: stdin/stdout to the service in TARGET)
 *   vmfed-guest copy-to|move-to TARGET FILE...  (into TARGET's ~/Incoming/SOURCE/, docs/file-copy.md)
 *
 * TARGET is a VM name, @default (the default) or @dispvm.  Exit status: 0
 * done, 1 refused or failed (the reason on stderr), 2 usage; run: the
 * service's exit status, RUN_FAILED when there was none (the reason on
 * stderr).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "common/bulk-memory.h"
#include "common/fileio.h"
#include "common/macro.h"
#include "common/stdio-stream.h"
#include "services/clipboard-stream.h"
#include "services/file-copy-wire.h"
#include "services/file-copy.h"
#include "services/file-open-wire.h"
#include "services/file-open.h"

#define GUEST1_BUS_NAME "org.vmfed.Guest1"
#define GUEST1_PATH "/org/vmfed/Guest1"
#define GUEST1_INTERFACE "org.vmfed.Guest1"
#define DEFAULT_SOCKET "/run/vmfed/guest.sock"
#define PAYLOAD_MAX (4ULL << 30) /* a copy: CLIPBOARD_HARD_MAX_SIZE, the largest [Clipboard] MaxSize= */
#define CALL_TIMEOUT_USEC (15ULL * 60 * 1000000)
/* run: no exit status of the service (refused, could not start, aborted), like env(1)'s 125. */
#define RUN_FAILED 125

static const char *arg_socket = NULL;
static const char *arg_mime = "text/plain";
static bool arg_stream = false;
static const char *destination = NULL;

static void help(FILE *f) {
        fputs("Usage: vmfed-guest [--socket PATH] COMMAND ...\n\n"
              "  copy [--stream] [--mime TYPE] [FILE]\n"
              "                                  put FILE (or stdin) on the federation's clipboard\n"
              "  paste [--stream]                print the clipboard (source VM and type on stderr)\n"
              "                                  (over 16 MiB, or --stream: through a stream)\n"
              "  open-url URL [TARGET]           open a URL in another VM\n"
              "  open-file [--stream] FILE [TARGET]\n"
              "                                  open a file in another VM; changes come back\n"
              "                                  (over 16 MiB, or --stream: through a stream)\n"
              "  launch APP_ID [TARGET] [-- ARG...]\n"
              "  ping TARGET                     a routed no-op round trip\n"
              "  switch VM | start VM | stop VM | list | status\n"
              "  run TARGET SERVICE[+ARG]        run a service in TARGET with this stdin and stdout;\n"
              "                                  exits with its status (125: it did not run to its end)\n"
              "  copy-to TARGET FILE...          copy files and directories into TARGET's ~/Incoming/VM/\n"
              "  move-to TARGET FILE...          the same, then remove them here\n\n"
              "TARGET: a VM name, @default or @dispvm.  --socket: the agent's private socket\n"
              "(default: the system bus, else " DEFAULT_SOCKET ").\n", f);
}

static int connect_agent(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (!arg_socket && (getenv("DBUS_SYSTEM_BUS_ADDRESS") || access("/run/dbus/system_bus_socket", F_OK) == 0) &&
            sd_bus_open_system(&bus) >= 0) {
                destination = GUEST1_BUS_NAME;
                *ret = steal_pointer(&bus);
                return 0;
        }
        char address[4200];
        snprintf(address, sizeof address, "unix:path=%s", arg_socket ? arg_socket : DEFAULT_SOCKET);
        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_anonymous(bus, 1);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                fprintf(stderr, "vmfed-guest: cannot reach the agent at %s: %s\n",
                        arg_socket ? arg_socket : DEFAULT_SOCKET, strerror(-r));
                return r;
        }
        *ret = steal_pointer(&bus);
        return 0;
}

static int fail(const char *what, const sd_bus_error *e, int r) {
        if (e && sd_bus_error_is_set(e)) {
                const char *name = e->name;
                const char *shortname = strrchr(name, '.');
                fprintf(stderr, "vmfed-guest: %s: %s (%s)\n", what, e->message ? e->message : "",
                        shortname ? shortname + 1 : name);
        } else
                fprintf(stderr, "vmfed-guest: %s: %s\n", what, strerror(r < 0 ? -r : EIO));
        return 1;
}

static int new_call(sd_bus *bus, const char *member, sd_bus_message **ret) {
        return sd_bus_message_new_method_call(bus, ret, destination, GUEST1_PATH, GUEST1_INTERFACE, member);
}

static int call(sd_bus *bus, sd_bus_message *m, const char *what, sd_bus_message **reply) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &e, reply);
        if (r < 0)
                return fail(what, &e, r);
        return 0;
}

static int stream_open(sd_bus *bus, const char *what, const char *target, const char *service, const char *argument,
                       int *ret_fd, uint64_t *ret_id);
static int stream_wait(sd_bus *bus, const char *what, uint64_t id, char **ret_message);

/* Over CLIPBOARD_WIRE_INLINE_MAX (or with --stream): a vmfed.Clipboard.Copy stream to the broker. */
static int do_copy_stream(sd_bus *bus, int in_fd, uint64_t size, const char *mime) {
        g_autoptr(GError) e = NULL;
        _cleanup_free_ char *message = NULL;
        uint64_t id;
        int fd;

        if (stream_open(bus, "copy", CLIPBOARD_WIRE_HOST, CLIPBOARD_WIRE_COPY_SERVICE, "", &fd, &id) != 0)
                return 1;
        int r = clipboard_stream_send(fd, in_fd, size, mime, &e);
        if (r < 0) /* closing first aborts the stream: the broker drops what it has */
                fd = safe_close(fd);
        int status = stream_wait(bus, "copy", id, &message);
        safe_close(fd);
        if (status != 0 && status != RUN_FAILED) {
                fprintf(stderr, "vmfed-guest: copy: %s\n", message && *message ? message : "refused by the broker");
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "vmfed-guest: copy: %s; nothing was copied\n", e->message);
                return 1;
        }
        return status == 0 ? 0 : 1;
}

static int do_copy(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_close_ int in = -EBADF;
        char mime[SERVICE_ARGS_MIME_MAX + 1];
        uint64_t size = 0;
        int r;

        if (!service_args_mime_normalize(arg_mime, mime)) {
                fprintf(stderr, "vmfed-guest: copy: '%s' is not a MIME type such as text/plain or image/png "
                        "(InvalidArgs)\n", arg_mime);
                return 1;
        }
        r = clipboard_stream_input(argc > 1 ? argv[1] : NULL, PAYLOAD_MAX, &in, &size);
        if (r == -EFBIG) {
                fprintf(stderr, "vmfed-guest: copy: more than %" PRIu64 " bytes; nothing was copied (TooLarge)\n",
                        (uint64_t) PAYLOAD_MAX);
                return 1;
        }
        if (r < 0)
                return fail("copy: cannot read the input", NULL, r);
        if (arg_stream || size > CLIPBOARD_WIRE_INLINE_MAX)
                return do_copy_stream(bus, in, size, mime);
        void *data = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, in, 0) : NULL;
        if (data == MAP_FAILED)
                return fail("copy: cannot read the input", NULL, -errno);
        r = new_call(bus, "Copy", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", mime);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', data ? data : "", size);
        if (data)
                munmap(data, size);
        if (r < 0)
                return fail("copy", NULL, r);
        return call(bus, m, "copy", &reply);
}

/* Larger than one message (or with --stream): a vmfed.Clipboard.Paste stream from the broker. */
static int do_paste_stream(sd_bus *bus) {
        g_autoptr(GError) e = NULL;
        char source[CLIPBOARD_WIRE_SOURCE_MAX + 1], mime[SERVICE_ARGS_MIME_MAX + 1];
        uint64_t id, size = 0;
        int fd;

        if (stream_open(bus, "paste", CLIPBOARD_WIRE_HOST, CLIPBOARD_WIRE_PASTE_SERVICE, "", &fd, &id) != 0)
                return 1;
        (void) shutdown(fd, SHUT_WR); /* nothing to send */
        int r = clipboard_stream_receive(fd, STDOUT_FILENO, source, mime, &size, &e);
        if (r < 0)
                fd = safe_close(fd);
        int status = stream_wait(bus, "paste", id, NULL);
        safe_close(fd);
        if (r < 0) {
                fprintf(stderr, "vmfed-guest: paste: %s\n", e->message);
                return 1;
        }
        if (status != 0)
                return 1;
        fprintf(stderr, "vmfed-guest: pasted %" PRIu64 " bytes of %s from %s\n", size, mime, source);
        return 0;
}

static int do_paste(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *source, *mime;
        const void *data;
        size_t size;
        int r;

        if (arg_stream)
                return do_paste_stream(bus);
        r = new_call(bus, "Paste", &m);
        if (r < 0)
                return fail("paste", NULL, r);
        r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &e, &reply);
        if (r < 0 && sd_bus_error_has_name(&e, "org.vmfed.Federation1.Error.TooLarge"))
                return do_paste_stream(bus); /* checked before the policy: nothing was asked yet */
        if (r < 0)
                return fail("paste", &e, r);
        r = sd_bus_message_read(reply, "ss", &source, &mime);
        if (r >= 0)
                r = sd_bus_message_read_array(reply, 'y', &data, &size);
        if (r < 0)
                return fail("paste: bad reply", NULL, r);
        fprintf(stderr, "vmfed-guest: pasted %zu bytes of %s from %s\n", size, mime, source);
        r = file_copy_write_all(STDOUT_FILENO, data, size);
        if (r < 0)
                return fail("paste: write", NULL, r);
        return 0;
}

static int print_vm_reply(sd_bus_message *reply) {
        const char *vm;
        if (sd_bus_message_read(reply, "s", &vm) < 0)
                return fail("bad reply", NULL, -EBADMSG);
        printf("%s\n", vm);
        return 0;
}

static int do_simple(sd_bus *bus, const char *member, const char *what, const char *types, const char *a1,
                     const char *a2) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r = new_call(bus, member, &m);
        if (r >= 0 && types)
                r = strlen(types) == 2 ? sd_bus_message_append(m, types, a1, a2) : sd_bus_message_append(m, types, a1);
        if (r < 0)
                return fail(what, NULL, r);
        r = call(bus, m, what, &reply);
        if (r != 0)
                return r;
        if (strcmp(member, "OpenURL") == 0 || strcmp(member, "PingVM") == 0)
                return print_vm_reply(reply);
        return 0;
}

/* A file of any size through a vmfed.OpenFile stream (docs/file-open.md). */
static int do_open_file_stream(sd_bus *bus, const char *path, const char *target) {
        g_autoptr(GError) e = NULL;
        bool changed = false;
        uint64_t id;
        int fd;

        if (stream_open(bus, "open-file", target, "vmfed.OpenFile", "", &fd, &id) != 0)
                return 1;
        int r = file_open_send(fd, path, FILE_OPEN_DEFAULT_MAX_BYTES, &changed, &e);
        if (r < 0) /* closing first aborts the stream: the handler in the target stops */
                fd = safe_close(fd);
        int status = stream_wait(bus, "open-file", id, NULL);
        safe_close(fd);
        if (r < 0) {
                fprintf(stderr, "vmfed-guest: open-file: %s\n", e->message);
                return 1;
        }
        printf("%s %s\n", target, changed ? "changed" : "unchanged"); /* what happened to the file, whatever follows */
        if (status != 0) {
                if (status != RUN_FAILED)
                        fprintf(stderr, "vmfed-guest: open-file: the handler in %s exited with status %d after it "
                                "answered\n", target, status);
                return 1;
        }
        return 0;
}

static int do_open_file(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *vm, *target = argc > 2 ? argv[2] : "@default";
        struct stat st;
        int changed, r;

        fd = open(argv[1], O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return fail("open-file: cannot open the file read-write", NULL, -errno);
        if (fstat(fd, &st) < 0)
                return fail("open-file", NULL, -errno);
        if (arg_stream || (S_ISREG(st.st_mode) && (uint64_t) st.st_size > FILE_OPEN_INLINE_MAX)) {
                fd = safe_close(fd);
                return do_open_file_stream(bus, argv[1], target);
        }
        const char *base = strrchr(argv[1], '/');
        base = base ? base + 1 : argv[1];
        r = new_call(bus, "OpenFile", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "hss", fd, base, target);
        if (r < 0)
                return fail("open-file", NULL, r);
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &e, &reply);
        if (r < 0 && sd_bus_error_has_name(&e, "org.vmfed.Federation1.Error.TooLarge")) {
                /* Over the broker's [Clipboard] MaxSize= (checked before the policy: nothing was asked). */
                fd = safe_close(fd);
                return do_open_file_stream(bus, argv[1], target);
        }
        if (r < 0)
                return fail("open-file", &e, r);
        if (sd_bus_message_read(reply, "sb", &vm, &changed) < 0)
                return fail("open-file: bad reply", NULL, -EBADMSG);
        printf("%s %s\n", vm, changed ? "changed" : "unchanged");
        return 0;
}

static int do_launch(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *target = "@default";
        int i = 2, r;

        if (i < argc && strcmp(argv[i], "--") != 0)
                target = argv[i++];
        if (i < argc && strcmp(argv[i], "--") == 0)
                i++;
        r = new_call(bus, "Launch", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", argv[1]);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, argv + i);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", target);
        if (r < 0)
                return fail("launch", NULL, r);
        r = call(bus, m, "launch", &reply);
        if (r != 0)
                return r;
        return print_vm_reply(reply);
}

static int do_list(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *name, *state;
        int r = new_call(bus, "ListVMs", &m);
        if (r < 0)
                return fail("list", NULL, r);
        r = call(bus, m, "list", &reply);
        if (r != 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ss)", &name, &state)) > 0)
                printf("%s %s\n", name, state);
        return r < 0 ? fail("list: bad reply", NULL, r) : 0;
}

static int do_status(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *vm;
        int connected;
        int r = new_call(bus, "Status", &m);
        if (r < 0)
                return fail("status", NULL, r);
        r = call(bus, m, "status", &reply);
        if (r != 0)
                return r;
        if (sd_bus_message_read(reply, "sb", &vm, &connected) < 0)
                return fail("status: bad reply", NULL, -EBADMSG);
        printf("vm %s\nconnected %s\n", *vm ? vm : "-", connected ? "yes" : "no");
        return connected ? 0 : 1;
}

/* ---- run: a stream (docs/streams.md) ------------------------------------------------------- */

/* The service's exit status (0..255), or RUN_FAILED with the reason on stderr. */
static int stream_wait(sd_bus *bus, const char *what, uint64_t id, char **ret_message) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *message;
        int status;
        int r = new_call(bus, "WaitStream", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "t", id);
        if (r < 0)
                return fail(what, NULL, r), RUN_FAILED;
        if (call(bus, m, what, &reply) != 0)
                return RUN_FAILED;
        if (sd_bus_message_read(reply, "is", &status, &message) < 0)
                return fail(what, NULL, -EBADMSG), RUN_FAILED;
        if (ret_message)
                *ret_message = strdup(message);
        if (status < 0) {
                fprintf(stderr, "vmfed-guest: %s: the stream failed: %s\n", what, *message ? message : "no reason given");
                return RUN_FAILED;
        }
        return status > 255 ? 255 : status;
}

/* Guest1.OpenStream: *ret_fd our own (close-on-exec) end, *ret_id for WaitStream; 0 or 1 (reason printed). */
static int stream_open(sd_bus *bus, const char *what, const char *target, const char *service, const char *argument,
                       int *ret_fd, uint64_t *ret_id) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int fd;
        int r = new_call(bus, "OpenStream", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "sssa{sv}", target, service, argument, 0);
        if (r < 0)
                return fail(what, NULL, r);
        if (call(bus, m, what, &reply) != 0)
                return 1;
        if (sd_bus_message_read(reply, "ht", &fd, ret_id) < 0)
                return fail(what, NULL, -EBADMSG);
        *ret_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (*ret_fd < 0)
                return fail(what, NULL, -errno);
        return 0;
}

static int do_run(sd_bus *bus, const char *target, const char *what) {
        _cleanup_free_ char *service = strdup(what);
        uint64_t id;
        int fd, r;

        if (!service)
                return fail("run", NULL, -ENOMEM), RUN_FAILED;
        char *plus = strchr(service, '+');
        if (plus)
                *plus++ = 0;
        if (stream_open(bus, "run", target, service, plus ? plus : "", &fd, &id) != 0)
                return RUN_FAILED;
        r = stdio_stream_copy(fd);
        close(fd);
        if (r < 0)
                return fail("run: writing the output", NULL, r), RUN_FAILED;
        return stream_wait(bus, "run", id, NULL);
}

/* ---- copy-to, move-to: vmfed.FileCopy / vmfed.FileMove (docs/file-copy.md) ------------------- */

static void format_size(char buf[32], uint64_t n) {
        if (n < 1024)
                snprintf(buf, 32, "%" PRIu64 " bytes", n);
        else if (n < (1u << 20))
                snprintf(buf, 32, "%.1f KiB", n / 1024.0);
        else if (n < (1u << 30))
                snprintf(buf, 32, "%.1f MiB", n / 1048576.0);
        else
                snprintf(buf, 32, "%.2f GiB", n / 1073741824.0);
}

static int do_copy_to(sd_bus *bus, bool move, const char *target, char **paths) {
        const char *what = move ? "move-to" : "copy-to";
        g_autoptr(GError) e = NULL;
        FileCopyStats st = {};
        uint64_t id;
        int fd;

        /* Refuse what cannot be sent before a stream (and a policy prompt) exists. */
        for (char **p = paths; *p; p++)
                if (access(*p, R_OK) < 0) {
                        fprintf(stderr, "vmfed-guest: %s: %s: %s\n", what, *p, strerror(errno));
                        return 1;
                }
        if (stream_open(bus, what, target, move ? "vmfed.FileMove" : "vmfed.FileCopy", "", &fd, &id) != 0)
                return 1;
        int r = file_copy_send(fd, paths, &st, &e);
        /* Sent and answered: the stream ends with the receiver, so keep our end until its status
         * is in (closing first would abort it).  A send that failed closes first: that abort is
         * what makes the receiver discard what it has. */
        if (r < 0)
                fd = safe_close(fd);
        int status = stream_wait(bus, what, id, NULL);
        safe_close(fd);
        if (r < 0) {
                /* The receiver's own reason (-EREMOTEIO) or ours; nothing half-written stays there. */
                fprintf(stderr, "vmfed-guest: %s: %s\n", what, e->message);
                return 1;
        }
        if (status != 0) {
                if (status != RUN_FAILED)
                        fprintf(stderr, "vmfed-guest: %s: the receiver in %s exited with status %d\n", what, target,
                                status);
                return 1;
        }
        char size[32];
        format_size(size, st.bytes);
        printf("%s %" PRIu64 " file%s, %" PRIu64 " director%s, %" PRIu64 " symlink%s (%s) to %s: ~/Incoming/ there\n",
               move ? "Moved" : "Copied", st.files, st.files == 1 ? "" : "s", st.dirs, st.dirs == 1 ? "y" : "ies",
               st.symlinks, st.symlinks == 1 ? "" : "s", size, target);
        if (move && file_copy_remove_sources(paths, &st, &e) < 0) {
                fprintf(stderr, "vmfed-guest: move-to: everything arrived in %s, but not all of it was removed here: %s\n",
                        target, e->message);
                return 1;
        }
        return 0;
}

/* Options after the command (copy --mime TYPE, open-file --stream): taken out of argv. */
static void command_options(int *argc, char ***argv) {
        for (;;) {
                char **v = *argv;
                const char *cmd = v[0];
                if ((strcmp(cmd, "open-file") == 0 || strcmp(cmd, "copy") == 0 || strcmp(cmd, "paste") == 0) &&
                    *argc >= 2 && strcmp(v[1], "--stream") == 0) {
                        arg_stream = true;
                        v[1] = v[0];
                        *argv += 1;
                        *argc -= 1;
                } else if (strcmp(cmd, "copy") == 0 && *argc >= 3 && strcmp(v[1], "--mime") == 0) {
                        arg_mime = v[2];
                        v[2] = v[0];
                        *argv += 2;
                        *argc -= 2;
                } else
                        return;
        }
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 'S' },
                { "mime", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int c;

        (void) bulk_memory_tune(); /* a paste or a copy of up to 16 MiB in one message (common/bulk-memory.h) */
        /* Writes to a stream (sendfile(2) has no MSG_NOSIGNAL) or to stdout whose reader is gone: EPIPE,
         * and the reason printed, instead of a silent death. */
        (void) signal(SIGPIPE, SIG_IGN);

        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 'S':
                        arg_socket = optarg;
                        break;
                case 'm':
                        arg_mime = optarg;
                        break;
                case 'h':
                        help(stdout);
                        return 0;
                default:
                        help(stderr);
                        return 2;
                }
        argc -= optind;
        argv += optind;
        if (argc < 1) {
                help(stderr);
                return 2;
        }
        const char *cmd = argv[0];
        command_options(&argc, &argv);

#define NEED(n)                                                                  \
        do {                                                                     \
                if (argc < (n)) {                                                \
                        fprintf(stderr, "vmfed-guest: %s: missing argument\n", cmd); \
                        return 2;                                                \
                }                                                                \
        } while (0)

        if (connect_agent(&bus) < 0)
                return strcmp(cmd, "run") == 0 ? RUN_FAILED : 1;
        if (strcmp(cmd, "copy") == 0)
                return do_copy(bus, argc, argv);
        if (strcmp(cmd, "paste") == 0)
                return do_paste(bus);
        if (strcmp(cmd, "open-url") == 0) {
                NEED(2);
                return do_simple(bus, "OpenURL", "open-url", "ss", argv[1], argc > 2 ? argv[2] : "@default");
        }
        if (strcmp(cmd, "open-file") == 0) {
                NEED(2);
                return do_open_file(bus, argc, argv);
        }
        if (strcmp(cmd, "launch") == 0) {
                NEED(2);
                return do_launch(bus, argc, argv);
        }
        if (strcmp(cmd, "ping") == 0) {
                NEED(2);
                return do_simple(bus, "PingVM", "ping", "s", argv[1], NULL);
        }
        if (strcmp(cmd, "switch") == 0) {
                NEED(2);
                return do_simple(bus, "SwitchPersona", "switch", "s", argv[1], NULL);
        }
        if (strcmp(cmd, "start") == 0) {
                NEED(2);
                return do_simple(bus, "StartVM", "start", "s", argv[1], NULL);
        }
        if (strcmp(cmd, "stop") == 0) {
                NEED(2);
                return do_simple(bus, "StopVM", "stop", "s", argv[1], NULL);
        }
        if (strcmp(cmd, "run") == 0) {
                NEED(3);
                return do_run(bus, argv[1], argv[2]);
        }
        if (strcmp(cmd, "copy-to") == 0 || strcmp(cmd, "move-to") == 0) {
                NEED(3);
                return do_copy_to(bus, cmd[0] == 'm', argv[1], argv + 2);
        }
        if (strcmp(cmd, "list") == 0)
                return do_list(bus);
        if (strcmp(cmd, "status") == 0)
                return do_status(bus);
        fprintf(stderr, "vmfed-guest: unknown command '%s'\n", cmd);
        help(stderr);
        return 2;
}
