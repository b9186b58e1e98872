/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the bytes a calling VM puts on a vmfed.OpenFile stream,
 * into file_open_serve() (64 KiB limit: what comes back fits in the socket
 * buffer nobody reads yet; the viewer `true`, or for inputs of
 * odd length one that appends a byte) in a fresh directory, and the
 * answer it writes parsed as a caller would.  Beyond "no crash, no
 * sanitizer report": the handler's directory is gone afterwards, nothing
 * appears beside it, and the answer is a line the caller understands.
 * The input's first line is also parsed as a (hostile) answer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "services/file-open-wire.h"
#include "services/file-open.h"
#include "tests/services/file-copy-fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *parent;

static void parent_remove(void) {
        tree_rm(parent);
}

static void answer_check(const char *line, size_t len, bool ours) {
        g_autofree char *message = NULL;
        uint64_t n;
        bool changed;
        int r = file_open_answer_parse(line, len, &changed, &n, &message);
        if (ours && r == -EBADMSG)
                abort(); /* the handler wrote something its caller cannot read */
        if (r == -EREMOTEIO && (!message || strchr(message, '\n') || strchr(message, '\x1b')))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *viewer_true[] = { (char *) "true", NULL };
        char *viewer_edit[] = { (char *) "sh", (char *) "-c", (char *) "printf x >> \"$0\"", NULL };
        g_autoptr(GError) e = NULL;
        int in[2], out[2];

        if (size > 128 * 1024)
                return 0; /* more than a socket buffer holds: the writes would block */
        if (!parent) {
                parent = tree_tmpdir();
                atexit(parent_remove);
        }
        const char *nl = memchr(data, '\n', size);
        answer_check((const char *) data, nl ? (size_t) (nl - (const char *) data) : size, false);

        g_autofree char *base = g_build_filename(parent, "open", NULL);
        if (mkdir(base, 0700) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out) < 0)
                abort();
        int buf = 256 * 1024;
        (void) setsockopt(in[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
        (void) setsockopt(out[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
        if (size > 0 && send(in[0], data, size, MSG_NOSIGNAL) != (ssize_t) size)
                abort();
        (void) shutdown(in[0], SHUT_WR);
        (void) file_open_serve(in[1], out[1], base, 64 * 1024, size % 2 ? viewer_edit : viewer_true, NULL, &e);
        close(out[1]);

        char line[FILE_OPEN_LINE_MAX + 1];
        size_t len;
        if (file_open_read_line(out[0], line, &len) == 0)
                answer_check(line, len, true);
        else
                abort(); /* every input is answered with one line */
        close(in[0]);
        close(in[1]);
        close(out[0]);

        g_autofree char *outside = tree_list(parent), *inside = tree_list_all(base);
        if (strcmp(outside, "open") != 0 || *inside)
                abort();
        tree_rm(base);
        return 0;
}
