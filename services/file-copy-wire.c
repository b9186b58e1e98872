/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/file-copy-wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

static void put_le16(uint8_t *p, uint16_t v) {
        p[0] = v & 0xff;
        p[1] = v >> 8;
}

static void put_le32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (v >> (8 * i)) & 0xff;
}

static void put_le64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (v >> (8 * i)) & 0xff;
}

static uint16_t get_le16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p) {
        uint32_t v = 0;
        for (int i = 3; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

static uint64_t get_le64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

void file_copy_header_encode(const FileCopyHeader *h, uint8_t out[FILE_COPY_HEADER_SIZE]) {
        memset(out, 0, FILE_COPY_HEADER_SIZE);
        out[0] = h->type;
        put_le16(out + 2, h->name_len);
        put_le32(out + 4, h->mode);
        put_le64(out + 8, h->size);
        put_le64(out + 16, (uint64_t) h->mtime_sec);
        put_le32(out + 24, h->mtime_nsec);
}

static const char *header_check(const FileCopyHeader *h) {
        if (h->type == FILE_COPY_END)
                return h->name_len != 0 || h->mode != 0 || h->mtime_sec < 0 || h->mtime_nsec != 0
                               ? "an end record with fields that must be zero"
                               : NULL;
        if (h->type != FILE_COPY_DIR && h->type != FILE_COPY_FILE && h->type != FILE_COPY_SYMLINK)
                return "an entry of an unknown type (only directories, files and symlinks are accepted)";
        if (h->name_len == 0 || h->name_len > FILE_COPY_NAME_MAX)
                return "an entry whose name is empty or longer than 4095 bytes";
        if (h->mode & ~0777u)
                return "an entry with mode bits other than the permissions (setuid, setgid, sticky or a type)";
        if (h->mtime_nsec >= 1000000000u)
                return "an entry with a modification time of 1000000000 ns or more";
        if (h->type == FILE_COPY_DIR && h->size != 0)
                return "a directory with a size";
        if (h->type == FILE_COPY_SYMLINK && (h->size == 0 || h->size > FILE_COPY_TARGET_MAX))
                return "a symlink whose target is empty or longer than 4095 bytes";
        return NULL;
}

int file_copy_header_decode(const uint8_t in[FILE_COPY_HEADER_SIZE], FileCopyHeader *ret, const char **why) {
        FileCopyHeader h = {
                .type = in[0],
                .name_len = get_le16(in + 2),
                .mode = get_le32(in + 4),
                .size = get_le64(in + 8),
                .mtime_sec = (int64_t) get_le64(in + 16),
                .mtime_nsec = get_le32(in + 24),
        };
        const char *bad = NULL;

        if (in[1] != 0 || get_le32(in + 28) != 0)
                bad = "an entry with reserved bytes that are not zero";
        else
                bad = header_check(&h);
        if (bad) {
                *why = bad;
                return -EBADMSG;
        }
        *ret = h;
        return 0;
}

/* Valid UTF-8 without C0 controls, DEL and C1 controls (no NUL either). */
static bool text_is_clean(const char *s, size_t len) {
        if (!g_utf8_validate_len(s, len, NULL))
                return false;
        for (const char *p = s; p < s + len; p = g_utf8_next_char(p)) {
                gunichar c = g_utf8_get_char(p);
                if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
                        return false;
        }
        return true;
}

static const char *component_check(const char *c, size_t n) {
        if (n == 0)
                return "an empty component (a '/' at the end or two in a row)";
        if (n > FILE_COPY_COMPONENT_MAX)
                return "a component longer than 255 bytes";
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                return "a '.' or '..' component";
        if (n >= strlen(FILE_COPY_PARTIAL_PREFIX) && memcmp(c, FILE_COPY_PARTIAL_PREFIX, strlen(FILE_COPY_PARTIAL_PREFIX)) == 0)
                return "a component starting with \".vmfed-partial.\" (reserved for files being received)";
        return NULL;
}

int file_copy_name_check(const char *untrusted_name, size_t len, unsigned *ret_depth, const char **why) {
        const char *bad = NULL;
        unsigned depth = 0;

        if (len == 0)
                bad = "an empty name";
        else if (len > FILE_COPY_NAME_MAX)
                bad = "a name longer than 4095 bytes";
        else if (!text_is_clean(untrusted_name, len))
                bad = "a name that is not valid UTF-8 or has control characters";
        else if (untrusted_name[0] == '/')
                bad = "an absolute name";
        for (size_t start = 0, i = 0; !bad && i <= len; i++) {
                if (i < len && untrusted_name[i] != '/')
                        continue;
                bad = component_check(untrusted_name + start, i - start);
                if (!bad && ++depth > FILE_COPY_DEPTH_MAX)
                        bad = "a name of more than 128 components";
                start = i + 1;
        }
        if (bad) {
                *why = bad;
                return -EINVAL;
        }
        if (ret_depth)
                *ret_depth = depth;
        return 0;
}

/* Count leading ".." components; -1 when one follows a name. */
static long target_ups(const char *t, size_t len) {
        long ups = 0;
        bool named = false;

        for (size_t start = 0, i = 0; i <= len; i++) {
                if (i < len && t[i] != '/')
                        continue;
                size_t n = i - start;
                const char *c = t + start;
                start = i + 1;
                if (n == 0 || (n == 1 && c[0] == '.'))
                        continue;
                if (n == 2 && c[0] == '.' && c[1] == '.') {
                        if (named)
                                return -1;
                        ups++;
                } else
                        named = true;
        }
        return ups;
}

int file_copy_target_check(const char *untrusted_target, size_t len, unsigned depth, const char **why) {
        const char *bad = NULL;
        long ups = 0;

        if (len == 0)
                bad = "an empty symlink target";
        else if (len > FILE_COPY_TARGET_MAX)
                bad = "a symlink target longer than 4095 bytes";
        else if (!text_is_clean(untrusted_target, len))
                bad = "a symlink target that is not valid UTF-8 or has control characters";
        else if (untrusted_target[0] == '/')
                bad = "a symlink with an absolute target";
        else if (depth < 2)
                bad = "a symlink at the top level (it could only point outside what is copied)";
        else if ((ups = target_ups(untrusted_target, len)) < 0)
                bad = "a symlink target with '..' after a name";
        else if ((unsigned long) ups > depth - 2)
                bad = "a symlink pointing outside the copied directory";
        if (bad) {
                *why = bad;
                return -EINVAL;
        }
        return 0;
}

void file_copy_status_format(char buf[FILE_COPY_STATUS_MAX + 1], int error, const char *message,
                             uint64_t entries, uint64_t bytes) {
        if (error == 0) {
                snprintf(buf, FILE_COPY_STATUS_MAX + 1, "OK %" PRIu64 " %" PRIu64 "\n", entries, bytes);
                return;
        }
        int n = snprintf(buf, FILE_COPY_STATUS_MAX + 1, "ERROR %d ", error < 0 ? -error : error);
        size_t room = FILE_COPY_STATUS_MAX - 1 - (size_t) n; /* leave the '\n' */
        size_t len = 0;
        for (const char *p = message ? message : "failed"; *p && len < room; p++)
                buf[n + len++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
        buf[n + len] = '\n';
        buf[n + len + 1] = 0;
}

static bool parse_u64(const char **p, uint64_t *ret) {
        uint64_t v = 0;
        const char *s = *p;

        if (*s < '0' || *s > '9')
                return false;
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *p = s;
        *ret = v;
        return true;
}

char *file_copy_message_sanitize(const char *untrusted) {
        g_autofree char *valid = g_utf8_make_valid(untrusted, -1);
        GString *out = g_string_new(NULL);

        for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
                gunichar c = g_utf8_get_char(p);
                /* Control characters, and the bidi controls that would reorder what the user reads. */
                if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x200e || c == 0x200f || (c >= 0x202a && c <= 0x202e) ||
                    (c >= 0x2066 && c <= 0x2069))
                        g_string_append_c(out, '?');
                else
                        g_string_append_unichar(out, c);
        }
        return g_string_free(out, FALSE);
}

int file_copy_status_parse(const char *untrusted_line, size_t len, uint64_t *ret_entries, uint64_t *ret_bytes,
                           char **ret_message) {
        char line[FILE_COPY_STATUS_MAX + 1];
        const char *p = line;
        uint64_t a, b;

        if (len > FILE_COPY_STATUS_MAX || memchr(untrusted_line, 0, len))
                return -EBADMSG;
        memcpy(line, untrusted_line, len);
        line[len] = 0;
        if (strncmp(p, "OK ", 3) == 0) {
                p += 3;
                if (!parse_u64(&p, &a) || *p++ != ' ' || !parse_u64(&p, &b) || *p)
                        return -EBADMSG;
                *ret_entries = a;
                *ret_bytes = b;
                return 0;
        }
        if (strncmp(p, "ERROR ", 6) != 0)
                return -EBADMSG;
        p += 6;
        if (!parse_u64(&p, &a) || *p++ != ' ')
                return -EBADMSG;
        *ret_message = file_copy_message_sanitize(p);
        return -EREMOTEIO;
}

int file_copy_write_all(int fd, const void *buf, size_t len) {
        const uint8_t *p = buf;
        bool sock = true;

        while (len > 0) {
                ssize_t n = sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
                if (n < 0 && errno == ENOTSOCK && sock) {
                        sock = false;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int file_copy_parse_size(const char *s, uint64_t *ret) {
        char *end = NULL;
        unsigned shift = 0;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0)
                return -EINVAL;
        switch (*end) {
        case 'K': shift = 10; end++; break;
        case 'M': shift = 20; end++; break;
        case 'G': shift = 30; end++; break;
        case 'T': shift = 40; end++; break;
        default: break;
        }
        if (*end || v > (UINT64_MAX >> shift))
                return -EINVAL;
        *ret = (uint64_t) v << shift;
        return 0;
}
