/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NetConfig: the network configuration the broker gives a VM (one IPv4 or
 * IPv6 address with prefix, a default gateway, DNS servers), applied inside
 * the guest with libnl (rtnetlink): the interface is set up, the address
 * added (addresses of the same family that the broker gave before are
 * replaced, others left alone), the default route replaced; DNS servers
 * are written to resolv.conf atomically.  Idempotent.
 */
#pragma once

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>

#define NET_CONFIG_DNS_MAX 3

typedef struct NetConfig {
        char ifname[IF_NAMESIZE];
        int family;                     /* AF_INET or AF_INET6 */
        unsigned char address[16];
        unsigned prefixlen;
        bool have_gateway;
        unsigned char gateway[16];
        size_t n_dns;
        char dns[NET_CONFIG_DNS_MAX][64]; /* validated textual addresses */
} NetConfig;

/* Validate untrusted text ("10.137.0.5/24", "10.137.0.1", {"10.137.0.1"}); why: g_free. */
int net_config_parse(const char *ifname, const char *address, const char *gateway, const char *const *dns,
                     NetConfig *ret, char **why);

/* -ENODEV when the interface does not exist; other negative errno with *why. */
int net_config_apply(const NetConfig *c, const char *resolv_conf, char **why);
