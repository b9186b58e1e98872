/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NetworkConf: CONFIG/network.conf (GKeyFile, optional, read at start; the
 * format is in broker/netvm-link.h).  A file that is missing gives the
 * defaults; one that does not parse is logged and gives the defaults too.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

/* What a netvm's vmfed-netd gets about its uplink ([NetVM NAME]). */
typedef struct NetvmUplink {
        char *interface;   /* Uplink=, default eth1 */
        char **addresses;  /* UplinkAddress=, never NULL */
        char **gateways;   /* UplinkGateway=, never NULL */
        char **dns;        /* DNS=, never NULL */
        char *downstream;  /* Downstream=, default eth0 */
        bool dhcp;         /* DHCP=, default yes: DHCPv4, RA and DHCPv6 for clients without the agent */
} NetvmUplink;

typedef struct NetworkConf NetworkConf;

NetworkConf *network_conf_load(const char *config_dir);
NetworkConf *network_conf_free(NetworkConf *c);
const char *network_conf_path(NetworkConf *c);
/* [Network] Subnet=, NULL when not set. */
char *network_conf_subnet(NetworkConf *c);
/* [Network] Subnet6=, NULL when not set (addressing.h: the default ULA). */
char *network_conf_subnet6(NetworkConf *c);
void network_conf_uplink(NetworkConf *c, const char *netvm, NetvmUplink *ret);
void netvm_uplink_done(NetvmUplink *u);
