/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FileCopyWire: the bytes of vmfed's file-copy stream (docs/file-copy.md)
 * — the entry header, the rules for names and symlink targets, the
 * receiver's status line.  Pure functions shared by the sender, the
 * receiver and the fuzz target; "why" strings are static sentences.
 * Also the one write loop both ends use.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FILE_COPY_MAGIC "VMFEDFC1"
#define FILE_COPY_MAGIC_LEN 8
#define FILE_COPY_HEADER_SIZE 32

#define FILE_COPY_NAME_MAX 4095      /* a whole relative name, bytes */
#define FILE_COPY_COMPONENT_MAX 255  /* one component, bytes (NAME_MAX) */
#define FILE_COPY_DEPTH_MAX 128      /* components of a name */
#define FILE_COPY_TARGET_MAX 4095    /* a symlink's target, bytes */
#define FILE_COPY_ENTRIES_MAX 1000000u
#define FILE_COPY_STATUS_MAX 1024    /* the status line, with its '\n' */
#define FILE_COPY_PARTIAL_PREFIX ".vmfed-partial."

typedef enum FileCopyType {
        FILE_COPY_DIR = 'D',
        FILE_COPY_FILE = 'F',
        FILE_COPY_SYMLINK = 'L',
        FILE_COPY_END = 'E',
} FileCopyType;

/*
 * One entry header.  For FILE_COPY_END: size is the total of the files'
 * sizes and mtime_sec the number of entries before it.
 */
typedef struct FileCopyHeader {
        uint8_t type;
        uint16_t name_len;
        uint32_t mode;          /* permission bits, 0 .. 0777 */
        uint64_t size;          /* file: data bytes; symlink: target bytes; dir: 0 */
        int64_t mtime_sec;
        uint32_t mtime_nsec;
} FileCopyHeader;

void file_copy_header_encode(const FileCopyHeader *h, uint8_t out[FILE_COPY_HEADER_SIZE]);
/* -EBADMSG with *why when a field is out of its range (docs/file-copy.md). */
int file_copy_header_decode(const uint8_t in[FILE_COPY_HEADER_SIZE], FileCopyHeader *ret, const char **why);

/*
 * A relative name: 1..4095 bytes, components of 1..255 bytes separated by
 * single '/', none "." or ".." or starting ".vmfed-partial.", at most 128
 * of them; valid UTF-8 without control characters (C0, DEL, C1).
 * -EINVAL with *why; *ret_depth (optional) gets the number of components.
 */
int file_copy_name_check(const char *untrusted_name, size_t len, unsigned *ret_depth, const char **why);

/*
 * The target of a symlink whose name has depth components: 1..4095 bytes,
 * UTF-8 without control characters, relative, ".." only as leading
 * components and at most depth - 2 of them (it never leaves the top-level
 * entry it is in; a top-level symlink is refused).  -EINVAL with *why.
 */
int file_copy_target_check(const char *untrusted_target, size_t len, unsigned depth, const char **why);

/* "OK ENTRIES BYTES\n" resp. "ERROR ERRNO MESSAGE\n" (message cut to fit), NUL-terminated. */
void file_copy_status_format(char buf[FILE_COPY_STATUS_MAX + 1], int error, const char *message,
                             uint64_t entries, uint64_t bytes);
/*
 * The other side's message, to be shown to this side's user: invalid UTF-8
 * made valid, control characters and bidi controls replaced by '?'.  g_free.
 */
char *file_copy_message_sanitize(const char *untrusted);

/*
 * Parse the receiver's line (without its '\n').  0 for OK (entries,
 * bytes), -EREMOTEIO for ERROR (*ret_message: its text with anything not
 * printable replaced, g_free), -EBADMSG when it is neither.
 */
int file_copy_status_parse(const char *untrusted_line, size_t len, uint64_t *ret_entries, uint64_t *ret_bytes,
                           char **ret_message);

/*
 * Write all of buf to fd: send(MSG_NOSIGNAL) on a socket (no SIGPIPE: a
 * peer gone is -EPIPE), write() on anything else; EINTR retried.
 */
int file_copy_write_all(int fd, const void *buf, size_t len);

/* A size limit: N with an optional binary suffix K, M, G or T.  -EINVAL when it is not one. */
int file_copy_parse_size(const char *s, uint64_t *ret);
