/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "panel.h"

/*
 * The panel in a persona: the VMs as the agent's Guest1.ListVMs gives them
 * (name and state; Guest1 has no signals, so it is read again every 2 s),
 * and "switch to" through Guest1.SwitchPersona — the policy service
 * vmfed.Admin.SwitchPersona, which by default asks the host console.
 */
typedef struct GuestView GuestView;

GuestView *guestview_new(Panel *p);
void guestview_free(GuestView *v);
void guestview_present(GuestView *v);
