/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfed-open-file-receive: the handler of vmfed.OpenFile streams
 * (docs/file-open.md): a file from $VMFED_SOURCE, opened in the viewer
 * here, sent back when the viewer changed it.  The stream is on
 * stdin/stdout (docs/streams.md).
 *
 *   vmfed-open-file-receive [--viewer COMMAND] [--dir DIR] [--max-bytes SIZE]
 *
 * Exit status: 0 answered (changed or not), 1 refused or failed (the
 * reason on stderr and, for the caller, in the answer), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "common/log.h"
#include "policy/name.h"
#include "services/file-copy-wire.h"
#include "services/file-open-wire.h"
#include "services/file-open.h"

static void help(FILE *f) {
        fprintf(f,
                "Usage: vmfed-open-file-receive [--viewer COMMAND] [--dir DIR] [--max-bytes SIZE]\n"
                "Receive a file on stdin (a vmfed.OpenFile stream), run the viewer on it, send it\n"
                "back on stdout when it changed.\n"
                "  --viewer COMMAND  the viewer, words as a shell splits them, the file appended\n"
                "                    (default: xdg-open); it must not return before the user is done\n"
                "  --dir DIR         where the file is kept while it is open (default:\n"
                "                    $XDG_CACHE_HOME/vmfed/open, i.e. ~/.cache/vmfed/open)\n"
                "  --max-bytes SIZE  the largest file taken, N[K|M|G|T] (default:\n"
                "                    $VMFED_OPEN_FILE_MAX_BYTES, or 4G)\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "viewer", required_argument, NULL, 'v' },
                { "dir", required_argument, NULL, 'd' },
                { "max-bytes", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *viewer = "xdg-open", *size = getenv("VMFED_OPEN_FILE_MAX_BYTES");
        g_autofree char *dir = NULL;
        g_auto(GStrv) viewer_argv = NULL;
        g_autoptr(GError) e = NULL;
        uint64_t max_bytes = FILE_OPEN_DEFAULT_MAX_BYTES;
        bool changed = false;
        int c;

        log_set_ident("vmfed-open-file-receive");
        (void) signal(SIGPIPE, SIG_IGN); /* a caller gone is a write error */
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'v': viewer = optarg; break;
                case 'd': g_free(dir); dir = g_strdup(optarg); break;
                case 'm': size = optarg; break;
                case 'h': help(stdout); return 0;
                default: help(stderr); return 2;
                }
        if (optind < argc) {
                help(stderr);
                return 2;
        }
        if (size && file_copy_parse_size(size, &max_bytes) < 0) {
                log_error("Invalid size limit \"%s\" (N, NK, NM, NG or NT).", size);
                return 2;
        }
        if (!g_shell_parse_argv(viewer, NULL, &viewer_argv, &e)) {
                log_error("Invalid viewer command \"%s\": %s", viewer, e->message);
                return 2;
        }
        if (!dir)
                dir = g_build_filename(g_get_user_cache_dir(), "vmfed", "open", NULL);

        const char *untrusted_source = getenv("VMFED_SOURCE");
        const char *source = untrusted_source && policy_vm_name_is_valid(untrusted_source, strlen(untrusted_source))
                                     ? untrusted_source
                                     : "(unknown)"; /* only logged */
        if (file_open_serve(STDIN_FILENO, STDOUT_FILENO, dir, max_bytes, viewer_argv, &changed, &e) < 0) {
                log_error("Opening a file from %s failed: %s", source, e->message);
                return 1;
        }
        log_info("A file from %s was opened; it goes back %s.", source, changed ? "changed" : "unchanged");
        return 0;
}
