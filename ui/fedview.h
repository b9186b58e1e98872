/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "panel.h"

/*
 * The federation view: every VM (role, colour, state, live from the
 * ObjectManager and PropertiesChanged), the active persona, the selected
 * VM's actions (start, stop then force stop, switch to this persona) with
 * the Progress lines of what runs, and the generations window.
 */
FedView *fedview_new(Panel *p);
void fedview_free(FedView *v);
void fedview_present(FedView *v);
GtkWindow *fedview_window(FedView *v);
