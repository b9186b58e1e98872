/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The caller's end of a vmfed.OpenFile stream (services/file-open.h).  The
 * handler's answer is hostile: its size is checked against max_back before
 * anything is stored, the changed file is written to a temporary file that
 * replaces the original only when every byte announced has arrived and
 * nothing more; otherwise the original stays as it was.
 */
#include "services/file-open.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "services/file-copy-partial.h"
#include "services/file-copy-wire.h"
#include "services/file-copy.h"
#include "services/file-open-wire.h"

static int send_fail(GError **error, int err, const char *format, ...) G_GNUC_PRINTF(3, 4);
static int send_fail(GError **error, int err, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        g_autofree char *message = g_strdup_vprintf(format, ap);
        va_end(ap);
        g_set_error_literal(error, FILE_COPY_ERROR, -err, message);
        return err;
}

/*
 * The partial file (complete, synced) in place of real: a named partial is
 * renamed over it; an O_TMPFILE is linked under a fresh hidden name first
 * (links never replace), then renamed.  The directory is synced after.
 */
static int put_in_place(FileCopyPartial *p, const char *real) {
        if (p->tmp_name[0]) {
                if (renameat(p->dir_fd, p->tmp_name, AT_FDCWD, real) < 0)
                        return -errno;
                p->linked = true;
        } else {
                g_autofree char *dir = g_path_get_dirname(real);
                for (int tries = 0;; tries++) {
                        g_autofree char *tmp = g_strdup_printf("%s/.vmfed-open.%08x", dir, g_random_int());
                        char proc[64];
                        snprintf(proc, sizeof proc, "/proc/self/fd/%d", p->fd);
                        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0) {
                                if (errno == EEXIST && tries < 100)
                                        continue;
                                return -errno;
                        }
                        if (rename(tmp, real) < 0) {
                                int err = errno;
                                (void) unlink(tmp);
                                return -err;
                        }
                        break;
                }
        }
        if (fsync(p->dir_fd) < 0)
                return -errno;
        return 0;
}

/* The changed file from fd into p (made beside real before anything was sent), then in real's place. */
static int receive_back(int fd, FileCopyPartial *p, const char *real, const struct stat *orig, uint64_t size,
                        GError **error) {
        uint64_t got = 0;

        int r = file_open_copy(fd, p->fd, size, &got);
        if (r == -ENODATA)
                return send_fail(error, r, "The changed file was cut off after %" PRIu64 " of %" PRIu64 " bytes; %s "
                                 "is as it was.", got, size, real);
        if (r < 0)
                return send_fail(error, r, "Cannot write the changed file (%s); %s is as it was.", g_strerror(-r), real);
        if (file_open_expect_eof(fd) < 0)
                return send_fail(error, -EBADMSG, "More than the %" PRIu64 " bytes announced came back; %s is as it "
                                 "was.", size, real);
        /* The permission bits only: no setuid, setgid or sticky bit on bytes from another VM. */
        if (fchmod(p->fd, orig->st_mode & 0777) < 0 || fsync(p->fd) < 0)
                return send_fail(error, -errno, "Cannot write the changed file (%s); %s is as it was.",
                                 g_strerror(errno), real);
        r = put_in_place(p, real);
        if (r < 0)
                return send_fail(error, r, "Cannot put the changed file in place of %s: %s", real, g_strerror(-r));
        return 0;
}

/* A write to the stream failed because of the stream (the handler stopped reading), not of us. */
static bool stream_broke(int r) {
        return r == -EPIPE || r == -ECONNRESET;
}

int file_open_send(int fd, const char *path, uint64_t max_back, bool *ret_changed, GError **error) {
        _cleanup_(file_copy_partial_abort) FileCopyPartial p = FILE_COPY_PARTIAL_INIT;
        char line[FILE_OPEN_LINE_MAX + 2];
        g_autofree char *real = realpath(path, NULL);
        g_autofree char *base = NULL, *dir = NULL;
        g_autofree char *message = NULL;
        bool use_tmpfile = true, untrusted_changed;
        uint64_t untrusted_size, sent = 0;
        struct stat st;
        size_t len;
        int r;

        if (!real)
                return send_fail(error, -errno, "%s: %s", path, g_strerror(errno));
        _cleanup_close_ int in = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (in < 0 || fstat(in, &st) < 0)
                return send_fail(error, -errno, "%s: %s", path, g_strerror(errno));
        if (!S_ISREG(st.st_mode))
                return send_fail(error, -EINVAL, "%s is not a regular file.", path);
        base = g_path_get_basename(real);
        if (file_open_header_format(line, (uint64_t) st.st_size, base) < 0)
                return send_fail(error, -EINVAL, "The name \"%s\" cannot be sent: a plain name of at most 255 bytes, "
                                 "not starting with '.' or '-', without control characters.", base);
        /* Where a changed file will arrive, made now: a directory we cannot write fails before the viewer. */
        dir = g_path_get_dirname(real);
        _cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = dir_fd < 0 ? -errno : file_copy_partial_open(&p, dir_fd, 0600, &use_tmpfile);
        if (r < 0)
                return send_fail(error, r, "No file can be made in %s to receive the changes: %s", dir,
                                 g_strerror(-r));

        r = file_copy_write_all(fd, line, strlen(line));
        if (r >= 0)
                r = file_open_copy(in, fd, (uint64_t) st.st_size, &sent);
        if (r == -ENODATA)
                return send_fail(error, -EIO, "%s shrank while it was being sent.", path);
        if (r >= 0 && shutdown(fd, SHUT_WR) < 0)
                r = -errno;
        if (r < 0 && !stream_broke(r)) /* ours: no answer will come to half a file (closing aborts the stream) */
                return send_fail(error, r, "Cannot send %s: %s", path, g_strerror(-r));
        int sent_r = r; /* a handler that refused stopped reading: its answer says why */

        int rl = file_open_read_line(fd, line, &len);
        r = rl == 0 ? file_open_answer_parse(line, len, &untrusted_changed, &untrusted_size, &message) : rl;
        if (r == -EREMOTEIO)
                return send_fail(error, r, "%s", message);
        if (sent_r < 0) /* no answer, or an answer to half a file: the stream broke */
                return send_fail(error, sent_r, "The stream broke after %" PRIu64 " of %" PRIu64 " bytes of %s: %s",
                                 sent, (uint64_t) st.st_size, path, g_strerror(-sent_r));
        if (rl == -EPIPE && len == 0)
                return send_fail(error, -EPIPE, "The stream ended without an answer.");
        if (rl == -EPIPE || rl == -EBADMSG)
                return send_fail(error, -EBADMSG, "The answer is not a line of at most %d bytes.", FILE_OPEN_LINE_MAX);
        if (rl < 0)
                return send_fail(error, rl, "Cannot read the answer: %s", g_strerror(-rl));
        if (r < 0)
                return send_fail(error, r, "The answer is not UNCHANGED, CHANGED SIZE or ERROR MESSAGE.");
        if (untrusted_changed && untrusted_size > max_back)
                return send_fail(error, -EFBIG, "The file came back with %" PRIu64 " bytes, over the limit of %" PRIu64
                                 "; %s is as it was.", untrusted_size, max_back, path);
        bool changed = untrusted_changed;
        if (changed)
                r = receive_back(fd, &p, real, &st, untrusted_size, error);
        else if (file_open_expect_eof(fd) < 0)
                r = send_fail(error, -EBADMSG, "Data followed the answer UNCHANGED.");
        if (r >= 0 && ret_changed)
                *ret_changed = changed;
        return r;
}
