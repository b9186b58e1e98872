/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The evaluator through the public API: facts, malformed requests, fail
 * closed, lifetimes of the strings in a decision, @dispvm resolution, the
 * redirect checks, and a randomized comparison of the indexed evaluator
 * with a plain first-match scan.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "policy/intern.h"
#include "policy/policy.h"

static PolicyFacts *make_facts(const char *active) {
        PolicyFacts *f = policy_facts_new();
        g_assert_cmpint(policy_facts_add_vm(f, "work", "persona", (const char *const[]) { "dev", "work", NULL },
                                            "dvm-work"),
                        ==, 0);
        g_assert_cmpint(policy_facts_add_vm(f, "games", "persona", (const char *const[]) { "games", NULL }, NULL), ==,
                        0);
        g_assert_cmpint(policy_facts_add_vm(f, "net", "service", NULL, NULL), ==, 0);
        g_assert_cmpint(policy_facts_add_vm(f, "dvm-work", "disposable-template",
                                            (const char *const[]) { "disposable", NULL }, NULL),
                        ==, 0);
        g_assert_cmpint(policy_facts_add_vm(f, "disp7", "disposable", NULL, "dvm-work"), ==, 0);
        g_assert_cmpint(policy_facts_set_active(f, active), ==, 0);
        policy_facts_freeze(f);
        return f;
}

static PolicySnapshot *make_policy(const char *text) {
        PolicySnapshot *s = NULL;
        g_assert_cmpint(policy_snapshot_load_string("e.policy", text, &s), ==, 0);
        return s;
}

static void test_facts_api(void) {
        PolicyFacts *f = policy_facts_new();
        g_assert_cmpint(policy_facts_add_vm(f, "ok", "persona", NULL, NULL), ==, 0);
        g_assert_cmpint(policy_facts_add_vm(f, "ok", "service", NULL, NULL), ==, -EEXIST);
        g_assert_cmpint(policy_facts_add_vm(f, "1bad", "persona", NULL, NULL), ==, -EINVAL);
        g_assert_cmpint(policy_facts_add_vm(f, "@host", "persona", NULL, NULL), ==, -EINVAL);
        g_assert_cmpint(policy_facts_add_vm(f, "x", "king", NULL, NULL), ==, -EINVAL);
        g_assert_cmpint(policy_facts_add_vm(f, "x", "persona", (const char *const[]) { "a b", NULL }, NULL), ==,
                        -EINVAL);
        g_assert_cmpint(policy_facts_add_vm(f, "x", "persona", NULL, "-bad"), ==, -EINVAL);
        g_assert_cmpint(policy_facts_add_vm(f, "svc", "service", NULL, NULL), ==, 0);
        const char *many[34];
        for (int i = 0; i < 33; i++)
                many[i] = "t";
        many[33] = NULL;
        g_assert_cmpint(policy_facts_add_vm(f, "tagged", "persona", many, NULL), ==, -E2BIG);
        g_assert_cmpint(policy_facts_set_active(f, "nope"), ==, -ENOENT);
        g_assert_cmpint(policy_facts_set_active(f, "svc"), ==, -EINVAL);
        g_assert_cmpint(policy_facts_set_active(f, "ok"), ==, 0);
        g_assert_cmpint(policy_facts_set_default_dispvm(f, "not valid"), ==, -EINVAL);
        g_assert_cmpint(policy_facts_set_default_dispvm(f, NULL), ==, 0);
        policy_facts_freeze(f);
        g_assert_cmpint(policy_facts_add_vm(f, "late", "persona", NULL, NULL), ==, -EPERM);
        g_assert_cmpint(policy_facts_set_active(f, NULL), ==, -EPERM);
        g_assert_cmpint(policy_facts_set_default_dispvm(f, NULL), ==, -EPERM);
        g_assert_true(policy_facts_ref(f) == f);
        g_assert_null(policy_facts_unref(f));
        g_assert_null(policy_facts_unref(f));
        g_assert_null(policy_facts_unref(NULL));
}

static void test_malformed(void) {
        PolicyFacts *f = make_facts("work");
        PolicySnapshot *s = make_policy("* * @anyvm @anyvm allow\n");
        PolicyDecision d;
        PolicyRequest ok = { .service = "svc", .source = "work", .target = "games" };

        g_assert_cmpint(policy_evaluate(s, f, &ok, &d), ==, 0);
        g_assert_cmpint(d.action, ==, POLICY_ACTION_ALLOW);
        g_assert_cmpint(policy_evaluate(s, f, &ok, NULL), ==, -EINVAL);
        g_assert_cmpint(policy_evaluate(NULL, f, &ok, &d), ==, -EINVAL);
        g_assert_cmpint(d.action, ==, POLICY_ACTION_DENY);
        g_assert_nonnull(d.reason);
        g_assert_cmpint(policy_evaluate(s, NULL, &ok, &d), ==, -EINVAL);

        const PolicyRequest bad[] = {
                { .service = NULL, .source = "work", .target = "games" },
                { .service = "svc", .source = NULL, .target = "games" },
                { .service = "", .source = "work", .target = "games" },
                { .service = "*", .source = "work", .target = "games" },
                { .service = "a+b", .source = "work", .target = "games" },
                { .service = "svc", .arg = "x y", .source = "work", .target = "games" },
                { .service = "svc", .source = "@anyvm", .target = "games" },
                { .service = "svc", .source = "@default", .target = "games" },
                { .service = "svc", .source = "work", .target = "@tag:x" },
                { .service = "svc", .source = "work", .target = "@dispvm:" },
                { .service = "svc", .source = "work", .target = "gam es" },
                { .service = "svc", .source = "work", .target = "a-name-longer-than-thirty-one-chars" },
                { .service = "svc", .source = "a-name-longer-than-thirty-one-chars", .target = "games" },
                { .service = "s-longer-than-127-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                  .source = "work", .target = "games" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                d.action = POLICY_ACTION_ALLOW;
                g_assert_cmpint(policy_evaluate(s, f, &bad[i], &d), ==, -EINVAL);
                g_assert_cmpint(d.action, ==, POLICY_ACTION_DENY);
                g_assert_nonnull(d.reason);
                g_assert_null(d.target);
                g_assert_null(d.rule_file);
        }

        /* NULL and "" targets mean @default; NULL and "" arguments mean "no argument" ('+'). */
        PolicySnapshot *s2 = make_policy("svc + work @default allow target=games\nsvc * @anyvm @anyvm allow\n");
        PolicyRequest req = { .service = "svc", .source = "work" };
        g_assert_cmpint(policy_evaluate(s2, f, &req, &d), ==, 0);
        g_assert_cmpuint(d.rule_line, ==, 1);
        req.target = "";
        req.arg = "";
        g_assert_cmpint(policy_evaluate(s2, f, &req, &d), ==, 0);
        g_assert_cmpuint(d.rule_line, ==, 1);
        g_assert_cmpstr(d.target, ==, "games");
        policy_snapshot_unref(s2);
        policy_snapshot_unref(s);
        policy_facts_unref(f);
}

static void test_fail_closed(void) {
        PolicyFacts *f = make_facts("work");
        PolicySnapshot *s = make_policy("* * @anyvm @anyvm allow\n* * @host @anyvm allow\nbroken line\n");
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_cmpuint(policy_snapshot_n_rules(s), ==, 2);
        const char *sources[] = { "work", "games", "net", "@host" };
        for (size_t i = 0; i < G_N_ELEMENTS(sources); i++) {
                PolicyRequest req = { .service = "vmfed.OpenURL", .source = sources[i], .target = "games" };
                PolicyDecision d;
                g_assert_cmpint(policy_evaluate(s, f, &req, &d), ==, 0);
                g_assert_cmpint(d.action, ==, POLICY_ACTION_DENY);
                g_assert_null(d.rule_file);
                g_assert_nonnull(strstr(d.reason, "errors"));
        }
        policy_snapshot_unref(s);

        /* An empty (valid) policy denies by default, with its own reason. */
        s = make_policy("");
        PolicyRequest req = { .service = "x", .source = "work", .target = "games" };
        PolicyDecision d;
        g_assert_cmpint(policy_evaluate(s, f, &req, &d), ==, 0);
        g_assert_cmpint(d.action, ==, POLICY_ACTION_DENY);
        g_assert_nonnull(strstr(d.reason, "default deny"));
        policy_snapshot_unref(s);
        policy_facts_unref(f);
}

static void test_lifetimes(void) {
        PolicyFacts *f = make_facts("work");
        PolicySnapshot *s = make_policy("svc * work @anyvm allow target=@dispvm\nsvc * work @dispvm allow\n");
        char source[] = "work", target[] = "games";
        PolicyRequest req = { .service = "svc", .source = source, .target = target };
        PolicyDecision d;
        g_assert_cmpint(policy_evaluate(s, f, &req, &d), ==, 0);
        memset(source, 'x', 4);
        memset(target, 'x', 5);
        /* "@dispvm" resolves to the caller's template; the string belongs to the facts. */
        g_assert_cmpstr(d.target, ==, "@dispvm:dvm-work");
        g_assert_cmpstr(d.rule_file, ==, "e.policy");
        g_assert_cmpuint(d.rule_line, ==, 1);
        policy_snapshot_ref(s);
        policy_snapshot_unref(s);
        g_assert_cmpstr(d.rule_file, ==, "e.policy");
        policy_snapshot_unref(s);
        g_assert_cmpstr(d.target, ==, "@dispvm:dvm-work");
        policy_facts_unref(f);
}

static void test_roles_and_disposables(void) {
        PolicyFacts *f = make_facts("games");
        PolicySnapshot *s = make_policy("r * @role:disposable @role:persona allow\n"
                                        "r * @dispvm @anyvm ask\n"
                                        "r * @anyvm @role:disposable-template deny notify=no\n"
                                        "t * @dispvm:dvm-work @active allow\n"
                                        "t * @anyvm @anyvm ask default_target=@active\n"
                                        "u * @anyvm @anyvm ask default_target=@dispvm\n"
                                        "u * @anyvm @dispvm allow\n");
        g_assert_true(policy_snapshot_is_valid(s));
        struct {
                const char *service, *source, *target;
                PolicyAction action;
                const char *want_target, *want_default;
                unsigned line;
        } cases[] = {
                { "r", "disp7", "games", POLICY_ACTION_ALLOW, "games", NULL, 1 },
                { "r", "disp7", "net", POLICY_ACTION_ASK, "net", NULL, 2 },
                { "r", "work", "dvm-work", POLICY_ACTION_DENY, NULL, NULL, 3 },
                { "t", "disp7", "games", POLICY_ACTION_ALLOW, "games", NULL, 4 },
                { "t", "disp7", "work", POLICY_ACTION_ASK, "work", "games", 5 },
                { "t", "work", "@default", POLICY_ACTION_ASK, NULL, "games", 5 },
                /* default_target=@dispvm resolves per caller and must itself be allowed */
                { "u", "work", "net", POLICY_ACTION_ASK, "net", "@dispvm:dvm-work", 6 },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                PolicyRequest req = { .service = cases[i].service, .source = cases[i].source,
                                      .target = cases[i].target };
                PolicyDecision d;
                g_assert_cmpint(policy_evaluate(s, f, &req, &d), ==, 0);
                g_test_message("case %zu", i);
                g_assert_cmpint(d.action, ==, cases[i].action);
                g_assert_cmpstr(d.target, ==, cases[i].want_target);
                g_assert_cmpstr(d.default_target, ==, cases[i].want_default);
                g_assert_cmpuint(d.rule_line, ==, cases[i].line);
        }
        policy_snapshot_unref(s);
        policy_facts_unref(f);
}

/* ---- randomized: the index against a plain scan ------------------------ */

typedef struct SimpleRule {
        int service; /* -1 = '*' */
        int arg;     /* -1 = '*', 0 = '+', k = "+ak" */
        int src_kind, src;  /* 0 name, 1 @anyvm, 2 @tag, 3 @role:persona, 4 @host */
        int dst_kind, dst;
        PolicyAction action;
} SimpleRule;

#define N_VMS 8
static const char *const vm_names[N_VMS] = { "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7" };

static bool simple_party_matches(int kind, int which, int vm /* -1 host */) {
        switch (kind) {
        case 0:
                return vm == which;
        case 1:
                return vm >= 0;
        case 2:
                return vm >= 0 && (vm % 3) == which; /* VM v has tag "t(v%3)" */
        case 3:
                return vm >= 0 && vm % 2 == 0;       /* even VMs are personas */
        default:
                return vm < 0;
        }
}

static void simple_format(GString *out, int kind, int which) {
        switch (kind) {
        case 0:
                g_string_append(out, vm_names[which]);
                break;
        case 1:
                g_string_append(out, "@anyvm");
                break;
        case 2:
                g_string_append_printf(out, "@tag:t%d", which);
                break;
        case 3:
                g_string_append(out, "@role:persona");
                break;
        default:
                g_string_append(out, "@host");
        }
}

static void test_random_against_scan(void) {
        PolicyFacts *f = policy_facts_new();
        for (int v = 0; v < N_VMS; v++) {
                g_autofree char *tag = g_strdup_printf("t%d", v % 3);
                g_assert_cmpint(policy_facts_add_vm(f, vm_names[v], v % 2 == 0 ? "persona" : "app",
                                                    (const char *const[]) { tag, NULL }, NULL),
                                ==, 0);
        }
        policy_facts_freeze(f);
        GRand *rand = g_rand_new_with_seed(4242);

        for (int round = 0; round < 200; round++) {
                int n = g_rand_int_range(rand, 1, 60);
                SimpleRule *rules = g_new0(SimpleRule, n);
                GString *text = g_string_new(NULL);
                for (int i = 0; i < n; i++) {
                        SimpleRule *r = &rules[i];
                        r->service = g_rand_int_range(rand, -1, 4);
                        r->arg = r->service < 0 ? -1 : g_rand_int_range(rand, -1, 3);
                        r->src_kind = g_rand_int_range(rand, 0, 5);
                        r->src = r->src_kind == 0 ? g_rand_int_range(rand, 0, N_VMS) : g_rand_int_range(rand, 0, 3);
                        r->dst_kind = g_rand_int_range(rand, 0, 5);
                        r->dst = r->dst_kind == 0 ? g_rand_int_range(rand, 0, N_VMS) : g_rand_int_range(rand, 0, 3);
                        r->action = (PolicyAction) g_rand_int_range(rand, 0, 3);
                        if (r->service < 0)
                                g_string_append(text, "* ");
                        else
                                g_string_append_printf(text, "s%d ", r->service);
                        if (r->arg < 0)
                                g_string_append(text, "* ");
                        else if (r->arg == 0)
                                g_string_append(text, "+ ");
                        else
                                g_string_append_printf(text, "+a%d ", r->arg);
                        simple_format(text, r->src_kind, r->src);
                        g_string_append_c(text, ' ');
                        simple_format(text, r->dst_kind, r->dst);
                        g_string_append_printf(text, " %s\n", policy_action_to_string(r->action));
                }
                PolicySnapshot *s = make_policy(text->str);
                g_assert_true(policy_snapshot_is_valid(s));

                for (int q = 0; q < 200; q++) {
                        int svc = g_rand_int_range(rand, 0, 5), arg = g_rand_int_range(rand, 0, 3);
                        int src = g_rand_int_range(rand, -1, N_VMS), dst = g_rand_int_range(rand, -1, N_VMS);
                        g_autofree char *service = g_strdup_printf("s%d", svc);
                        g_autofree char *argument = arg ? g_strdup_printf("a%d", arg) : NULL;
                        PolicyRequest req = { .service = service, .arg = argument,
                                              .source = src < 0 ? "@host" : vm_names[src],
                                              .target = dst < 0 ? "@host" : vm_names[dst] };
                        int want = -1;
                        for (int i = 0; i < n && want < 0; i++) {
                                const SimpleRule *r = &rules[i];
                                if ((r->service < 0 || r->service == svc) && (r->arg < 0 || r->arg == arg) &&
                                    simple_party_matches(r->src_kind, r->src, src) &&
                                    simple_party_matches(r->dst_kind, r->dst, dst))
                                        want = i;
                        }
                        PolicyDecision d;
                        g_assert_cmpint(policy_evaluate(s, f, &req, &d), ==, 0);
                        if (want < 0) {
                                g_assert_null(d.rule_file);
                                g_assert_cmpint(d.action, ==, POLICY_ACTION_DENY);
                        } else {
                                if (d.rule_line != (unsigned) want + 1)
                                        g_printerr("policy:\n%s\nrequest %s+%s %s -> %s: want line %d, got %u\n",
                                                   text->str, service, argument ? argument : "", req.source,
                                                   req.target, want + 1, d.rule_line);
                                g_assert_cmpuint(d.rule_line, ==, (unsigned) want + 1);
                                g_assert_cmpint(d.action, ==, rules[want].action);
                        }
                }
                policy_snapshot_unref(s);
                g_string_free(text, TRUE);
                g_free(rules);
        }
        g_rand_free(rand);
        policy_facts_unref(f);
}

/* Names shared by snapshots and facts are released with the last of them. */
static void test_name_registry(void) {
        size_t before = policy_name_count();
        PolicyFacts *f = make_facts("work");
        PolicySnapshot *s = make_policy("svc * brand-new-vm @tag:brand-new-tag allow\nsvc * work games allow\n");
        g_assert_cmpuint(policy_name_count(), >, before);
        PolicySnapshot *s2 = make_policy("svc * brand-new-vm games deny\n");
        policy_snapshot_unref(s);
        policy_facts_unref(f);
        g_assert_cmpuint(policy_name_count(), ==, before + 2); /* brand-new-vm and games, still used by s2 */
        policy_snapshot_unref(s2);
        g_assert_cmpuint(policy_name_count(), ==, before);
}

/* The shared table drops names in any order (backward-shift deletion) and keeps finding the rest. */
static void test_name_registry_churn(void) {
        enum { N = 3000 };
        size_t before = policy_name_count();
        uint32_t *ids = g_new0(uint32_t, N);
        bool *held = g_new0(bool, N);
        GRand *rand = g_rand_new_with_seed(12);
        char name[32];

        for (int i = 0; i < N; i++) {
                snprintf(name, sizeof name, "churn%d", i);
                ids[i] = policy_name_ref(name, strlen(name));
                held[i] = true;
        }
        for (int round = 0; round < 4 * N; round++) {
                int i = g_rand_int_range(rand, 0, N);
                snprintf(name, sizeof name, "churn%d", i);
                if (held[i]) {
                        /* Still there under the same id (a second reference), then both dropped. */
                        g_assert_cmpuint(policy_name_ref(name, strlen(name)), ==, ids[i]);
                        policy_name_unref(ids[i]);
                        policy_name_unref(ids[i]);
                        held[i] = false;
                } else {
                        ids[i] = policy_name_ref(name, strlen(name));
                        g_assert_cmpuint(ids[i], <, 0x7fffffffu);
                        held[i] = true;
                }
        }
        size_t n_held = 0;
        for (int i = 0; i < N; i++)
                if (held[i]) {
                        snprintf(name, sizeof name, "churn%d", i);
                        g_assert_cmpuint(policy_name_ref(name, strlen(name)), ==, ids[i]);
                        policy_name_unref(ids[i]);
                        n_held++;
                }
        g_assert_cmpuint(policy_name_count(), ==, before + n_held);
        for (int i = 0; i < N; i++)
                if (held[i])
                        policy_name_unref(ids[i]);
        g_assert_cmpuint(policy_name_count(), ==, before);
        /* Freed ids are reused: the table does not grow with churn. */
        g_assert_cmpuint(policy_name_ref("churn-again", 11), <=, (uint32_t) (before + N + 1));
        policy_name_unref(policy_name_ref("churn-again", 11));
        policy_name_unref(policy_name_ref("churn-again", 11));
        g_rand_free(rand);
        g_free(held);
        g_free(ids);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/policy/evaluate/facts-api", test_facts_api);
        g_test_add_func("/policy/evaluate/malformed", test_malformed);
        g_test_add_func("/policy/evaluate/fail-closed", test_fail_closed);
        g_test_add_func("/policy/evaluate/lifetimes", test_lifetimes);
        g_test_add_func("/policy/evaluate/roles-and-disposables", test_roles_and_disposables);
        g_test_add_func("/policy/evaluate/random-against-scan", test_random_against_scan);
        g_test_add_func("/policy/evaluate/name-registry", test_name_registry);
        g_test_add_func("/policy/evaluate/name-registry-churn", test_name_registry_churn);
        return g_test_run();
}
