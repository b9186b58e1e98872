/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for client firewall rules (vmfed.firewall(5)) on both
 * of their ways in:
 *
 *   1. the input as a rules file (firewall.d/NAME.rules): firewall_parse_text(),
 *      then compiled into its nftables plan (fwplan_new()) when it parses;
 *   2. the input as a VM file whose [Firewall] Rules= the broker turns into
 *      rules (broker/client-firewall.c, client_firewall_rules()), then into
 *      the netvm's state-file lines (client_firewall_append_state()), parsed
 *      by the netvm (netstate_parse()).
 *
 * Invariants: broken iff an error was recorded; every rule's canonical text
 * (fwrule_format()) parses back to the same rule; rules text that reaches
 * the netvm through the state file means the same there as parsed directly
 * (same rules, same default, broken or not alike).
 *
 * -Dfuzz=true builds the libFuzzer binary; every build replays the corpus
 * tests/netvm/fuzz-corpus-firewall/ (tests/lib/fuzz-replay.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "broker/client-firewall.h"
#include "common/log.h"
#include "netvm/firewall.h"
#include "netvm/fwplan.h"
#include "netvm/netstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool rule_equal(const FwRule *a, const FwRule *b) {
        return a->action == b->action && a->dns == b->dns && a->has_dst == b->has_dst &&
               (!a->has_dst || netaddr_equal(&a->dst, &b->dst)) && a->proto == b->proto &&
               a->port_min == b->port_min && a->port_max == b->port_max && a->icmp_type == b->icmp_type;
}

static void check_firewall(const Firewall *fw, int r) {
        if ((r < 0) != firewall_is_broken(fw) || (fw->n_errors > 0) != (fw->errors->len > 0))
                abort();
        for (guint i = 0; i < fw->rules->len; i++) {
                const FwRule *rule = &g_array_index(fw->rules, FwRule, i);
                g_autofree char *text = fwrule_format(rule);
                g_autoptr(Firewall) again = firewall_new();
                if (!text || firewall_parse_line(again, "again", 1, text) < 0 || again->rules->len != 1 ||
                    !rule_equal(rule, &g_array_index(again->rules, FwRule, 0)))
                        abort();
        }
        if (!firewall_is_broken(fw)) {
                FwPlan *p = fwplan_new(fw);
                if (!p)
                        abort();
                fwplan_unref(p);
        }
}

/* The rules as they reach the netvm: Rule= lines of a client in a state file. */
static void check_through_state(const char *rules, const Firewall *direct) {
        g_autoptr(GString) s = g_string_new("[Uplink]\nInterface=up0\n[Downstream]\nInterface=down0\n"
                                            "Address=10.0.0.1/24\n[Client v]\nMAC=52:54:00:00:00:01\n"
                                            "Address=10.0.0.2\n");
        g_autoptr(NetState) state = NULL;
        g_autofree char *errors = NULL;

        client_firewall_append_state(s, rules);
        if (netstate_parse("state", s->str, NULL, &state, &errors) < 0)
                return; /* a line break in a rule: the state is refused whole, which fails closed too */
        NetClient *c = netstate_find_client(state, "v");
        if (!c || !c->has_rules)
                abort();
        if (firewall_is_broken(c->firewall) != firewall_is_broken(direct))
                abort();
        if (firewall_is_broken(direct))
                return;
        if (c->firewall->rules->len != direct->rules->len ||
            firewall_default(c->firewall) != firewall_default(direct))
                abort();
        for (guint i = 0; i < direct->rules->len; i++)
                if (!rule_equal(&g_array_index(direct->rules, FwRule, i), &g_array_index(c->firewall->rules, FwRule, i)))
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool init;
        if (!init) {
                log_set_max_level(LOG_CRIT);
                init = true;
        }
        if (size > 256 * 1024)
                return 0;
        g_autofree char *text = g_strndup((const char *) data, size);

        /* 1. A rules file. */
        g_autoptr(Firewall) fw = firewall_new();
        int r = firewall_parse_text(fw, "fuzz.rules", text);
        check_firewall(fw, r);
        check_through_state(text, fw);

        /* 2. [Firewall] of a VM file. */
        VmSpec spec = { .name = (char *) "v", .source_text = text };
        g_autofree char *rules = client_firewall_rules("/nonexistent-vmfed-fuzz", &spec, "v");
        if (rules) {
                g_autoptr(Firewall) fw2 = firewall_new();
                r = firewall_parse_text(fw2, "v.vm", rules);
                check_firewall(fw2, r);
                check_through_state(rules, fw2);
        }
        return 0;
}
