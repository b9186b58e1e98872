/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Table-driven conformance test: conformance.txt holds facts, policies and
 * (request, expected decision) cases.  Format:
 *
 *   vm NAME ROLE [tags=T1,T2] [dispvm=TEMPLATE]   add a VM to the facts
 *   active NAME|-                                 the running persona
 *   default-dispvm NAME|-                         the federation default template
 *   policy NAME                                   start a policy text ...
 *   end                                           ... and end it
 *   case SOURCE TARGET SERVICE[+ARG] => ACTION [target=X] [default_target=Y]
 *        [line=N|none] [autostart=no] [notify=no] [malformed]
 *
 * A case checks action, target and default_target exactly (absent = NULL),
 * the rule line (line=none: the default deny or a fail-closed deny),
 * autostart and notify (absent = yes), and the return code (malformed =
 * -EINVAL).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "policy/policy.h"

typedef struct State {
        GPtrArray *vm_lines; /* "NAME ROLE ..." */
        char *active;
        char *default_dispvm;
        PolicySnapshot *snapshot;
        char *policy_name;
        unsigned n_cases, n_failed;
} State;

static PolicyFacts *build_facts(State *st, const char *where) {
        PolicyFacts *f = policy_facts_new();
        for (guint i = 0; i < st->vm_lines->len; i++) {
                g_auto(GStrv) w = g_strsplit_set(st->vm_lines->pdata[i], " \t", -1);
                g_autoptr(GPtrArray) words = g_ptr_array_new();
                for (char **p = w; *p; p++)
                        if (**p)
                                g_ptr_array_add(words, *p);
                g_assert_cmpuint(words->len, >=, 2);
                g_auto(GStrv) tags = NULL;
                const char *dispvm = NULL;
                for (guint k = 2; k < words->len; k++) {
                        const char *x = words->pdata[k];
                        if (g_str_has_prefix(x, "tags="))
                                tags = g_strsplit(x + 5, ",", -1);
                        else if (g_str_has_prefix(x, "dispvm="))
                                dispvm = x + 7;
                        else
                                g_error("%s: bad vm word '%s'", where, x);
                }
                int r = policy_facts_add_vm(f, words->pdata[0], words->pdata[1], (const char *const *) tags, dispvm);
                if (r < 0)
                        g_error("%s: policy_facts_add_vm(%s): %s", where, (char *) words->pdata[0], g_strerror(-r));
        }
        g_assert_cmpint(policy_facts_set_active(f, st->active), ==, 0);
        g_assert_cmpint(policy_facts_set_default_dispvm(f, st->default_dispvm), ==, 0);
        policy_facts_freeze(f);
        return f;
}

static void run_case(State *st, const char *where, const char *spec) {
        g_auto(GStrv) halves = g_strsplit(spec, "=>", 2);
        g_assert_nonnull(halves[1]);
        g_auto(GStrv) req_words = g_strsplit_set(g_strstrip(halves[0]), " \t", -1);
        g_auto(GStrv) exp_words = g_strsplit_set(g_strstrip(halves[1]), " \t", -1);
        g_assert_cmpuint(g_strv_length(req_words), ==, 3);
        g_assert_nonnull(st->snapshot);

        g_autofree char *service = g_strdup(req_words[2]);
        char *plus = strchr(service, '+');
        const char *arg = NULL;
        if (plus) {
                *plus = '\0';
                arg = plus + 1;
        }

        const char *want_action = exp_words[0], *want_target = NULL, *want_default = NULL, *want_line = NULL;
        bool want_autostart = true, want_notify = true, want_malformed = false;
        for (char **w = exp_words + 1; *w; w++) {
                if (!**w)
                        continue;
                if (g_str_has_prefix(*w, "target="))
                        want_target = *w + 7;
                else if (g_str_has_prefix(*w, "default_target="))
                        want_default = *w + 15;
                else if (g_str_has_prefix(*w, "line="))
                        want_line = *w + 5;
                else if (strcmp(*w, "autostart=no") == 0)
                        want_autostart = false;
                else if (strcmp(*w, "notify=no") == 0)
                        want_notify = false;
                else if (strcmp(*w, "malformed") == 0)
                        want_malformed = true;
                else
                        g_error("%s: bad expectation '%s'", where, *w);
        }
        g_assert_nonnull(want_line);

        PolicyFacts *f = build_facts(st, where);
        PolicyRequest req = { .service = service, .arg = arg, .source = req_words[0], .target = req_words[1] };
        PolicyDecision d;
        int r = policy_evaluate(st->snapshot, f, &req, &d);

        g_autofree char *got_line = d.rule_file ? g_strdup_printf("%u", d.rule_line) : g_strdup("none");
        bool ok = strcmp(policy_action_to_string(d.action), want_action) == 0 &&
                  g_strcmp0(d.target, want_target) == 0 && g_strcmp0(d.default_target, want_default) == 0 &&
                  strcmp(got_line, want_line) == 0 && d.autostart == want_autostart && d.notify == want_notify &&
                  (want_malformed ? r == -EINVAL : r == 0) &&
                  (!d.rule_file || strcmp(d.rule_file, st->policy_name) == 0) &&
                  (d.action == POLICY_ACTION_DENY) == (d.reason != NULL);
        st->n_cases++;
        if (!ok) {
                st->n_failed++;
                g_printerr("%s: FAIL [policy %s] %s\n   got: %s target=%s default_target=%s line=%s autostart=%d "
                           "notify=%d r=%d reason=%s\n",
                           where, st->policy_name, spec, policy_action_to_string(d.action),
                           d.target ? d.target : "(null)", d.default_target ? d.default_target : "(null)", got_line,
                           d.autostart, d.notify, r, d.reason ? d.reason : "(null)");
        }
        policy_facts_unref(f);
}

static void test_conformance(void) {
        g_autofree char *path = g_test_build_filename(G_TEST_DIST, "conformance.txt", NULL);
        g_autofree char *text = NULL;
        g_autoptr(GError) e = NULL;
        g_assert_true(g_file_get_contents(path, &text, NULL, &e));

        State st = { .vm_lines = g_ptr_array_new_with_free_func(g_free) };
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        GString *policy = NULL;
        unsigned policy_start = 0;

        for (unsigned i = 0; lines[i]; i++) {
                g_autofree char *where = g_strdup_printf("conformance.txt:%u", i + 1);
                const char *raw = lines[i];
                if (policy) {
                        if (strcmp(raw, "end") == 0) {
                                policy_snapshot_unref(st.snapshot);
                                g_assert_cmpint(policy_snapshot_load_string(st.policy_name, policy->str, &st.snapshot),
                                                ==, 0);
                                if (g_str_has_prefix(st.policy_name, "broken"))
                                        g_assert_false(policy_snapshot_is_valid(st.snapshot));
                                else if (!policy_snapshot_is_valid(st.snapshot)) {
                                        for (size_t k = 0; k < policy_snapshot_n_diagnostics(st.snapshot); k++) {
                                                g_autofree char *m = policy_diagnostic_format(
                                                        policy_snapshot_diagnostic(st.snapshot, k));
                                                g_printerr("policy at line %u: %s\n", policy_start, m);
                                        }
                                        g_error("policy %s is unexpectedly invalid", st.policy_name);
                                }
                                g_string_free(policy, TRUE);
                                policy = NULL;
                        } else {
                                g_string_append(policy, raw);
                                g_string_append_c(policy, '\n');
                        }
                        continue;
                }
                g_autofree char *line = g_strstrip(g_strdup(raw));
                if (line[0] == '\0' || line[0] == '#')
                        continue;
                if (g_str_has_prefix(line, "vm "))
                        g_ptr_array_add(st.vm_lines, g_strdup(line + 3));
                else if (g_str_has_prefix(line, "active ")) {
                        g_free(st.active);
                        st.active = strcmp(line + 7, "-") == 0 ? NULL : g_strdup(line + 7);
                } else if (g_str_has_prefix(line, "default-dispvm ")) {
                        g_free(st.default_dispvm);
                        st.default_dispvm = strcmp(line + 15, "-") == 0 ? NULL : g_strdup(line + 15);
                } else if (g_str_has_prefix(line, "policy ")) {
                        g_free(st.policy_name);
                        st.policy_name = g_strdup(line + 7);
                        policy = g_string_new(NULL);
                        policy_start = i + 1;
                } else if (g_str_has_prefix(line, "case "))
                        run_case(&st, where, line + 5);
                else
                        g_error("%s: cannot parse '%s'", where, line);
        }
        g_assert_null(policy);
        g_test_message("%u cases, %u failed", st.n_cases, st.n_failed);
        g_print("# conformance: %u cases, %u failed\n", st.n_cases, st.n_failed);
        g_assert_cmpuint(st.n_cases, >=, 60);
        g_assert_cmpuint(st.n_failed, ==, 0);

        policy_snapshot_unref(st.snapshot);
        g_ptr_array_unref(st.vm_lines);
        g_free(st.active);
        g_free(st.default_dispvm);
        g_free(st.policy_name);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/policy/conformance", test_conformance);
        return g_test_run();
}
