/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Parser and loader: every kind of error, with the file, line and column it
 * is reported at; what is accepted; file order, include rules, overrides.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "policy/policy.h"

static void dump(const PolicySnapshot *s) {
        for (size_t i = 0; i < policy_snapshot_n_diagnostics(s); i++) {
                g_autofree char *m = policy_diagnostic_format(policy_snapshot_diagnostic(s, i));
                g_printerr("  diagnostic: %s\n", m);
        }
}

static bool has_diagnostic(const PolicySnapshot *s, const char *file, unsigned line, unsigned column,
                           const char *substr) {
        for (size_t i = 0; i < policy_snapshot_n_diagnostics(s); i++) {
                const PolicyDiagnostic *d = policy_snapshot_diagnostic(s, i);
                if (strcmp(d->file, file) == 0 && d->line == line && d->column == column &&
                    strstr(d->message, substr))
                        return true;
        }
        return false;
}

static void assert_error_full(const char *text, unsigned line, unsigned column, const char *substr, size_t n) {
        PolicySnapshot *s = NULL;
        g_assert_cmpint(policy_snapshot_load_string("t.policy", text, &s), ==, 0);
        if (policy_snapshot_is_valid(s) || !has_diagnostic(s, "t.policy", line, column, substr) ||
            (n > 0 && policy_snapshot_n_diagnostics(s) != n)) {
                g_printerr("text: %s\nwanted %u:%u '%s' (%zu diagnostics)\n", text, line, column, substr, n);
                dump(s);
                g_assert_not_reached();
        }
        policy_snapshot_unref(s);
}

#define assert_error(text, line, column, substr) assert_error_full(text, line, column, substr, 1)

static void assert_valid(const char *text, size_t n_rules) {
        PolicySnapshot *s = NULL;
        g_assert_cmpint(policy_snapshot_load_string("t.policy", text, &s), ==, 0);
        if (!policy_snapshot_is_valid(s)) {
                g_printerr("text: %s\n", text);
                dump(s);
                g_assert_not_reached();
        }
        g_assert_cmpuint(policy_snapshot_n_diagnostics(s), ==, 0);
        g_assert_cmpuint(policy_snapshot_n_rules(s), ==, n_rules);
        policy_snapshot_unref(s);
}

static void test_valid(void) {
        assert_valid("", 0);
        assert_valid("\n\n# just a comment\n   # indented comment\n\t\n", 0);
        assert_valid("vmfed.OpenURL * @anyvm @anyvm deny\n", 1);
        /* tabs, CRLF, no final newline */
        assert_valid("vmfed.OpenURL\t*\t@anyvm\t@anyvm\tdeny\r\nsvc + a b allow", 2);
        /* comments may hold any text, also non-ASCII */
        assert_valid("# Zürich → Minas Tirith\nsvc +arg.with-chars_+x a b ask\n", 1);
        assert_valid("* * @anyvm @anyvm deny\n"
                     "s * @tag:t-1.x @role:persona allow\n"
                     "s * @role:disposable @role:disposable-template ask\n"
                     "s * @host @host allow\n"
                     "s * @adminvm @adminvm allow\n"
                     "s * @active @active allow\n"
                     "s * @dispvm @dispvm allow\n"
                     "s * @dispvm:tmpl @dispvm:tmpl allow\n"
                     "s * @dispvm:@tag:t @dispvm:@tag:t ask\n"
                     "s * vm1 @default allow target=vm2\n"
                     "s * vm1 @default allow target=@dispvm\n"
                     "s * vm1 @default allow target=@dispvm:tmpl\n"
                     "s * vm1 @default allow target=@host\n"
                     "s * vm1 @default allow target=@active\n"
                     "s * vm1 @default ask\n"
                     "s * vm1 @anyvm ask default_target=@dispvm target=x autostart=no notify=no\n"
                     "s * vm1 @anyvm deny notify=no\n"
                     "s * vm1 @anyvm allow autostart=yes notify=true\n",
                     18);
}

static void test_errors_fields(void) {
        /* too few fields: the column after the last field, naming what is missing */
        assert_error("svc * @anyvm\n", 1, 13, "expected TARGET");
        assert_error("svc\n", 1, 4, "expected ARGUMENT");
        assert_error("\n\n  svc * a b\n", 3, 12, "expected ACTION");
        /* service */
        assert_error("sv!c * a b allow\n", 1, 3, "invalid character '!' in service name");
        assert_error("svc+x * a b allow\n", 1, 4, "contains '+'");
        assert_error("svc@x * a b allow\n", 1, 4, "invalid character '@'");
        /* argument */
        assert_error("svc x a b allow\n", 1, 5, "expected an argument");
        assert_error("svc +a/b a b allow\n", 1, 7, "invalid character '/' in argument");
        assert_error("* +x a b allow\n", 1, 3, "service '*' only takes the argument '*'");
        assert_error("* + a b allow\n", 1, 3, "service '*' only takes the argument '*'");
        /* action */
        assert_error("svc * a b permit\n", 1, 11, "unknown action 'permit'");
        assert_error("svc * a b Allow\n", 1, 11, "unknown action");
}

static void test_errors_tokens(void) {
        assert_error("svc * @foo b allow\n", 1, 7, "unknown token '@foo'");
        assert_error("svc * @default b allow\n", 1, 7, "cannot be used as a source");
        assert_error("svc * a @tag: allow\n", 1, 14, "needs a value");
        assert_error("svc * @role: b allow\n", 1, 13, "needs a value");
        assert_error("svc * @dispvm: b allow\n", 1, 15, "needs a value");
        assert_error("svc * 1abc b allow\n", 1, 7, "must start with a letter");
        assert_error("svc * ab%c b allow\n", 1, 9, "invalid character '%'");
        assert_error("svc * a-very-long-vm-name-that-is-too-long b allow\n", 1, 38, "longer than 31");
        assert_error("svc * @role:king b allow\n", 1, 13, "unknown role 'king'");
        assert_error("svc * dom0 b allow\n", 1, 7, "@host");
        assert_error("svc * a @type:AppVM allow\n", 1, 9, "@role:");
        assert_error("svc * a @tag:x/y allow\n", 1, 15, "invalid character '/' in tag");
        assert_error("svc * @dispvm:@foo b allow\n", 1, 15, "after @dispvm:");
        assert_error("svc * @dispvm:-x b allow\n", 1, 15, "must start with a letter");
        /* tokens valid elsewhere but not here */
        assert_error("svc * a @default allow target=@anyvm\n", 1, 31, "cannot be used as a redirect target");
        assert_error("svc * a b allow target=@tag:x\n", 1, 24, "cannot be used as a redirect target");
        assert_error("svc * a b ask default_target=@default\n", 1, 30, "cannot be used as a redirect target");
        assert_error("svc * a b allow target=@dispvm:@tag:x\n", 1, 24, "cannot be used as a redirect target");
}

static void test_errors_params(void) {
        assert_error("svc * a b allow foo\n", 1, 17, "expected a parameter KEY=VALUE");
        assert_error("svc * a b allow color=red\n", 1, 17, "unknown parameter 'color'");
        assert_error("svc * a b deny target=c\n", 1, 16, "only valid for allow and ask, not for deny");
        assert_error("svc * a b allow default_target=c\n", 1, 17, "only valid for ask");
        assert_error("svc * a b deny autostart=no\n", 1, 16, "only valid for allow and ask");
        assert_error("svc * a b allow notify=no notify=yes\n", 1, 27, "given twice");
        assert_error("svc * a b allow autostart=maybe\n", 1, 27, "expected yes or no");
        assert_error("svc * a b allow target=\n", 1, 24, "needs a value");
        assert_error("svc * a b allow user=root\n", 1, 17, "'user=' is not supported");
        assert_error("svc * a @default allow\n", 1, 18, "needs target=");
        assert_error("svc * a @default allow notify=no\n", 1, 18, "needs target=");
}

static void test_errors_bytes(void) {
        assert_error("svc * a\x01 b allow\n", 1, 8, "invalid byte 0x01");
        assert_error("svc * \xc3\xa4 b allow\n", 1, 7, "invalid byte 0xc3");
        assert_error("svc * a b allow\x7f\n", 1, 16, "invalid byte 0x7f");
        g_autofree char *longline = g_strnfill(5000, 'x');
        g_autofree char *text = g_strdup_printf("%s\n", longline);
        assert_error(text, 1, 4096, "longer than 4095");
        assert_error("svc * a b allow notify=no autostart=no target=x t=1 t=2 t=3 t=4 t=5 t=6 t=7 t=8 t=9\n", 1, 81,
                     "too many parameters");
}

static void test_errors_directives(void) {
        assert_error("!foo\n", 1, 1, "unknown directive '!foo'");
        assert_error("!include\n", 1, 1, "exactly one path, got 0");
        assert_error("!include a b\n", 1, 1, "exactly one path, got 2");
        assert_error("!include-dir\n", 1, 1, "exactly one path");
        assert_error("!include-service svc *\n", 1, 1, "SERVICE ARGUMENT PATH");
        assert_error("!include-service sv/c * x\n", 1, 20, "invalid character '/'");
        assert_error("!compat-4.0\n", 1, 1, "not supported");
        assert_error("  !include x\n", 1, 12, "not available in a policy given as one text");
}

static void test_many_errors(void) {
        /* Every bad line is reported, good lines are still parsed. */
        PolicySnapshot *s = NULL;
        g_assert_cmpint(policy_snapshot_load_string("m.policy",
                                                    "good * a b allow\n"
                                                    "bad * a b alow\n"
                                                    "# comment\n"
                                                    "also * @x b allow\n"
                                                    "good2 * a b deny\n"
                                                    "last * a b allow target=@anyvm notify=maybe\n",
                                                    &s),
                        ==, 0);
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_cmpuint(policy_snapshot_n_diagnostics(s), ==, 4);
        g_assert_true(has_diagnostic(s, "m.policy", 2, 11, "unknown action"));
        g_assert_true(has_diagnostic(s, "m.policy", 4, 8, "unknown token"));
        g_assert_true(has_diagnostic(s, "m.policy", 6, 25, "redirect target"));
        g_assert_true(has_diagnostic(s, "m.policy", 6, 39, "expected yes or no"));
        g_assert_cmpuint(policy_snapshot_n_rules(s), ==, 2);
        g_autofree char *f = policy_diagnostic_format(policy_snapshot_diagnostic(s, 0));
        g_assert_cmpstr(f, ==, "m.policy:2:11: unknown action 'alow'; expected allow, deny or ask");
        policy_snapshot_unref(s);

        /* Garbage input: the diagnostics stay bounded. */
        GString *g = g_string_new(NULL);
        for (int i = 0; i < 5000; i++)
                g_string_append(g, "x y z\n");
        g_assert_cmpint(policy_snapshot_load_string("g.policy", g->str, &s), ==, 0);
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_cmpuint(policy_snapshot_n_diagnostics(s), <=, 1000);
        const PolicyDiagnostic *last = policy_snapshot_diagnostic(s, policy_snapshot_n_diagnostics(s) - 1);
        g_assert_nonnull(strstr(last->message, "too many errors"));
        policy_snapshot_unref(s);
        g_string_free(g, TRUE);
}

/* ---- directories ------------------------------------------------------- */

static char *mkdtemp_policy(void) {
        g_autoptr(GError) e = NULL;
        char *d = g_dir_make_tmp("vmfed-policy-XXXXXX", &e);
        g_assert_no_error(e);
        return d;
}

static void put(const char *dir, const char *name, const char *text) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        g_autofree char *parent = g_path_get_dirname(p);
        g_assert_cmpint(g_mkdir_with_parents(parent, 0755), ==, 0);
        g_autoptr(GError) e = NULL;
        g_assert_true(g_file_set_contents(p, text, -1, &e));
}

static void rm_rf(const char *dir) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        g_assert_cmpint(system(cmd), ==, 0);
}

static PolicySnapshot *load_dir(const char *dir) {
        PolicySnapshot *s = NULL;
        g_assert_cmpint(policy_snapshot_load(dir, NULL, 0, &s), ==, 0);
        return s;
}

/* The files rules came from, in order, as "file:line,file:line". */
static char *rule_origins(const PolicySnapshot *s, const char *service) {
        /* Evaluate with a service that only '*' rules and rules of that service match, one rule per line. */
        PolicyFacts *f = policy_facts_new();
        g_assert_cmpint(policy_facts_add_vm(f, "a", "persona", NULL, NULL), ==, 0);
        g_assert_cmpint(policy_facts_add_vm(f, "b", "persona", NULL, NULL), ==, 0);
        policy_facts_freeze(f);
        PolicyRequest req = { .service = service, .source = "a", .target = "b" };
        PolicyDecision d;
        g_assert_cmpint(policy_evaluate(s, f, &req, &d), ==, 0);
        char *r = d.rule_file ? g_strdup_printf("%s:%u", d.rule_file, d.rule_line) : g_strdup("none");
        policy_facts_unref(f);
        return r;
}

static void test_dir_order_and_names(void) {
        g_autofree char *dir = mkdtemp_policy();
        /* C-locale order: "10-" < "9-" < "a" ; first match wins across files */
        put(dir, "9-nine.policy", "svc * a b deny\n");
        put(dir, "10-ten.policy", "\nsvc * a b allow\n");
        put(dir, "a_z.policy", "other * a b ask\n");
        /* ignored: dotfiles, other suffixes, backups, directories named .policy */
        put(dir, ".hidden.policy", "this is not parsed\n");
        put(dir, "README", "this is not parsed\n");
        put(dir, "20-x.policy~", "this is not parsed\n");
        put(dir, "30-x.policy.rpmsave", "this is not parsed\n");
        g_autofree char *sub = g_build_filename(dir, "sub.policy", NULL);
        g_assert_cmpint(g_mkdir(sub, 0755), ==, 0);

        PolicySnapshot *s = load_dir(dir);
        dump(s);
        g_assert_true(policy_snapshot_is_valid(s));
        g_assert_cmpuint(policy_snapshot_n_files(s), ==, 3);
        g_assert_cmpuint(policy_snapshot_n_rules(s), ==, 3);
        g_autofree char *o = rule_origins(s, "svc");
        g_assert_cmpstr(o, ==, "10-ten.policy:2");
        policy_snapshot_unref(s);

        /* A policy file with a bad name fails the whole policy (like Qubes). */
        put(dir, "50-Upper.policy", "svc * a b allow\n");
        put(dir, "60-has space.policy", "svc * a b allow\n");
        s = load_dir(dir);
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_true(has_diagnostic(s, "50-Upper.policy", 0, 0, "invalid policy file name"));
        g_assert_true(has_diagnostic(s, "60-has space.policy", 0, 0, "invalid policy file name"));
        policy_snapshot_unref(s);
        rm_rf(dir);

        /* A missing directory is an error (fail closed), not an empty policy. */
        s = load_dir("/nonexistent/vmfed/policy.d");
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_true(has_diagnostic(s, ".", 0, 0, "cannot read policy directory"));
        policy_snapshot_unref(s);
}

static void test_includes(void) {
        g_autofree char *dir = mkdtemp_policy();
        put(dir, "10-main.policy",
            "first * a b deny\n"
            "!include include/one\n"
            "!include-dir include/more\n"
            "!include-service legacy.Svc + include/old-format\n"
            "last * a b deny\n");
        put(dir, "include/one", "one * a b allow\n");
        put(dir, "include/more/20-b.policy", "more * a b ask\nmore2 * a b deny\n");
        put(dir, "include/more/10-a.policy", "more * a b allow\n");
        put(dir, "include/more/notes.txt", "ignored\n");
        put(dir, "include/old-format", "# R4.0 style\n$anyvm $anyvm allow,target=b,notify=no\n$include:include/old2\n");
        put(dir, "include/old2", "a b deny\n");

        PolicySnapshot *s = load_dir(dir);
        dump(s);
        g_assert_true(policy_snapshot_is_valid(s));
        g_assert_cmpuint(policy_snapshot_n_files(s), ==, 6);
        g_assert_cmpuint(policy_snapshot_n_rules(s), ==, 8);
        g_autofree char *o1 = rule_origins(s, "one");
        g_assert_cmpstr(o1, ==, "include/one:1");
        g_autofree char *o2 = rule_origins(s, "more");
        g_assert_cmpstr(o2, ==, "include/more/10-a.policy:1");
        g_autofree char *o3 = rule_origins(s, "legacy.Svc");
        g_assert_cmpstr(o3, ==, "include/old-format:2");
        g_autofree char *o4 = rule_origins(s, "last");
        g_assert_cmpstr(o4, ==, "10-main.policy:5");
        policy_snapshot_unref(s);

        /* Errors in included files name the included file; the include line names the includer. */
        put(dir, "include/one", "one * a b allow\none * a b alow\n");
        put(dir, "20-bad.policy",
            "!include include/missing\n"
            "!include /etc/passwd\n"
            "!include include/../10-main.policy\n"
            "!include include/more\n"
            "!include-dir include/one\n"
            "!include-dir include/nothere\n"
            "!include-dir .\n"
            "!include-service * +x include/one\n");
        s = load_dir(dir);
        dump(s);
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_true(has_diagnostic(s, "include/one", 2, 11, "unknown action"));
        g_assert_true(has_diagnostic(s, "20-bad.policy", 1, 10, "'include/missing' does not exist"));
        g_assert_true(has_diagnostic(s, "20-bad.policy", 2, 10, "is absolute"));
        g_assert_true(has_diagnostic(s, "20-bad.policy", 3, 18, "contains '..'"));
        g_assert_true(has_diagnostic(s, "20-bad.policy", 4, 10, "use !include-dir"));
        g_assert_true(has_diagnostic(s, "20-bad.policy", 5, 14, "is not a directory"));
        g_assert_true(has_diagnostic(s, "20-bad.policy", 6, 14, "'include/nothere' does not exist"));
        g_assert_true(has_diagnostic(s, "20-bad.policy", 7, 14, "itself"));
        g_assert_true(has_diagnostic(s, "20-bad.policy", 8, 20, "service '*' only takes the argument '*'"));
        policy_snapshot_unref(s);
        rm_rf(dir);
}

static void test_include_cycles(void) {
        g_autofree char *dir = mkdtemp_policy();
        put(dir, "10-a.policy", "!include inc/b\n");
        put(dir, "inc/b", "x * a b deny\n!include inc/c\n");
        put(dir, "inc/c", "\n\n!include inc/b\n");
        put(dir, "20-self.policy", "!include 20-self.policy\n");
        PolicySnapshot *s = load_dir(dir);
        dump(s);
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_true(has_diagnostic(s, "inc/c", 3, 10, "include cycle"));
        g_assert_true(has_diagnostic(s, "20-self.policy", 1, 10, "include cycle"));
        policy_snapshot_unref(s);
        rm_rf(dir);

        /* A symlink to an open file is a cycle too; a deep but finite chain hits the depth limit. */
        g_free(dir);
        dir = mkdtemp_policy();
        put(dir, "10-a.policy", "!include inc/b\n");
        put(dir, "inc/b", "!include inc/link\n");
        g_autofree char *link = g_build_filename(dir, "inc", "link", NULL);
        g_assert_cmpint(symlink("b", link), ==, 0);
        for (int i = 0; i < 20; i++) {
                g_autofree char *name = g_strdup_printf("deep/%02d", i);
                g_autofree char *text = g_strdup_printf("!include deep/%02d\n", i + 1);
                put(dir, name, text);
        }
        put(dir, "deep/20", "x * a b deny\n");
        put(dir, "20-deep.policy", "!include deep/00\n");
        s = load_dir(dir);
        dump(s);
        g_assert_true(has_diagnostic(s, "inc/b", 1, 10, "include cycle"));
        g_assert_true(has_diagnostic(s, "deep/14", 1, 10, "nested deeper than 16"));
        policy_snapshot_unref(s);
        rm_rf(dir);
}

/* A diamond of includes reads files many times over; the total is bounded. */
static void test_include_budget(void) {
        g_autofree char *dir = mkdtemp_policy();
        for (int i = 0; i < 14; i++) {
                g_autofree char *name = g_strdup_printf("d/%02d", i);
                g_autofree char *text = g_strdup_printf("!include d/%02d\n!include d/%02d\n", i + 1, i + 1);
                put(dir, name, text);
        }
        put(dir, "d/14", "x * a b deny\n");
        put(dir, "10-diamond.policy", "!include d/00\n");
        PolicySnapshot *s = load_dir(dir);
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_cmpuint(policy_snapshot_n_diagnostics(s), ==, 1);
        g_assert_nonnull(strstr(policy_snapshot_diagnostic(s, 0)->message, "more than 4096 files"));
        g_assert_cmpuint(policy_snapshot_n_files(s), <=, 4096);
        policy_snapshot_unref(s);
        rm_rf(dir);
}

static void test_overrides(void) {
        g_autofree char *dir = mkdtemp_policy();
        put(dir, "10-a.policy", "svc * a b deny\n");
        put(dir, "20-b.policy", "svc * a b allow\n");

        /* Replace a file: the edit is validated against the whole policy. */
        PolicyOverride o1[] = { { "10-a.policy", "svc * a b alow\n" } };
        PolicySnapshot *s = NULL;
        g_assert_cmpint(policy_snapshot_load(dir, o1, 1, &s), ==, 0);
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_true(has_diagnostic(s, "10-a.policy", 1, 11, "unknown action"));
        policy_snapshot_unref(s);

        /* Remove a file: now 20-b decides. */
        PolicyOverride o2[] = { { "10-a.policy", NULL } };
        g_assert_cmpint(policy_snapshot_load(dir, o2, 1, &s), ==, 0);
        g_assert_true(policy_snapshot_is_valid(s));
        g_autofree char *r2 = rule_origins(s, "svc");
        g_assert_cmpstr(r2, ==, "20-b.policy:1");
        policy_snapshot_unref(s);

        /* Add a new file that sorts first. */
        PolicyOverride o3[] = { { "05-new.policy", "\n\nsvc * a b ask\n" } };
        g_assert_cmpint(policy_snapshot_load(dir, o3, 1, &s), ==, 0);
        g_assert_true(policy_snapshot_is_valid(s));
        g_autofree char *r3 = rule_origins(s, "svc");
        g_assert_cmpstr(r3, ==, "05-new.policy:3");
        g_assert_cmpuint(policy_snapshot_n_files(s), ==, 3);
        policy_snapshot_unref(s);

        /* Bad override names are refused. */
        PolicyOverride o4[] = { { "../x.policy", "svc * a b ask\n" }, { "Bad.policy", "" } };
        g_assert_cmpint(policy_snapshot_load(dir, o4, 2, &s), ==, 0);
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_true(has_diagnostic(s, "../x.policy", 0, 0, "invalid policy file name"));
        g_assert_true(has_diagnostic(s, "Bad.policy", 0, 0, "invalid policy file name"));
        policy_snapshot_unref(s);

        /* The disk was never touched. */
        s = load_dir(dir);
        g_autofree char *r5 = rule_origins(s, "svc");
        g_assert_cmpstr(r5, ==, "10-a.policy:1");
        policy_snapshot_unref(s);
        rm_rf(dir);
}

static void test_nul_in_file(void) {
        g_autofree char *dir = mkdtemp_policy();
        g_autofree char *p = g_build_filename(dir, "10-nul.policy", NULL);
        static const char text[] = "svc * a b allow\n# ok\x00 comment\nsvc * a\x00 b allow\n";
        g_assert_true(g_file_set_contents(p, text, sizeof(text) - 1, NULL));
        PolicySnapshot *s = load_dir(dir);
        dump(s);
        g_assert_false(policy_snapshot_is_valid(s));
        g_assert_true(has_diagnostic(s, "10-nul.policy", 2, 5, "NUL byte"));
        g_assert_true(has_diagnostic(s, "10-nul.policy", 3, 8, "NUL byte"));
        g_assert_cmpuint(policy_snapshot_n_diagnostics(s), ==, 2);
        g_assert_cmpuint(policy_snapshot_n_rules(s), ==, 1);
        policy_snapshot_unref(s);
        rm_rf(dir);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/policy/parser/valid", test_valid);
        g_test_add_func("/policy/parser/errors-fields", test_errors_fields);
        g_test_add_func("/policy/parser/errors-tokens", test_errors_tokens);
        g_test_add_func("/policy/parser/errors-params", test_errors_params);
        g_test_add_func("/policy/parser/errors-bytes", test_errors_bytes);
        g_test_add_func("/policy/parser/errors-directives", test_errors_directives);
        g_test_add_func("/policy/parser/many-errors", test_many_errors);
        g_test_add_func("/policy/loader/order-and-names", test_dir_order_and_names);
        g_test_add_func("/policy/loader/includes", test_includes);
        g_test_add_func("/policy/loader/include-cycles", test_include_cycles);
        g_test_add_func("/policy/loader/include-budget", test_include_budget);
        g_test_add_func("/policy/loader/overrides", test_overrides);
        g_test_add_func("/policy/loader/nul", test_nul_in_file);
        return g_test_run();
}
