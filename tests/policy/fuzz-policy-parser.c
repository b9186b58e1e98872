/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the policy parser: any bytes as one policy file
 * (a first byte 0x01 selects the legacy !include-service format for the
 * rest), then compile,
 * format every diagnostic and evaluate a few requests.  Invariants checked:
 * a valid snapshot has no diagnostics, a broken one denies everything,
 * positions are sane, evaluation never fails on a well-formed request.
 *
 * Built with -Dfuzz=true (clang); every build also replays the corpus
 * tests/policy/fuzz-corpus-policy/ through this entry point
 * (tests/lib/fuzz-replay.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "policy/intern.h"
#include "policy/loader.h"
#include "policy/policy.h"
#include "policy/rule.h"
#include "policy/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static PolicyFacts *facts;

static void facts_init(void) {
        if (facts)
                return;
        facts = policy_facts_new();
        g_assert(policy_facts_add_vm(facts, "a", "persona", (const char *const[]) { "t", "dev", NULL }, "d") == 0);
        g_assert(policy_facts_add_vm(facts, "b", "app", (const char *const[]) { "t", NULL }, NULL) == 0);
        g_assert(policy_facts_add_vm(facts, "d", "disposable-template", NULL, NULL) == 0);
        g_assert(policy_facts_add_vm(facts, "x", "disposable", NULL, "d") == 0);
        g_assert(policy_facts_set_active(facts, "a") == 0);
        g_assert(policy_facts_set_default_dispvm(facts, "d") == 0);
        policy_facts_freeze(facts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        facts_init();
        if (size > 1 << 20)
                return 0;
        LegacyService legacy = { .service = 0, .arg = RULE_ARG_ANY };
        bool use_legacy = size > 0 && data[0] == 0x01;
        if (use_legacy) {
                data++;
                size--;
        }

        PolicySnapshot *s = NULL;
        if (loader_load_buffer("fuzz.policy", (const char *) data, size, use_legacy ? &legacy : NULL, &s) < 0)
                abort();

        size_t n = policy_snapshot_n_diagnostics(s);
        if (policy_snapshot_is_valid(s) != (n == 0))
                abort();
        for (size_t i = 0; i < n; i++) {
                const PolicyDiagnostic *d = policy_snapshot_diagnostic(s, i);
                if (!d || !d->message || !d->file || d->line > size + 1)
                        abort();
                char *m = policy_diagnostic_format(d);
                free(m);
        }

        /* lint's cross-check walks every rule and token */
        size_t n_warnings = policy_snapshot_check_facts(s, facts, NULL, NULL);
        if (n_warnings > 4 * policy_snapshot_n_rules(s))
                abort();

        static const PolicyRequest reqs[] = {
                { "s", NULL, "a", "b" },          { "s", "x", "a", "@default" }, { "s", "", "b", "@dispvm" },
                { "svc", "arg", "x", "@dispvm:d" }, { "s", NULL, "@host", "a" },  { "s", NULL, "a", "@host" },
                { "vmfed.OpenURL", NULL, "a", "b" }, { "s", NULL, "nobody", "a" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(reqs); i++) {
                PolicyDecision d;
                if (policy_evaluate(s, facts, &reqs[i], &d) != 0)
                        abort();
                if (!policy_snapshot_is_valid(s) && (d.action != POLICY_ACTION_DENY || d.rule_file))
                        abort();
                if (d.action == POLICY_ACTION_ALLOW && !d.target)
                        abort();
                if ((d.action == POLICY_ACTION_DENY) != (d.reason != NULL))
                        abort();
        }
        policy_snapshot_unref(s);
        return 0;
}
