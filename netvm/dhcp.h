/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * DHCP for clients without the agent: vmfed-netd runs dnsmasq(8) and keeps
 * it configured from the desired state (docs/netvm.md, "DHCP").
 *
 * dnsmasq serves every client exactly its fixed address by MAC
 * (dhcp-hostsfile) and nothing to an unknown MAC, on the downstream
 * interface only; DNS stays the kernel's DNS path (port=0).  A change of
 * clients rewrites the hosts file and sends dnsmasq SIGHUP (it re-reads
 * the file, nothing else restarts); a change of the downstream side, or an
 * address that moves to another MAC (dnsmasq would keep it for the old
 * lease until that expires), restarts it.  The child is watched from the main loop and restarted a
 * second after it died.
 */
#pragma once

#include "common/macro.h"
#include "netvm/netstate.h"

typedef struct Dhcp Dhcp;

/* dnsmasq: the program (searched in PATH); run_dir: where its files go. */
Dhcp *dhcp_new(const char *dnsmasq, const char *run_dir);
/* Stops dnsmasq. */
Dhcp *dhcp_free(Dhcp *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(Dhcp *, dhcp_free)

/* Start, reconfigure or stop dnsmasq for s (stopped when s->dhcp is false). 0 or -errno. */
int dhcp_apply(Dhcp *d, const NetState *s);

/* The text of dnsmasq's configuration and hosts file for s (for tests). */
char *dhcp_config_text(const NetState *s, const char *hosts_path);
char *dhcp_hosts_text(const NetState *s);
