/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <glib.h>

#include "policy/policy.h"

const char *policy_action_to_string(PolicyAction a) {
        switch (a) {
        case POLICY_ACTION_DENY:
                return "deny";
        case POLICY_ACTION_ALLOW:
                return "allow";
        case POLICY_ACTION_ASK:
                return "ask";
        }
        return NULL;
}

char *policy_diagnostic_format(const PolicyDiagnostic *d) {
        if (d->line == 0)
                return g_strdup_printf("%s: %s", d->file, d->message);
        if (d->column == 0)
                return g_strdup_printf("%s:%u: %s", d->file, d->line, d->message);
        return g_strdup_printf("%s:%u:%u: %s", d->file, d->line, d->column, d->message);
}
