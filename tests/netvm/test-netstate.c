/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The state file: what parses, round trips, client changes, every error with file:line. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "netvm/netstate.h"

#define HEADER \
        "[Uplink]\nInterface=up0\nAddress=192.0.2.2/24\nGateway=192.0.2.1\nDNS=192.0.2.53; 2001:db8::53\n" \
        "[Downstream]\nInterface=down0\nAddress=10.200.0.1/24 fd00:200::1/64\n"

static void test_good_and_round_trip(void) {
        const char *text = HEADER
                "# comment\n"
                "[Client alpha]\nMAC=52:54:00:00:00:0A\nAddress=10.200.0.10\nAddress=fd00:200::10\n"
                "Rule=accept dns\nRule=accept 192.0.2.0/24 proto tcp port 443\n"
                "[Client beta]\nMAC=52:54:00:00:00:0b\nAddress=10.200.0.11\n"
                "[Client gamma]\nMAC=52:54:00:00:00:0c\nAddress=10.200.0.12\nRule=\n";
        g_autoptr(NetState) s = NULL;
        g_autofree char *errors = NULL;

        g_assert_cmpint(netstate_parse("s", text, NULL, &s, &errors), ==, 0);
        g_assert_cmpstr(s->uplink, ==, "up0");
        g_assert_cmpstr(s->downstream, ==, "down0");
        g_assert_cmpuint(s->dns->len, ==, 2);
        g_assert_cmpuint(s->downstream_addrs->len, ==, 2);
        g_assert_cmpuint(s->clients->len, ==, 3);
        NetClient *a = netstate_find_client(s, "alpha");
        g_assert_nonnull(a);
        g_assert_cmpuint(a->mac[5], ==, 0x0a);
        g_assert_cmpuint(a->addrs->len, ==, 2);
        g_assert_true(a->has_rules);
        g_assert_cmpuint(a->firewall->rules->len, ==, 2);
        g_assert_false(netstate_find_client(s, "beta")->has_rules);
        NetClient *g = netstate_find_client(s, "gamma");
        g_assert_true(g->has_rules); /* an empty rule set: default drop */
        g_assert_cmpint(firewall_default(g->firewall), ==, FW_ACTION_DROP);
        g_assert_null(netstate_firewall_errors(s));

        g_autofree char *out = netstate_format(s);
        g_autoptr(NetState) s2 = NULL;
        g_assert_cmpint(netstate_parse("out", out, NULL, &s2, &errors), ==, 0);
        g_autofree char *out2 = netstate_format(s2);
        g_assert_cmpstr(out, ==, out2);
        g_assert_true(netstate_find_client(s2, "gamma")->has_rules);

        g_autoptr(NetState) copy = netstate_copy(s);
        g_autofree char *out3 = netstate_format(copy);
        g_assert_cmpstr(out, ==, out3);
        g_assert_true(netstate_equal(s, copy));
        g_assert_true(netstate_equal(s, s2));
        g_assert_cmpint(netstate_remove_client(copy, "beta"), ==, 0);
        g_assert_false(netstate_equal(s, copy));
        g_assert_nonnull(netstate_find_client(s, "beta")); /* the original is untouched */
}

typedef struct Bad {
        const char *text;
        const char *error;
} Bad;

static const Bad bad[] = {
        { "Interface=x\n", "b:1: key \"Interface\" outside of a section" },
        { "[Uplink]\nInterface=up0\n[Downstream\n", "b:3: section header without \"]\"" },
        { HEADER "[Bogus]\n", "b:9: unknown section [Bogus]" },
        { HEADER "[Uplink]\n", "b:9: section [Uplink] appears twice" },
        { HEADER "garbage\n", "b:9: expected KEY=VALUE or [Section]" },
        { "[Uplink]\nInterface=up0\nColor=red\n[Downstream]\nInterface=d\nAddress=10.0.0.1/24\n",
          "b:3: unknown key \"Color\" in [Uplink]" },
        { "[Uplink]\nInterface=a/b\n[Downstream]\nInterface=d\nAddress=10.0.0.1/24\n",
          "b:2: Interface=: invalid interface name \"a/b\"" },
        { "[Uplink]\nInterface=averyveryverylongname\n", "b:2: Interface=: invalid interface name" },
        { "[Uplink]\nInterface=up0\nInterface=up1\n", "b:3: Interface= given twice" },
        { "[Uplink]\nInterface=up0\nDNS=1.2.3.4/8\n", "b:3: DNS=: invalid address (no prefix allowed) \"1.2.3.4/8\"" },
        { "[Uplink]\nInterface=up0\nGateway=1.2.3.4 1.2.3.5\n", "b:3: Gateway=: more than one gateway for one address family" },
        { "[Uplink]\nInterface=up0\n[Downstream]\nInterface=d\nAddress=10.0.0.1\n",
          "b:5: Address=: \"10.0.0.1\" needs a prefix length" },
        { "[Uplink]\nInterface=up0\n[Downstream]\nInterface=d\n", "b:3: [Downstream]: Address= missing" },
        { "[Downstream]\nInterface=d\nAddress=10.0.0.1/24\n", "b:1: [Uplink]: Interface= missing" },
        { "[Uplink]\nInterface=up0\n", "b:1: [Downstream]: Interface= missing" },
        { "[Uplink]\nInterface=x\n[Downstream]\nInterface=x\nAddress=10.0.0.1/24\n",
          "b:3: [Downstream]: Interface= is the uplink" },
        { HEADER "[Client Alpha]\n", "b:9: invalid client name \"Alpha\"" },
        { HEADER "[Client a]\nMAC=01:00:00:00:00:01\nAddress=10.200.0.9\n", "b:10: MAC=: invalid unicast MAC address" },
        { HEADER "[Client a]\nMAC=52:54:00:00:00:01\nAddress=10.200.0.9\nFoo=1\n", "b:12: unknown key \"Foo\" in [Client a]" },
        { HEADER "[Client a]\nAddress=10.200.0.9\n", "b:9: [Client a]: MAC= missing" },
        { HEADER "[Client a]\nMAC=52:54:00:00:00:01\n", "b:9: [Client a]: Address= missing" },
        { HEADER "[Client a]\nMAC=52:54:00:00:00:01\nAddress=10.9.0.9\n",
          "b:9: [Client a]: address 10.9.0.9 is outside every [Downstream] subnet" },
        { HEADER "[Client a]\nMAC=52:54:00:00:00:01\nAddress=10.200.0.1\n", "b:9: [Client a]: address 10.200.0.1 is the gateway's" },
        { HEADER "[Client a]\nMAC=52:54:00:00:00:01\nAddress=10.200.0.9\n[Client b]\nMAC=52:54:00:00:00:01\nAddress=10.200.0.8\n",
          "b:12: [Client b]: MAC 52:54:00:00:00:01 is already client a's" },
        { HEADER "[Client a]\nMAC=52:54:00:00:00:01\nAddress=10.200.0.9\n[Client b]\nMAC=52:54:00:00:00:02\nAddress=10.200.0.9\n",
          "b:12: [Client b]: address 10.200.0.9 is already client a's" },
        { HEADER "[Client a]\nMAC=52:54:00:00:00:01\nAddress=10.200.0.9\nRulesFile=a.rules\n",
          "b:12: RulesFile= is not allowed here" },
        { HEADER "\xff\n", "b:9: invalid UTF-8" },
        { HEADER "DHCP=maybe\n", "b:9: DHCP=: expected yes or no, not \"maybe\"" },
        { "[Uplink]\nInterface=up0\nDHCP=yes\n[Downstream]\nInterface=d0\nAddress=10.0.0.1/24\n",
          "b:3: unknown key \"DHCP\" in [Uplink]" },
};

static void test_errors(void) {
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                NetState *s = NULL;
                g_autofree char *errors = NULL;
                g_assert_cmpint(netstate_parse("b", bad[i].text, NULL, &s, &errors), ==, -EINVAL);
                g_assert_null(s);
                if (!strstr(errors, bad[i].error))
                        g_error("case %zu: expected \"%s\", got \"%s\"", i, bad[i].error, errors);
        }
}

static void test_dhcp(void) {
        g_autoptr(NetState) s = NULL, s2 = NULL, s3 = NULL;
        g_autofree char *errors = NULL;
        g_assert_cmpint(netstate_parse("s", HEADER "DHCP=no\n", NULL, &s, &errors), ==, 0);
        g_assert_false(s->dhcp);
        g_assert_cmpint(netstate_parse("s", HEADER "DHCP=yes\n", NULL, &s2, &errors), ==, 0);
        g_assert_true(s2->dhcp);
        g_assert_false(netstate_equal(s, s2));
        g_autofree char *text = netstate_format(s2);
        g_assert_nonnull(strstr(text, "\nDHCP=yes\n"));
        g_assert_cmpint(netstate_parse("t", text, NULL, &s3, &errors), ==, 0);
        g_assert_true(netstate_equal(s2, s3));
        g_autoptr(NetState) copy = netstate_copy(s2);
        g_assert_true(copy->dhcp);
}

/* A broken IPv6 address fails its client closed; the state and the other clients stand. */
static void test_bad_v6_fails_closed(void) {
        const char *text = HEADER
                "[Client a]\nMAC=52:54:00:00:00:01\nAddress=10.200.0.9\nAddress=fd00:999::9\n"
                "[Client b]\nMAC=52:54:00:00:00:02\nAddress=10.200.0.8 fd00:200::8\n"
                "[Client c]\nMAC=52:54:00:00:00:03\nAddress=10.200.0.7 fd00:200::1\n";
        g_autoptr(NetState) s = NULL, s2 = NULL;
        g_autofree char *errors = NULL;
        g_assert_cmpint(netstate_parse("b", text, NULL, &s, &errors), ==, 0);
        g_assert_true(firewall_is_broken(netstate_find_client(s, "a")->firewall));
        g_assert_false(firewall_is_broken(netstate_find_client(s, "b")->firewall));
        g_assert_true(firewall_is_broken(netstate_find_client(s, "c")->firewall));
        g_autofree char *fw = netstate_firewall_errors(s);
        g_assert_nonnull(strstr(fw, "b:9: [Client a]: IPv6 address fd00:999::9 is outside every IPv6 [Downstream] subnet"));
        g_assert_nonnull(strstr(fw, "b:16: [Client c]: IPv6 address fd00:200::1 is the gateway's"));
        /* The canonical text keeps the address, so it fails closed again (a restart from the persisted state). */
        g_autofree char *out = netstate_format(s);
        g_assert_cmpint(netstate_parse("out", out, NULL, &s2, &errors), ==, 0);
        g_assert_true(firewall_is_broken(netstate_find_client(s2, "a")->firewall));
        /* Over D-Bus: the same. */
        const char *addrs[] = { "10.200.0.20", "2001:db8::20", NULL };
        NetClient *d = NULL;
        g_autofree char *err = NULL;
        g_assert_cmpint(netclient_new("d", "52:54:00:00:00:04", addrs, NULL, &d, &err), ==, 0);
        g_assert_cmpint(netstate_put_client(s, d, &err), ==, 0);
        g_assert_true(firewall_is_broken(netstate_find_client(s, "d")->firewall));
        /* An IPv4 address outside is still an error of the whole state. */
        g_autoptr(NetState) s3 = NULL;
        g_assert_cmpint(netstate_parse("b", HEADER "[Client e]\nMAC=52:54:00:00:00:05\nAddress=10.9.0.9 fd00:200::9\n",
                                       NULL, &s3, &errors), ==, -EINVAL);
}

static void test_rules_fail_closed(void) {
        /* A broken rule does not refuse the state: the client is kept, fail closed. */
        const char *text = HEADER
                "[Client a]\nMAC=52:54:00:00:00:01\nAddress=10.200.0.9\nRule=accept dns\nRule=accept 1.2.3.4 proto bogus\n"
                "[Client b]\nMAC=52:54:00:00:00:02\nAddress=10.200.0.8\nRule=accept dns\n";
        g_autoptr(NetState) s = NULL;
        g_autofree char *errors = NULL;
        g_assert_cmpint(netstate_parse("st", text, NULL, &s, &errors), ==, 0);
        g_assert_true(firewall_is_broken(netstate_find_client(s, "a")->firewall));
        g_assert_false(firewall_is_broken(netstate_find_client(s, "b")->firewall));
        g_autofree char *fw = netstate_firewall_errors(s);
        g_assert_nonnull(strstr(fw, "st:13: unknown protocol \"bogus\""));
}

static void test_rules_file(void) {
        g_autofree char *dir = g_dir_make_tmp("vmfed-netstate-XXXXXX", NULL);
        g_autofree char *rules = g_build_filename(dir, "a.rules", NULL);
        g_autofree char *state = g_build_filename(dir, "netvm.state", NULL);
        g_assert_true(g_file_set_contents(rules, "accept dns\n\nallow everything\n", -1, NULL));
        g_autofree char *text = g_strdup_printf(HEADER "[Client a]\nMAC=52:54:00:00:00:01\nAddress=10.200.0.9\nRulesFile=a.rules\n"
                                                "[Client b]\nMAC=52:54:00:00:00:02\nAddress=10.200.0.8\nRulesFile=missing.rules\n");
        g_assert_true(g_file_set_contents(state, text, -1, NULL));

        g_autoptr(NetState) s = NULL;
        g_autofree char *errors = NULL;
        g_assert_cmpint(netstate_load(state, &s, &errors), ==, 0);
        g_autofree char *fw = netstate_firewall_errors(s);
        g_autofree char *want = g_strdup_printf("%s:3: unknown action \"allow\"", rules);
        g_assert_nonnull(strstr(fw, want));
        g_autofree char *want2 = g_strdup_printf("%s/missing.rules: cannot read rules file", dir);
        g_assert_nonnull(strstr(fw, want2));
        g_assert_cmpuint(s->rules_files->len, ==, 2);

        /* Missing state file. */
        NetState *none = NULL;
        g_autofree char *e2 = NULL;
        g_autofree char *missing = g_build_filename(dir, "nope", NULL);
        g_assert_cmpint(netstate_load(missing, &none, &e2), ==, -ENOENT);

        g_unlink(rules);
        g_unlink(state);
        g_rmdir(dir);
}

static void test_clients(void) {
        g_autoptr(NetState) s = NULL;
        g_autofree char *errors = NULL;
        g_assert_cmpint(netstate_parse("s", HEADER, NULL, &s, &errors), ==, 0);

        const char *addrs[] = { "10.200.0.5", "fd00:200::5", NULL };
        NetClient *c = NULL;
        g_autofree char *e = NULL;
        g_assert_cmpint(netclient_new("web", "52:54:00:aa:bb:cc", addrs, "accept dns\nbad rule\n", &c, &e), ==, 0);
        g_assert_true(firewall_is_broken(c->firewall));
        g_assert_nonnull(strstr(c->firewall->errors->str, "web.rules:2: unknown action \"bad\""));
        g_assert_cmpint(netstate_put_client(s, c, &e), ==, 0);

        NetClient *d = NULL;
        const char *same[] = { "10.200.0.5", NULL };
        g_clear_pointer(&e, g_free);
        g_assert_cmpint(netclient_new("other", "52:54:00:aa:bb:cd", same, NULL, &d, &e), ==, 0);
        g_assert_cmpint(netstate_put_client(s, d, &e), ==, -EEXIST);
        g_assert_nonnull(strstr(e, "already client web's"));
        netclient_unref(d);

        /* Replace by name. */
        NetClient *w2 = NULL;
        g_clear_pointer(&e, g_free);
        g_assert_cmpint(netclient_new("web", "52:54:00:aa:bb:cc", same, NULL, &w2, &e), ==, 0);
        g_assert_cmpint(netstate_put_client(s, w2, &e), ==, 0);
        g_assert_cmpuint(s->clients->len, ==, 1);
        g_assert_false(netstate_find_client(s, "web")->has_rules);

        g_clear_pointer(&e, g_free);
        g_assert_cmpint(netclient_new("UPPER", "52:54:00:aa:bb:cc", same, NULL, &d, &e), ==, -EINVAL);
        g_clear_pointer(&e, g_free);
        g_assert_cmpint(netclient_new("x", "ff:ff:ff:ff:ff:ff", same, NULL, &d, &e), ==, -EINVAL);
        g_clear_pointer(&e, g_free);
        const char *none[] = { NULL };
        g_assert_cmpint(netclient_new("x", "52:54:00:aa:bb:cc", none, NULL, &d, &e), ==, -EINVAL);
        g_clear_pointer(&e, g_free);
        const char *bad4[] = { "10.200.0.300", NULL };
        g_assert_cmpint(netclient_new("x", "52:54:00:aa:bb:cc", bad4, NULL, &d, &e), ==, -EINVAL);

        g_assert_cmpint(netstate_remove_client(s, "web"), ==, 0);
        g_assert_cmpint(netstate_remove_client(s, "web"), ==, -ENOENT);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/netstate/good-and-round-trip", test_good_and_round_trip);
        g_test_add_func("/netstate/errors", test_errors);
        g_test_add_func("/netstate/dhcp", test_dhcp);
        g_test_add_func("/netstate/bad-v6-fails-closed", test_bad_v6_fails_closed);
        g_test_add_func("/netstate/rules-fail-closed", test_rules_fail_closed);
        g_test_add_func("/netstate/rules-file", test_rules_file);
        g_test_add_func("/netstate/clients", test_clients);
        return g_test_run();
}
