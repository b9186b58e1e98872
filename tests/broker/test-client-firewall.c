/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* broker/client-firewall: where a client's rules come from, and failing closed. */
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "broker/client-firewall.h"
#include "common/log.h"
#include "federation/vmspec.h"

typedef struct {
        char *dir; /* CONFIG */
} Fixture;

static void setup(Fixture *f, gconstpointer data) {
        g_autoptr(GError) e = NULL;
        f->dir = g_dir_make_tmp("vmfed-test-client-fw-XXXXXX", &e);
        g_assert_no_error(e);
        g_autofree char *fw = g_build_filename(f->dir, "firewall.d", NULL);
        g_assert_cmpint(g_mkdir(fw, 0755), ==, 0);
        g_autofree char *kernel = g_build_filename(f->dir, "vmlinuz", NULL);
        g_assert_true(g_file_set_contents(kernel, "", 0, NULL));
}

static void teardown(Fixture *f, gconstpointer data) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);
        g_assert_cmpint(system(cmd), ==, 0);
        g_free(f->dir);
}

/* A spec as vms.d/NAME.vm would give it (Kernel= must name a file: CONFIG/vmlinuz). */
static VmSpec *spec(Fixture *f, const char *name, const char *extra) {
        g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *text = g_strdup_printf("[VM]\nRole=app\nKernel=%s/vmlinuz\n%s", f->dir, extra);
        VmSpec *s = NULL;
        int r = vm_spec_parse(name, name, text, errors, &s);
        if (r < 0)
                for (guint i = 0; i < errors->len; i++)
                        g_printerr("%s\n", (char *) errors->pdata[i]);
        g_assert_cmpint(r, ==, 0);
        return s;
}

static void write_rules(Fixture *f, const char *name, const char *text) {
        g_autofree char *p = g_strdup_printf("%s/firewall.d/%s.rules", f->dir, name);
        g_assert_true(g_file_set_contents(p, text, -1, NULL));
}

static void test_none(Fixture *f, gconstpointer data) {
        g_autoptr(VmSpec) s = spec(f, "work", "");
        g_assert_null(client_firewall_rules(f->dir, s, "work"));
}

static void test_section(Fixture *f, gconstpointer data) {
        g_autoptr(VmSpec) s = spec(f, "work", "[Firewall]\nRules=accept dns;accept 192.0.2.0/24 proto tcp port 443;"
                                           "default drop\n");
        g_autofree char *r = client_firewall_rules(f->dir, s, "work");
        g_assert_cmpstr(r, ==, "accept dns\naccept 192.0.2.0/24 proto tcp port 443\ndefault drop");
}

/* The rules file wins over the [Firewall] section, its text as it is. */
static void test_file_wins(Fixture *f, gconstpointer data) {
        g_autoptr(VmSpec) s = spec(f, "work", "[Firewall]\nRules=accept dns\n");
        write_rules(f, "work", "# from the file\naccept 198.51.100.1\n");
        g_autofree char *r = client_firewall_rules(f->dir, s, "work");
        g_assert_cmpstr(r, ==, "# from the file\naccept 198.51.100.1\n");
}

/* A disposable passes its template's spec and its own name: the template's file is not used. */
static void test_disposable_name(Fixture *f, gconstpointer data) {
        g_autoptr(VmSpec) s = spec(f, "dvm", "[Firewall]\nRules=accept dns\n");
        write_rules(f, "dvm", "drop 10.0.0.0/8\n");
        g_autofree char *by_template = client_firewall_rules(f->dir, s, "dvm");
        g_assert_cmpstr(by_template, ==, "drop 10.0.0.0/8\n");
        write_rules(f, "disp1234", "accept any\n");
        g_autofree char *own = client_firewall_rules(f->dir, s, "disp1234");
        g_assert_cmpstr(own, ==, "accept any\n");
}

/* Fail closed: an empty Rules=, an unknown key, a file that cannot be read. */
static void test_fail_closed(Fixture *f, gconstpointer data) {
        g_autoptr(VmSpec) empty = spec(f, "a", "[Firewall]\nRules=\n");
        g_autoptr(VmSpec) no_rules = spec(f, "b", "[Firewall]\n");
        g_autoptr(VmSpec) unknown = spec(f, "c", "[Firewall]\nRules=accept dns\nRule=accept any\n");
        g_autoptr(VmSpec) plain = spec(f, "d", "");
        g_autofree char *dir_path = g_strdup_printf("%s/firewall.d/d.rules", f->dir);
        g_autofree char *big = g_strnfill(1024 * 1024 + 1, 'x');

        g_autofree char *r1 = client_firewall_rules(f->dir, empty, "a");
        g_autofree char *r2 = client_firewall_rules(f->dir, no_rules, "b");
        g_autofree char *r3 = client_firewall_rules(f->dir, unknown, "c");
        g_assert_cmpstr(r1, ==, "default drop\n");
        g_assert_cmpstr(r2, ==, "default drop\n");
        g_assert_cmpstr(r3, ==, "default drop\n");

        g_assert_cmpint(g_mkdir(dir_path, 0755), ==, 0); /* d.rules is a directory: unreadable */
        g_autofree char *r4 = client_firewall_rules(f->dir, plain, "d");
        g_assert_cmpstr(r4, ==, "default drop\n");
        g_assert_cmpint(g_rmdir(dir_path), ==, 0);

        write_rules(f, "d", big); /* over 1 MiB */
        g_autofree char *r5 = client_firewall_rules(f->dir, plain, "d");
        g_assert_cmpstr(r5, ==, "default drop\n");
}

static void test_append_state(void) {
        g_autoptr(GString) s = g_string_new("");

        client_firewall_append_state(s, "# header\n\n  accept dns   # resolver\ndrop 10.0.0.0/8\n\t\n");
        g_assert_cmpstr(s->str, ==, "Rule=accept dns\nRule=drop 10.0.0.0/8\n");

        g_string_truncate(s, 0);
        client_firewall_append_state(s, "# only comments\n\n");
        g_assert_cmpstr(s->str, ==, "Rule=\n");

        g_string_truncate(s, 0);
        client_firewall_append_state(s, "");
        g_assert_cmpstr(s->str, ==, "Rule=\n");
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        log_set_max_level(LOG_CRIT);
        g_test_add("/client-firewall/none", Fixture, NULL, setup, test_none, teardown);
        g_test_add("/client-firewall/section", Fixture, NULL, setup, test_section, teardown);
        g_test_add("/client-firewall/file-wins", Fixture, NULL, setup, test_file_wins, teardown);
        g_test_add("/client-firewall/disposable-name", Fixture, NULL, setup, test_disposable_name, teardown);
        g_test_add("/client-firewall/fail-closed", Fixture, NULL, setup, test_fail_closed, teardown);
        g_test_add_func("/client-firewall/append-state", test_append_state);
        return g_test_run();
}
