/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "policy/name.h"

#include <string.h>

static const char *const role_names[_POLICY_ROLE_MAX] = {
        [POLICY_ROLE_PERSONA] = "persona",
        [POLICY_ROLE_SERVICE] = "service",
        [POLICY_ROLE_DISPOSABLE_TEMPLATE] = "disposable-template",
        [POLICY_ROLE_APP] = "app",
        [POLICY_ROLE_DISPOSABLE] = "disposable",
};

PolicyRole policy_role_from_string(const char *s, size_t len) {
        if (!s)
                return POLICY_ROLE_INVALID;
        for (int i = 0; i < _POLICY_ROLE_MAX; i++)
                if (strlen(role_names[i]) == len && memcmp(role_names[i], s, len) == 0)
                        return (PolicyRole) i;
        return POLICY_ROLE_INVALID;
}

const char *policy_role_to_string(PolicyRole r) {
        if (r < 0 || r >= _POLICY_ROLE_MAX)
                return NULL;
        return role_names[r];
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_name_char(char c) {
        return is_alnum(c) || c == '_' || c == '.' || c == '-';
}

static long check_chars(const char *s, size_t len, size_t max, bool allow_plus) {
        for (size_t i = 0; i < len; i++) {
                if (i >= max)
                        return (long) i;
                if (!is_name_char(s[i]) && !(allow_plus && s[i] == '+'))
                        return (long) i;
        }
        return -1;
}

long policy_vm_name_invalid_at(const char *s, size_t len) {
        if (len == 0)
                return 0;
        if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
                return 0;
        return check_chars(s, len, POLICY_NAME_MAX, false);
}

long policy_tag_invalid_at(const char *s, size_t len) {
        if (len == 0)
                return 0;
        return check_chars(s, len, POLICY_TAG_MAX, false);
}

long policy_service_invalid_at(const char *s, size_t len) {
        if (len == 0)
                return 0;
        return check_chars(s, len, POLICY_SERVICE_MAX, false);
}

long policy_arg_invalid_at(const char *s, size_t len) {
        return check_chars(s, len, POLICY_ARG_MAX, true);
}
