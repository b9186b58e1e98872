/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmfed-file-copy-receive: the handler of vmfed.FileCopy and
 * vmfed.FileMove (docs/file-copy.md).  The stream is on stdin/stdout
 * (docs/streams.md); the files go to ~/Incoming/$VMFED_SOURCE/.
 *
 *   vmfed-file-copy-receive [--dest-dir DIR] [--max-bytes SIZE]
 *
 * Exit status: 0 everything received, 1 refused or failed (the reason on
 * stderr and, for the sender, in the status line), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "common/log.h"
#include "common/macro.h"
#include "policy/name.h"
#include "services/file-copy-wire.h"
#include "services/file-copy.h"

static const char *arg_dest_dir = NULL;
static const char *arg_max_bytes = NULL;

static void help(FILE *f) {
        fprintf(f,
                "Usage: vmfed-file-copy-receive [--dest-dir DIR] [--max-bytes SIZE]\n"
                "Receive a vmfed file copy on stdin (status line on stdout) into\n"
                "DIR/$VMFED_SOURCE (default ~/Incoming/$VMFED_SOURCE).\n"
                "  --dest-dir DIR    instead of ~/Incoming\n"
                "  --max-bytes SIZE  limit of the file data, N[K|M|G|T] (default: $VMFED_FILE_COPY_MAX_BYTES, or 4G)\n");
}

static int parse_args(int argc, char **argv, uint64_t *max_bytes) {
        static const struct option options[] = {
                { "dest-dir", required_argument, NULL, 'd' },
                { "max-bytes", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'd': arg_dest_dir = optarg; break;
                case 'm': arg_max_bytes = optarg; break;
                case 'h': help(stdout); exit(0);
                default: help(stderr); return -EINVAL;
                }
        }
        if (optind < argc) {
                help(stderr);
                return -EINVAL;
        }
        const char *size = arg_max_bytes ? arg_max_bytes : getenv("VMFED_FILE_COPY_MAX_BYTES");
        *max_bytes = FILE_COPY_DEFAULT_MAX_BYTES;
        if (size && file_copy_parse_size(size, max_bytes) < 0)
                return log_error_errno(-EINVAL, "Invalid size limit \"%s\" (N, NK, NM, NG or NT).", size);
        return 0;
}

/* Refuse before the stream is read: on stderr, and to the sender in the status line. */
static int refuse(int err, const char *format, ...) G_GNUC_PRINTF(2, 3);
static int refuse(int err, const char *format, ...) {
        char line[FILE_COPY_STATUS_MAX + 1];
        va_list ap;

        va_start(ap, format);
        g_autofree char *message = g_strdup_vprintf(format, ap);
        va_end(ap);
        log_error("%s", message);
        file_copy_status_format(line, err, message, 0, 0);
        (void) file_copy_write_all(STDOUT_FILENO, line, strlen(line));
        return 1;
}

/* DIR/SOURCE, created 0700, and not a symlink: the receiver's directory for this VM. */
static int make_dest(const char *source, char **ret) {
        g_autofree char *base = arg_dest_dir ? g_strdup(arg_dest_dir) : g_build_filename(g_get_home_dir(), "Incoming", NULL);

        if (mkdir(base, 0700) < 0 && errno != EEXIST)
                return refuse(-errno, "Cannot create %s: %s", base, g_strerror(errno));
        _cleanup_close_ int base_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (base_fd < 0)
                return refuse(-errno, "Cannot open %s: %s", base, g_strerror(errno));
        if (mkdirat(base_fd, source, 0700) < 0 && errno != EEXIST)
                return refuse(-errno, "Cannot create %s/%s: %s", base, source, g_strerror(errno));
        _cleanup_close_ int fd = openat(base_fd, source, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return refuse(-errno, "Cannot open %s/%s (it must be a directory, not a symlink): %s", base, source,
                              g_strerror(errno));
        *ret = g_build_filename(base, source, NULL);
        return 0;
}

int main(int argc, char **argv) {
        g_autoptr(GError) e = NULL;
        g_autofree char *dest = NULL;
        FileCopyStats st = {};
        uint64_t max_bytes;
        int r;

        log_set_ident("vmfed-file-copy-receive");
        (void) signal(SIGPIPE, SIG_IGN); /* a sender gone is a write error */
        if (parse_args(argc, argv, &max_bytes) < 0)
                return 2;

        const char *untrusted_source = getenv("VMFED_SOURCE");
        if (!untrusted_source || !policy_vm_name_is_valid(untrusted_source, strlen(untrusted_source)))
                return refuse(-EINVAL, "VMFED_SOURCE is %s: not a VM name (this is the handler of vmfed.FileCopy).",
                              untrusted_source ? "invalid" : "not set");
        const char *source = untrusted_source;

        if (make_dest(source, &dest) != 0)
                return 1;
        r = file_copy_receive(STDIN_FILENO, STDOUT_FILENO, dest, max_bytes, &st, &e);
        if (r < 0) {
                log_error("The file copy from %s into %s failed: %s", source, dest, e->message);
                return 1;
        }
        log_info("Received %" G_GUINT64_FORMAT " files (%" G_GUINT64_FORMAT " bytes), %" G_GUINT64_FORMAT
                 " directories and %" G_GUINT64_FORMAT " symlinks from %s into %s.",
                 st.files, st.bytes, st.dirs, st.symlinks, source, dest);
        return 0;
}
