/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy_evaluate() never allocates.  This executable is linked with
 * --wrap for the C and GLib allocators, so every allocation made by code
 * in the static policy library (and by this file) goes through a counter;
 * evaluating a mix of requests -- allow, ask, deny, redirects, @dispvm,
 * default deny, malformed, broken policy -- must not move it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "policy/policy.h"

static unsigned long counting, n_allocs;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
gpointer __real_g_malloc(gsize n);
gpointer __real_g_malloc0(gsize n);
gpointer __real_g_realloc(gpointer p, gsize n);
gchar *__real_g_strdup(const gchar *s);
gchar *__real_g_strndup(const gchar *s, gsize n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
gpointer __wrap_g_malloc(gsize n);
gpointer __wrap_g_malloc0(gsize n);
gpointer __wrap_g_realloc(gpointer p, gsize n);
gchar *__wrap_g_strdup(const gchar *s);
gchar *__wrap_g_strndup(const gchar *s, gsize n);

void *__wrap_malloc(size_t n) {
        n_allocs += counting;
        return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m) {
        n_allocs += counting;
        return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n) {
        n_allocs += counting;
        return __real_realloc(p, n);
}
gpointer __wrap_g_malloc(gsize n) {
        n_allocs += counting;
        return __real_g_malloc(n);
}
gpointer __wrap_g_malloc0(gsize n) {
        n_allocs += counting;
        return __real_g_malloc0(n);
}
gpointer __wrap_g_realloc(gpointer p, gsize n) {
        n_allocs += counting;
        return __real_g_realloc(p, n);
}
gchar *__wrap_g_strdup(const gchar *s) {
        n_allocs += counting;
        return __real_g_strdup(s);
}
gchar *__wrap_g_strndup(const gchar *s, gsize n) {
        n_allocs += counting;
        return __real_g_strndup(s, n);
}

static void test_no_allocation(void) {
        PolicyFacts *f = policy_facts_new();
        g_assert_cmpint(policy_facts_add_vm(f, "work", "persona", (const char *const[]) { "dev", NULL }, "tmpl"), ==, 0);
        g_assert_cmpint(policy_facts_add_vm(f, "games", "persona", NULL, NULL), ==, 0);
        g_assert_cmpint(policy_facts_add_vm(f, "tmpl", "disposable-template", (const char *const[]) { "d", NULL }, NULL),
                        ==, 0);
        g_assert_cmpint(policy_facts_add_vm(f, "disp1", "disposable", NULL, "tmpl"), ==, 0);
        g_assert_cmpint(policy_facts_set_active(f, "work"), ==, 0);
        policy_facts_freeze(f);
        PolicySnapshot *s = NULL, *broken = NULL;
        g_assert_cmpint(policy_snapshot_load_string("n.policy",
                                                    "a * work @default allow target=@dispvm\n"
                                                    "a * @anyvm @dispvm allow\n"
                                                    "b +x @tag:dev @role:persona ask default_target=@active\n"
                                                    "c * @dispvm:@tag:d @anyvm allow target=games\n"
                                                    "c * @anyvm games allow\n"
                                                    "d * @anyvm @anyvm allow target=games\n"
                                                    "d * @anyvm games deny\n"
                                                    "* * @host @anyvm allow\n"
                                                    "* * @anyvm @anyvm deny notify=no\n",
                                                    &s),
                        ==, 0);
        g_assert_true(policy_snapshot_is_valid(s));
        g_assert_cmpint(policy_snapshot_load_string("b.policy", "x y\n", &broken), ==, 0);

        const PolicyRequest reqs[] = {
                { "a", NULL, "work", NULL },      { "a", NULL, "games", "@dispvm" }, { "b", "x", "work", "games" },
                { "b", "x", "games", "@default" }, { "c", NULL, "disp1", "work" },    { "d", NULL, "work", "games" },
                { "z", NULL, "@host", "games" },  { "z", NULL, "work", "games" },    { "z", NULL, "nobody", "games" },
                { "z", "bad arg", "work", "games" }, { "z", NULL, "work", "@dispvm:tmpl" },
        };
        unsigned actions[3] = {};
        counting = 1;
        for (int round = 0; round < 100; round++)
                for (size_t i = 0; i < G_N_ELEMENTS(reqs); i++) {
                        PolicyDecision d;
                        (void) policy_evaluate(s, f, &reqs[i], &d);
                        actions[d.action]++;
                        (void) policy_evaluate(broken, f, &reqs[i], &d);
                        actions[d.action]++;
                }
        counting = 0;
        g_assert_cmpuint(n_allocs, ==, 0);
        /* The wrappers do count: the snapshot's own construction allocates. */
        counting = 1;
        PolicySnapshot *t = NULL;
        g_assert_cmpint(policy_snapshot_load_string("t.policy", "a * work games allow\n", &t), ==, 0);
        counting = 0;
        g_assert_cmpuint(n_allocs, >, 0);
        /* every kind of decision was made */
        g_assert_cmpuint(actions[POLICY_ACTION_ALLOW], >, 0);
        g_assert_cmpuint(actions[POLICY_ACTION_ASK], >, 0);
        g_assert_cmpuint(actions[POLICY_ACTION_DENY], >, 0);
        policy_snapshot_unref(t);
        policy_snapshot_unref(s);
        policy_snapshot_unref(broken);
        policy_facts_unref(f);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/policy/evaluate/no-allocation", test_no_allocation);
        return g_test_run();
}
