/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "panel.h"

/*
 * Desktop notifications through org.freedesktop.Notifications on the
 * session bus (DBUS_SESSION_BUS_ADDRESS).  Without a session bus or a
 * notification server the messages only go to the trace.
 */
Notifier *notifier_new(void);
void notifier_free(Notifier *n);
/* Plain text; escaped when the server renders body markup. */
void notifier_send(Notifier *n, const char *summary, const char *body);
