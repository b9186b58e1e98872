/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The line parser: turns the text of one policy file into rules (added to
 * the loader's snapshot) and directives (handed back to the loader), and
 * reports every error with its line and column.  It never stops at the
 * first error: a broken line is skipped and the next one parsed, so lint
 * shows everything at once.
 */
#pragma once

#include <stddef.h>

#include "policy/loader.h"

/* file: interned path relative to the policy directory.  legacy: NULL for the R4.1 format. */
void parser_parse(Loader *l, const char *file, const char *untrusted_data, size_t size, const LegacyService *legacy);
