/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dnsmasq's configuration and hosts file from a state (netvm/dhcp.h). */
#include <string.h>

#include <glib.h>

#include "netvm/dhcp.h"

#define STATE \
        "[Uplink]\nInterface=up0\nDNS=192.0.2.53\n" \
        "[Downstream]\nInterface=down0\nAddress=10.137.0.1/24\nAddress=fd00:137::1/64\nDHCP=yes\n" \
        "[Client a]\nMAC=52:54:00:00:00:0a\nAddress=10.137.0.10 fd00:137::10\n" \
        "[Client b]\nMAC=52:54:00:00:00:0b\nAddress=10.137.0.11\n" \
        "[Client c]\nMAC=52:54:00:00:00:0c\nAddress=fd00:137::12\n"

static NetState *state(const char *text) {
        NetState *s = NULL;
        g_autofree char *errors = NULL;
        g_assert_cmpint(netstate_parse("t", text, NULL, &s, &errors), ==, 0);
        return s;
}

static void test_config(void) {
        g_autoptr(NetState) s = state(STATE);
        g_autofree char *conf = dhcp_config_text(s, "/run/x/hosts");
        static const char *const want[] = {
                "port=0\n",                                     /* no DNS: the kernel's DNS path */
                "interface=down0\nbind-interfaces\n",           /* the downstream side only */
                "dhcp-ignore=tag:!known\n",                     /* no lease for an unknown MAC */
                "dhcp-hostsfile=/run/x/hosts\n",
                "dhcp-range=10.137.0.0,static,255.255.255.0,1h\n",
                "dhcp-option=option:netmask,255.255.255.255\n", /* a /32 ... */
                "dhcp-option=option:router,10.137.0.1\n",
                "dhcp-option=option:classless-static-route,10.137.0.1/32,0.0.0.0,0.0.0.0/0,10.137.0.1\n",
                "dhcp-option=option:dns-server,10.137.0.1\n",
                "enable-ra\n",
                "dhcp-range=fd00:137::,static,off-link,64,1h\n",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(want); i++)
                if (!strstr(conf, want[i]))
                        g_error("config lacks \"%s\":\n%s", want[i], conf);
        /* No IPv6 resolver: no IPv6 DNS server offered. */
        g_assert_null(strstr(conf, "option6:dns-server"));
}

static void test_hosts(void) {
        g_autoptr(NetState) s = state(STATE);
        g_autofree char *hosts = dhcp_hosts_text(s);
        g_assert_cmpstr(hosts, ==,
                        "52:54:00:00:00:0a,10.137.0.10,[fd00:137::10]\n"
                        "52:54:00:00:00:0b,10.137.0.11\n"
                        "52:54:00:00:00:0c,[fd00:137::12]\n");
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/dhcp/config", test_config);
        g_test_add_func("/dhcp/hosts", test_hosts);
        return g_test_run();
}
