/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/file-open-wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "common/macro.h"
#include "services/file-copy-wire.h"
#include "services/service-args.h"

#define COPY_CHUNK (256u * 1024)

G_STATIC_ASSERT(FILE_OPEN_NAME_MAX == SERVICE_ARGS_FILE_NAME_MAX);
G_STATIC_ASSERT(sizeof FILE_OPEN_MAGIC + 21 + FILE_OPEN_NAME_MAX <= FILE_OPEN_LINE_MAX);

int file_open_header_format(char buf[FILE_OPEN_LINE_MAX + 2], uint64_t size, const char *name) {
        if (!service_args_file_name_is_valid(name))
                return -EINVAL;
        snprintf(buf, FILE_OPEN_LINE_MAX + 2, FILE_OPEN_MAGIC " %" PRIu64 " %s\n", size, name);
        return 0;
}

int file_open_header_parse(const char *untrusted_line, size_t len, uint64_t *ret_size,
                           char ret_name[FILE_OPEN_NAME_MAX + 1], const char **why) {
        char line[FILE_OPEN_LINE_MAX + 1];
        const char *p = line;
        uint64_t size;

        if (len > FILE_OPEN_LINE_MAX || memchr(untrusted_line, 0, len)) {
                *why = "the header line is too long or has a NUL byte";
                return -EBADMSG;
        }
        memcpy(line, untrusted_line, len);
        line[len] = 0;
        if (strncmp(p, FILE_OPEN_MAGIC " ", sizeof FILE_OPEN_MAGIC) != 0) {
                *why = "it does not start with " FILE_OPEN_MAGIC " (not a vmfed.OpenFile stream, or another version)";
                return -EBADMSG;
        }
        p += sizeof FILE_OPEN_MAGIC;
        if (!service_args_parse_u64(&p, &size) || *p++ != ' ') {
                *why = "its size is not a decimal number followed by one space";
                return -EBADMSG;
        }
        if (strlen(p) > FILE_OPEN_NAME_MAX || !service_args_file_name_is_valid(p)) {
                *why = "its file name is not a plain name (1 to 255 bytes of UTF-8, no '/', no control characters, "
                       "not starting with '.' or '-')";
                return -EBADMSG;
        }
        *ret_size = size;
        strcpy(ret_name, p);
        return 0;
}

void file_open_answer_format(char buf[FILE_OPEN_LINE_MAX + 2], bool changed, uint64_t size) {
        if (changed)
                snprintf(buf, FILE_OPEN_LINE_MAX + 2, "CHANGED %" PRIu64 "\n", size);
        else
                snprintf(buf, FILE_OPEN_LINE_MAX + 2, "UNCHANGED\n");
}

void file_open_error_format(char buf[FILE_OPEN_LINE_MAX + 2], const char *message) {
        g_autofree char *line = g_strconcat("ERROR ", message, NULL);
        size_t end = MIN(strlen(line), (size_t) FILE_OPEN_LINE_MAX);
        /* Cut at a character's start, and no '\n' inside: one line. */
        while (end > 6 && ((unsigned char) line[end] & 0xc0) == 0x80)
                end--;
        for (size_t i = 0; i < end; i++)
                buf[i] = line[i] == '\n' ? ' ' : line[i];
        buf[end] = '\n';
        buf[end + 1] = 0;
}

int file_open_answer_parse(const char *untrusted_line, size_t len, bool *ret_changed, uint64_t *ret_size,
                           char **ret_message) {
        char line[FILE_OPEN_LINE_MAX + 1];
        const char *p = line;
        uint64_t size;

        if (len > FILE_OPEN_LINE_MAX || memchr(untrusted_line, 0, len))
                return -EBADMSG;
        memcpy(line, untrusted_line, len);
        line[len] = 0;
        if (strcmp(line, "UNCHANGED") == 0) {
                *ret_changed = false;
                *ret_size = 0;
                return 0;
        }
        if (strncmp(p, "CHANGED ", 8) == 0) {
                p += 8;
                if (!service_args_parse_u64(&p, &size) || *p)
                        return -EBADMSG;
                *ret_changed = true;
                *ret_size = size;
                return 0;
        }
        if (strncmp(p, "ERROR ", 6) != 0)
                return -EBADMSG;
        *ret_message = file_copy_message_sanitize(p + 6);
        return -EREMOTEIO;
}

int file_open_read_line(int fd, char buf[FILE_OPEN_LINE_MAX + 1], size_t *ret_len) {
        size_t n = 0;

        for (;;) {
                char c;
                ssize_t k = read(fd, &c, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0) {
                        buf[n] = 0;
                        *ret_len = n;
                        return -EPIPE;
                }
                if (c == '\n')
                        break;
                if (n == FILE_OPEN_LINE_MAX) {
                        buf[n] = 0;
                        *ret_len = n;
                        return -EBADMSG;
                }
                buf[n++] = c;
        }
        buf[n] = 0;
        *ret_len = n;
        return 0;
}

int file_open_copy(int in_fd, int out_fd, uint64_t size, uint64_t *ret_copied) {
        _cleanup_free_ char *buf = NULL;
        uint64_t done = 0;
        bool use_sendfile = true;
        int r = 0;

        while (done < size) {
                size_t want = (size_t) MIN(size - done, (uint64_t) COPY_CHUNK);
                ssize_t k;
                if (use_sendfile) {
                        k = sendfile(out_fd, in_fd, NULL, want);
                        if (k < 0 && (errno == EINVAL || errno == ENOSYS)) {
                                use_sendfile = false; /* in_fd cannot be mapped (a pipe, a socket) */
                                continue;
                        }
                } else {
                        if (!buf && !(buf = malloc(COPY_CHUNK))) {
                                r = -ENOMEM;
                                break;
                        }
                        k = read(in_fd, buf, want);
                        if (k > 0) {
                                r = file_copy_write_all(out_fd, buf, (size_t) k);
                                if (r < 0)
                                        break;
                        }
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        break;
                }
                if (k == 0) {
                        r = -ENODATA;
                        break;
                }
                done += (uint64_t) k;
        }
        if (ret_copied)
                *ret_copied = done;
        return r;
}

int file_open_expect_eof(int in_fd) {
        for (;;) {
                char c;
                ssize_t k = read(in_fd, &c, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                return k == 0 ? 0 : -EBADMSG;
        }
}
