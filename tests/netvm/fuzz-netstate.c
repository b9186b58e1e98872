/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the netvm's state file (docs/netvm.md, "State
 * file"), what vmfed-netd reads from --state FILE and from the broker's
 * SetState: netstate_parse() without a rules directory (as over D-Bus).
 *
 * Invariants: failure comes with "SOURCE:LINE: message" errors and no
 * state; a parsed state's canonical text (netstate_format()) parses again
 * to an equal state (netstate_equal()) and formats to the same text; a
 * copy is equal; removing and putting back each client gives an equal
 * state again; firewall errors are reported iff a client is broken.
 *
 * -Dfuzz=true builds the libFuzzer binary; every build replays the corpus
 * tests/netvm/fuzz-corpus-netstate/ (tests/lib/fuzz-replay.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <glib.h>

#include "common/log.h"
#include "netvm/netstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *a, const char *b) {
        fprintf(stderr, "netstate invariant broken: %s\n--- first:\n%s\n--- second:\n%s\n", what, a ? a : "(null)",
                b ? b : "(null)");
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool init;
        if (!init) {
                log_set_max_level(LOG_CRIT);
                init = true;
        }
        if (size > 512 * 1024)
                return 0;
        g_autofree char *text = g_strndup((const char *) data, size);
        g_autoptr(NetState) s = NULL;
        g_autofree char *errors = NULL;

        int r = netstate_parse("fuzz", text, NULL, &s, &errors);
        if (r < 0) {
                if (s || !errors || !g_str_has_prefix(errors, "fuzz:"))
                        fail("a refused state has errors naming the source", errors, NULL);
                return 0;
        }

        bool broken = false;
        for (guint i = 0; i < s->clients->len; i++) {
                NetClient *c = g_ptr_array_index(s->clients, i);
                broken = broken || firewall_is_broken(c->firewall);
                if (i > 0 && strcmp(((NetClient *) g_ptr_array_index(s->clients, i - 1))->name, c->name) >= 0)
                        fail("clients sorted by name, unique", c->name, NULL);
                if (netstate_find_client(s, c->name) != c)
                        fail("find_client", c->name, NULL);
                /* An IPv6 address outside every IPv6 downstream subnet fails its client closed. */
                for (guint j = 0; j < c->addrs->len; j++) {
                        const NetAddr *a = &g_array_index(c->addrs, NetAddr, j);
                        bool inside = false;
                        for (guint k = 0; k < s->downstream_addrs->len; k++)
                                inside = inside || netaddr_contains(&g_array_index(s->downstream_addrs, NetAddr, k), a);
                        if (a->family == AF_INET6 && !inside && !firewall_is_broken(c->firewall))
                                fail("a client with an IPv6 address outside fails closed", c->name, NULL);
                        if (a->family == AF_INET && !inside)
                                fail("an IPv4 address outside refuses the state", c->name, NULL);
                }
        }
        g_autofree char *fw_errors = netstate_firewall_errors(s);
        if (broken != (fw_errors != NULL))
                fail("firewall errors iff a client is broken", fw_errors, NULL);

        g_autofree char *out = netstate_format(s);
        g_autoptr(NetState) s2 = NULL;
        g_autofree char *errors2 = NULL;
        if (netstate_parse("formatted", out, NULL, &s2, &errors2) < 0)
                fail("the formatted state parses", out, errors2);
        if (!netstate_equal(s, s2) || !netstate_equal(s2, s))
                fail("the formatted state parses to an equal state", text, out);
        g_autofree char *out2 = netstate_format(s2);
        if (strcmp(out, out2) != 0)
                fail("formatting is stable", out, out2);

        g_autoptr(NetState) copy = netstate_copy(s);
        if (!netstate_equal(s, copy))
                fail("a copy is equal", out, NULL);
        for (guint i = 0; i < s->clients->len; i++) {
                NetClient *c = netclient_ref(g_ptr_array_index(s->clients, i));
                g_autofree char *e = NULL;
                if (netstate_remove_client(copy, c->name) < 0)
                        fail("remove a client", c->name, NULL);
                if (netstate_equal(s, copy))
                        fail("a state without a client differs", c->name, NULL);
                if (netstate_put_client(copy, c, &e) < 0) {
                        fail("put back a client", c->name, e);
                }
                if (!netstate_equal(s, copy)) {
                        g_autofree char *o = netstate_format(copy);
                        fail("putting back a client gives an equal state", out, o);
                }
        }
        return 0;
}
