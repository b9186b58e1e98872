/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Per-client-VM firewall rules: the language of vmfed.firewall(5).
 *
 * A Firewall is parsed line by line from untrusted text.  A line that does
 * not parse does not abort parsing: the error is recorded as
 * "SOURCE:LINE: message", the Firewall is marked broken, and parsing goes on
 * so that every error is reported at once.  A broken Firewall must be
 * enforced as "drop everything" (fail closed); its rules are never used.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "netvm/netaddr.h"

typedef enum FwAction {
        FW_ACTION_ACCEPT,
        FW_ACTION_DROP,
        FW_ACTION_REJECT,       /* drop, and tell the sender: TCP reset / ICMP admin-prohibited */
} FwAction;

typedef enum FwProto {
        FW_PROTO_ANY,
        FW_PROTO_TCP,
        FW_PROTO_UDP,
        FW_PROTO_ICMP,
        FW_PROTO_ICMPV6,
} FwProto;

typedef struct FwRule {
        unsigned line;
        FwAction action;
        bool dns;               /* special target: the netvm's DNS path */
        bool has_dst;           /* false: "any" (reaches the uplink only) */
        NetAddr dst;
        FwProto proto;
        uint16_t port_min, port_max;    /* both 0: any port */
        int icmp_type;          /* -1: any type */
} FwRule;

/* Upper bound of rules per client VM; more is a parse error. */
#define FIREWALL_RULES_MAX 65536

typedef struct Firewall {
        FwAction default_action;
        bool has_default;
        GArray *rules;          /* FwRule */
        GString *errors;        /* "SOURCE:LINE: message\n"... */
        unsigned n_errors;
} Firewall;

Firewall *firewall_new(void);
Firewall *firewall_free(Firewall *fw);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Firewall, firewall_free)

/*
 * Parse one line (without its newline).  Blank lines and comments ("#" to
 * the end of the line) are ignored.  Returns 0, or -EINVAL after recording
 * the error in fw.
 */
int firewall_parse_line(Firewall *fw, const char *source, unsigned line, const char *untrusted_line);

/* Parse a whole text, lines numbered from 1.  0 or -EINVAL (some line bad). */
int firewall_parse_text(Firewall *fw, const char *source, const char *untrusted_text);

/* Add a "SOURCE:LINE: message" error by hand (e.g. a rules file that cannot be read). */
void firewall_add_error(Firewall *fw, const char *source, unsigned line, const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static inline bool firewall_is_broken(const Firewall *fw) {
        return fw->n_errors > 0;
}

/* The action for traffic no rule matched: "drop" unless a default line said otherwise. */
static inline FwAction firewall_default(const Firewall *fw) {
        return fw->has_default ? fw->default_action : FW_ACTION_DROP;
}

/* Canonical text of one rule, as the parser accepts it. */
char *fwrule_format(const FwRule *r);

const char *fw_action_to_string(FwAction a);
