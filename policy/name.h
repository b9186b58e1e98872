/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The syntax of the names the policy language and the federation share:
 * VM names, tags, roles, service names and service arguments.  One place,
 * so that vms.d/, policy files and requests agree on what is a name.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define POLICY_NAME_MAX 31      /* VM names, like Qubes */
#define POLICY_TAG_MAX 63
#define POLICY_SERVICE_MAX 127  /* service name, without the argument */
#define POLICY_ARG_MAX 127      /* argument, without the '+' */
#define POLICY_MAX_TAGS 32      /* tags of one VM */

typedef enum PolicyRole {
        POLICY_ROLE_PERSONA,
        POLICY_ROLE_SERVICE,
        POLICY_ROLE_DISPOSABLE_TEMPLATE,
        POLICY_ROLE_APP,
        POLICY_ROLE_DISPOSABLE, /* a running disposable, known only at run time */
        _POLICY_ROLE_MAX,
        POLICY_ROLE_INVALID = -1,
} PolicyRole;

PolicyRole policy_role_from_string(const char *s, size_t len);
const char *policy_role_to_string(PolicyRole r);

/*
 * Each *_valid() returns the offset of the first offending byte, or -1 when
 * the whole string is valid.  An empty or too long string reports offset 0
 * resp. the first byte past the limit.
 */

/* [A-Za-z][A-Za-z0-9_.-]{0,30} */
long policy_vm_name_invalid_at(const char *s, size_t len);
/* [A-Za-z0-9_.-]{1,63} */
long policy_tag_invalid_at(const char *s, size_t len);
/* [A-Za-z0-9_.-]{1,127} (Qubes' RPC name characters without '+') */
long policy_service_invalid_at(const char *s, size_t len);
/* [A-Za-z0-9_.+-]{0,127} (may be empty) */
long policy_arg_invalid_at(const char *s, size_t len);

static inline bool policy_vm_name_is_valid(const char *s, size_t len) {
        return policy_vm_name_invalid_at(s, len) < 0;
}
