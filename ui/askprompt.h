/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "panel.h"

/*
 * The ask prompt (Qubes' qrexec-policy-agent, with its lessons): one window
 * per AskRequested (and per question pending at start, ListAsks) showing the
 * source VM with its colour, the service and its argument as plain text
 * (safetext_make, never markup), a target chooser with only the broker's
 * candidates (nothing chosen unless default_target), the time left before
 * the broker's timeout.  Allow is inactive for 1 s each time the window
 * gains focus, and Enter/space do nothing then; Esc or closing denies.
 * AskFinished closes the window; a denial or a timeout is notified.
 */
AskPrompts *askprompt_new(Panel *p);
void askprompt_free(AskPrompts *a);

/* The service and argument parts of "SERVICE+ARG" (arg "" when none). */
void askprompt_split_service(const char *service, char **name, char **arg);
