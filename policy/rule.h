/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A compiled rule: one line of a policy file with every name interned into
 * the snapshot's string table.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "policy/name.h"
#include "policy/policy.h"

typedef enum TokenKind {
        TOKEN_NONE = 0,    /* absent (an optional parameter) */
        TOKEN_NAME,        /* a VM name; id = the name */
        TOKEN_ANYVM,       /* @anyvm */
        TOKEN_TAG,         /* @tag:T; id = T */
        TOKEN_ROLE,        /* @role:R; role */
        TOKEN_HOST,        /* @host (alias @adminvm) */
        TOKEN_DEFAULT,     /* @default */
        TOKEN_DISPVM,      /* @dispvm */
        TOKEN_DISPVM_NAME, /* @dispvm:NAME; id = NAME */
        TOKEN_DISPVM_TAG,  /* @dispvm:@tag:T; id = T */
        TOKEN_ACTIVE,      /* @active */
        _TOKEN_KIND_MAX,
} TokenKind;

/* Where a token stands; each place allows a different set of kinds. */
typedef enum TokenPlace {
        TOKEN_PLACE_SOURCE,   /* third column */
        TOKEN_PLACE_TARGET,   /* fourth column */
        TOKEN_PLACE_REDIRECT, /* target= and default_target= */
} TokenPlace;

typedef struct PolicyToken {
        uint8_t kind;     /* TokenKind */
        int8_t role;      /* PolicyRole for TOKEN_ROLE */
        uint32_t id;      /* interned value, see TokenKind */
        const char *text; /* the token as written (interned; "@host" for "@adminvm") */
} PolicyToken;

#define RULE_ARG_ANY UINT32_MAX

typedef struct PolicyRule {
        uint32_t service; /* interned name; 0 for '*' */
        uint32_t arg;     /* interned argument without '+' ("" for a lone '+'), or RULE_ARG_ANY */
        PolicyToken source;
        PolicyToken target;
        PolicyToken redirect;       /* target= */
        PolicyToken default_target; /* default_target= */
        uint8_t action;             /* PolicyAction */
        bool autostart;
        bool notify;
        const char *file; /* interned, relative to the policy directory */
        unsigned line;
        /* 1-based columns of source, target, target= value, default_target= value (0: absent) */
        uint16_t columns[4];
} PolicyRule;

typedef struct Intern Intern;

/*
 * Parse one token for a place.  On success returns 0 and fills *ret (text
 * and ids interned into names).  On error returns -EINVAL with a newly
 * allocated message in *ret_message and the byte offset of the problem
 * inside the token in *ret_offset.
 */
int policy_token_parse(const char *untrusted, size_t len, TokenPlace place, Intern *names,
                       PolicyToken *ret, char **ret_message, size_t *ret_offset);

const char *token_place_to_string(TokenPlace p);
