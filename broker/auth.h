/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Authorization of management calls on the system bus.  Reading is open to
 * every local user; changing anything (Reload, ReplaceFile, RemoveFile, ...)
 * needs one of:
 *   - effective uid 0,
 *   - membership of group "vmfed" (effective or supplementary gid),
 *   - polkit action org.vmfed.manage (asked asynchronously, with
 *     interactive authentication when the caller allowed it).
 * Credentials come from the bus daemon (sd_bus_query_sender_creds); any
 * field sd-bus had to augment from /proc (racy) is ignored.
 */
#pragma once

#include <stdbool.h>

#include "broker/broker.h"

#define AUTH_ACTION_MANAGE "org.vmfed.manage"

/*
 * Called exactly once per auth_check_manage(): allowed or not, how it was
 * decided ("uid-0", "group-vmfed", "polkit", or why not) and who asked
 * ("uid=1000"; may be "uid=?").  m is the original call; reply to it here.
 */
typedef void (*AuthDoneFunc)(Broker *b, sd_bus_message *m, bool allowed, const char *how,
                             const char *who, void *userdata);

/*
 * Decide whether the sender of m may manage the federation.  done() may run
 * before this returns (uid 0, group) or later from the main loop (polkit).
 * free_userdata (may be NULL) is called after done().
 */
void auth_check_manage(Broker *b, sd_bus_message *m, AuthDoneFunc done, void *userdata,
                       void (*free_userdata)(void *));

/* What a management call is about, for its audit line and its refusal. */
typedef struct AuthAction {
        const char *target;   /* audited target; NULL: "@host" */
        const char *service;  /* "vmfed.Admin.Reload" */
        const char *arg;      /* audited argument, or NULL */
        const char *activity; /* "Reloading the federation", starts the AccessDenied message */
} AuthAction;

/*
 * The first step of an AuthDoneFunc: audit the decision on action (source
 * "@host", caller who, rule how) and, if not allowed, reply AccessDenied
 * "<activity> needs uid 0, ...".  Returns allowed: whether the call goes on.
 */
bool auth_audit_decision(Broker *b, sd_bus_message *m, bool allowed, const char *how, const char *who,
                         const AuthAction *action);
