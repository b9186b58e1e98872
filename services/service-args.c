/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "services/service-args.h"

#include <string.h>

#include <glib.h>

static bool is_id_char(char c) {
        return g_ascii_isalnum(c) || c == '_' || c == '.' || c == '-';
}

bool service_args_url_is_valid(const char *url, const char *const *schemes, char **why) {
        size_t n = strlen(url);
        const char *colon = strchr(url, ':');

        if (n == 0 || n > SERVICE_ARGS_URL_MAX) {
                *why = g_strdup_printf("A URL must have 1 to %d bytes.", SERVICE_ARGS_URL_MAX);
                return false;
        }
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f) {
                        *why = g_strdup("A URL may only contain printable ASCII without spaces (percent-encode the rest).");
                        return false;
                }
        if (!colon || colon == url) {
                *why = g_strdup("Not a URL: no scheme.");
                return false;
        }
        g_autofree char *scheme = g_ascii_strdown(url, colon - url);
        for (const char *p = scheme; *p; p++)
                if (!g_ascii_isalnum(*p) && *p != '+' && *p != '-' && *p != '.') {
                        *why = g_strdup("Not a URL: bad scheme.");
                        return false;
                }
        for (size_t i = 0; schemes && schemes[i]; i++)
                if (strcmp(schemes[i], scheme) == 0)
                        return true;
        g_autofree char *list = schemes ? g_strjoinv(", ", (char **) schemes) : g_strdup("");
        *why = g_strdup_printf("URL scheme '%.32s' is not allowed (allowed: %s).", scheme, list);
        return false;
}

bool service_args_app_id_is_valid(const char *app_id) {
        size_t n = strlen(app_id);
        if (n == 0 || n > SERVICE_ARGS_APP_ID_MAX || app_id[0] == '.' || app_id[0] == '-')
                return false;
        for (const char *p = app_id; *p; p++)
                if (!is_id_char(*p))
                        return false;
        return true;
}

bool service_args_args_are_valid(const char *const *args, char **why) {
        size_t n = 0;
        for (; args && args[n]; n++) {
                if (n >= SERVICE_ARGS_N_ARGS_MAX) {
                        *why = g_strdup_printf("At most %d arguments.", SERVICE_ARGS_N_ARGS_MAX);
                        return false;
                }
                if (strlen(args[n]) > SERVICE_ARGS_ARG_MAX || !g_utf8_validate(args[n], -1, NULL)) {
                        *why = g_strdup_printf("Argument %zu is not UTF-8 of at most %d bytes.", n + 1,
                                               SERVICE_ARGS_ARG_MAX);
                        return false;
                }
                if (args[n][0] == '-') {
                        *why = g_strdup_printf("Argument %zu starts with '-': options cannot be passed to an "
                                               "application in another VM.", n + 1);
                        return false;
                }
        }
        return true;
}

bool service_args_file_name_is_valid(const char *name) {
        size_t n = strlen(name);
        if (n == 0 || n > SERVICE_ARGS_FILE_NAME_MAX || name[0] == '.' || name[0] == '-')
                return false;
        if (!g_utf8_validate(name, -1, NULL))
                return false;
        for (const char *p = name; *p; p++)
                if (*p == '/' || (unsigned char) *p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

bool service_args_parse_u64(const char **p, uint64_t *ret) {
        uint64_t v = 0;
        const char *s = *p;

        if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
                return false; /* digits, no leading zeros: one spelling per number */
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *p = s;
        *ret = v;
        return true;
}

bool service_args_mime_normalize(const char *mime, char *out) {
        size_t n = strcspn(mime, ";");
        while (n > 0 && mime[n - 1] == ' ')
                n--;
        if (n == 0 || n > SERVICE_ARGS_MIME_MAX)
                return false;
        unsigned slashes = 0;
        for (size_t i = 0; i < n; i++) {
                char c = g_ascii_tolower(mime[i]);
                if (c == '/')
                        slashes++;
                else if (!g_ascii_isalnum(c) && c != '.' && c != '+' && c != '-')
                        return false;
                out[i] = c;
        }
        out[n] = 0;
        if (slashes != 1 || out[0] == '/' || out[n - 1] == '/')
                return false;
        return true;
}

void service_args_mime_to_policy_arg(const char *mime, char *out) {
        if (strcmp(mime, "text/plain") == 0) {
                out[0] = 0;
                return;
        }
        size_t i = 0;
        for (; mime[i]; i++)
                out[i] = mime[i] == '/' ? '.' : mime[i];
        out[i] = 0;
}
