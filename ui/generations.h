/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "panel.h"

/*
 * The generations window: ListGenerations, and Rollback after a
 * confirmation that says what it changes.
 */
typedef struct Generations Generations;

Generations *generations_new(Panel *p, GtkWindow *parent);
void generations_free(Generations *g);
/* Show the window with a fresh list. */
void generations_show(Generations *g);
