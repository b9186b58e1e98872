/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FileOpenWire: the bytes of a vmfed.OpenFile stream (docs/file-open.md),
 * how `vmfed-guest open-file` sends a file too large for one D-Bus call:
 *
 *   caller -> handler   "VMFED-OPENFILE1 SIZE NAME\n", SIZE bytes, EOF
 *   handler -> caller   once the viewer has exited, one of
 *                       "UNCHANGED\n"
 *                       "CHANGED SIZE\n", SIZE bytes
 *                       "ERROR MESSAGE\n"
 *                       then EOF
 *
 * Pure functions shared by both ends and the tests, and the two blocking
 * loops they use: a line read byte by byte (nothing past its '\n' is
 * consumed) and a copy of exactly N bytes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FILE_OPEN_MAGIC "VMFED-OPENFILE1"
#define FILE_OPEN_LINE_MAX 512                 /* a header or answer line, without its '\n' */
#define FILE_OPEN_NAME_MAX 255                 /* SERVICE_ARGS_FILE_NAME_MAX */
#define FILE_OPEN_DEFAULT_MAX_BYTES (4ULL << 30)
#define FILE_OPEN_INLINE_MAX (16u << 20)       /* vmfed-guest: larger files go through a stream */

/* The header line with its '\n'; -EINVAL when name is not a plain file name (service_args). */
int file_open_header_format(char buf[FILE_OPEN_LINE_MAX + 2], uint64_t size, const char *name);
/*
 * Parse a header line (without its '\n'): 0, or -EBADMSG with *why (a
 * static sentence).  name: the file name, checked, copied into ret_name.
 */
int file_open_header_parse(const char *untrusted_line, size_t len, uint64_t *ret_size,
                           char ret_name[FILE_OPEN_NAME_MAX + 1], const char **why);

/* The handler's answer line with its '\n': changed (with size) or not; or an error (cut to fit). */
void file_open_answer_format(char buf[FILE_OPEN_LINE_MAX + 2], bool changed, uint64_t size);
void file_open_error_format(char buf[FILE_OPEN_LINE_MAX + 2], const char *message);
/*
 * Parse the handler's answer (without its '\n'): 0 (*ret_changed,
 * *ret_size), -EREMOTEIO for ERROR (*ret_message, not printable bytes
 * replaced, and bidi controls, g_free), -EBADMSG when it is none of them.
 */
int file_open_answer_parse(const char *untrusted_line, size_t len, bool *ret_changed, uint64_t *ret_size,
                           char **ret_message);

/*
 * Read one line from fd, a byte at a time, into buf (NUL-terminated,
 * without its '\n'): 0; -EPIPE at end of file before a '\n' (*ret_len the
 * bytes read), -EBADMSG when it is longer than FILE_OPEN_LINE_MAX.
 */
int file_open_read_line(int fd, char buf[FILE_OPEN_LINE_MAX + 1], size_t *ret_len);
/*
 * Copy exactly size bytes from in_fd to out_fd (sendfile(2) where in_fd
 * allows it, else read/write with MSG_NOSIGNAL on a socket; sendfile has
 * no such flag: callers ignore SIGPIPE).
 * -ENODATA when in_fd ends first (*ret_copied says where), -errno else
 * (-EPIPE: out_fd's reader is gone).
 */
int file_open_copy(int in_fd, int out_fd, uint64_t size, uint64_t *ret_copied);
/* After the data: 0 when in_fd is at its end, -EBADMSG when more follows, -errno. */
int file_open_expect_eof(int in_fd);
