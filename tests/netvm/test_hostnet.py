#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The host side (netvm/host/hostnet.h) with real traffic, all inside namespaces.

  "host" namespace: bridge brv made by hostnet_bridge_ensure(); client VMs
  X and Y attached with hostnet_port_attach() (isolated ports plus
  anti-spoofing in table `bridge vmfed-host`), the netvm with
  hostnet_netvm_attach().  The netvm namespace runs echo servers.

Usage: test_hostnet.py HOSTNET_TOOL
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netlab import Failure, Lab, NETTOOL, PYTHON, require_root  # noqa: E402

MAC_X, MAC_Y = "52:54:00:00:01:01", "52:54:00:00:01:02"
IP_X, IP_Y, GW = "10.201.0.20", "10.201.0.21", "10.201.0.1"


def main():
    require_root()
    tool = os.path.abspath(sys.argv[1])
    lab = Lab("h")
    try:
        run(lab, tool)
    except Failure as e:
        print(e, flush=True)
        return 1
    finally:
        lab.cleanup()
    print("1..%d" % lab.checks)
    return 0


def run(lab, tool):
    host = lab.ns("host")
    netvm = lab.ns("netvm")
    x = lab.ns("x")
    y = lab.ns("y")

    def hn(*args, check=True):
        return lab.nsx(host, tool, *args, check=check)

    def table():
        return lab.nsx(host, "nft", "list", "table", "bridge", "vmfed-host", check=False, capture=True) or ""

    def port_detail(port):
        return lab.nsx(host, "ip", "-d", "link", "show", port, capture=True)

    lab.check(hn("ensure", "brv") == 0, "hostnet_bridge_ensure creates the bridge")
    lab.check(hn("ensure", "brv") == 0, "hostnet_bridge_ensure again is a no-op")
    lab.check(table().count("iifname vmap @ports") == 1, "the table has one dispatch rule after two ensures")
    lab.sh("ip", "-n", host, "link", "add", "notbr", "type", "veth", "peer", "name", "notbr1")
    lab.check(hn("ensure", "notbr", check=False) != 0, "ensure refuses a non-bridge of that name")

    lab.veth(netvm, "eth0", host, "vnetvm")
    lab.veth(x, "eth0", host, "tapx", mac_a=MAC_X)
    lab.veth(y, "eth0", host, "tapy", mac_a=MAC_Y)
    lab.sh("ip", "-n", netvm, "addr", "add", GW + "/24", "dev", "eth0")
    for ns, ip in ((x, IP_X), (y, IP_Y)):
        lab.sh("ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0")
    lab.spawn(netvm, PYTHON, NETTOOL, "serve-tcp", "0.0.0.0", "7000")
    udp_log = os.path.join(lab.tmp, "udp.log")
    lab.spawn(netvm, PYTHON, NETTOOL, "serve-udp", "0.0.0.0", "7001", udp_log)
    lab.spawn(y, PYTHON, NETTOOL, "serve-tcp", "0.0.0.0", "7000")

    lab.check(hn("netvm", "brv", "vnetvm") == 0, "hostnet_netvm_attach")
    lab.check(hn("attach", "brv", "tapx", MAC_X, IP_X, "fd00:201::20") == 0, "hostnet_port_attach X")
    lab.check(hn("attach", "brv", "tapy", MAC_Y, IP_Y) == 0, "hostnet_port_attach Y")
    lab.check(hn("attach", "brv", "tapx", MAC_X, IP_X, "fd00:201::20") == 0, "attaching X again is fine")
    t = table()
    lab.check(t.count("chain port-tapx") == 1 and t.count("ether saddr != 52:54:00:00:01:01") == 1,
              "re-attaching replaced X's rules instead of adding more")
    lab.check(re.search(r'"tapx" : goto port-tapx', t) is not None, "X's map element")
    lab.check("isolated on" in port_detail("tapx") and "isolated on" in port_detail("tapy"),
              "client ports are isolated (IFLA_BRPORT_ISOLATED)")
    lab.check("isolated off" in port_detail("vnetvm"), "the netvm's port is not isolated")
    lab.check("master brv" in port_detail("tapx"), "X's tap is on the bridge")
    lab.check(hn("attach", "brv", "tapx", "01:00:5e:00:00:01", IP_X, check=False) != 0,
              "a multicast MAC is refused")
    lab.check(hn("attach", "brv", "nosuchtap", MAC_X, IP_X, check=False) != 0, "a missing tap is refused")

    lab.check(lab.tool(x, "tcp", GW, "7000"), "X reaches the netvm")
    lab.check(lab.tool(y, "tcp", GW, "7000"), "Y reaches the netvm")
    lab.check(not lab.tool(x, "tcp", IP_Y, "7000"), "X cannot reach Y (isolated ports)")

    # X spoofs Y's address.
    lab.sh("ip", "-n", x, "addr", "add", IP_Y + "/32", "dev", "eth0")
    lab.tool(x, "udp", GW, "7001", "--src", IP_Y, "--token", "spoofedIP")
    lab.sh("ip", "-n", x, "addr", "del", IP_Y + "/32", "dev", "eth0")
    # X spoofs Y's MAC (and address).
    lab.sh("ip", "-n", x, "link", "set", "eth0", "address", MAC_Y)
    lab.sh("ip", "-n", x, "addr", "add", IP_Y + "/32", "dev", "eth0")
    lab.tool(x, "udp", GW, "7001", "--src", IP_Y, "--token", "spoofedMAC")
    lab.sh("ip", "-n", x, "addr", "del", IP_Y + "/32", "dev", "eth0")
    lab.sh("ip", "-n", x, "link", "set", "eth0", "address", MAC_X)
    lab.check(lab.tool(x, "udp", GW, "7001", "--token", "honestX"), "X's own traffic passes")
    seen = open(udp_log).read()
    lab.check("spoofedIP" not in seen, "X's packets with Y's address are dropped at the bridge")
    lab.check("spoofedMAC" not in seen, "X's packets with Y's MAC are dropped at the bridge")
    lab.check("honestX" in seen, "the server saw X's honest packet")

    # A DHCP client before it has an address: its DISCOVER (0.0.0.0 -> broadcast) reaches the netvm.
    dhcp_log = os.path.join(lab.tmp, "dhcp.log")
    lab.spawn(netvm, PYTHON, NETTOOL, "serve-udp", "0.0.0.0", "67", dhcp_log)
    lab.wait_for(lambda: "0.0.0.0:67" in lab.nsx(netvm, "ss", "-lnu", capture=True), "the DHCP listener")
    lab.nsx(x, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "1", "-T", "1", "-s", "/bin/true",
            check=False, timeout=20)
    lab.check(os.path.exists(dhcp_log) and "0.0.0.0 " in open(dhcp_log, errors="replace").read(),
              "X's DHCPDISCOVER from 0.0.0.0 passes the bridge to the netvm")

    # ARP spoofing: X claims Y's address in a gratuitous ARP.  The netvm knows
    # Y already; without the filter the forged ARP would overwrite that entry
    # (after the kernel's 1 s locktime).
    lab.check(lab.tool(y, "tcp", GW, "7000"), "Y talks to the netvm")
    lab.check(MAC_Y in lab.nsx(netvm, "ip", "neigh", "show", IP_Y, capture=True), "the netvm knows Y's MAC")
    import time
    time.sleep(1.2)
    lab.nsx(x, "busybox", "arping", "-U", "-c", "2", "-s", IP_Y, "-I", "eth0", GW, check=False)
    lab.nsx(x, "busybox", "arping", "-A", "-c", "2", "-s", IP_Y, "-I", "eth0", GW, check=False)
    neigh = lab.nsx(netvm, "ip", "neigh", "show", IP_Y, capture=True)
    lab.check(MAC_X not in neigh and MAC_Y in neigh, "X's forged ARP for Y's address does not reach the netvm")
    lab.check(lab.tool(y, "tcp", GW, "7000"), "Y still reaches the netvm")

    lab.check(hn("detach", "tapx") == 0, "hostnet_port_detach X")
    t = table()
    lab.check("port-tapx" not in t and "tapx" not in t, "X's chain and element are gone")
    lab.check("master brv" not in port_detail("tapx"), "X's tap is off the bridge")
    lab.check("port-tapy" in t, "Y's chain is untouched")
    lab.check(hn("detach", "tapx") == 0, "detaching again is a no-op")
    lab.check(hn("remove", "brv") == 0, "hostnet_bridge_remove")
    lab.check(lab.nsx(host, "ip", "link", "show", "brv", check=False) != 0, "the bridge is gone")
    lab.check(hn("remove", "brv") == 0, "removing again is a no-op")


if __name__ == "__main__":
    sys.exit(main())
