/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Ask: requests the policy answered with `ask`, waiting for a person.
 *
 * Each is announced on the admin side as the signal
 * org.vmfed.Federation1.Ask.AskRequested(t id, s source, s service,
 * as candidates, s default_target) on /org/vmfed/Federation1 and answered
 * by an authorized caller (broker/auth.c) with AnswerAsk(id, target) or
 * DenyAsk(id); unanswered asks are denied after Timeout= seconds.
 * AskFinished(t id, s outcome, s target) tells every watcher it is gone
 * (outcome "allowed", "denied", "timeout", "cancelled").
 *
 * The answer is checked twice: the target must be one of the candidates the
 * broker offered, and the requester re-checks it against the policy in
 * force at answer time (AskAnswerFn), so an answer cannot name a target the
 * policy denies.
 */
#pragma once

#include <stdint.h>

#include "broker/broker.h"

#define ASK_INTERFACE "org.vmfed.Federation1.Ask"
#define ASK_MAX_PENDING 64
#define ASK_MAX_PENDING_PER_SOURCE 8 /* one VM cannot crowd out the others' questions */

typedef struct AskQueue AskQueue;

/*
 * target: the chosen candidate, or NULL when the ask was denied, timed out
 * or was cancelled (why says which; the return value is then ignored).
 * With a target: return 0 when the request goes ahead, or a negative errno
 * with *why (g_free) when the re-check refuses it — AnswerAsk then fails
 * with that sentence.  Called exactly once.
 */
typedef int (*AskAnswerFn)(Broker *b, const char *target, const char *why, char **ret_why, void *userdata);

AskQueue *ask_queue_new(unsigned timeout_sec);
/* Pending asks are dropped without calling back (the broker is going away). */
AskQueue *ask_queue_free(AskQueue *q);

int ask_register(Broker *b);

/* Deny every pending ask (AskFinished "cancelled"), calling back each. */
void ask_queue_cancel_all(Broker *b);

/*
 * Queue an ask.  candidates: NULL-terminated, at least one.  notify: the
 * asking rule's notify= (its outcome, allowed or denied, is then also
 * Policy.RequestNotified).  Returns the id (> 0) or -EBUSY when too many
 * asks are pending (in all, or from source).
 */
int64_t ask_new(Broker *b, const char *source, const char *service, char **candidates, const char *default_target,
                bool notify, AskAnswerFn answer, void *userdata);
