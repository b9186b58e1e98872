#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Real traffic through the real vmfed-netd, between network namespaces.

  internet (192.0.2.1, 192.0.2.53 "resolver", 198.51.100.7, 2001:db8::1)
      | inet0 -- up0
  netvm: vmfed-netd --state FILE --watch     (down0: 10.200.0.1, fd00:200::1)
      | down0 -- nv0
  host: bridge br0, client ports isolated (like libvirt <port isolated='yes'/>)
      | pa0/pb0/pc0
  clients A (10.200.0.10), B (10.200.0.11), C (10.200.0.12)

Usage: test_traffic.py VMFED_NETD
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netlab import Failure, Lab, NETTOOL, PYTHON, require_root  # noqa: E402

NETD = None
MAC = {"a": "52:54:00:00:00:0a", "b": "52:54:00:00:00:0b", "c": "52:54:00:00:00:0c"}
IP4 = {"a": "10.200.0.10", "b": "10.200.0.11", "c": "10.200.0.12"}
IP6 = {"a": "fd00:200::10", "b": "fd00:200::11"}

HEADER = """\
[Uplink]
Interface=up0
Address=192.0.2.2/24
Address=2001:db8::2/64
Gateway=192.0.2.1
Gateway=2001:db8::1
DNS=192.0.2.53

[Downstream]
Interface=down0
Address=10.200.0.1/24
Address=fd00:200::1/64
"""

RULES_A = """\
# A may use DNS, the web port and UDP 5353 of 192.0.2.1, and nothing else
default drop
accept dns
accept 192.0.2.1 proto tcp port 8080
accept 192.0.2.1 proto udp port 5353
accept 192.0.2.0/28 proto udp port 5350-5360
accept 2001:db8::/64 proto tcp port 8080
"""

RULES_C = """\
default drop
accept 10.200.0.11 proto tcp port 2222
"""


def client_section(name, rules_file=None, inline=None):
    s = "\n[Client %s]\nMAC=%s\nAddress=%s\n" % (name, MAC[name], IP4[name])
    if name in IP6:
        s += "Address=%s\n" % IP6[name]
    if rules_file:
        s += "RulesFile=%s\n" % rules_file
    for line in (inline or "").splitlines():
        s += "Rule=%s\n" % line
    return s


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    global NETD
    require_root()
    NETD = os.path.abspath(sys.argv[1])
    lab = Lab("t")
    try:
        run(lab)
    except Failure as e:
        print(e, flush=True)
        for name in ("netd.log",):
            p = os.path.join(lab.tmp, name)
            if os.path.exists(p):
                print("---- %s" % name)
                print(open(p).read())
        return 1
    finally:
        lab.cleanup()
    print("1..%d" % lab.checks)
    return 0


def run(lab):
    inet = lab.ns("inet")
    netvm = lab.ns("netvm")
    host = lab.ns("host")
    cl = {n: lab.ns(n) for n in ("a", "b", "c")}

    # host bridge with isolated client ports
    lab.sh("ip", "-n", host, "link", "add", "br0", "type", "bridge")
    lab.sh("ip", "-n", host, "link", "set", "br0", "up")

    def plug_netvm():
        """The netvm's two NICs, with the fixed MACs the broker gives them."""
        lab.veth(netvm, "up0", inet, "inet0", mac_a="52:54:00:ff:00:02")
        for a in ("192.0.2.1/24", "192.0.2.53/24", "198.51.100.7/32"):
            lab.sh("ip", "-n", inet, "addr", "add", a, "dev", "inet0")
        lab.sh("ip", "-n", inet, "addr", "add", "2001:db8::1/64", "dev", "inet0", "nodad")
        lab.veth(netvm, "down0", host, "nv0", mac_a="52:54:00:ff:00:01")
        lab.sh("ip", "-n", host, "link", "set", "nv0", "master", "br0")

    plug_netvm()
    for n, ns in cl.items():
        lab.veth(ns, "eth0", host, "p%s0" % n, mac_a=MAC[n])
        lab.sh("ip", "-n", host, "link", "set", "p%s0" % n, "master", "br0")
        lab.sh("ip", "-n", host, "link", "set", "p%s0" % n, "type", "bridge_slave", "isolated", "on")
        # As docs/netvm.md recommends: a /32 and an on-link gateway, so that
        # every packet, also to another client, goes through the netvm.
        lab.sh("ip", "-n", ns, "addr", "add", IP4[n] + "/32", "dev", "eth0")
        lab.sh("ip", "-n", ns, "route", "add", "10.200.0.1/32", "dev", "eth0")
        lab.sh("ip", "-n", ns, "route", "add", "default", "via", "10.200.0.1", "dev", "eth0")
    for n in IP6:
        lab.sh("ip", "-n", cl[n], "addr", "add", IP6[n] + "/128", "dev", "eth0", "nodad")
        lab.sh("ip", "-n", cl[n], "-6", "route", "add", "fd00:200::1", "dev", "eth0")
        lab.sh("ip", "-n", cl[n], "-6", "route", "add", "default", "via", "fd00:200::1", "dev", "eth0")

    # servers
    logs = lab.tmp
    lab.spawn(inet, PYTHON, NETTOOL, "serve-tcp", "0.0.0.0", "8080")
    lab.spawn(inet, PYTHON, NETTOOL, "serve-tcp", "0.0.0.0", "9090")
    lab.spawn(inet, PYTHON, NETTOOL, "serve-tcp", "0.0.0.0", "7000")
    lab.spawn(inet, PYTHON, NETTOOL, "serve-tcp", "::", "8081")
    lab.spawn(inet, PYTHON, NETTOOL, "serve-tcp", "::", "8080")
    lab.spawn(inet, PYTHON, NETTOOL, "serve-udp", "0.0.0.0", "5353", os.path.join(logs, "udp5353.log"))
    lab.spawn(inet, PYTHON, NETTOOL, "serve-udp", "192.0.2.53", "53", os.path.join(logs, "dns.log"))
    lab.spawn(inet, PYTHON, NETTOOL, "serve-udp", "::", "5354", os.path.join(logs, "udp6.log"))
    lab.spawn(cl["b"], PYTHON, NETTOOL, "serve-tcp", "0.0.0.0", "2222")
    lab.spawn(cl["a"], PYTHON, NETTOOL, "serve-tcp", "0.0.0.0", "2222")

    # Another table in the netvm must be left alone.
    lab.nsx(netvm, "nft", "add table inet other; add chain inet other keep")

    state = os.path.join(lab.tmp, "netvm.state")
    with open(os.path.join(lab.tmp, "a.rules"), "w") as f:
        f.write(RULES_A)
    write_atomic(state, HEADER + client_section("a", rules_file="a.rules")
                 + client_section("b"))

    netd_log = os.path.join(lab.tmp, "netd.log")
    netd = lab.spawn(netvm, NETD, "--state", state, "--watch", log=netd_log)

    def table_has(pattern):
        out = lab.nsx(netvm, "nft", "list", "table", "inet", "vmfed", check=False, capture=True) or ""
        return re.search(pattern, out) is not None

    lab.wait_for(lambda: table_has(r"chain fwd-b"), "vmfed-netd to install its table")
    lab.wait_for(lambda: lab.tool(cl["b"], "tcp", "192.0.2.1", "9090"), "B's connectivity", timeout=10)

    a, b, c = cl["a"], cl["b"], cl["c"]
    # --- A's rules
    lab.check(lab.tool(a, "tcp", "192.0.2.1", "8080"), "A reaches 192.0.2.1 tcp/8080 (allowed)")
    lab.check(not lab.tool(a, "tcp", "192.0.2.1", "9090"), "A does not reach tcp/9090 (default drop)")
    lab.check(lab.tool(a, "udp", "192.0.2.1", "5353"), "A reaches udp/5353 (allowed)")
    lab.check(not lab.tool(a, "tcp", "198.51.100.7", "8080"), "A does not reach 198.51.100.7 tcp/8080")
    lab.check(lab.tool(a, "udp", "10.200.0.1", "53", "--token", "dnsA"),
              "A's DNS to the gateway reaches the resolver (DNS path, DNAT)")
    lab.check(any("dnsA" in l for l in open(os.path.join(logs, "dns.log"))),
              "the resolver saw A's query")
    lab.check(lab.tool(a, "tcp", "2001:db8::1", "8080"), "A reaches [2001:db8::1]:8080 over IPv6 (allowed)")
    lab.check(lab.tool(a, "tcp", "2001:db8::1", "8081") is False,
              "A does not reach [2001:db8::1]:8081 (port not allowed)")
    lab.sh("ip", "netns", "exec", inet, "true")
    lab.check(lab.tool(b, "tcp", "198.51.100.7", "9090"),
              "B (no firewall = default accept) reaches the internet")

    # --- isolation between clients
    lab.sh("ip", "-n", a, "route", "add", IP4["b"] + "/32", "dev", "eth0")
    lab.check(not lab.tool(a, "tcp", IP4["b"], "2222"), "A cannot reach B directly (isolated bridge ports)")
    lab.sh("ip", "-n", a, "route", "del", IP4["b"] + "/32", "dev", "eth0")
    lab.check(not lab.tool(a, "tcp", IP4["b"], "2222"), "A cannot reach B through the netvm")
    lab.check(not lab.tool(b, "tcp", IP4["a"], "2222"),
              "B cannot reach A through the netvm (default accept is uplink only)")

    # --- spoofing: A sends with B's address; nothing may come through
    lab.sh("ip", "-n", a, "addr", "add", IP4["b"] + "/32", "dev", "eth0")
    lab.sh("ip", "-n", a, "addr", "add", "10.200.0.99/32", "dev", "eth0")
    lab.tool(a, "udp", "192.0.2.1", "5353", "--src", IP4["b"], "--token", "spoofB")
    lab.tool(a, "udp", "192.0.2.1", "5353", "--src", "10.200.0.99", "--token", "spoof99")
    seen = open(os.path.join(logs, "udp5353.log")).read()
    lab.check("spoofB" not in seen, "A spoofing B's address gets nothing through")
    lab.check("spoof99" not in seen, "A spoofing an unassigned address gets nothing through")
    lab.sh("ip", "-n", a, "addr", "del", IP4["b"] + "/32", "dev", "eth0")
    lab.sh("ip", "-n", a, "addr", "del", "10.200.0.99/32", "dev", "eth0")
    lab.check(lab.tool(a, "udp", "192.0.2.1", "5353", "--token", "honestA"), "A's own address still works")
    # The same over IPv6: B may send anywhere (default accept), A spoofs B's IPv6 address.
    lab.check(lab.tool(b, "udp", "2001:db8::1", "5354", "--token", "honestB6"), "B reaches the internet over IPv6")
    lab.sh("ip", "-n", a, "addr", "add", IP6["b"] + "/128", "dev", "eth0", "nodad")
    lab.tool(a, "udp", "2001:db8::1", "5354", "--src", IP6["b"], "--token", "spoofB6")
    lab.sh("ip", "-n", a, "addr", "del", IP6["b"] + "/128", "dev", "eth0")
    seen6 = open(os.path.join(logs, "udp6.log")).read()
    lab.check("honestB6" in seen6 and "spoofB6" not in seen6, "A spoofing B's IPv6 address gets nothing through")

    # --- a long-lived flow of B
    count = os.path.join(lab.tmp, "b.count")
    lab.spawn(b, PYTHON, NETTOOL, "stream", "192.0.2.1", "7000", count)

    def flowing(what):
        def read():
            try:
                return open(count).read()
            except OSError:
                return "0"
        lab.wait_for(lambda: read() not in ("0", ""), "B's stream to start")
        first = read()
        if first == "dead":
            raise Failure("B's stream died " + what)
        time.sleep(0.6)
        second = read()
        lab.check(second != "dead" and int(second) > int(first), "B's established TCP flow keeps flowing " + what)

    flowing("before any change")

    # --- persona switch: remove A, add C; only A's and C's objects change
    mark = len(open(netd_log).read())
    write_atomic(state, HEADER + client_section("b") + client_section("c", inline=RULES_C))
    lab.wait_for(lambda: table_has(r"chain fwd-c") and not table_has(r"chain fwd-a"), "the persona switch")
    lab.wait_for(lambda: "Applied" in open(netd_log).read()[mark:], "netd's log of the switch")
    switch_log = open(netd_log).read()[mark:]
    lab.check(re.search(r"1 chain\(s\) added, 0 changed, 1 removed", switch_log) is not None,
              "the switch changed only A's and C's chains (%s)" %
              (re.search(r"nftables: .*", switch_log).group(0) if re.search(r"nftables: .*", switch_log) else "?"))
    flowing("across the persona switch")
    # vmfed-netd owns the PERMANENT entries only: the kernel may add a dynamic one for
    # A's address meanwhile (a late packet of an old flow of A's; CI saw this fail).
    neigh = lab.nsx(netvm, "ip", "neigh", "show", "dev", "down0", capture=True)
    a_permanent = [n for n in neigh.splitlines()
                   if n.split()[:1] in (["10.200.0.10"], ["fd00:200::10"]) and "PERMANENT" in n]
    c_ok = re.search(r"10\.200\.0\.12 lladdr %s PERMANENT" % MAC["c"], neigh) is not None
    lab.check(c_ok and not a_permanent, "C got a permanent neighbour entry, A's are gone"
              + ("" if c_ok and not a_permanent else " (ip neigh: %s)" % "; ".join(neigh.splitlines())))
    lab.check(lab.tool(c, "tcp", IP4["b"], "2222"), "C reaches B tcp/2222 (explicitly allowed)")
    lab.check(not lab.tool(c, "tcp", "192.0.2.1", "8080"), "C does not reach the internet (default drop)")
    lab.check(not lab.tool(b, "tcp", IP4["c"], "2222"), "B still cannot open connections to C")

    # --- restart vmfed-netd: reconcile, never flush
    lab.stop(netd)
    flowing("while vmfed-netd is stopped")
    mark = len(open(netd_log).read())
    netd = lab.spawn(netvm, NETD, "--state", state, "--watch", log=netd_log)
    lab.wait_for(lambda: "Applied" in open(netd_log).read()[mark:], "the restarted vmfed-netd")
    restart_log = open(netd_log).read()[mark:]
    lab.check("nftables: 0 message(s)" in restart_log, "a restart with the same state changes nothing in the kernel")
    flowing("across a vmfed-netd restart")

    # --- a broken rules file for A drops A's traffic, and only A's
    with open(os.path.join(lab.tmp, "a.rules"), "w") as f:
        f.write("default drop\naccept 192.0.2.1 proto tcp port 8080\naccept 192.0.2.1 proto tpc port 80\n")
    mark = len(open(netd_log).read())
    write_atomic(state, HEADER + client_section("a", rules_file="a.rules") + client_section("b")
                 + client_section("c", inline=RULES_C))
    lab.wait_for(lambda: table_has(r"chain fwd-a"), "A to come back")
    lab.wait_for(lambda: "Applied" in open(netd_log).read()[mark:], "netd's log of the broken rules")
    broken_log = open(netd_log).read()[mark:]
    lab.check(re.search(r"a\.rules:3: unknown protocol \"tpc\"", broken_log) is not None,
              "the broken rule is reported with file:line")
    lab.check(not lab.tool(a, "tcp", "192.0.2.1", "8080"), "A's traffic is dropped (even what line 2 allows)")
    lab.check(lab.tool(c, "tcp", IP4["b"], "2222"), "C is unaffected by A's broken rules")
    flowing("while A's rules are broken")

    # Fixing the file (same directory as the state) is picked up by --watch.
    mark = len(open(netd_log).read())
    write_atomic(os.path.join(lab.tmp, "a.rules"), RULES_A)
    lab.wait_for(lambda: lab.tool(a, "tcp", "192.0.2.1", "8080"), "A to work again after the fix", timeout=10)
    lab.check(True, "a fixed rules file is re-applied by --watch")

    # --- the state file itself broken: refused whole, the state in force stays
    mark = len(open(netd_log).read())
    write_atomic(state, HEADER + "\n[Client d]\nMAC=01:00:00:00:00:01\nAddress=10.200.0.13\n")
    lab.wait_for(lambda: "refused" in open(netd_log).read()[mark:], "the refusal of a broken state")
    lab.check(re.search(r"netvm\.state:\d+: MAC=: invalid unicast MAC", open(netd_log).read()[mark:]) is not None,
              "a broken state file is reported with file:line")
    lab.check(table_has(r"chain fwd-a") and table_has(r"chain fwd-c"), "and the state in force stays")
    flowing("after a refused state")

    # --- the netvm itself restarts: a new network namespace, nothing of the
    # old kernel state left, the same MACs and state; clients are not touched.
    mark = len(open(netd_log).read())
    write_atomic(state, HEADER + client_section("a", rules_file="a.rules") + client_section("b")
                 + client_section("c", inline=RULES_C))
    lab.wait_for(lambda: "Applied" in open(netd_log).read()[mark:], "the good state again")
    lab.stop(netd)
    lab.sh("ip", "netns", "del", netvm)
    # The kernel tears the namespace down later (a workqueue), the far end of its veth,
    # inet0, with it: until then a new inet0 cannot be made (CI: "File exists").
    lab.wait_for(lambda: lab.sh("ip", "-n", inet, "link", "show", "inet0", check=False) != 0,
                 "the old netvm's veth (inet0) to go away")
    lab.sh("ip", "netns", "add", netvm)
    lab.sh("ip", "-n", netvm, "link", "set", "lo", "up")
    # The internet servers bound to 0.0.0.0 survive; their addresses went with inet0.
    plug_netvm()
    mark = len(open(netd_log).read())
    netd = lab.spawn(netvm, NETD, "--state", state, "--watch", log=netd_log)
    lab.wait_for(lambda: "Applied" in open(netd_log).read()[mark:], "vmfed-netd in the restarted netvm")
    lab.check(lab.tool(b, "tcp", "192.0.2.1", "9090"),
              "after a netvm restart B reaches the internet again, without being touched")
    lab.check(lab.tool(c, "tcp", IP4["b"], "2222") and not lab.tool(c, "tcp", "192.0.2.1", "8080"),
              "and C's rules are enforced again")
    lab.check(lab.tool(a, "tcp", "192.0.2.1", "8080") and not lab.tool(a, "tcp", "192.0.2.1", "9090"),
              "and A's rules are enforced again")

    # --- other tables are left alone
    lab.nsx(netvm, "nft", "add table inet other; add chain inet other keep")
    mark = len(open(netd_log).read())
    write_atomic(state, HEADER + client_section("b") + client_section("c", inline=RULES_C))
    lab.wait_for(lambda: "Applied" in open(netd_log).read()[mark:], "a change with another table present")
    lab.check(lab.nsx(netvm, "nft", "list", "chain", "inet", "other", "keep", check=False) == 0,
              "table inet other is untouched")
    lab.stop(netd)
    lab.check(netd.returncode == 0, "vmfed-netd exits cleanly on SIGTERM")
    lab.check(table_has(r"chain fwd-b"), "the table outlives vmfed-netd (no owner flag)")

    # --once, --check
    rc = lab.nsx(netvm, NETD, "--state", state + ".missing", "--once", check=False)
    lab.check(rc == 1, "--once with a missing state file fails")
    import subprocess
    good = os.path.join(lab.tmp, "good.state")
    write_atomic(good, HEADER + client_section("b"))
    r = subprocess.run([NETD, "--state", good, "--check"], capture_output=True, text=True)
    lab.check(r.returncode == 0 and "OK (1 client(s))" in r.stdout, "--check accepts a good state")
    with open(os.path.join(lab.tmp, "a.rules"), "w") as f:
        f.write("accept dns\nacept 192.0.2.1\n")
    bad = os.path.join(lab.tmp, "bad.state")
    write_atomic(bad, HEADER + client_section("a", rules_file="a.rules"))
    r = subprocess.run([NETD, "--state", bad, "--check"], capture_output=True, text=True)
    lab.check(r.returncode == 1 and re.search(r"a\.rules:2: unknown action \"acept\"", r.stderr) is not None,
              "--check reports a broken rules file with file:line and fails")


if __name__ == "__main__":
    sys.exit(main())
