/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/clipboard-stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "services/file-copy-wire.h"
#include "services/file-copy.h"
#include "services/file-open-wire.h"

#define INPUT_CHUNK (1u << 20)

int clipboard_stream_input(const char *path, uint64_t max, int *ret_fd, uint64_t *ret_size) {
        _cleanup_close_ int in = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY) : fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        struct stat st;

        if (in < 0 || fstat(in, &st) < 0)
                return -errno;
        if (S_ISREG(st.st_mode) && lseek(in, 0, SEEK_CUR) == 0) {
                if ((uint64_t) st.st_size > max)
                        return -EFBIG;
                *ret_size = (uint64_t) st.st_size;
                *ret_fd = steal_fd(&in);
                return 0;
        }
        _cleanup_close_ int mem = memfd_create("vmfed-guest-copy", MFD_CLOEXEC);
        _cleanup_free_ char *buf = malloc(INPUT_CHUNK);
        uint64_t n = 0;
        if (mem < 0)
                return -errno;
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(in, buf, INPUT_CHUNK);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                if (n + (uint64_t) k > max)
                        return -EFBIG;
                int r = file_copy_write_all(mem, buf, (size_t) k);
                if (r < 0)
                        return r;
                n += (uint64_t) k;
        }
        if (lseek(mem, 0, SEEK_SET) < 0)
                return -errno;
        *ret_size = n;
        *ret_fd = steal_fd(&mem);
        return 0;
}

static int fail(GError **error, int r, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static int fail(GError **error, int r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        g_autofree char *m = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        g_set_error_literal(error, FILE_COPY_ERROR, -r, m);
        return r;
}

int clipboard_stream_send(int fd, int in_fd, uint64_t size, const char *mime, GError **error) {
        char header[CLIPBOARD_WIRE_LINE_MAX + 2];
        uint64_t copied = 0;
        int r;

        if (clipboard_wire_format(header, size, mime, NULL) < 0)
                return fail(error, -EINVAL, "'%s' is not a MIME type such as text/plain (InvalidArgs)", mime);
        r = file_copy_write_all(fd, header, strlen(header));
        if (r >= 0)
                r = file_open_copy(in_fd, fd, size, &copied);
        if (r == -ENODATA)
                return fail(error, r, "the input ended after %" PRIu64 " of %" PRIu64 " bytes", copied, size);
        if (r == -EPIPE || r == -ECONNRESET)
                return fail(error, r, "the stream was closed after %" PRIu64 " of %" PRIu64 " bytes", copied, size);
        if (r < 0)
                return fail(error, r, "sending the copy failed: %s", strerror(-r));
        if (shutdown(fd, SHUT_WR) < 0)
                return fail(error, -errno, "ending the copy failed: %s", strerror(errno));
        r = file_open_expect_eof(fd);
        if (r == -EBADMSG)
                return fail(error, r, "the broker answered a copy with data");
        if (r < 0 && r != -ECONNRESET)
                return fail(error, r, "waiting for the broker failed: %s", strerror(-r));
        return 0;
}

int clipboard_stream_receive(int fd, int out_fd, char ret_source[CLIPBOARD_WIRE_SOURCE_MAX + 1],
                             char ret_mime[SERVICE_ARGS_MIME_MAX + 1], uint64_t *ret_size, GError **error) {
        char line[FILE_OPEN_LINE_MAX + 1];
        const char *why = NULL;
        uint64_t size, copied = 0;
        size_t len;
        int r;

        r = file_open_read_line(fd, line, &len);
        if (r == -EPIPE)
                return fail(error, r, "the stream ended before the paste's header");
        if (r < 0)
                return fail(error, r, "reading the paste's header failed: %s", strerror(-r));
        r = clipboard_wire_parse(line, len, true, &size, ret_mime, ret_source, &why);
        if (r < 0)
                return fail(error, r, "the paste's header is not valid: %s", why);
        r = file_open_copy(fd, out_fd, size, &copied);
        if (r == -ENODATA)
                return fail(error, r, "the paste ended after %" PRIu64 " of %" PRIu64 " bytes", copied, size);
        if (r < 0)
                return fail(error, r, "writing the paste failed after %" PRIu64 " bytes: %s", copied, strerror(-r));
        r = file_open_expect_eof(fd);
        if (r < 0)
                return fail(error, r, "the paste did not end after its %" PRIu64 " bytes", size);
        *ret_size = size;
        return 0;
}
