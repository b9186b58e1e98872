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

/* The changed file from fd into a temporary file beside real, renamed over it. */
static int receive_back(int fd, const char *real, const struct stat *orig, uint64_t size, GError **error) {
        g_autofree char *dir = g_path_get_dirname(real);
        g_autofree char *base = g_path_get_basename(real);
        g_autofree char *tmp = g_strdup_printf("%s/.%s.vmfed-XXXXXX", dir, base);
        uint64_t got = 0;

        _cleanup_close_ int out = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0600);
        if (out < 0)
                return send_fail(error, -errno, "The file changed, but no file can be made beside %s to receive it: %s",
                                 real, g_strerror(errno));
        int r = file_open_copy(fd, out, size, &got);
        if (r == -ENODATA)
                r = send_fail(error, r, "The changed file was cut off after %" PRIu64 " of %" PRIu64 " bytes; %s "
                              "is as it was.", got, size, real);
        else if (r < 0)
                r = send_fail(error, r, "Cannot write the changed file (%s); %s is as it was.", g_strerror(-r), real);
        else if ((r = file_open_expect_eof(fd)) < 0)
                r = send_fail(error, r, "More than the %" PRIu64 " bytes announced came back; %s is as it was.", size,
                              real);
        else if (fchmod(out, orig->st_mode & 07777) < 0 || fsync(out) < 0 || rename(tmp, real) < 0)
                r = send_fail(error, -errno, "Cannot put the changed file in place of %s: %s", real, g_strerror(errno));
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

int file_open_send(int fd, const char *path, uint64_t max_back, bool *ret_changed, GError **error) {
        char line[FILE_OPEN_LINE_MAX + 2];
        g_autofree char *real = realpath(path, NULL);
        g_autofree char *base = NULL;
        g_autofree char *message = NULL;
        struct stat st;
        uint64_t size, sent = 0;
        bool changed;
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
        r = file_copy_write_all(fd, line, strlen(line));
        if (r >= 0)
                r = file_open_copy(in, fd, (uint64_t) st.st_size, &sent);
        if (r == -ENODATA)
                return send_fail(error, -EIO, "%s shrank while it was being sent.", path);
        if (r >= 0 && shutdown(fd, SHUT_WR) < 0)
                r = -errno;
        int sent_r = r; /* a handler that refused stopped reading: its answer says why */

        r = file_open_read_line(fd, line, &len);
        if (r < 0 && sent_r < 0)
                return send_fail(error, sent_r, "The stream broke after %" PRIu64 " of %" PRIu64 " bytes of %s: %s",
                                 sent, (uint64_t) st.st_size, path, g_strerror(-sent_r));
        if (r == -EPIPE && len == 0)
                return send_fail(error, -EPIPE, "The stream ended without an answer.");
        if (r < 0)
                return send_fail(error, -EBADMSG, "The answer is not a line of at most %d bytes.", FILE_OPEN_LINE_MAX);
        r = file_open_answer_parse(line, len, &changed, &size, &message);
        if (r == -EREMOTEIO)
                return send_fail(error, r, "%s", message);
        if (sent_r < 0) /* an answer to half a file is no answer */
                return send_fail(error, sent_r, "The stream broke after %" PRIu64 " of %" PRIu64 " bytes of %s: %s",
                                 sent, (uint64_t) st.st_size, path, g_strerror(-sent_r));
        if (r < 0)
                return send_fail(error, r, "The answer is not UNCHANGED, CHANGED SIZE or ERROR MESSAGE.");
        if (changed && size > max_back)
                return send_fail(error, -EFBIG, "The file came back with %" PRIu64 " bytes, over the limit of %" PRIu64
                                 "; %s is as it was.", size, max_back, path);
        if (changed)
                r = receive_back(fd, real, &st, size, error);
        else if (file_open_expect_eof(fd) < 0)
                r = send_fail(error, -EBADMSG, "Data followed the answer UNCHANGED.");
        if (r >= 0 && ret_changed)
                *ret_changed = changed;
        return r;
}
