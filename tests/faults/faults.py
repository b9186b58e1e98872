#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fault injection: seeded rounds of crashes and restarts; the federation must converge.

The federation (real vmfedd, real libvirtd, TCG):
  netvm   service, real tiny guest running vmfed-netd (kept for the whole run)
  client  app VM, real tiny guest with vmfed-agent (kept), the netvm's client
          whose packets prove the netvm routes
  p1..p3  personas that boot nothing (an empty qcow2: SeaBIOS idles; StopTimeout=1),
          all claiming the same (fake) passthrough device
  broken  a persona whose disk QEMU cannot open: a switch to it rolls back
  dvm     disposable template (empty qcow2: every disposable gets an overlay)
  caller  app VM that never runs; the test speaks on its guest channel to
          ask for OpenURL in @dispvm (no agent in the disposable answers, so
          the job fails after [Agents] ConnectTimeout=2 and the disposable is
          destroyed: a whole disposable life in ~3 s)

Each round (kind chosen by random.Random(seed)) injects one fault:
  switch     kill -9 vmfedd at a random delay into a persona switch
  rollback   kill -9 vmfedd at a random delay into a switch to "broken" (its rollback)
  policy     kill -9 vmfedd at a random delay into Policy.ReplaceFile / RemoveFile
  dispvm     kill -9 vmfedd at a random delay into a disposable's life
  qemu       kill -9 the running persona's QEMU
  netd       kill -9 vmfed-netd in the netvm during a persona switch
  libvirtd   restart libvirtd during a persona switch
then restarts what was killed and waits (bounded) until every invariant holds:
  - never two personas running (also sampled all along), at most one running
    holder of each (fake) passthrough device (domain XML of running domains)
  - the broker's VM states and ActivePersona equal libvirt's list
  - no disposable left running, disposables/ holds exactly the overlays of
    running disposables
  - no temporary (.#*) files in the config or state dirs, no switch or
    rollback journal left, the policy is valid, the big policy file is
    exactly the old or the new version (or absent after a killed remove)
    and Policy.Evaluate follows it
  - the netvm's QEMU never changed, vmfed-netd runs, its nft table has
    exactly the chains of the running clients, the host's bridge table has
    exactly the port chains of the running VMs' taps, and a real TCP
    connection from the client through the netvm to the "internet" works
  - exactly one vmfedd, one QEMU per running domain, no qemu-img left

Usage: faults.py BUILD_DIR   (run by test-faults.sh, which sets up libvirtd,
images, the uplink bridge and the internet namespace and removes them)
Env: VMFED_FAULT_SEED, VMFED_FAULT_ROUNDS, VMFED_FAULT_KINDS (comma list).
"""
import collections
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import traceback

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "broker"))
sys.path.insert(0, os.path.join(here, "..", "e2e"))
sys.path.insert(0, os.path.join(here, "..", "services"))
sys.path.insert(0, os.path.join(here, "..", "lib"))
import harness  # noqa: E402
import realvm  # noqa: E402
from harness import Harness, ROOT  # noqa: E402
from guestshell import GuestShell  # noqa: E402
from rawbus import RawPeer  # noqa: E402

SRC = os.environ["VMFED_SOURCE_ROOT"]
WORK = os.environ["VMFED_FAULT_WORK"]
GUEST = os.environ["VMFED_GUEST_DIR"]
PREFIX = os.environ["VMFED_TEST_PREFIX"]
HOST_BRIDGE = os.environ["VMFED_FAULT_HOST_BRIDGE"]
UPLINK_BRIDGE = os.environ["VMFED_FAULT_UPLINK_BRIDGE"]
SEED = int(os.environ.get("VMFED_FAULT_SEED", "8"))
ROUNDS = int(os.environ.get("VMFED_FAULT_ROUNDS", "300"))  # ~5.7 s each: ~30 min
INTERNET = "192.0.2.1"
DEV = "0000:01:00.0"
PERSONAS = ("p1", "p2", "p3")
ALL_PERSONAS = PERSONAS + ("broken",)
BIG = "50-big.policy"
VIRSH = realvm.VIRSH

# kind -> weight (libvirtd restarts take ~8 s: a few % of rounds)
KINDS = collections.OrderedDict([
    ("switch", 22), ("rollback", 10), ("policy", 20), ("dispvm", 16), ("qemu", 12), ("netd", 10), ("libvirtd", 3)])
CONVERGE_S = {"libvirtd": 150}
CONVERGE_DEFAULT_S = 90


class Failure(Exception):
    pass


def log(line):
    print(line, file=sys.stderr, flush=True)


def tap_of(vm):
    return realvm.tap_of(PREFIX, vm)


# tap name -> VM name of every VM this run may have (disposables are dispNNNN)
TAPS = {tap_of(n): n for n in ["netvm", "client", "caller", "dvm"] + list(ALL_PERSONAS) +
        ["disp%d" % i for i in range(1000, 10000)]}


def kill_pid(pid):
    """SIGKILL one process by its pid (never 0 or negative: that would be our process group)."""
    if pid > 0:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def virsh(*args, check=True):
    r = subprocess.run(VIRSH + list(args), capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise Failure("virsh %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def running_domains():
    return realvm.running_domains(PREFIX)


def vm_text(role, body, extra=""):
    return "[VM]\nRole=%s\nAccel=tcg\nVCPUs=1\n%s\n%s" % (role, body, extra)


def policy_version(k):
    """The big policy file, version k: ~110 KB of rules, all allow (k even) or all deny (k odd)."""
    action = "allow" if k % 2 == 0 else "deny"
    lines = ["# version %d\n" % k]
    lines += ["vmfed.Launch  +app%d  client  p1  %s\n" % (i, action) for i in range(2400)]
    return "".join(lines)


class FaultHarness(Harness):
    """The broker's harness plus network.conf, services.conf and a channels dir QEMU can reach."""

    def start_daemon(self):
        realvm.share_channels_with_qemu(self.state_dir)
        with open(os.path.join(self.config_dir, "network.conf"), "w") as f:
            f.write("[Network]\nSubnet=10.137.0.0/24\n\n[NetVM netvm]\nUplink=eth1\nUplinkAddress=192.0.2.2/24\n"
                    "UplinkGateway=192.0.2.1\nDNS=192.0.2.1\nDownstream=eth0\n")
        with open(os.path.join(self.config_dir, "services.conf"), "w") as f:
            f.write("[Agents]\nConnectTimeout=2\n")
        super().start_daemon()


class Faults:
    def __init__(self, build):
        disks = {}
        for d in PERSONAS + ("dvm", "caller"):
            disks[d] = os.path.join(WORK, d + ".qcow2")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disks[d], "16M"], check=True)
        # qcow2 magic (so the federation attaches it as qcow2) and a version no QEMU knows.
        disks["broken"] = os.path.join(WORK, "broken.qcow2")
        with open(disks["broken"], "wb") as f:
            f.write(b"QFI\xfb" + (99).to_bytes(4, "big") + b"\0" * 65528)
        os.chmod(disks["broken"], 0o644)
        guest_boot = "Kernel=%s/vmlinuz\nInitrd=%s/initrd-%%s.img\nCmdline=console=ttyS0 quiet panic=-1 " \
                     "vmfed.name=%%s vmfed.debugshell=1\nMemory=256M\nStopTimeout=20\n" % (GUEST, GUEST)
        empty = "Memory=64M\nStopTimeout=1\nDisk=%s\n"
        vms = {
            "netvm": vm_text("service", guest_boot % ("netvm", "netvm"), "DefaultNetVM=true\nAutostart=true\nNetVM=\n"),
            "client": vm_text("app", guest_boot % ("base", "client"),
                              "\n[Firewall]\nRules=default drop;accept dns;accept any proto tcp port 80\n"),
            "dvm": vm_text("disposable-template", empty % disks["dvm"]),
            "caller": vm_text("app", empty % disks["caller"]),
        }
        for p in ALL_PERSONAS:
            vms[p] = vm_text("persona", empty % disks[p], "\n[Passthrough]\nDevices=%s\n" % DEV)
        self.policy_k = 0
        policy = {"20-dispvm.policy": "vmfed.OpenURL  *  caller  @dispvm  allow\n", BIG: policy_version(0)}
        self.h = FaultHarness(os.path.join(build, "broker", "vmfedd"), vms=vms, policy=policy, debug=True,
                              uri="qemu:///system", extra_args=["--domain-prefix", PREFIX, "--bridge", HOST_BRIDGE],
                              env={"VMFED_FORCE_TCG": "1", "VMFED_TEST_FAKE_PASSTHROUGH": "1",
                                   "VMFED_TEST_UPLINK_BRIDGE": UPLINK_BRIDGE, "VMFED_TEST_CONSOLE_SOCKET": "1"})
        self.rng = random.Random(SEED)
        self.shells = {}
        self.policy_allowed = {policy_version(0)}
        self.counts = collections.Counter()
        self.converge = collections.defaultdict(list)
        self.hit = collections.Counter()  # kills that landed while the operation ran
        self.broker_restarts = 0
        self.netd_pid = 0

    # ---- plumbing ----------------------------------------------------------------
    def qemu_pid(self, vm):
        try:
            with open("/run/libvirt/qemu/%s%s.pid" % (PREFIX, vm)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 0

    def shell(self, vm, fresh=False, timeout=120):
        sh = self.shells.get(vm)
        if sh is None or fresh:
            if sh:
                sh.close()
            sh = GuestShell(os.path.join(self.h.state_dir, "consoles", vm + ".sock"))
            sh.connect(timeout)
            self.shells[vm] = sh
        return sh

    def sh(self, vm, command, timeout=30):
        try:
            return self.shell(vm).run(command, timeout)
        except Exception:  # noqa: BLE001 - a console that closed: reconnect once
            return self.shell(vm, fresh=True, timeout=30).run(command, timeout)

    def manager_bg(self, method, sig, *args):
        return subprocess.Popen(["busctl", "--address=" + self.h.address, "--timeout=300", "call", harness.BUS, ROOT,
                                 harness.IFACE["Manager"], method, sig] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def manager(self, method, sig, *args, timeout=300):
        return self.h.busctl("--timeout=%d" % timeout, "call", harness.BUS, ROOT, harness.IFACE["Manager"], method, sig,
                             *args, check=False)

    def kill_broker(self):
        self.h.daemon.send_signal(signal.SIGKILL)
        self.h.daemon.wait()
        self.h.daemon = None

    def restart_broker(self):
        self.broker_restarts += 1
        self.h.start_daemon()

    def log_tail(self, n=150):
        try:
            return "".join(self.h.log().splitlines(True)[-n:])
        except OSError:
            return ""

    def wait_for(self, cond, what, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            time.sleep(0.2)
        raise Failure("timed out (%d s) waiting for %s" % (timeout, what))

    # ---- the invariants ---------------------------------------------------------
    def violations(self, deep):
        """Every invariant that does not hold now (empty: converged).  deep: also ask the guests."""
        v = []
        running = running_domains()
        if running is None:
            return ["libvirt does not answer"]
        up = [p for p in ALL_PERSONAS if p in running]
        if len(up) > 1:
            v.append("two personas run: %s" % up)
        # Device holders, from the domain XML of every running domain.
        holders = collections.defaultdict(list)
        for d in running:
            xml = virsh("dumpxml", PREFIX + d, check=False)
            for dev in re.findall(r"<vmfed:device[^>]*>([^<]+)</vmfed:device>", xml):
                holders[dev].append(d)
        for dev, hs in holders.items():
            if len(hs) > 1:
                v.append("device %s held by %s" % (dev, hs))
        # The broker's view equals libvirt's.
        try:
            (vms,) = self.h.call("Manager", "ListVMs")
            active = self.h.get_property("Manager", "ActivePersona")
        except Exception as e:  # noqa: BLE001
            return v + ["the broker does not answer: %s" % e]
        for name, _role, state, _path in vms:
            if state not in ("running", "paused", "stopped", "saved"):
                v.append("%s is %s on D-Bus" % (name, state))
            elif (state in ("running", "paused")) != (name in running):
                v.append("%s is %s on D-Bus, %s in libvirt" % (name, state,
                                                                "running" if name in running else "not running"))
        if active != (up[0] if len(up) == 1 else ""):
            v.append("ActivePersona %r, libvirt runs personas %s" % (active, up))
        # Disposables: none left running (their jobs died with the broker or ended), no orphan overlays.
        disps = sorted(d for d in running if re.fullmatch(r"disp\d+", d))
        if disps:
            v.append("disposables still run: %s" % disps)
        overlays = set()
        for d in disps:
            xml = virsh("dumpxml", PREFIX + d, check=False)
            overlays.update(re.findall(r"<vmfed:overlay>([^<]+)</vmfed:overlay>", xml))
        ddir = os.path.join(self.h.state_dir, "disposables")
        files = {os.path.join(ddir, n) for n in os.listdir(ddir)}
        if files != overlays:
            v.append("overlays on disk %s, of running disposables %s" % (sorted(files), sorted(overlays)))
        # No half-written files, no journal left.
        for top in (self.h.config_dir, self.h.state_dir):
            for dirpath, _dirs, names in os.walk(top):
                for n in names:
                    if n.startswith(".#"):
                        v.append("temporary file left: %s" % os.path.join(dirpath, n))
        gdir = os.path.join(self.h.state_dir, "generations")
        gens = os.listdir(gdir) if os.path.isdir(gdir) else []
        half = [n for n in gens if n.startswith(".tmp-")]
        if half:
            v.append("half-written generations left: %s" % half)
        try:
            with open(os.path.join(gdir, "index")) as f:
                indexed = {line.split("\t")[0] for line in f if line.strip()}
        except OSError:
            indexed = set()
        unindexed = sorted(n for n in gens if n.isdigit() and n not in indexed)
        missing = sorted(n for n in indexed if n not in gens)
        if unindexed or missing:
            v.append("generations not in the index %s, indexed without a directory %s" % (unindexed, missing))
        for j in ("switch.journal", "generations/rollback.journal"):
            if os.path.exists(os.path.join(self.h.state_dir, j)):
                v.append("%s left" % j)
        # The policy: valid, the big file is one whole version, the snapshot follows it.
        try:
            valid = self.h.get_property("Policy", "Valid")
            diags = self.h.get_property("Policy", "Diagnostics")
        except Exception as e:  # noqa: BLE001
            return v + ["Policy properties: %s" % e]
        if not valid or diags:
            v.append("policy invalid: %s" % diags)
        path = os.path.join(self.h.policy_dir, BIG)
        content = open(path).read() if os.path.exists(path) else None
        if content not in self.policy_allowed:
            v.append("%s is neither the old nor the new version (%s bytes, starts %r)" % (
                BIG, None if content is None else len(content), (content or "")[:20]))
        else:
            want = "deny" if content is None or "allow" not in content[:200] else "allow"
            try:
                got = self.h.call("Policy", "Evaluate", "sss", "client", "p1", "vmfed.Launch+app7")[0]
            except Exception as e:  # noqa: BLE001
                got = "error %s" % e
            if got != want:
                v.append("Policy.Evaluate says %s, %s on disk says %s" % (got, BIG, want))
        # The netvm: the same QEMU all along.
        if self.qemu_pid("netvm") != self.net_pid:
            v.append("the netvm's QEMU changed (%d -> %d)" % (self.net_pid, self.qemu_pid("netvm")))
        # Host side: a port chain for exactly the running VMs' taps.
        nft = subprocess.run(["nft", "list", "table", "bridge", "vmfed-host"], capture_output=True, text=True).stdout
        chains = {TAPS[c] for c in re.findall(r"chain port-(\S+)", nft) if c in TAPS}  # other tests share the table
        want = {d for d in running if d != "netvm"}
        if chains != want:
            v.append("host port chains of %s, running VMs %s" % (sorted(chains), sorted(want)))
        # Processes: one vmfedd, one QEMU per running domain, no qemu-img.
        procs = self.processes()
        if procs["vmfedd"] != 1:
            v.append("%d vmfedd processes" % procs["vmfedd"])
        if procs["qemu"] != len(running):
            v.append("%d QEMU processes for %d running domains" % (procs["qemu"], len(running)))
        if procs["qemu-img"]:
            v.append("%d qemu-img processes left" % procs["qemu-img"])
        if v or not deep:
            return v
        # Inside the netvm: vmfed-netd runs and its table has exactly the running clients' chains.
        rc, o = self.sh("netvm", "pidof vmfed-netd; nft list table inet vmfed | grep -o 'chain fwd-[a-z0-9_.-]*'")
        lines = o.split()
        pids = [x for x in lines if x.isdigit()]
        if not pids:
            v.append("vmfed-netd does not run in the netvm")
        else:
            self.netd_pid = int(pids[0])
        clients = {x[len("fwd-"):] for x in lines if x.startswith("fwd-")}
        want = {d for d in running if d != "netvm"}
        if clients != want:
            v.append("netvm's client chains %s, running clients %s" % (sorted(clients), sorted(want)))
        if v:
            return v
        # A real packet: the client reaches the internet's web server through the netvm.
        rc, o = self.sh("client", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 %s 80 2>&1" % INTERNET, timeout=20)
        if rc != 0 or "hello from the internet" not in o:
            v.append("the client cannot reach the internet through the netvm: rc %d %r" % (rc, o[-200:]))
        return v

    def processes(self):
        n = collections.Counter()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            exe = os.path.basename(cmd[0]).decode(errors="replace")
            joined = b" ".join(cmd)
            if exe == "vmfedd" and self.h.tmp.encode() in joined:
                n["vmfedd"] += 1
            elif exe.startswith("qemu-system") and ("guest=" + PREFIX).encode() in joined:
                n["qemu"] += 1
            elif exe == "qemu-img" and self.h.tmp.encode() in joined:
                n["qemu-img"] += 1
        return n

    def wait_converged(self, kind):
        t0 = time.monotonic()
        limit = CONVERGE_S.get(kind, CONVERGE_DEFAULT_S)
        last = []
        self.waited = []  # what was not consistent yet, for the round's line
        while time.monotonic() - t0 < limit:
            last = self.violations(deep=False)
            if not last:
                last = self.violations(deep=True)
                if not last:
                    took = time.monotonic() - t0
                    self.converge[kind].append(took)
                    return took
            for x in last:
                w = re.sub(r"[0-9]+", "N", x.split(":")[0])[:50]
                if w not in self.waited:
                    self.waited.append(w)
            time.sleep(0.3)
        raise Failure("no convergence within %d s: %s" % (limit, "; ".join(x[:400] for x in last)))

    # ---- the rounds ----------------------------------------------------------------
    def other_persona(self):
        active = self.h.get_property("Manager", "ActivePersona")
        return self.rng.choice([p for p in PERSONAS if p != active]), active

    def ensure_persona(self):
        active = self.h.get_property("Manager", "ActivePersona")
        if active:
            return active
        p = self.rng.choice(PERSONAS)
        r = self.manager("SwitchPersona", "s", p)
        if r.returncode != 0:
            raise Failure("SwitchPersona %s (setup): %s" % (p, r.stderr.strip()))
        return p

    def finish_bg(self, proc):
        try:
            proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise Failure("a background busctl call never returned")
        return proc.returncode

    def r_switch(self, target=None, max_delay=2.0):
        if target is None:
            target, _ = self.other_persona()
        delay = self.rng.uniform(0, max_delay)
        p = self.manager_bg("SwitchPersona", "s", target)
        time.sleep(delay)
        if p.poll() is None:
            self.hit["switch" if target != "broken" else "rollback"] += 1
        self.kill_broker()
        self.finish_bg(p)
        self.restart_broker()
        return "%s after %.2f s" % (target, delay)

    def r_rollback(self):
        self.ensure_persona()
        return self.r_switch("broken", 2.6)

    def r_policy(self):
        path = os.path.join(self.h.policy_dir, BIG)
        old = open(path).read() if os.path.exists(path) else None
        etag = "" if old is None else hashlib.sha256(old.encode()).hexdigest()
        remove = old is not None and self.rng.random() < 0.3
        delay = self.rng.uniform(0, 0.12)
        if remove:
            new = None
            args = ["RemoveFile", "ss", BIG, etag]
        else:
            self.policy_k += 1
            new = policy_version(self.policy_k)
            args = ["ReplaceFile", "sss", BIG, new, etag]
        self.policy_allowed = {old, new}
        p = subprocess.Popen(["busctl", "--address=" + self.h.address, "--timeout=60", "call", harness.BUS, ROOT,
                              harness.IFACE["Policy"]] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        if p.poll() is None:
            self.hit["policy"] += 1
        self.kill_broker()
        self.finish_bg(p)
        self.restart_broker()
        return "%s after %.3f s" % (args[0], delay)

    def r_dispvm(self):
        delay = self.rng.uniform(0, 3.5)
        kill_qemu = self.rng.random() < 0.3  # else the broker
        peer = RawPeer(os.path.join(self.h.state_dir, "channels", "caller.sock"))
        try:
            peer.send("/org/vmfed/Federation1", "org.vmfed.Federation1.Guest", "Hello", [("s", "faults")])
            mtype, err, _ = peer.read_message(10)
            if mtype != 2:
                raise Failure("Hello on caller's channel: %s" % err)
            peer.send("/org/vmfed/Federation1", "org.vmfed.Federation1.Guest", "OpenURL",
                      [("s", "http://%s/fault" % INTERNET), ("s", "@dispvm")])
            t0 = time.monotonic()
            answered = False
            while time.monotonic() - t0 < delay:
                try:
                    peer.read_message(max(0.01, delay - (time.monotonic() - t0)))
                    answered = True
                    break
                except (OSError, ConnectionError):
                    break
            if kill_qemu:
                disps = [d for d in (running_domains() or set()) if re.fullmatch(r"disp\d+", d)]
                for d in disps:
                    kill_pid(self.qemu_pid(d))
                if disps:
                    self.hit["dispvm"] += 1
                # the job fails: the caller gets its answer
                try:
                    peer.read_message(30)
                except (OSError, ConnectionError):
                    pass
                return "its QEMU (%s) after %.2f s" % ("/".join(disps) or "none yet", delay)
            if not answered:
                self.hit["dispvm"] += 1
            self.kill_broker()
        finally:
            peer.close()
        self.restart_broker()
        return "vmfedd after %.2f s" % delay

    def r_qemu(self):
        p = self.ensure_persona()
        if self.rng.random() < 0.5:
            pid = self.qemu_pid(p)
            if not pid:
                raise Failure("no QEMU pid for the active persona %s" % p)
            kill_pid(pid)
            self.hit["qemu"] += 1
            return p
        # During a switch: whichever persona's QEMU runs at that moment (the old one stopping, the new one booting).
        target, _ = self.other_persona()
        delay = self.rng.uniform(0, 2.0)
        bg = self.manager_bg("SwitchPersona", "s", target)
        time.sleep(delay)
        running = running_domains() or set()
        victims = [x for x in PERSONAS if x in running and self.qemu_pid(x)]
        for x in victims:
            kill_pid(self.qemu_pid(x))
        if bg.poll() is None and victims:
            self.hit["qemu"] += 1
        self.finish_bg(bg)
        return "%s during a switch %s -> %s, %.2f s in" % ("/".join(victims) or "none", p, target, delay)

    def r_netd(self):
        target, _ = self.other_persona()
        delay = self.rng.uniform(0, 1.8)
        p = self.manager_bg("SwitchPersona", "s", target)
        time.sleep(delay)
        old = self.netd_pid
        rc, o = self.sh("netvm", "kill -9 $(pidof vmfed-netd) && echo killed")
        if rc != 0 or "killed" not in o:
            raise Failure("cannot kill vmfed-netd: %r" % o)
        if p.poll() is None:
            self.hit["netd"] += 1
        self.finish_bg(p)
        # supervise starts it again: a new pid
        self.wait_for(lambda: (lambda r: r[0] == 0 and r[1].strip().isdigit() and int(r[1].strip()) != old)(
            self.sh("netvm", "pidof vmfed-netd")), "vmfed-netd to be started again in the netvm", 30)
        return "during a switch to %s, %.2f s in" % (target, delay)

    def r_libvirtd(self):
        target, _ = self.other_persona()
        delay = self.rng.uniform(0, 1.8)
        p = self.manager_bg("SwitchPersona", "s", target)
        time.sleep(delay)
        if p.poll() is None:
            self.hit["libvirtd"] += 1
        try:
            r = subprocess.run(["bash", "-c", '. "$1/tests/lib/libvirtd.sh" && libvirtd_restart 120', "-", SRC],
                               capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired as e:
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            raise Failure("libvirtd restart did not end within 300 s: %s" % err)
        if r.returncode != 0:
            raise Failure("libvirtd restart failed: %s" % r.stderr)
        self.finish_bg(p)
        return "during a switch to %s, %.2f s in" % (target, delay)

    # ---- the run -----------------------------------------------------------------------
    def setup(self):
        self.h.start()
        self.wait_for(lambda: "NetVM: SetState of netvm done" in self.h.log(), "the netvm and vmfed-netd", 120)
        self.net_pid = self.qemu_pid("netvm")
        if not self.net_pid:
            raise Failure("no QEMU for the netvm")
        r = self.manager("StartVM", "s", "client")
        if r.returncode != 0:
            raise Failure("StartVM client: %s" % r.stderr)
        # [Agents] ConnectTimeout=2 (short disposable lives) is shorter than the client's boot, so
        # the SetNetwork waiting for its agent times out; the broker sends it again when the
        # agent says Hello (netvm_links_agent_ready()).
        self.wait_for(lambda: "client: network configured by its agent." in self.h.log(),
                      "the client's agent configuring its network", 120)
        took = self.wait_converged("setup")
        log("setup: netvm (QEMU %d) and client up; converged in %.2f s" % (self.net_pid, took))

    def run(self):
        kinds = list(KINDS)
        only = os.environ.get("VMFED_FAULT_KINDS")
        if only:
            kinds = [k for k in kinds if k in only.split(",")]
        weights = [KINDS[k] for k in kinds]
        log("faults: seed %d, %d rounds, kinds %s (VMFED_FAULT_SEED / VMFED_FAULT_ROUNDS / VMFED_FAULT_KINDS)"
            % (SEED, ROUNDS, ",".join(kinds)))
        sampler = realvm.PersonaSampler(PREFIX, ALL_PERSONAS)
        sampler.start()
        t_start = time.monotonic()
        try:
            self.setup()
            for i in range(1, ROUNDS + 1):
                kind = self.rng.choices(kinds, weights)[0]
                self.round_no, self.round_kind = i, kind
                t0 = time.monotonic()
                what = getattr(self, "r_" + kind)()
                took = self.wait_converged(kind)
                self.counts[kind] += 1
                log("round %3d %-8s %-32s converged in %5.2f s (round %4.1f s)%s"
                    % (i, kind, what, took, time.monotonic() - t0,
                       " after: " + " | ".join(self.waited) if self.waited else ""))
                if sampler.violations:
                    raise Failure("two personas ran at once: %s" % sampler.violations[:3])
        finally:
            sampler.halt.set()
            sampler.join(2)
        if sampler.violations:
            raise Failure("two personas ran at once: %s" % sampler.violations[:3])
        total = time.monotonic() - t_start
        # What the broker repaired after crashes, from its log (the invariants say it was needed).
        text = self.h.log()
        repairs = {
            "half_written_files_removed": sum(int(n) for n in re.findall(r"removed (\d+) half-written file", text)),
            "orphan_disposables_destroyed": text.count("has no job (its broker is gone)"),
            "orphan_overlays_removed": text.count("removed the orphan overlay"),
            "stale_host_ports_removed": text.count("Removed the anti-spoofing chain of"),
            "switches_resumed": text.count("federation: finishing the switch to"),
        }
        summary = {"seed": SEED, "rounds": ROUNDS, "total_s": round(total, 1), "broker_restarts": self.broker_restarts,
                   "libvirt_samples": sampler.samples, "repairs": repairs, "kinds": {}}
        log("")
        log("%-9s %6s %6s %9s %9s %9s" % ("kind", "rounds", "in-op", "conv.med", "conv.p95", "conv.max"))
        for k in kinds:
            c = sorted(self.converge.get(k, []))
            if not c:
                continue
            med, p95, mx = c[len(c) // 2], c[min(len(c) - 1, int(len(c) * 0.95))], c[-1]
            log("%-9s %6d %6d %9.2f %9.2f %9.2f" % (k, self.counts[k], self.hit[k], med, p95, mx))
            summary["kinds"][k] = {"rounds": self.counts[k], "killed_in_operation": self.hit[k],
                                   "converge_median_s": round(med, 2), "converge_p95_s": round(p95, 2),
                                   "converge_max_s": round(mx, 2)}
        log("total %.1f s, %d broker restarts, %d libvirt samples never saw two personas"
            % (total, self.broker_restarts, sampler.samples))
        log("repairs seen in the broker's log: %s" % ", ".join("%s %d" % kv for kv in repairs.items()))
        print(json.dumps({"faults": summary}), flush=True)


def teardown(t):
    for sh in t.shells.values():
        sh.close()
    running = running_domains() or set()
    for d in running:
        subprocess.run(VIRSH + ["destroy", PREFIX + d], capture_output=True)
    if t.h.daemon is not None:
        time.sleep(1)  # vmfedd removes the host ports of what stopped
    t.h.stop()


def main():
    t = Faults(sys.argv[1])
    ok = False
    try:
        t.run()
        ok = True
    except Exception as ex:  # noqa: BLE001
        log("FAIL (seed %d, round %s, %s): %s" % (SEED, getattr(t, "round_no", "setup"),
                                                  getattr(t, "round_kind", "-"), ex))
        if not isinstance(ex, Failure):
            traceback.print_exc()
        log("---- vmfedd log (tail) ----\n" + t.log_tail() + "--------------------")
        try:
            kinds = os.environ.get("VMFED_FAULT_KINDS", "").replace(",", "-")
            keep = os.path.join(sys.argv[1], "meson-logs",
                                "faults%s-vmfedd.log" % ("-" + kinds if kinds else ""))
            os.makedirs(os.path.dirname(keep), exist_ok=True)
            with open(keep, "w") as f:
                f.write(t.h.log())
            log("the whole vmfedd log: " + keep)
        except (OSError, TypeError):
            pass
    finally:
        teardown(t)
    log("faults: PASS" if ok else "faults: FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
