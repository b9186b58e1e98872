/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the bytes a sending VM puts on a vmfed.FileCopy stream,
 * into file_copy_receive() (1 MiB limit) in a fresh directory.  Beyond
 * "no crash, no sanitizer report": nothing may appear beside the
 * destination, and no partial file may be left in it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "services/file-copy-wire.h"
#include "tests/services/file-copy-fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *parent;

static void parent_remove(void) {
        tree_rm(parent);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autoptr(GError) e = NULL;
        int sv[2];

        if (size > 128 * 1024)
                return 0; /* more than a socket buffer holds: the writes would block */
        if (!parent) {
                parent = tree_tmpdir();
                atexit(parent_remove);
        }
        g_autofree char *dest = g_build_filename(parent, "dest", NULL);
        if (mkdir(dest, 0700) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        int sndbuf = 256 * 1024;
        (void) setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        if (size > 0 && send(sv[0], data, size, MSG_NOSIGNAL) != (ssize_t) size)
                abort();
        (void) shutdown(sv[0], SHUT_WR);
        (void) file_copy_receive(sv[1], sv[1], dest, 1 << 20, NULL, &e);
        close(sv[0]);
        close(sv[1]);

        g_autofree char *outside = tree_list(parent), *inside = tree_list_all(dest);
        if (strcmp(outside, "dest") != 0 || strstr(inside, FILE_COPY_PARTIAL_PREFIX))
                abort();
        tree_rm(dest);
        return 0;
}
