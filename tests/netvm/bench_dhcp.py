#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: DHCP, DHCPv6 and reject through the real vmfed-netd and dnsmasq.

  netvm (vmfed-netd --watch, DHCP=yes, down0 10.220.0.1/24 fd00:220::1/64)
      | down0 -- eth0
  client (MAC 52:54:00:00:02:0a; no address until DHCP)

Medians of RUNS each: busybox udhcpc from its start to its exit with a lease
(DHCPDISCOVER, OFFER, REQUEST, ACK, the script; -q; exec_floor_ms is what
`ip netns exec NS busybox true` alone costs), the DHCPv6 exchange
(Solicit to Reply, nettool.py dhcp6), and a TCP connect to a `reject`ed
port until ECONNREFUSED.  Prints one JSON line.

Usage: bench_dhcp.py VMFED_NETD
"""
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netlab import Failure, Lab, NETTOOL, PYTHON  # noqa: E402

RUNS = 15
STATE = """[Uplink]
Interface=up0
Address=192.0.2.2/24
[Downstream]
Interface=down0
Address=10.220.0.1/24
Address=fd00:220::1/64
DHCP=yes
[Client c]
MAC=52:54:00:00:02:0a
Address=10.220.0.10
Address=fd00:220::10
Rule=default reject
"""


def main():
    name = "netvm-dhcp"
    if os.geteuid() != 0 or subprocess.run(["which", "dnsmasq"], capture_output=True).returncode != 0:
        print(json.dumps({"benchmark": name, "skipped": "needs root and dnsmasq"}))
        return 77
    netd = os.path.abspath(sys.argv[1])
    lab = Lab("b")
    try:
        os.chmod(lab.tmp, 0o711)
        netvm, inet, client = lab.ns("netvm"), lab.ns("inet"), lab.ns("client")
        lab.veth(netvm, "up0", inet, "inet0")
        lab.sh("ip", "-n", inet, "addr", "add", "192.0.2.1/24", "dev", "inet0")
        lab.veth(netvm, "down0", client, "eth0")
        lab.sh("ip", "-n", client, "link", "set", "eth0", "address", "52:54:00:00:02:0a")
        state = os.path.join(lab.tmp, "netvm.state")
        with open(state, "w") as f:
            f.write(STATE)
        log = os.path.join(lab.tmp, "netd.log")
        lab.spawn(netvm, netd, "--state", state, "--watch", "--run-dir", os.path.join(lab.tmp, "run"), log=log)
        lab.wait_for(lambda: "dnsmasq started" in open(log).read(), "dnsmasq")
        script = os.path.join(lab.tmp, "script.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(script, 0o755)

        def udhcpc():
            t0 = time.monotonic()
            rc = lab.nsx(client, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1",
                         "-s", script, check=False, timeout=30)
            if rc != 0:
                raise Failure("udhcpc got no lease")
            return (time.monotonic() - t0) * 1000
        udhcpc()        # dnsmasq may still be binding
        lease = [udhcpc() for _ in range(RUNS)]

        def floor():
            t0 = time.monotonic()
            lab.nsx(client, "busybox", "true")
            return (time.monotonic() - t0) * 1000
        exec_floor = statistics.median([floor() for _ in range(RUNS)])
        dhcp6 = []
        for _ in range(RUNS):
            out = lab.nsx(client, PYTHON, NETTOOL, "dhcp6", "eth0", "52:54:00:00:02:0a", capture=True).split()
            dhcp6.append(float(out[2]))
        lab.sh("ip", "-n", client, "addr", "add", "10.220.0.10/32", "dev", "eth0")
        lab.sh("ip", "-n", client, "route", "add", "10.220.0.1/32", "dev", "eth0")
        lab.sh("ip", "-n", client, "route", "add", "default", "via", "10.220.0.1", "dev", "eth0")
        refused = []
        for _ in range(RUNS):
            out = lab.nsx(client, PYTHON, NETTOOL, "refused", "tcp", "192.0.2.1", "9999", capture=True).split()
            if out[0] != "ECONNREFUSED":
                raise Failure("reject: " + " ".join(out))
            refused.append(float(out[1]))
        print(json.dumps({"benchmark": name, "unit": "ms", "runs": RUNS,
                          "udhcpc_discover_to_lease_ms": round(statistics.median(lease), 2),
                          "udhcpc_min_ms": round(min(lease), 2),
                          "exec_floor_ms": round(exec_floor, 2),
                          "dhcpv6_solicit_to_reply_ms": round(statistics.median(dhcp6), 2),
                          "reject_tcp_connect_refused_ms": round(statistics.median(refused), 3)}))
        return 0
    except Failure as e:
        print(json.dumps({"benchmark": name, "failed": str(e)}))
        return 1
    finally:
        lab.cleanup()


if __name__ == "__main__":
    sys.exit(main())
