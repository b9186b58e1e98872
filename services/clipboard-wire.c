/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/clipboard-wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

G_STATIC_ASSERT(sizeof CLIPBOARD_WIRE_MAGIC + 21 + SERVICE_ARGS_MIME_MAX + 1 + CLIPBOARD_WIRE_SOURCE_MAX <=
                CLIPBOARD_WIRE_LINE_MAX);

static bool source_is_valid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > CLIPBOARD_WIRE_SOURCE_MAX)
                return false;
        for (; *s; s++)
                if (!g_ascii_isalnum(*s) && *s != '-' && *s != '_' && *s != '.')
                        return false;
        return true;
}

static bool mime_is_normalized(const char *mime) {
        char norm[SERVICE_ARGS_MIME_MAX + 1];
        return strlen(mime) <= SERVICE_ARGS_MIME_MAX && service_args_mime_normalize(mime, norm) &&
               strcmp(norm, mime) == 0;
}

int clipboard_wire_format(char buf[CLIPBOARD_WIRE_LINE_MAX + 2], uint64_t size, const char *mime,
                          const char *source) {
        if (!mime_is_normalized(mime) || (source && !source_is_valid(source)))
                return -EINVAL;
        if (source)
                snprintf(buf, CLIPBOARD_WIRE_LINE_MAX + 2, CLIPBOARD_WIRE_MAGIC " %" PRIu64 " %s %s\n", size, mime,
                         source);
        else
                snprintf(buf, CLIPBOARD_WIRE_LINE_MAX + 2, CLIPBOARD_WIRE_MAGIC " %" PRIu64 " %s\n", size, mime);
        return 0;
}

int clipboard_wire_parse(const char *untrusted_line, size_t len, bool with_source, uint64_t *ret_size,
                         char ret_mime[SERVICE_ARGS_MIME_MAX + 1], char ret_source[CLIPBOARD_WIRE_SOURCE_MAX + 1],
                         const char **why) {
        char line[CLIPBOARD_WIRE_LINE_MAX + 1];
        const char *p = line;
        uint64_t size;

        if (len > CLIPBOARD_WIRE_LINE_MAX || memchr(untrusted_line, 0, len)) {
                *why = "the header line is too long or has a NUL byte";
                return -EBADMSG;
        }
        memcpy(line, untrusted_line, len);
        line[len] = 0;
        if (strncmp(p, CLIPBOARD_WIRE_MAGIC " ", sizeof CLIPBOARD_WIRE_MAGIC) != 0) {
                *why = "it does not start with " CLIPBOARD_WIRE_MAGIC " (not a clipboard stream, or another version)";
                return -EBADMSG;
        }
        p += sizeof CLIPBOARD_WIRE_MAGIC;
        if (!service_args_parse_u64(&p, &size) || *p++ != ' ') {
                *why = "its size is not a decimal number followed by one space";
                return -EBADMSG;
        }
        const char *space = strchr(p, ' ');
        if (with_source != (space != NULL)) {
                *why = with_source ? "it has no source VM after the type" : "it has more than a size and a type";
                return -EBADMSG;
        }
        char mime[SERVICE_ARGS_MIME_MAX + 2];
        size_t mlen = space ? (size_t) (space - p) : strlen(p);
        if (mlen > SERVICE_ARGS_MIME_MAX) {
                *why = "its type is longer than 127 bytes";
                return -EBADMSG;
        }
        memcpy(mime, p, mlen);
        mime[mlen] = 0;
        if (!mime_is_normalized(mime)) {
                *why = "its type is not a MIME type in lower case such as text/plain or image/png";
                return -EBADMSG;
        }
        if (with_source && !source_is_valid(space + 1)) {
                *why = "its source is not a VM name";
                return -EBADMSG;
        }
        *ret_size = size;
        strcpy(ret_mime, mime);
        if (with_source)
                strcpy(ret_source, space + 1);
        return 0;
}
