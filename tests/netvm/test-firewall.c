/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmfed.firewall(5): what parses, what it means, and every error with file:line. */
#include <string.h>
#include <sys/socket.h>

#include <glib.h>

#include "netvm/firewall.h"
#include "netvm/fwplan.h"

static void test_good(void) {
        g_autoptr(Firewall) fw = firewall_new();
        const char *text =
                "# a comment\n"
                "\n"
                "default accept\n"
                "accept dns   # inline comment\n"
                "accept 192.0.2.0/24 proto tcp port 80\n"
                "accept\t198.51.100.7 proto udp port 1000-2000\n"
                "drop 10.0.0.0/8\n"
                "accept 2001:db8::/32 proto icmpv6 type echo-request\n"
                "accept any proto icmp type 11\n"
                "drop proto tcp port 25\n"
                "accept ::/0\n";
        g_assert_cmpint(firewall_parse_text(fw, "x.rules", text), ==, 0);
        g_assert_false(firewall_is_broken(fw));
        g_assert_cmpint(firewall_default(fw), ==, FW_ACTION_ACCEPT);
        g_assert_cmpuint(fw->rules->len, ==, 8);

        FwRule *r = &g_array_index(fw->rules, FwRule, 0);
        g_assert_true(r->dns);
        g_assert_cmpuint(r->line, ==, 4);

        r = &g_array_index(fw->rules, FwRule, 1);
        g_assert_true(r->has_dst);
        g_assert_cmpint(r->dst.family, ==, AF_INET);
        g_assert_cmpuint(r->dst.prefixlen, ==, 24);
        g_assert_cmpint(r->proto, ==, FW_PROTO_TCP);
        g_assert_cmpuint(r->port_min, ==, 80);
        g_assert_cmpuint(r->port_max, ==, 80);

        r = &g_array_index(fw->rules, FwRule, 2);
        g_assert_cmpuint(r->port_min, ==, 1000);
        g_assert_cmpuint(r->port_max, ==, 2000);
        g_assert_cmpuint(r->dst.prefixlen, ==, 32);

        r = &g_array_index(fw->rules, FwRule, 3);
        g_assert_cmpint(r->action, ==, FW_ACTION_DROP);
        g_assert_cmpint(r->proto, ==, FW_PROTO_ANY);

        r = &g_array_index(fw->rules, FwRule, 4);
        g_assert_cmpint(r->proto, ==, FW_PROTO_ICMPV6);
        g_assert_cmpint(r->icmp_type, ==, 128);

        r = &g_array_index(fw->rules, FwRule, 5);
        g_assert_false(r->has_dst);
        g_assert_cmpint(r->icmp_type, ==, 11);

        r = &g_array_index(fw->rules, FwRule, 6);
        g_assert_false(r->has_dst);
        g_assert_cmpint(r->action, ==, FW_ACTION_DROP);

        r = &g_array_index(fw->rules, FwRule, 7);
        g_assert_cmpint(r->dst.family, ==, AF_INET6);
        g_assert_cmpuint(r->dst.prefixlen, ==, 0);

        /* Canonical text parses back to the same rule. */
        for (guint i = 0; i < fw->rules->len; i++) {
                g_autofree char *line = fwrule_format(&g_array_index(fw->rules, FwRule, i));
                g_autoptr(Firewall) again = firewall_new();
                g_assert_cmpint(firewall_parse_line(again, "y", 1, line), ==, 0);
                g_autofree char *line2 = fwrule_format(&g_array_index(again->rules, FwRule, 0));
                g_assert_cmpstr(line, ==, line2);
        }
}

static void test_default_is_drop(void) {
        g_autoptr(Firewall) fw = firewall_new();
        g_assert_cmpint(firewall_parse_text(fw, "x.rules", "accept dns\n"), ==, 0);
        g_assert_cmpint(firewall_default(fw), ==, FW_ACTION_DROP);
}

typedef struct Bad {
        const char *line;
        const char *error;
} Bad;

static const Bad bad[] = {
        { "allow 1.2.3.4", "x.rules:2: unknown action \"allow\"" },
        { "accept 1.2.3.4/33", "x.rules:2: invalid destination \"1.2.3.4/33\"" },
        { "accept 192.0.2.1/24", "x.rules:2: destination \"192.0.2.1/24\" has host bits set" },
        { "accept example.com", "x.rules:2: invalid destination \"example.com\"" },
        { "accept 1.2.3.4 proto tpc", "x.rules:2: unknown protocol \"tpc\"" },
        { "accept 1.2.3.4 proto", "x.rules:2: \"proto\" needs tcp, udp, icmp or icmpv6" },
        { "accept 1.2.3.4 port 80", "x.rules:2: unexpected \"port\" (expected proto)" },
        { "accept proto icmp port 80", "x.rules:2: \"port\" needs proto tcp or udp" },
        { "accept proto tcp port 0", "x.rules:2: invalid port \"0\"" },
        { "accept proto tcp port 65536", "x.rules:2: invalid port \"65536\"" },
        { "accept proto tcp port 90-80", "x.rules:2: port range \"90-80\" is reversed" },
        { "accept proto tcp port 80-", "x.rules:2: invalid port \"80-\"" },
        { "accept proto tcp port", "x.rules:2: \"port\" needs a port or a range" },
        { "accept proto tcp type echo-request", "x.rules:2: \"type\" needs proto icmp or icmpv6" },
        { "accept proto icmp type bogus", "x.rules:2: unknown ICMP type \"bogus\"" },
        { "accept proto icmp type 256", "x.rules:2: unknown ICMP type \"256\"" },
        { "accept 2001:db8::1 proto icmp", "x.rules:2: protocol icmp with an IPv6 destination" },
        { "accept 192.0.2.1 proto icmpv6", "x.rules:2: protocol icmpv6 with an IPv4 destination" },
        { "accept dns 192.0.2.1", "x.rules:2: \"dns\" takes no further arguments" },
        { "accept 1.2.3.4 proto tcp port 80 extra", "x.rules:2: unexpected \"extra\" at the end" },
        { "default refuse", "x.rules:2: expected \"default accept\", \"default drop\" or \"default reject\"" },
        { "default", "x.rules:2: expected \"default accept\", \"default drop\" or \"default reject\"" },
        { "default drop", "x.rules:2: duplicate \"default\" line" },
        { "accept 1.2.3.4\x01", "x.rules:2: control character in rule" },
};

static void test_reject(void) {
        g_autoptr(Firewall) fw = firewall_new();
        g_assert_cmpint(firewall_parse_text(fw, "x.rules", "default reject\nreject 192.0.2.1 proto tcp port 25\n"), ==, 0);
        g_assert_cmpint(firewall_default(fw), ==, FW_ACTION_REJECT);
        FwRule *r = &g_array_index(fw->rules, FwRule, 0);
        g_assert_cmpint(r->action, ==, FW_ACTION_REJECT);
        g_autofree char *text = fwrule_format(r);
        g_assert_cmpstr(text, ==, "reject 192.0.2.1 proto tcp port 25");
        g_autoptr(Firewall) broken = firewall_new();
        g_assert_cmpint(firewall_parse_text(broken, "y.rules", "default rejct\n"), ==, -EINVAL);
        g_assert_nonnull(strstr(broken->errors->str, "y.rules:1: expected \"default accept\", \"default drop\" or \"default reject\""));
}

static void test_errors(void) {
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autoptr(Firewall) fw = firewall_new();
                g_autofree char *text = g_strdup_printf("default accept\n%s\naccept dns\n", bad[i].line);
                g_assert_cmpint(firewall_parse_text(fw, "x.rules", text), ==, -EINVAL);
                g_assert_true(firewall_is_broken(fw));
                if (!strstr(fw->errors->str, bad[i].error))
                        g_error("line \"%s\": expected \"%s\", got \"%s\"", bad[i].line, bad[i].error, fw->errors->str);
                /* Parsing went on: the line after the error was still read. */
                g_assert_cmpuint(fw->n_errors, ==, 1);
        }
}

static void test_all_errors_reported(void) {
        g_autoptr(Firewall) fw = firewall_new();
        g_assert_cmpint(firewall_parse_text(fw, "f", "bogus\naccept dns\nalso bogus\n"), ==, -EINVAL);
        g_assert_cmpuint(fw->n_errors, ==, 2);
        g_assert_nonnull(strstr(fw->errors->str, "f:1: "));
        g_assert_nonnull(strstr(fw->errors->str, "f:3: "));
}

/* Order-independent runs become interval sets; overlaps and action changes start new ones. */
static void test_plan(void) {
        g_autoptr(Firewall) fw = firewall_new();
        const char *text =
                "accept 10.0.0.0/8\n"                    /* set 0 (v4, accept) */
                "accept 192.0.2.0/24 proto tcp port 80\n" /* set 0 */
                "accept 2001:db8::/32 proto udp\n"        /* set 1 (v6, accept) */
                "accept 10.1.0.0/16 proto tcp\n"          /* overlaps 10/8: set 2 */
                "drop 198.51.100.0/24\n"                  /* action changes: set 3 */
                "accept dns\n"                            /* a rule of its own */
                "accept 198.51.100.0/24 proto icmp type echo-request\n" /* a rule of its own */
                "drop 203.0.113.0/24\n";                  /* set 4 */
        g_assert_cmpint(firewall_parse_text(fw, "p", text), ==, 0);
        FwPlan *plan = fwplan_new(fw);
        g_assert_cmpuint(plan->sets->len, ==, 5);
        g_assert_cmpuint(plan->items->len, ==, 7);
        const FwPlanKind kinds[] = { FWPLAN_SET, FWPLAN_SET, FWPLAN_SET, FWPLAN_SET, FWPLAN_RULE, FWPLAN_RULE, FWPLAN_SET };
        for (guint i = 0; i < plan->items->len; i++)
                g_assert_cmpint(g_array_index(plan->items, FwPlanItem, i).kind, ==, kinds[i]);
        FwSetPlan *s0 = plan->sets->pdata[0];
        g_assert_cmpuint(s0->boxes->len, ==, 2);
        FwBox *b = &g_array_index(s0->boxes, FwBox, 0);
        /* 10.0.0.0/8, any protocol, any port */
        const uint8_t lo[12] = { 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
        const uint8_t hi[12] = { 10, 255, 255, 255, 255, 0, 0, 0, 0xff, 0xff, 0, 0 };
        g_assert_cmpmem(b->lo, 12, lo, 12);
        g_assert_cmpmem(b->hi, 12, hi, 12);
        b = &g_array_index(s0->boxes, FwBox, 1);
        const uint8_t lo2[12] = { 192, 0, 2, 0, 6, 0, 0, 0, 0, 80, 0, 0 };
        const uint8_t hi2[12] = { 192, 0, 2, 255, 6, 0, 0, 0, 0, 80, 0, 0 };
        g_assert_cmpmem(b->lo, 12, lo2, 12);
        g_assert_cmpmem(b->hi, 12, hi2, 12);
        g_assert_cmpint(((FwSetPlan *) plan->sets->pdata[1])->family, ==, AF_INET6);
        g_assert_cmpint(((FwSetPlan *) plan->sets->pdata[3])->action, ==, FW_ACTION_DROP);
        g_assert_cmpuint(fwplan_key_len(AF_INET6), ==, 24);
        fwplan_unref(plan);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/firewall/good", test_good);
        g_test_add_func("/firewall/default-is-drop", test_default_is_drop);
        g_test_add_func("/firewall/errors", test_errors);
        g_test_add_func("/firewall/reject", test_reject);
        g_test_add_func("/firewall/all-errors-reported", test_all_errors_reported);
        g_test_add_func("/firewall/plan", test_plan);
        return g_test_run();
}
