/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* policy_snapshot_check_facts(): warnings for lint about names that match nothing. */
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "policy/facts.h"
#include "policy/snapshot.h"

static bool any_vm_has_tag(const PolicyFacts *f, const char *tag) {
        for (size_t i = 0; i < f->n_vms; i++)
                for (size_t k = 0; k < f->vms[i].n_tags; k++)
                        if (strcmp(f->vms[i].tags[k], tag) == 0)
                                return true;
        return false;
}

static size_t check_token(const PolicySnapshot *s, const PolicyFacts *f, const PolicyRule *r, const PolicyToken *t,
                          unsigned column, const char *where, const char *consequence, PolicyWarningFunc func,
                          void *userdata) {
        g_autofree char *message = NULL;
        const char *value = t->id && t->kind != TOKEN_ROLE ? intern_string(&s->strings, t->id) : NULL;

        switch ((TokenKind) t->kind) {
        case TOKEN_NAME:
                if (!facts_find_vm(f, value))
                        message = g_strdup_printf("%s '%s' is not a known VM; %s", where, value, consequence);
                break;
        case TOKEN_DISPVM_NAME: {
                const FactsVm *vm = facts_find_vm(f, value);
                if (!vm)
                        message = g_strdup_printf("%s '%s': no VM '%s'", where, t->text, value);
                else if (vm->role != POLICY_ROLE_DISPOSABLE_TEMPLATE)
                        message = g_strdup_printf("%s '%s': '%s' is not a disposable template", where, t->text, value);
                break;
        }
        case TOKEN_TAG:
        case TOKEN_DISPVM_TAG:
                if (!any_vm_has_tag(f, value))
                        message = g_strdup_printf("%s '%s': no VM has tag '%s'", where, t->text, value);
                break;
        default:
                break;
        }
        if (!message)
                return 0;
        if (func) {
                PolicyDiagnostic d = {
                        .file = (char *) r->file,
                        .line = r->line,
                        .column = column,
                        .message = message,
                };
                func(&d, userdata);
        }
        return 1;
}

size_t policy_snapshot_check_facts(const PolicySnapshot *s, const PolicyFacts *f, PolicyWarningFunc func,
                                   void *userdata) {
        size_t n = 0;
        if (!s || !f)
                return 0;
        for (size_t i = 0; i < s->n_rules; i++) {
                const PolicyRule *r = &s->rules[i];
                n += check_token(s, f, r, &r->source, r->columns[0], "source", "the rule never matches it", func,
                                 userdata);
                n += check_token(s, f, r, &r->target, r->columns[1], "target", "the rule never matches it", func,
                                 userdata);
                n += check_token(s, f, r, &r->redirect, r->columns[2], "target=", "the redirect is always refused",
                                 func, userdata);
                n += check_token(s, f, r, &r->default_target, r->columns[3], "default_target=",
                                 "the default is always dropped", func, userdata);
        }
        return n;
}
