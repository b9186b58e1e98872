#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Client lifecycle through the real vmfed-netd, between network namespaces:
conntrack hygiene when an address changes hands.

  internet (192.0.2.1)  | inet0 -- up0
  netvm: vmfed-netd --state FILE --watch   (down0: 10.210.0.1)
  host: bridge br0, isolated client ports
  clients A (10.210.0.10), B (10.210.0.11); N, a new VM (another MAC)
  that is given A's address when A goes

Usage: test_clients.py VMFED_NETD
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netlab import Failure, Lab, NETTOOL, PYTHON, require_root  # noqa: E402

NETD = None
MAC = {"a": "52:54:00:00:01:0a", "b": "52:54:00:00:01:0b", "n": "52:54:00:00:01:0e"}
IP4 = {"a": "10.210.0.10", "b": "10.210.0.11", "n": "10.210.0.10"}

HEADER = """\
[Uplink]
Interface=up0
Address=192.0.2.2/24
Gateway=192.0.2.1

[Downstream]
Interface=down0
Address=10.210.0.1/24
"""


def client(name, rules=None, addr=None):
    s = "\n[Client %s]\nMAC=%s\nAddress=%s\n" % (name, MAC[name], addr or IP4[name])
    for line in (rules or "").splitlines():
        s += "Rule=%s\n" % line
    return s


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


class Topo:
    def __init__(self, lab):
        self.lab = lab
        self.inet = lab.ns("inet")
        self.netvm = lab.ns("netvm")
        self.host = lab.ns("host")
        self.cl = {}
        lab.sh("ip", "-n", self.host, "link", "add", "br0", "type", "bridge")
        lab.sh("ip", "-n", self.host, "link", "set", "br0", "up")
        lab.veth(self.netvm, "up0", self.inet, "inet0", mac_a="52:54:00:ff:01:02")
        lab.sh("ip", "-n", self.inet, "addr", "add", "192.0.2.1/24", "dev", "inet0")
        lab.veth(self.netvm, "down0", self.host, "nv0", mac_a="52:54:00:ff:01:01")
        lab.sh("ip", "-n", self.host, "link", "set", "nv0", "master", "br0")
        self.state = os.path.join(lab.tmp, "netvm.state")
        # dnsmasq reads its hosts file as "nobody", after dropping root.
        os.chmod(lab.tmp, 0o711)
        self.log = os.path.join(lab.tmp, "netd.log")

    def plug(self, name, configure=True):
        lab = self.lab
        ns = self.cl[name] = lab.ns(name)
        port = "p%s0" % name
        lab.veth(ns, "eth0", self.host, port, mac_a=MAC[name])
        lab.sh("ip", "-n", self.host, "link", "set", port, "master", "br0")
        lab.sh("ip", "-n", self.host, "link", "set", port, "type", "bridge_slave", "isolated", "on")
        if configure:
            lab.sh("ip", "-n", ns, "addr", "add", IP4[name] + "/32", "dev", "eth0")
            lab.sh("ip", "-n", ns, "route", "add", "10.210.0.1/32", "dev", "eth0")
            lab.sh("ip", "-n", ns, "route", "add", "default", "via", "10.210.0.1", "dev", "eth0")
        return ns

    def unplug(self, name):
        self.lab.sh("ip", "-n", self.host, "link", "del", "p%s0" % name)

    def start(self, text):
        write_atomic(self.state, text)
        self.netd = self.lab.spawn(self.netvm, NETD, "--state", self.state, "--watch",
                                   "--run-dir", os.path.join(self.lab.tmp, "run"), log=self.log)
        self.lab.wait_for(lambda: "Applied" in self.logtext(), "vmfed-netd's first state")

    def logtext(self):
        return open(self.log).read() if os.path.exists(self.log) else ""

    def apply(self, text):
        mark = len(self.logtext())
        write_atomic(self.state, text)
        self.lab.wait_for(lambda: re.search(r"Applied|refused", self.logtext()[mark:]), "the new state")
        return self.logtext()[mark:]

    def conntrack(self, addr):
        """The netvm kernel's conntrack entries with addr as original source (conntrack(8))."""
        out = self.lab.nsx(self.netvm, "conntrack", "-L", "-s", addr, check=False, capture=True) or ""
        return [l for l in out.splitlines() if l.strip()]


def test_conntrack(lab, t):
    """After A is gone, a late packet of A's flow does not reach N, given A's address."""
    a, b = t.plug("a"), t.plug("b")
    t.start(HEADER + client("a") + client("b"))

    info = os.path.join(lab.tmp, "late.info")
    trigger = os.path.join(lab.tmp, "late.go")
    lab.spawn(t.inet, PYTHON, NETTOOL, "udp-late", "6000", info, trigger)
    lab.spawn(t.inet, PYTHON, NETTOOL, "serve-udp", "0.0.0.0", "6001")
    time.sleep(0.2)
    lab.check(lab.tool(a, "udp-from", "4000", "192.0.2.1", "6000"), "A opens a UDP flow to the internet")
    lab.check(lab.tool(b, "udp-from", "4001", "192.0.2.1", "6001"), "B opens a UDP flow to the internet")
    lab.wait_for(lambda: os.path.exists(info), "the internet peer to note A's flow")
    lab.check(len(t.conntrack(IP4["a"])) >= 1 and len(t.conntrack(IP4["b"])) >= 1,
              "the netvm's conntrack table has A's and B's flows")

    # A goes (persona switch): N, another VM with another MAC, gets A's address.
    t.unplug("a")
    n = t.plug("n")
    received = os.path.join(lab.tmp, "n.udp")
    lab.spawn(n, PYTHON, NETTOOL, "serve-udp", "0.0.0.0", "4000", received)


    log = t.apply(HEADER + client("b") + client("n"))
    lab.check(re.search(r"conntrack: \d+ entr(y|ies) of 1 released address", log) is not None,
              "vmfed-netd deleted the conntrack entries of A's address")
    lab.check(t.conntrack(IP4["a"]) == [], "no conntrack entry for A's address is left in the kernel")
    lab.check(len(t.conntrack(IP4["b"])) >= 1, "B's conntrack entry is untouched")
    open(trigger, "w").close()
    time.sleep(1.0)
    got = open(received).read() if os.path.exists(received) else ""
    lab.check("late" not in got, "a late packet of A's flow does not reach N, the next holder of A's address")
    lab.check(lab.tool(n, "udp", "192.0.2.1", "6001", "--token", "fromN"), "N itself reaches the internet")
    lab.check(t.conntrack(IP4["a"]) != [], "N's own flow is tracked (the check above can see entries)")

    # A client whose address changes (same name, same MAC): the old address's entries go.
    lab.check(lab.tool(b, "udp-from", "4003", "192.0.2.1", "6001"), "B opens a flow from its first address")
    log = t.apply(HEADER + client("b", addr="10.210.0.41") + client("n"))
    lab.check(t.conntrack(IP4["b"]) == [] and "1 released address" in log,
              "B's address changes: the entries of its old address are deleted")
    log = t.apply(HEADER + client("b") + client("n"))
    lab.check(lab.tool(b, "udp-from", "4002", "192.0.2.1", "6001"), "B opens another flow")

    # RemoveClient alone (no next holder): its entries go too.
    log = t.apply(HEADER + client("n"))
    lab.check(t.conntrack(IP4["b"]) == [] and "released address" in log,
              "removing B deletes B's conntrack entries")


RULES_REJECT = """\
default reject
accept 192.0.2.1 proto tcp port 8080
reject 192.0.2.1 proto udp port 9091
drop 192.0.2.1 proto tcp port 9092
"""


def refused(lab, ns, proto, addr, port):
    out = lab.nsx(ns, PYTHON, NETTOOL, "refused", proto, addr, str(port), capture=True, timeout=20).split()
    return out[0], float(out[1])


def test_reject(lab, t):
    """A rejected connection fails at once, with the error a reset / an ICMP error gives."""
    n = t.cl["n"]
    lab.spawn(t.inet, PYTHON, NETTOOL, "serve-tcp", "0.0.0.0", "8080")
    lab.spawn(t.inet, PYTHON, NETTOOL, "serve-tcp", "0.0.0.0", "9090")
    log = t.apply(HEADER + client("n", rules=RULES_REJECT))
    lab.check("Applied" in log, "a state with reject rules is applied")
    lab.wait_for(lambda: lab.tool(n, "tcp", "192.0.2.1", "8080"), "N's allowed port")
    err, ms = refused(lab, n, "tcp", "192.0.2.1", 9090)
    lab.check(err == "ECONNREFUSED", "TCP to a port of default reject is refused by a reset (%s, %.1f ms)" % (err, ms))
    err, ms = refused(lab, n, "udp", "192.0.2.1", 9091)
    lab.check(err == "EHOSTUNREACH", "UDP to a rejected port gets ICMP admin-prohibited (%s, %.1f ms)" % (err, ms))
    err, ms = refused(lab, n, "tcp", "192.0.2.1", 9092)
    lab.check(err == "TIMEOUT", "a dropped port still times out (%s)" % err)
    err, ms = refused(lab, n, "tcp", "192.0.2.1", 8080)
    lab.check(err == "OK", "the accepted port connects (%s)" % err)


UDHCPC_SCRIPT = """\
#!/bin/sh
# udhcpc's hook: keep what the server said, configure as a /32 with an on-link gateway.
env | grep -E '^(ip|subnet|router|dns|staticroutes|lease)=' > "$OUT.$1"
case "$1" in
bound|renew)
    ip addr add "$ip/32" dev "$interface"
    ip route add "$router" dev "$interface"
    ip route add default via "$router" dev "$interface" ;;
esac
exit 0
"""


def udhcpc(lab, ns, iface, out, tries=3):
    """busybox udhcpc: one lease and exit (-q), or give up after tries (-n); True on a lease."""
    script = os.path.join(lab.tmp, "udhcpc.sh")
    if not os.path.exists(script):
        with open(script, "w") as f:
            f.write(UDHCPC_SCRIPT)
        os.chmod(script, 0o755)
    rc = lab.nsx(ns, "env", "OUT=" + out, "busybox", "udhcpc", "-i", iface, "-f", "-q", "-n",
                 "-t", str(tries), "-T", "1", "-A", "1", "-O", "staticroutes", "-s", script, check=False, timeout=30)
    return rc == 0


def lease(path):
    try:
        return dict(l.strip().split("=", 1) for l in open(path + ".bound") if "=" in l)
    except OSError:
        return {}


def dnsmasq_pids(lab):
    out = lab.sh("pgrep", "-x", "dnsmasq", check=False, capture=True) or ""
    return set(out.split())


def test_dhcp(lab, t):
    """A client without any agent gets its address by DHCP, resolves a name and reaches the uplink."""
    lab.sh("ip", "-n", t.inet, "addr", "add", "192.0.2.53/24", "dev", "inet0")
    resolver = lab.spawn(t.inet, "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null",
                         "--listen-address=192.0.2.53", "--bind-interfaces", "--no-resolv", "--no-hosts",
                         "--pid-file=" + os.path.join(lab.tmp, "resolver.pid"),
                         "--address=/www.example.test/192.0.2.80", log=os.path.join(lab.tmp, "resolver.log"))
    header = HEADER.replace("Gateway=192.0.2.1\n", "Gateway=192.0.2.1\nDNS=192.0.2.53\n") + "DHCP=yes\n"
    MAC["d"], IP4["d"] = "52:54:00:00:01:0d", "10.210.0.20"
    MAC["e"], IP4["e"] = "52:54:00:00:01:0f", "10.210.0.21"
    MAC["u"] = "52:54:00:00:01:99"
    d = t.plug("d", configure=False)
    u = t.plug("u", configure=False)
    before = dnsmasq_pids(lab)
    log = t.apply(header + client("d"))
    lab.check("dnsmasq started" in log, "DHCP=yes starts dnsmasq")
    lab.wait_for(lambda: dnsmasq_pids(lab) - before, "dnsmasq to run")
    served = dnsmasq_pids(lab) - before
    out = os.path.join(lab.tmp, "d.lease")
    lab.check(udhcpc(lab, d, "eth0", out), "D (no agent) gets a lease with busybox udhcpc")
    got = lease(out)
    lab.check(got.get("ip") == IP4["d"], "D's lease is its fixed address (%s)" % got.get("ip"))
    lab.check(got.get("subnet") == "255.255.255.255" and got.get("router") == "10.210.0.1"
              and "10.210.0.1/32 0.0.0.0" in got.get("staticroutes", ""),
              "as a /32 with an on-link route to the gateway (%s)" % got)
    lab.check(got.get("dns") == "10.210.0.1", "its DNS server is the gateway (%s)" % got.get("dns"))
    r = lab.nsx(d, PYTHON, NETTOOL, "dns", "www.example.test", "10.210.0.1", check=False, capture=True)
    lab.check((r or "").strip() == "192.0.2.80", "D resolves a name through the netvm (%s)" % (r or "").strip())
    lab.spawn(t.inet, PYTHON, NETTOOL, "serve-tcp", "0.0.0.0", "8088")
    lab.wait_for(lambda: lab.tool(d, "tcp", "192.0.2.1", "8088"), "D's connectivity", timeout=5)
    lab.check(True, "D reaches the uplink with its DHCP address")

    lab.check(not udhcpc(lab, u, "eth0", os.path.join(lab.tmp, "u.lease"), tries=2),
              "a VM whose MAC is in no client gets no lease")
    lab.check(not udhcpc(lab, t.inet, "inet0", os.path.join(lab.tmp, "inet.lease"), tries=2),
              "the uplink side gets no DHCP answer")
    r = lab.nsx(t.inet, PYTHON, NETTOOL, "dns", "www.example.test", "192.0.2.2", check=False)
    lab.check(r != 0, "the uplink side gets no DNS answer from the netvm")

    # A client change: the hosts file is re-read (SIGHUP), dnsmasq is not restarted.
    e = t.plug("e", configure=False)
    log = t.apply(header + client("d") + client("e"))
    lab.check("dnsmasq started" not in log and dnsmasq_pids(lab) - before == served,
              "adding a client does not restart dnsmasq")
    oute = os.path.join(lab.tmp, "e.lease")
    lab.check(udhcpc(lab, e, "eth0", oute) and lease(oute).get("ip") == IP4["e"],
              "the new client E gets its lease from the running dnsmasq")
    r = lab.nsx(d, PYTHON, NETTOOL, "dns", "www.example.test", "10.210.0.1", check=False, capture=True)
    lab.check((r or "").strip() == "192.0.2.80", "D still resolves after the change")
    # A persona switch: D goes, F (another MAC) gets D's address; dnsmasq still holds D's lease.
    MAC["f"], IP4["f"] = "52:54:00:00:01:2f", IP4["d"]
    t.unplug("d")
    f = t.plug("f", configure=False)
    t.apply(header + client("e") + client("f"))
    outf = os.path.join(lab.tmp, "f.lease")
    lab.check(udhcpc(lab, f, "eth0", outf) and lease(outf).get("ip") == IP4["f"],
              "F, given D's address after D left, gets it by DHCP (%s)" % lease(outf).get("ip"))
    oute2 = os.path.join(lab.tmp, "e2.lease")
    lab.check(udhcpc(lab, e, "eth0", oute2) and lease(oute2).get("ip") == IP4["e"],
              "E still gets its own lease from the restarted dnsmasq")
    log = t.apply(HEADER + client("e"))
    lab.check(dnsmasq_pids(lab) - before == set(), "DHCP=no stops dnsmasq")
    lab.stop(resolver)


HEADER6 = """\
[Uplink]
Interface=up0
Address=192.0.2.2/24
Address=2001:db8::2/64
Gateway=192.0.2.1
Gateway=2001:db8::1
DNS=192.0.2.53; 2001:db8::53

[Downstream]
Interface=down0
Address=10.210.0.1/24
Address=fd00:210::1/64
DHCP=yes
"""

RULES_V = """\
default drop
accept dns
accept 2001:db8::/64 proto tcp port 8080
"""


def client6(name, v6, rules=None):
    s = client(name, rules).rstrip("\n") + "\nAddress=%s\n" % v6
    return s


def test_ipv6(lab, t):
    """An agentless client configures IPv6 from RA and DHCPv6; its v6 rules and anti-spoofing hold."""
    lab.sh("ip", "-n", t.inet, "addr", "add", "2001:db8::1/64", "dev", "inet0", "nodad")
    lab.sh("ip", "-n", t.inet, "addr", "add", "2001:db8::53/64", "dev", "inet0", "nodad")
    resolver = lab.spawn(t.inet, "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null",
                         "--listen-address=2001:db8::53", "--bind-interfaces", "--no-resolv", "--no-hosts",
                         "--pid-file=" + os.path.join(lab.tmp, "resolver6.pid"),
                         "--address=/www6.example.test/192.0.2.86", log=os.path.join(lab.tmp, "resolver6.log"))
    MAC["v"], IP4["v"] = "52:54:00:00:01:1a", "10.210.0.30"
    MAC["w"], IP4["w"] = "52:54:00:00:01:1b", "10.210.0.31"
    v6 = {"v": "fd00:210::30", "w": "fd00:210::31"}
    v = t.plug("v", configure=False)
    w = t.plug("w", configure=False)
    lab.nsx(v, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.accept_ra=1")
    log = t.apply(HEADER6 + client6("v", v6["v"], RULES_V) + client6("w", v6["w"]))
    lab.check("Applied" in log, "a state with an IPv6 downstream and DHCP is applied")
    # Router advertisement: the netvm is the default router; the prefix is neither on-link nor SLAAC.
    lab.nsx(v, "ip", "link", "set", "eth0", "down")
    lab.nsx(v, "ip", "link", "set", "eth0", "up")   # a router solicitation now
    lab.wait_for(lambda: "via fe80::" in lab.nsx(v, "ip", "-6", "route", "show", "default", capture=True),
                 "the router advertisement", timeout=15)
    routes = lab.nsx(v, "ip", "-6", "route", capture=True)
    addrs = lab.nsx(v, "ip", "-6", "addr", "show", "dev", "eth0", "scope", "global", capture=True)
    lab.check("fd00:210::/64" not in routes and addrs.strip() == "",
              "RA: default route via the netvm, prefix off-link, no SLAAC address (%s)" % routes.replace("\n", "; "))
    r = lab.nsx(v, PYTHON, NETTOOL, "dhcp6", "eth0", MAC["v"], check=False, capture=True, timeout=20)
    got = (r or "").split()
    lab.check(got[:1] == [v6["v"]], "DHCPv6 gives V its fixed address (%s)" % got)
    lab.check(got[1:2] == ["fd00:210::1"], "and the gateway as DNS server (%s)" % got[1:2])
    r = lab.nsx(t.inet, PYTHON, NETTOOL, "dhcp6", "inet0", "52:54:00:00:01:77", check=False, capture=True, timeout=20)
    lab.check(not (r or "").strip(), "the uplink side gets no DHCPv6 answer")
    for n in ("v", "w"):
        ns = t.cl[n]
        lab.sh("ip", "-n", ns, "addr", "add", v6[n] + "/128", "dev", "eth0", "nodad")
        if n == "w":
            lab.sh("ip", "-n", ns, "-6", "route", "add", "fd00:210::1", "dev", "eth0")
            lab.sh("ip", "-n", ns, "-6", "route", "replace", "default", "via", "fd00:210::1", "dev", "eth0")
    lab.spawn(t.inet, PYTHON, NETTOOL, "serve-tcp", "::", "8080")
    lab.spawn(t.inet, PYTHON, NETTOOL, "serve-tcp", "::", "8081")
    udp6 = os.path.join(lab.tmp, "udp6.log")
    lab.spawn(t.inet, PYTHON, NETTOOL, "serve-udp", "2001:db8::1", "5354", udp6)  # replies from that address
    lab.wait_for(lambda: lab.tool(v, "tcp", "2001:db8::1", "8080"), "V's IPv6 connectivity", timeout=10)
    lab.check(True, "V reaches [2001:db8::1]:8080 (its v6 rule), NAT66 to the uplink")
    lab.check(not lab.tool(v, "tcp", "2001:db8::1", "8081"), "V does not reach [2001:db8::1]:8081 (default drop)")
    lab.check(not lab.tool(v, "udp", "2001:db8::1", "5354"), "nor UDP 5354")
    r = lab.nsx(v, PYTHON, NETTOOL, "dns", "www6.example.test", "fd00:210::1", check=False, capture=True)
    lab.check((r or "").strip() == "192.0.2.86", "V resolves through the netvm's IPv6 gateway address")
    lab.check(lab.tool(w, "udp", "2001:db8::1", "5354", "--token", "honestW6"), "W reaches the internet over IPv6")
    lab.sh("ip", "-n", v, "addr", "add", v6["w"] + "/128", "dev", "eth0", "nodad")
    lab.tool(v, "udp", "2001:db8::1", "5354", "--src", v6["w"], "--token", "spoofW6")
    seen = open(udp6).read()
    lab.check("honestW6" in seen and "spoofW6" not in seen, "V spoofing W's IPv6 address gets nothing through")
    lab.spawn(w, PYTHON, NETTOOL, "serve-tcp", "::", "2222")
    lab.sh("ip", "-n", v, "addr", "del", v6["w"] + "/128", "dev", "eth0")
    # X's IPv6 address is outside the downstream prefix: X fails closed, the others go on.
    MAC["x"], IP4["x"] = "52:54:00:00:01:1c", "10.210.0.32"
    x = t.plug("x")
    log = t.apply(HEADER6 + client6("v", v6["v"], RULES_V) + client6("w", v6["w"]) + client6("x", "fd00:999::32"))
    lab.check(re.search(r"netvm\.state:\d+: \[Client x\]: IPv6 address fd00:999::32 is outside", log) is not None,
              "a client's broken IPv6 address is reported with file:line")
    lab.check(not lab.tool(x, "tcp", "192.0.2.1", "8080"), "and that client's traffic is dropped (fail closed)")
    lab.check(lab.tool(w, "udp", "2001:db8::1", "5354", "--token", "stillW6")
              and lab.tool(v, "tcp", "2001:db8::1", "8080"), "the other clients are not affected")
    lab.check(lab.nsx(w, PYTHON, NETTOOL, "tcp", "::1", "2222", check=False) == 0
              and not lab.tool(v, "tcp", v6["w"], "2222"), "V cannot reach W's listening port over IPv6")
    lab.stop(resolver)


def main():
    global NETD
    require_root()
    NETD = os.path.abspath(sys.argv[1])
    lab = Lab("c")
    try:
        t = Topo(lab)
        test_conntrack(lab, t)
        test_reject(lab, t)
        test_dhcp(lab, t)
        test_ipv6(lab, t)
    except Failure as e:
        print(e, flush=True)
        p = os.path.join(lab.tmp, "netd.log")
        if os.path.exists(p):
            print("---- netd.log\n" + open(p).read())
        return 1
    finally:
        lab.cleanup()
    print("1..%d" % lab.checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
