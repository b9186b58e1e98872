/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NetvmLinks: the broker's side of every network VM.
 *
 *   - For each netvm (a service VM that is the default netvm or some VM's
 *     NetVM=, when vmfedd runs with --bridge) the domain has a second
 *     virtio port org.vmfed.netvm.0 on a socket QEMU listens on,
 *     STATE/channels/NAME@netvm.sock (domain_xml_netvm_channel_path()).
 *     While the netvm runs the broker connects there (again a second
 *     after the connection breaks) and is the D-Bus server; vmfed-netd
 *     speaks org.vmfed.NetVM1 on it.  The netvm's agent keeps its own
 *     channel org.vmfed.agent.0.
 *   - Desired state per netvm: uplink, DNS and DHCP= from CONFIG/network.conf,
 *     the downstream gateway addresses (IPv4 and IPv6, addressing.h), and every running
 *     client VM (name, MAC from domain_xml_vm_mac(), fixed IPv4 and IPv6 addresses,
 *     firewall from CONFIG/firewall.d/NAME.rules or the [Firewall]
 *     section's Rules= of vms.d/NAME.vm).  Sent whole (SetState) each time
 *     vmfed-netd connects (netvm boot or restart, broker restart); a client
 *     that starts is AddClient, one that stops RemoveClient (a persona
 *     switch is RemoveClient A + AddClient B: two small transactions).
 *   - The client's agent gets address, gateway and DNS (Agent1.SetNetwork,
 *     through route.h: sent once its agent has said Hello), then its IPv6
 *     address and gateway (a second SetNetwork: netconfig takes one family
 *     per call).  A client without the agent gets the same by DHCP.
 *   - Host side (netvm/host/hostnet.h): the bridges are created at start, the
 *     netvm's tap joins as the router port, each client's tap gets its
 *     anti-spoofing chain (MAC + addresses) when the VM runs and loses it
 *     when it stops.
 *
 * CONFIG/network.conf (GKeyFile, optional, read at start):
 *
 *   [Network]
 *   Subnet=10.137.0.0/24
 *   Subnet6=fd2a:f345:cbfe::/64       (default: the ULA derived from Subnet=; "none": no IPv6)
 *   [NetVM netvm]
 *   Uplink=eth1                       (the netvm's uplink interface)
 *   UplinkAddress=192.0.2.2/24        (optional, ';'-separated)
 *   UplinkGateway=192.0.2.1           (optional)
 *   DNS=192.0.2.53                    (upstream resolvers, optional)
 *   Downstream=eth0                   (its NIC on the host bridge)
 *   DHCP=yes                          (DHCPv4, RA, DHCPv6 for the clients; default yes)
 */
#pragma once

#include "broker/broker.h"
#include "federation/federation.h"

typedef struct NetvmLinks NetvmLinks;

int netvm_links_new(Broker *b, NetvmLinks **ret);
NetvmLinks *netvm_links_free(NetvmLinks *n);

/* Right before vm's domain starts (a netvm: its link and bridge are set up). */
int netvm_links_prepare(Broker *b, const char *vm);
/*
 * VM state changes arrive on the broker's VmEvents (broker/vm-events.h), the
 * federation's (re)creation (connect to every running netvm, take over the VMs
 * that run) and an agent's Hello (send it its network unless a SetNetwork is
 * on its way) as broker events (broker.h): netvm_links_new() watches both.
 */

/*
 * Serve a connected socket as the link to the vmfed-netd of netvm (what
 * the link does with the socket it connected to QEMU's port), replacing
 * the connection it has, and send it the whole state.  Takes fd in every
 * case.  For the netvm link's fuzz target (tests/broker/fuzz-netvm-link.c).
 */
int netvm_links_adopt_connection(Broker *b, const VmSpec *netvm, int fd);
