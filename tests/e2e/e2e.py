#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmfed end to end, and the demo: the federation of examples/demo on real parts.

A netvm (vmfed-netd), personas rivendale (A) and gondor (B) sharing a
(faked) passthrough device, and a disposable template, run by the real
vmfedd on a real libvirtd with TCG guests, admin calls through busctl on a
private bus, guest commands typed into each guest's serial console shell
(guestshell.py).  Steps:

  netvm up (autostart; vmfed-netd gets the whole state) → A up → copy in A →
  switch A→B (the netvm's QEMU unchanged, A never runs with B) → a paste
  into the netvm is refused (audited) → the paste into B gets the text →
  B's firewall: the internet's port 80 yes, 8080 no → B copies a 64 MiB
  tree into the netvm (vmfed-guest copy-to, byte-identical) and echoes
  16 MiB through a stream → B opens a URL in
  @dispvm (the disposable fetches it through the netvm and is gone with its
  overlay) → vmfedd killed and started again (netvm and B keep running,
  agents and vmfed-netd reconnect, the next request works) → vmfed-netd
  restarted in the netvm gets the whole state again → the admin
  changes the policy with busctl and the next request follows it → switch
  B→A.

Run by test-e2e.sh, which sets up libvirtd, the images, bridges and the
"internet" namespace and removes them.  In demo mode (VMFED_E2E_MODE=demo)
each step is narrated on stdout with its time; in test mode the same lines
go to stderr.  Both end with the figures as one JSON line.

Usage: e2e.py BUILD_DIR CONFIG_TEMPLATE_DIR
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "broker"))
sys.path.insert(0, os.path.join(here, "..", "lib"))
import harness  # noqa: E402
import realvm  # noqa: E402
from harness import Harness, ROOT  # noqa: E402
from guestshell import GuestShell  # noqa: E402

MODE = os.environ.get("VMFED_E2E_MODE", "test")
WORK = os.environ["VMFED_E2E_WORK"]
GUEST = os.environ["VMFED_GUEST_DIR"]
PREFIX = os.environ["VMFED_TEST_PREFIX"]
HOST_BRIDGE = os.environ["VMFED_E2E_HOST_BRIDGE"]
UPLINK_BRIDGE = os.environ["VMFED_E2E_UPLINK_BRIDGE"]
A, B = "rivendale", "gondor"
INTERNET = "192.0.2.1"


# The broker's line when an operation could not start a VM ("autostart
# failed after 812.3 ms: cannot start netvm: internal error: qemu ...").
START_FAILED = re.compile(r"\S+( \S+)? failed after [0-9.]+ ms: .*cannot start.*")


class Failure(Exception):
    pass


def keep_logs(e):
    """Demo mode, on failure: copy the broker's log and the guests' consoles to
    BUILD/meson-logs/demo-failed/ (the work directory is removed) and say so."""
    dest = os.path.join(e.build, "meson-logs", "demo-failed")
    try:
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(os.path.join(dest, "consoles"))
        shutil.copy(e.h.log_path, os.path.join(dest, "vmfedd.log"))
        for f in glob.glob(os.path.join(e.h.state_dir, "consoles", "*.log")):
            shutil.copy(f, os.path.join(dest, "consoles"))
    except (OSError, AttributeError) as ex:
        out("(could not keep the logs in %s: %s)" % (dest, ex))
        return
    out("Logs: %s (vmfedd.log, consoles/VM.log); libvirt's: /var/log/libvirt/qemu/%sVM.log" % (dest, PREFIX))


def check(cond, what):
    if not cond:
        raise Failure(what)


def out(line):
    print(line, file=sys.stdout if MODE == "demo" else sys.stderr, flush=True)


def tap_of(vm):
    return realvm.tap_of(PREFIX, vm)


class E2eHarness(Harness):
    """The broker's test harness plus the demo's other config files (network.conf, firewall.d/, services.conf)."""

    def __init__(self, vmfedd, template_dir, **kw):
        self.template_dir = template_dir
        super().__init__(vmfedd, **kw)

    def start_daemon(self):
        realvm.share_channels_with_qemu(self.state_dir)
        for sub in ("firewall.d",):
            os.makedirs(os.path.join(self.config_dir, sub), exist_ok=True)
            for f in glob.glob(os.path.join(self.template_dir, sub, "*")):
                with open(f) as src, open(os.path.join(self.config_dir, sub, os.path.basename(f)), "w") as dst:
                    dst.write(src.read())
        for f in ("network.conf", "services.conf"):
            with open(os.path.join(self.template_dir, f)) as src, open(os.path.join(self.config_dir, f), "w") as dst:
                dst.write(src.read())
        super().start_daemon()


def load_template(template_dir):
    subst = {"@GUEST@": GUEST, "@DISK@": os.path.join(WORK, "dvm.qcow2")}
    vms, policy = {}, {}
    for f in sorted(glob.glob(os.path.join(template_dir, "vms.d", "*.vm"))):
        text = open(f).read()
        for k, v in subst.items():
            text = text.replace(k, v)
        vms[os.path.basename(f)[:-3]] = text
    for f in sorted(glob.glob(os.path.join(template_dir, "policy.d", "*.policy"))):
        policy[os.path.basename(f)] = open(f).read()
    return vms, policy


class E2e:
    def __init__(self, build, template_dir):
        self.build = build
        vms, policy = load_template(template_dir)
        self.policy_text = policy["30-demo.policy"]
        # Streams (docs/streams.md) from B into the netvm: the tests' own rules, not the demo's
        # policy (a persona has no business copying files into its netvm).
        policy["20-e2e-streams.policy"] = (
            "test.Echo       *  %s  netvm  allow\n"
            "test.Sink       *  %s  netvm  allow\n"
            "test.Exit       *  %s  netvm  allow\n"
            "test.Missing    *  %s  netvm  allow\n"
            "vmfed.FileCopy  *  %s  netvm  allow\n"
            "vmfed.OpenFile  *  %s  netvm  allow\n"
            "test.Sink       *  %s  @dispvm  allow\n"
            "vmfed.FileCopy  *  @dispvm  netvm  allow\n"
            "vmfed.Clipboard.Paste  +application.octet-stream  %s  netvm  allow\n" % (B, B, B, B, B, B, B, B))
        self.h = E2eHarness(os.path.join(build, "broker", "vmfedd"), template_dir, vms=vms, policy=policy,
                            debug=True, uri="qemu:///system",
                            extra_args=["--domain-prefix", PREFIX, "--bridge", HOST_BRIDGE],
                            env={"VMFED_FORCE_TCG": "1", "VMFED_TEST_FAKE_PASSTHROUGH": "1",
                                 "VMFED_TEST_UPLINK_BRIDGE": UPLINK_BRIDGE, "VMFED_TEST_CONSOLE_SOCKET": "1"})
        self.shells = {}
        self.steps = []
        self.figures = {}
        self.t_start = time.monotonic()

    # ---- helpers -------------------------------------------------------------
    def step(self, title, fn, *args):
        out("── %s" % title)
        t0 = time.monotonic()
        detail = fn(*args)
        took = time.monotonic() - t0
        self.steps.append((title, took))
        out("   [%6.2f s] %s%s" % (took, title, (": " + detail) if detail else ""))
        return detail

    def note(self, line):
        out("   · " + line)

    def log(self):
        return self.h.log()

    def wait_log(self, pattern, timeout=120, since=0):
        """Wait until the broker's log (from offset since) matches pattern; returns the match.
        In demo mode, a VM that failed to start ends the wait at once with the
        broker's reason (e.g. QEMU cannot open the kernel), not after timeout."""
        end = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < end:
            text = self.log()[since:]
            m = rx.search(text)
            if m:
                return m
            if MODE == "demo":
                bad = START_FAILED.search(text)
                if bad:
                    raise Failure("a VM failed to start: %s" % bad.group(0).strip())
            time.sleep(0.1)
        raise Failure("the broker never logged /%s/ within %d s" % (pattern, timeout))

    def qemu_pid(self, vm):
        try:
            with open("/run/libvirt/qemu/%s%s.pid" % (PREFIX, vm)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 0

    def running_domains(self):
        running = realvm.running_domains(PREFIX)
        check(running is not None, "virsh list failed")
        return running

    def state(self, vm):
        return self.h.get_property("VM", "State", path=ROOT + "/vm/" + vm)

    def busctl_manager(self, method, sig, *args, timeout=300):
        self.h.busctl("--timeout=%d" % timeout, "call", harness.BUS, ROOT, harness.IFACE["Manager"], method, sig,
                      *args)

    def shell(self, vm, timeout=120, fresh=False):
        sh = self.shells.get(vm)
        if sh is None or fresh:
            if sh:
                sh.close()
            sh = GuestShell(os.path.join(self.h.state_dir, "consoles", vm + ".sock"))
            sh.connect(timeout)
            self.shells[vm] = sh
        return sh

    def sh(self, vm, command, timeout=60):
        return self.shell(vm).run(command, timeout)

    def wait_agent(self, vm, timeout=120):
        """The agent in vm is connected to the broker (vmfed-guest status inside the guest)."""
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            rc, o = self.sh(vm, "vmfed-guest status 2>&1")
            last = o
            if rc == 0 and "connected yes" in o:
                return o
            time.sleep(0.3)
        raise Failure("the agent in %s did not connect to the broker within %d s (last: %r)" % (vm, timeout, last))

    def wait_network(self, vm, timeout=60):
        """vm's eth0 has the address the broker gave it (Agent1.SetNetwork)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rc, o = self.sh(vm, "ip -4 addr show dev eth0")
            m = re.search(r"inet (10\.137\.0\.\d+)/", o)
            if rc == 0 and m:
                return m.group(1)
            time.sleep(0.3)
        raise Failure("%s got no address from the broker within %d s" % (vm, timeout))

    def fetch(self, vm, port, path="/", timeout=8):
        # busybox nc, not wget: the static busybox's wget crashes in the tiny guest.
        return self.sh(vm, "printf 'GET %s HTTP/1.0\\r\\n\\r\\n' | nc -w %d %s %d 2>&1" % (path, timeout - 2, INTERNET, port),
                       timeout=timeout + 20)

    # ---- steps ------------------------------------------------------------------
    def s_broker_and_netvm(self):
        self.h.start()
        self.wait_log(r"NetVM: SetState of netvm done", timeout=300)  # a hang guard: TCG boot on a loaded machine
        self.net_pid = self.qemu_pid("netvm")
        check(self.net_pid > 0, "no QEMU for the netvm")
        check(self.state("netvm") == "running", "netvm not running")
        rc, o = self.sh("netvm", "nft list table inet vmfed | grep -c chain")
        check(rc == 0 and int(o.strip() or 0) >= 4, "table inet vmfed not in place in the netvm: %r" % o)
        return "vmfedd up, netvm running (QEMU pid %d), vmfed-netd enforcing table inet vmfed" % self.net_pid

    def s_start_a(self):
        self.busctl_manager("StartVM", "s", A)
        check(self.state(A) == "running", "%s not running after StartVM" % A)
        self.wait_agent(A)
        addr = self.wait_network(A)
        return "%s running, agent connected, address %s" % (A, addr)

    def s_copy_in_a(self):
        self.secret = "vmfed-e2e-secret-%d" % os.getpid()
        rc, o = self.sh(A, "printf %s | vmfed-guest copy 2>&1" % self.secret)
        check(rc == 0, "copy in %s failed: %s" % (A, o))
        owner = self.h.get_property("org.vmfed.Federation1.Clipboard", "Owner")
        check(owner == A, "clipboard owner %r, expected %s" % (owner, A))
        return "%d bytes on the federation's clipboard, owner %s" % (len(self.secret), owner)

    def switch(self, target, source):
        log0 = len(self.log())
        t0 = time.monotonic()
        self.busctl_manager("SwitchPersona", "s", target)
        wall = time.monotonic() - t0
        check(self.state(target) == "running", "%s not running after the switch" % target)
        check(self.state(source) in ("stopped", "saved"), "%s still %s after the switch" % (source, self.state(source)))
        check(self.h.get_property("Manager", "ActivePersona") == target, "ActivePersona is not %s" % target)
        check(self.qemu_pid("netvm") == self.net_pid, "the netvm's QEMU changed during the switch to " + target)
        check(source not in self.running_domains(), "%s still runs in libvirt" % source)
        m = self.wait_log(r"federation: switch to %s done \(([0-9.]+) ms on the broker's side\)" % target,
                          timeout=10, since=log0)
        overhead_ms = float(m.group(1))
        # Host side: the new persona's tap is an isolated port of the bridge with its anti-spoofing
        # chain; the old one's chain is gone.
        t_tap, s_tap = tap_of(target), tap_of(source)
        nft = subprocess.run(["nft", "list", "table", "bridge", "vmfed-host"], capture_output=True, text=True).stdout
        check("chain port-%s" % t_tap in nft, "no anti-spoofing chain for %s's tap %s" % (target, t_tap))
        check("chain port-%s" % s_tap not in nft, "%s's anti-spoofing chain survived it" % source)
        br = subprocess.run(["bridge", "-d", "link", "show", "dev", t_tap], capture_output=True, text=True).stdout
        check("isolated on" in br and "master " + HOST_BRIDGE in br, "%s's tap is not an isolated port: %r" % (target, br))
        self.shells.pop(source, None)
        self.shell(target, fresh=True)
        self.wait_agent(target)
        addr = self.wait_network(target)
        up = time.monotonic() - t0
        key = "switch_%s_to_%s" % (source, target)
        self.figures[key] = {"call_s": round(wall, 3), "until_network_s": round(up, 3),
                             "vmfed_overhead_ms": overhead_ms,
                             "vmfed_share_pct": round(100.0 * overhead_ms / 1000.0 / wall, 3)}
        return ("SwitchPersona answered after %.2f s (vmfed's own code: %.1f ms = %.2f%%), %s has %s %.2f s after "
                "the call; netvm QEMU pid %d unchanged; %s's tap %s isolated with anti-spoofing, %s's chain gone"
                % (wall, overhead_ms, 100.0 * overhead_ms / 1000.0 / wall, target, addr, up, self.net_pid, target,
                   t_tap, source))

    def s_denied_paste(self):
        log0 = len(self.log())
        rc, o = self.sh("netvm", "vmfed-guest paste 2>&1")
        check(rc != 0, "a paste into the netvm was not refused: %r" % o)
        check("AccessDenied" in o or "denied" in o.lower(), "the refusal does not say so: %r" % o)
        m = self.wait_log(r"audit: request \d+ %s -> netvm vmfed\.Clipboard\.Paste\S*: deny" % A, timeout=10, since=log0)
        return "refused in the netvm (%s); audit: %s" % (o.strip().splitlines()[-1], m.group(0))

    def s_paste_in_b(self):
        rc, o = self.sh(B, "vmfed-guest paste 2>&1")
        check(rc == 0 and self.secret in o, "paste in %s: rc %d, %r" % (B, rc, o))
        return "the text from %s arrived in %s" % (A, B)

    def s_large_clipboard(self):
        """24 MiB of binary on the clipboard from B, pasted into the netvm: over one message's 16 MiB,
        so both go through streams to the broker (vmfed.Clipboard.Copy/Paste, target @host)."""
        rc, o = self.sh(B, "dd if=/dev/urandom of=/tmp/clip.bin bs=1M count=24 2>/dev/null && "
                        "sha256sum < /tmp/clip.bin", timeout=120)
        check(rc == 0, "cannot make 24 MiB in %s: %r" % (B, o))
        want = o.split()[0]
        t0 = time.monotonic()
        rc, o = self.sh(B, "vmfed-guest copy --mime application/octet-stream /tmp/clip.bin 2>&1", timeout=300)
        copied = time.monotonic() - t0
        check(rc == 0, "copy of 24 MiB in %s: rc %d, %r" % (B, rc, o))
        size = self.h.get_property("org.vmfed.Federation1.Clipboard", "Size")
        check(self.h.get_property("org.vmfed.Federation1.Clipboard", "Owner") == B and size == 24 << 20,
              "the clipboard after the copy: %r bytes" % size)
        t0 = time.monotonic()
        rc, o = self.sh("netvm", "vmfed-guest paste 2>/tmp/paste.err | sha256sum; cat /tmp/paste.err", timeout=300)
        pasted = time.monotonic() - t0
        check(rc == 0 and o.split()[0] == want and "pasted %d bytes" % (24 << 20) in o,
              "paste of 24 MiB into the netvm: rc %d, %r (want %s)" % (rc, o, want))
        log = self.log()
        check("copied from %s through a stream" % B in log and "into netvm through a stream" in log,
              "the broker's log does not show both streams")
        self.sh(B, "rm -f /tmp/clip.bin")
        self.figures["clipboard_24mib_copy_s"] = round(copied, 2)
        self.figures["clipboard_24mib_paste_s"] = round(pasted, 2)
        return "24 MiB copied in %s in %.2f s, pasted into the netvm byte-identical in %.2f s (streams)" % (
            B, copied, pasted)

    def s_firewall(self):
        rc, o = self.fetch(B, 80)
        check(rc == 0 and "hello from the internet" in o, "%s cannot reach the internet's port 80: %r" % (B, o))
        t0 = time.monotonic()
        rc2, o2 = self.fetch(B, 8080)
        check(rc2 != 0 and "hello" not in o2, "%s reached the denied port 8080: %r" % (B, o2))
        return "port 80 answered; port 8080 dropped by %s's firewall in the netvm (%s after %.1f s)" % (
            B, (o2.strip().splitlines() or ["no answer"])[-1][:40], time.monotonic() - t0)

    def s_streams(self):
        """A 64 MiB tree copied from B into the netvm with vmfed-guest copy-to, byte-identical;
        a 16 MiB echo through test.Echo; the throughput of a one-way stream (test.Sink)."""
        mib = 64
        rc, o = self.sh(B, "rm -rf /tmp/tree && mkdir -p /tmp/tree/sub/deeper && "
                        "dd if=/dev/urandom of=/tmp/tree/a.bin bs=1M count=40 2>/dev/null && "
                        "dd if=/dev/urandom of=/tmp/tree/sub/b.bin bs=1M count=23 2>/dev/null && "
                        "dd if=/dev/urandom of=/tmp/tree/sub/deeper/c.bin bs=1k count=1023 2>/dev/null && "
                        "echo small > /tmp/tree/sub/deeper/d.txt && ln -s deeper/d.txt /tmp/tree/sub/link && "
                        "cd /tmp && find tree -type f | sort | xargs sha256sum", timeout=120)
        check(rc == 0 and o.count("tree/") == 4, "cannot make the tree in %s: %r" % (B, o))
        want = o
        t0 = time.monotonic()
        rc, o = self.sh(B, "vmfed-guest copy-to netvm /tmp/tree 2>&1", timeout=600)
        took = time.monotonic() - t0
        check(rc == 0 and "Copied 4 files, 3 directories, 1 symlink" in o, "copy-to netvm: rc %d, %r" % (rc, o))
        rc, got = self.sh("netvm", "cd /root/Incoming/%s && find tree -type f | sort | xargs sha256sum && "
                          "readlink tree/sub/link" % B, timeout=120)
        check(rc == 0 and got.startswith(want) and got.endswith("deeper/d.txt"),
              "the tree in the netvm differs:\n%s\nwant:\n%s" % (got, want))
        m = self.wait_log(r"audit: stream \d+ %s -> netvm vmfed\.FileCopy: allow, (\d+) bytes in, \d+ bytes out, "
                          r"\d+ ms, exit status 0" % B, timeout=10)
        self.figures["file_copy_64mib_s"] = round(took, 2)
        self.figures["file_copy_mb_s"] = round(mib * 1.048576 / took, 1)
        self.sh("netvm", "rm -rf /root/Incoming/%s/tree" % B)
        self.sh(B, "rm -rf /tmp/tree")
        self.note("copy-to: %s" % o.strip().splitlines()[-1])
        self.note("%s" % m.group(0))
        # Both directions at once, each ending on its own: 16 MiB out and back.
        rc, o = self.sh(B, "dd if=/dev/urandom of=/tmp/echo.in bs=1M count=16 2>/dev/null && "
                        "sha256sum < /tmp/echo.in && vmfed-guest run netvm test.Echo < /tmp/echo.in | sha256sum; "
                        "rm -f /tmp/echo.in", timeout=300)
        sums = o.split()
        check(rc == 0 and len(sums) >= 4 and sums[0] == sums[2], "the 16 MiB echo differs: %r" % o)
        # A file too large for one D-Bus call, opened in the netvm: a vmfed.OpenFile stream; its viewer
        # there edits it, and the changed file takes the original's place in B.
        rc, want = self.sh(B, "dd if=/dev/urandom of=/tmp/big.pdf bs=1M count=20 2>/dev/null && sha256sum </tmp/big.pdf",
                           timeout=120)
        t0 = time.monotonic()
        rc, o = self.sh(B, "vmfed-guest open-file /tmp/big.pdf netvm 2>&1", timeout=300)
        opened = time.monotonic() - t0
        check(rc == 0 and o.strip() == "netvm changed", "open-file of 20 MiB in the netvm: rc %d, %r" % (rc, o))
        rc, o = self.sh(B, "head -c 20971520 /tmp/big.pdf | sha256sum && tail -c 9 /tmp/big.pdf; echo; "
                        "ls -a /tmp | grep -c '^\\.vmfed-'; rm -f /tmp/big.pdf", timeout=120)
        lines = o.split("\n")
        check(rc == 0 and len(lines) >= 3 and lines[0].split()[0] == want.split()[0] and lines[1] == " (edited)" and
              lines[2].strip() == "0", "the 20 MiB file opened in the netvm came back as %r" % o)
        rc, left = self.sh("netvm", "ls -A /root/.cache/vmfed/open 2>&1")
        check(rc == 0 and not left.strip(), "the netvm kept the opened file: %r" % left)
        self.figures["open_file_20mib_s"] = round(opened, 2)
        t0 = time.monotonic()
        rc, o = self.sh(B, "dd if=/dev/zero bs=1M count=32 2>/dev/null | vmfed-guest run netvm test.Sink; echo rc=$?",
                        timeout=300)
        sink = time.monotonic() - t0
        check("rc=0" in o, "test.Sink: %r" % o)
        self.figures["stream_sink_mb_s"] = round(32 * 1.048576 / sink, 1)
        raw = self.raw_port_seconds(B, 7, 32 << 20)
        self.figures["raw_port_mb_s"] = round(32 * 1.048576 / raw, 1)
        self.figures["stream_to_raw_port"] = round(raw / sink, 2)
        # A stream from B into the netvm crosses two ports: out of B's, into the netvm's.  The other way's floor.
        raw_in = self.raw_port_in_seconds("netvm", 7, 32 << 20)
        self.figures["raw_port_in_mb_s"] = round(32 * 1.048576 / raw_in, 1)
        self.figures["stream_to_slower_raw_port"] = round(max(raw, raw_in) / sink, 2)
        # 64 streams at once from B into the netvm: 4 run at a time (half of the netvm's 8 ports may be one
        # VM's), the rest wait their turn (backpressure); every one comes back byte-identical with status 0.
        t0 = time.monotonic()
        rc, o = self.sh(B, "rm -rf /tmp/cc && mkdir /tmp/cc && cd /tmp/cc && "
                        "dd if=/dev/urandom of=src bs=64k count=4 2>/dev/null && "
                        "for i in $(seq 1 64); do (vmfed-guest run netvm test.Echo <src >out.$i 2>err.$i; "
                        "echo $? >rc.$i) & done; wait; echo rcs; cat rc.* | sort | uniq -c; echo sums; "
                        "sha256sum src out.* | cut -d' ' -f1 | sort | uniq -c; cat err.* | head -n 3", timeout=600)
        concurrent = time.monotonic() - t0
        check(rc == 0 and re.search(r"^\s*64 0$", o, re.M) and re.search(r"^\s*65 [0-9a-f]{64}$", o, re.M),
              "64 concurrent streams from %s into the netvm: %r" % (B, o))
        self.sh(B, "rm -rf /tmp/cc")
        self.figures["concurrent_64_streams_s"] = round(concurrent, 2)
        self.note("64 concurrent 256 KiB echoes into the netvm, all identical, in %.1f s" % concurrent)
        # The handler's exit status; a missing handler and a service the policy does not list: clear errors.
        rc, o = self.sh(B, "echo x | vmfed-guest run netvm test.Exit+7 2>&1")
        check(rc == 7, "test.Exit+7: rc %d, %r" % (rc, o))
        rc, o = self.sh(B, "echo x | vmfed-guest run netvm test.Missing 2>&1")
        check(rc == 125 and "NotFound" in o and "test.Missing" in o, "test.Missing: rc %d, %r" % (rc, o))
        rc, o = self.sh(B, "echo x | vmfed-guest run netvm test.Unlisted 2>&1")
        check(rc == 125 and "AccessDenied" in o, "test.Unlisted: rc %d, %r" % (rc, o))
        return "64 MiB tree in %.1f s (%.1f MB/s), identical in the netvm's ~/Incoming/%s; 16 MiB echo identical; " \
               "one-way stream %.1f MB/s beside %.1f MB/s straight out of a port to its host socket and %.1f MB/s " \
               "into one (TCG)" % (took, self.figures["file_copy_mb_s"], B, self.figures["stream_sink_mb_s"],
                                   self.figures["raw_port_mb_s"], self.figures["raw_port_in_mb_s"])

    def s_dispvm(self):
        token = "dispvm-%d" % os.getpid()
        url = "http://%s/%s" % (INTERNET, token)
        before = set(os.listdir(os.path.join(self.h.state_dir, "disposables")))
        rc, o = self.sh(B, "vmfed-guest open-url %s @dispvm 2>&1" % url, timeout=180)
        check(rc == 0, "open-url in @dispvm failed: %r" % o)
        m = re.search(r"\b(disp\d+)\b", o)
        check(m, "no disposable named in %r" % o)
        disp = m.group(1)
        console = os.path.join(self.h.state_dir, "consoles", disp + ".log")
        text = open(console, errors="replace").read() if os.path.exists(console) else ""
        check("vmfed-url-opened " + url in text, "the disposable's console does not show the URL")
        with open(os.path.join(WORK, "http-80.log")) as f:
            check("GET /%s" % token in f.read(), "the internet never saw the disposable's request")
        end = time.monotonic() + 30
        while time.monotonic() < end and disp in self.running_domains():
            time.sleep(0.2)
        check(disp not in self.running_domains(), "%s still runs" % disp)
        after = set(os.listdir(os.path.join(self.h.state_dir, "disposables")))
        check(not (after - before), "overlay left behind: %s" % (after - before))
        return "%s opened %s, fetched it through the netvm, and is gone with its overlay" % (disp, url)

    def raw_port_in_seconds(self, vm, index, size):
        """The other half of a stream's floor: size bytes from the host into an unused stream port of vm,
        read in the guest by dd (64 KiB reads, as the agent reads a port).  The host connects first (a guest
        reading a port whose host side is not connected reads EOF), then the guest opens the port (opening
        discards what was queued), then the host sends; timed from the first byte sent to the last (the
        socket holds little: the guest has nearly all of it then)."""
        path = os.path.join(self.h.state_dir, "channels", "%s.stream.%d.sock" % (vm, index))
        port = "/dev/virtio-ports/org.vmfed.stream.%d" % index
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        try:
            # dd again while it reads nothing: the guest may hear of the host's connection after its open.
            rc, o = self.sh(vm, "d=$(readlink -f %s); rm -f /tmp/rawin.n; "
                            "(while n=$(dd if=$d bs=64k count=%d iflag=count_bytes,fullblock 2>/dev/null | wc -c); "
                            "[ $n = 0 ]; do sleep 0.1; done; echo $n >/tmp/rawin.n) & true; "
                            "for i in $(seq 50); do ls -l /proc/*/fd 2>/dev/null | grep -q \"$d\\$\" && break; "
                            "sleep 0.1; done; sleep 0.5; ls -l /proc/*/fd 2>/dev/null | grep -c \"$d\\$\"" % (port, size))
            check(rc == 0 and o.split() and o.split()[-1] == "1", "%s has the port %d open %r times" % (vm, index, o))
            block = bytes(1 << 20)
            t0 = time.monotonic()
            for _ in range(size >> 20):
                s.sendall(block)
            took = time.monotonic() - t0
            # Closed only when the guest has it all: QEMU drops what its socket still holds at the hang-up.
            rc, o = self.sh(vm, "for i in $(seq 300); do [ -e /tmp/rawin.n ] && break; sleep 0.1; done; "
                            "cat /tmp/rawin.n", timeout=60)
        finally:
            s.close()
        got = int(o.split()[-1]) if rc == 0 and o.split() and o.split()[-1].isdigit() else -1
        check(got == size, "the raw port %d of %s inwards: %d bytes of %d (%r)" % (index, vm, got, size, o))
        return took

    def raw_port_seconds(self, vm, index, size):
        """The floor of a stream: size bytes from a guest straight into its stream port's host socket
        (port index, which no stream has used: the broker connects a port at its first stream and the
        agent opens it then), timed as the streams are (the shell command until the host has it all)."""
        path = os.path.join(self.h.state_dir, "channels", "%s.stream.%d.sock" % (vm, index))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        got = [0]

        def drain():
            while got[0] < size:
                b = s.recv(1 << 20)
                if not b:
                    break
                got[0] += len(b)
        t = threading.Thread(target=drain)
        t.start()
        t0 = time.monotonic()
        rc, o = self.sh(vm, "dd if=/dev/zero of=/dev/virtio-ports/org.vmfed.stream.%d bs=1M count=%d 2>&1" % (
            index, size >> 20), timeout=300)
        t.join(120)
        took = time.monotonic() - t0
        s.close()
        check(rc == 0 and got[0] >= size, "the raw port %d of %s: rc %d, %d bytes of %d (%r)" % (
            index, vm, rc, got[0], size, o))
        return took

    def netvm_sinks(self):
        """How many cat processes run in the netvm (test.Sink is one; nothing else there runs cat)."""
        rc, o = self.sh("netvm", "pidof cat | wc -w")
        return int(o.strip().splitlines()[-1] or 0) if rc == 0 and o.strip() else -1

    def s_dispvm_killed_mid_stream(self):
        """A stream into a disposable whose domain is destroyed while the bytes flow: the caller gets the
        error, the stream's audit line is written, the disposable and its overlay are gone, B's next streams
        work."""
        before = set(os.listdir(os.path.join(self.h.state_dir, "disposables")))
        log0 = len(self.log())
        self.sh(B, "rm -f /tmp/dk.out; (dd if=/dev/zero bs=64k count=1000000 2>/dev/null | "
                   "vmfed-guest run @dispvm test.Sink >/tmp/dk.out 2>&1; echo rc=$? >>/tmp/dk.out) "
                   "</dev/null >/dev/null 2>&1 & true")
        m = self.wait_log(r"test\.Sink from %s: stream (\d+) to (disp\d+) open" % B, timeout=180, since=log0)
        stream, disp = m.group(1), m.group(2)
        # Destroyed while the bytes flow: once its test.Sink (exec cat, reading its stdin: fd 0 a pipe) has
        # read 4 MiB, more than the buffers on the way hold.
        end = time.monotonic() + 60
        read = 0
        while time.monotonic() < end and read < (4 << 20):
            rc, o = self.sh(disp, "for p in $(pidof cat); do ls -l /proc/$p/fd/0 | grep -q pipe: && "
                                  "grep rchar /proc/$p/io; done")
            read = max([int(x) for x in re.findall(r"rchar: (\d+)", o)] or [0])
            time.sleep(0.2)
        check(read >= (4 << 20), "test.Sink in %s never read 4 MiB (%d bytes); its agent: %s" % (
            disp, read, self.sh(disp, "tail -n 30 /run/vmfed-agent.log; ps")[1]))
        self.shells.pop(disp).close()
        r = subprocess.run(["virsh", "-c", "qemu:///system", "destroy", PREFIX + disp], capture_output=True, text=True)
        check(r.returncode == 0, "virsh destroy %s: %s" % (disp, r.stderr.strip()))
        end = time.monotonic() + 30
        out_ = ""
        while time.monotonic() < end and "rc=" not in out_:
            out_ = self.sh(B, "cat /tmp/dk.out 2>/dev/null")[1]
            time.sleep(0.2)
        check("rc=125" in out_ and ("went away" in out_ or "failed" in out_),
              "the stream into the destroyed %s: %r" % (disp, out_))
        a = self.wait_log(r"audit: stream %s %s -> %s test\.Sink: aborted, (\d+) bytes in, \d+ bytes out, \d+ ms, "
                          r"exit status -?\d+[^\n]*" % (stream, B, disp), timeout=30, since=log0)
        check(int(a.group(1)) > 0, "no bytes reached %s before it was destroyed: %s" % (disp, a.group(0)))
        end = time.monotonic() + 60
        while time.monotonic() < end and (disp in self.running_domains() or
                                          set(os.listdir(os.path.join(self.h.state_dir, "disposables"))) - before):
            time.sleep(0.2)
        check(disp not in self.running_domains(), "%s still runs" % disp)
        left = set(os.listdir(os.path.join(self.h.state_dir, "disposables"))) - before
        check(not left, "overlay left behind: %s" % left)
        rc, o = self.sh(B, "for i in 1 2 3 4 5 6 7 8; do (echo next $i | vmfed-guest run netvm test.Echo "
                           ">/tmp/dk.$i 2>&1; echo rc=$? >>/tmp/dk.$i) & done; wait; cat /tmp/dk.*; rm -f /tmp/dk.*",
                        timeout=120)
        check(o.count("rc=0") == 8 and all("next %d" % i in o for i in range(1, 9)),
              "streams from %s after the killed one: %r" % (B, o))
        self.note(a.group(0).split(" VMFED_")[0])
        return "%s destroyed mid-stream: the caller got %r; audit line written, overlay gone; 8 streams " \
               "from %s after it all OK" % (disp, out_.strip().splitlines()[0][:80], B)

    def s_three_vms(self):
        """Three VMs at once: B holds a disposable D open with a stream, floods the netvm with 64 test.Echo
        streams (4 hold netvm ports at a time, the rest wait) and D copies 16 MiB into the netvm meanwhile.
        D's copy is not queued behind B's flood: one VM holds at most half of a target's ports, so the
        stream of another starts at once.  Everything arrives byte-identical; D goes when B's stream ends."""
        disposables = os.path.join(self.h.state_dir, "disposables")
        before = set(os.listdir(disposables))
        log0 = len(self.log())
        # The holding stream ends when its writer, a sleep, is killed.
        self.sh(B, "rm -f /tmp/hold.out /tmp/hold.pid; ((sleep 600 & echo $! >/tmp/hold.pid; wait) | "
                   "vmfed-guest run @dispvm test.Sink >/tmp/hold.out 2>&1; echo rc=$? >>/tmp/hold.out) "
                   "</dev/null >/dev/null 2>&1 & true")
        m = self.wait_log(r"test\.Sink from %s: stream (\d+) to (disp\d+) open" % B, timeout=180, since=log0)
        disp = m.group(2)
        rc, o = self.sh(disp, "dd if=/dev/urandom of=/tmp/f.bin bs=1M count=16 2>/dev/null && sha256sum /tmp/f.bin",
                        timeout=120)
        check(rc == 0, "cannot make the file in %s: %r" % (disp, o))
        want = o.split()[0]
        incoming = "/root/Incoming/%s/f.bin" % disp

        def copy():
            t0 = time.monotonic()
            rc, o = self.sh(disp, "vmfed-guest copy-to netvm /tmp/f.bin 2>&1", timeout=300)
            took = time.monotonic() - t0
            check(rc == 0 and "Copied 1 file" in o, "copy-to netvm from %s: rc %d, %r" % (disp, rc, o))
            rc, got = self.sh("netvm", "sha256sum %s && rm -f %s" % (incoming, incoming), timeout=120)
            check(rc == 0 and got.split()[0] == want, "%s's file in the netvm differs: %r" % (disp, got))
            return took

        alone = copy()
        # B's flood, in the background; once four of its streams are open in the netvm, D copies.
        log1 = len(self.log())
        self.sh(B, "rm -rf /tmp/fl && mkdir /tmp/fl && cd /tmp/fl && dd if=/dev/urandom of=src bs=64k count=8 "
                   "2>/dev/null && ((for i in $(seq 1 64); do (vmfed-guest run netvm test.Echo <src >out.$i "
                   "2>err.$i; echo $? >rc.$i) & done; wait; echo done >done) </dev/null >/dev/null 2>&1 & true)")
        opens = r"test\.Echo from %s: stream \d+ to netvm open" % B
        end = time.monotonic() + 120
        while time.monotonic() < end and len(re.findall(opens, self.log()[log1:])) < 4:
            time.sleep(0.1)
        check(len(re.findall(opens, self.log()[log1:])) >= 4, "B's flood never had 4 streams open in the netvm")
        flooded = copy()
        text = self.log()[log1:]
        mc = re.search(r"vmfed\.FileCopy from %s: stream \d+ to netvm open" % disp, text)
        check(mc, "D's copy during the flood: no stream open in the broker's log")
        b_before = len(re.findall(opens, text[:mc.start()]))
        check(b_before < 64, "D's copy waited until all 64 of B's streams had started (%d before it)" % b_before)
        rc, o = self.sh(B, "cd /tmp/fl && n=0; while [ ! -e done ] && [ $n -lt 3000 ]; do sleep 0.1; n=$((n+1)); done; "
                           "echo rcs; cat rc.* | sort | uniq -c; echo sums; sha256sum src out.* | cut -d' ' -f1 | "
                           "sort | uniq -c; cat err.* | head -n 3", timeout=400)
        check(re.search(r"^\s*64 0$", o, re.M) and re.search(r"^\s*65 [0-9a-f]{64}$", o, re.M),
              "B's 64 streams into the netvm beside D's copy: %r" % o)
        self.sh(B, "rm -rf /tmp/fl")
        # B's holding stream ends: test.Sink exits 0, the disposable is released and its overlay removed.
        self.sh(B, "kill $(cat /tmp/hold.pid)")
        end = time.monotonic() + 30
        held = ""
        while time.monotonic() < end and "rc=" not in held:
            held = self.sh(B, "cat /tmp/hold.out 2>/dev/null")[1]
            time.sleep(0.2)
        check("rc=0" in held, "B's stream holding %s: %r" % (disp, held))
        self.shells.pop(disp).close()
        end = time.monotonic() + 60
        while time.monotonic() < end and (disp in self.running_domains() or set(os.listdir(disposables)) - before):
            time.sleep(0.2)
        check(disp not in self.running_domains(), "%s still runs after B's stream ended" % disp)
        check(not set(os.listdir(disposables)) - before, "overlay left behind")
        self.figures["three_vms_copy_16mib_alone_s"] = round(alone, 2)
        self.figures["three_vms_copy_16mib_beside_flood_s"] = round(flooded, 2)
        self.figures["three_vms_flood_streams_started_before_copy"] = b_before
        return "%s's 16 MiB copy into the netvm: %.1f s alone, %.1f s beside B's 64-stream flood (it started after " \
               "%d of B's 64); all identical; %s released when B's stream ended" % (disp, alone, flooded, b_before, disp)

    def s_broker_restart(self):
        b_pid = self.qemu_pid(B)
        # A stream running when the broker dies: its caller gets an error, its handler is killed.
        self.sh(B, "rm -f /tmp/mid.out; (dd if=/dev/zero bs=64k count=1000000 2>/tmp/mid.dd | vmfed-guest run netvm test.Sink >/tmp/mid.out 2>&1; "
                   "echo rc=$? >>/tmp/mid.out) </dev/null >/dev/null 2>&1 & true")
        end = time.monotonic() + 30
        while time.monotonic() < end and self.netvm_sinks() < 1:
            time.sleep(0.2)
        check(self.netvm_sinks() >= 1, "the stream's handler never ran in the netvm (%d cat; the caller: %r)" % (
            self.netvm_sinks(), self.sh(B, "cat /tmp/mid.out /tmp/mid.dd; ls -l /dev/zero")[1]))
        self.h.daemon.send_signal(signal.SIGKILL)
        self.h.daemon.wait()
        self.note("vmfedd killed with SIGKILL; starting it again")
        log0 = len(self.log())
        self.h.start_daemon()
        self.wait_log(r"NetVM netvm: connected to its port", timeout=60, since=log0)
        self.wait_log(r"NetVM: SetState of netvm done", timeout=60, since=log0)
        check(self.qemu_pid("netvm") == self.net_pid, "the netvm's QEMU changed across the broker restart")
        check(self.qemu_pid(B) == b_pid, "%s's QEMU changed across the broker restart" % B)
        self.wait_agent(B)
        rc, o = self.sh(B, "vmfed-guest ping netvm 2>&1")
        check(rc == 0 and "netvm" in o, "ping netvm from %s after the restart: %r" % (B, o))
        rc, o = self.fetch(B, 80)
        check(rc == 0 and "hello" in o, "%s lost the network across the broker restart: %r" % (B, o))
        end = time.monotonic() + 30
        mid = ""
        while time.monotonic() < end and "rc=" not in mid:
            mid = self.sh(B, "cat /tmp/mid.out 2>/dev/null")[1]
            time.sleep(0.2)
        check("rc=125" in mid and "failed" in mid, "the stream cut by the broker's death: %r" % mid)
        check(self.netvm_sinks() == 0, "the cut stream's handler still runs in the netvm")
        rc, o = self.sh(B, "echo after the restart | vmfed-guest run netvm test.Echo 2>&1")
        check(rc == 0 and "after the restart" in o, "a stream after the restart: rc %d, %r" % (rc, o))
        self.note("the stream running across it: %s" % mid.strip().splitlines()[0])
        return "netvm (pid %d) and %s (pid %d) kept running; agents and vmfed-netd reconnected; ping netvm routed; " \
               "the stream it cut failed clearly, its handler is gone, the next one works" % (self.net_pid, B, b_pid)

    def s_netd_restart(self):
        done0 = self.log().count("NetVM: SetState of netvm done")
        rc, o = self.sh("netvm", "kill $(pidof vmfed-netd) && echo killed")
        check(rc == 0 and "killed" in o, "cannot kill vmfed-netd in the netvm: %r" % o)
        end = time.monotonic() + 60
        while time.monotonic() < end and self.log().count("NetVM: SetState of netvm done") <= done0:
            time.sleep(0.2)
        check(self.log().count("NetVM: SetState of netvm done") > done0,
              "the broker did not send the whole state again after vmfed-netd restarted")
        check(self.qemu_pid("netvm") == self.net_pid, "the netvm's QEMU changed")
        rc, o = self.fetch(B, 80)
        check(rc == 0 and "hello" in o, "%s has no network after vmfed-netd restarted: %r" % (B, o))
        return "vmfed-netd restarted by the netvm's init, reconnected, got the whole state again; %s still online" % B

    def s_policy_change(self):
        name = "30-demo.policy"
        r = self.h.busctl("--json=short", "call", harness.BUS, ROOT, harness.IFACE["Policy"], "GetFile", "s", name)
        content, etag = json.loads(r.stdout)["data"]
        new = content.replace("vmfed.OpenURL          *  gondor     @dispvm    allow",
                              "vmfed.OpenURL          *  gondor     @dispvm    deny")
        check(new != content, "policy line to change not found")
        self.h.busctl("call", harness.BUS, ROOT, harness.IFACE["Policy"], "ReplaceFile", "sss", name, new, etag)
        log0 = len(self.log())
        rc, o = self.sh(B, "vmfed-guest open-url http://%s/after-change @dispvm 2>&1" % INTERNET, timeout=60)
        check(rc != 0 and ("AccessDenied" in o or "denied" in o.lower()), "open-url after the change: %r" % o)
        self.wait_log(r"audit: request \d+ %s -> @dispvm vmfed\.OpenURL.*: deny" % B, timeout=10, since=log0)
        return "busctl Policy.ReplaceFile: gondor → @dispvm URLs now deny; the next open-url was refused"

    def s_switch_back(self):
        return self.switch(A, B)

    # ---- the run ------------------------------------------------------------------
    def run(self):
        sampler = realvm.PersonaSampler(PREFIX, (A, B), interval=0.2)
        sampler.start()
        try:
            self.step("netvm up (vmfedd starts, autostart, vmfed-netd gets its state)", self.s_broker_and_netvm)
            self.step("persona A (%s) up" % A, self.s_start_a)
            self.step("copy in A", self.s_copy_in_a)
            self.step("switch A → B (%s → %s)" % (A, B), self.switch, B, A)
            self.step("paste into the netvm: denied", self.s_denied_paste)
            self.step("paste in B", self.s_paste_in_b)
            self.step("a 24 MiB clipboard from B into the netvm", self.s_large_clipboard)
            self.step("firewall from inside B", self.s_firewall)
            self.step("files and streams from B into the netvm", self.s_streams)
            self.step("open a URL in a disposable from B", self.s_dispvm)
            self.step("a disposable destroyed mid-stream", self.s_dispvm_killed_mid_stream)
            if MODE == "test":  # not narrated in the demo: it adds a disposable's boot and a minute of TCG
                self.step("three VMs: a flood of streams beside a copy", self.s_three_vms)
            self.step("vmfedd killed and restarted", self.s_broker_restart)
            self.step("vmfed-netd restarted inside the netvm", self.s_netd_restart)
            self.step("policy change with busctl", self.s_policy_change)
            self.step("switch B → A", self.s_switch_back)
        finally:
            sampler.halt.set()
            sampler.join(2)
        check(not sampler.violations, "A and B ran at the same time: %s" % sampler.violations[:3])
        check(sampler.samples > 10, "the sampler barely ran")
        self.figures["steps_s"] = {t: round(s, 3) for t, s in self.steps}
        self.figures["total_s"] = round(time.monotonic() - self.t_start, 2)
        self.figures["personas_never_together_samples"] = sampler.samples


def teardown(e):
    """Destroy this run's domains while vmfedd still runs (it removes their host ports), then stop it."""
    for sh in e.shells.values():
        sh.close()
    r = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--name"], capture_output=True, text=True)
    for d in r.stdout.split():
        if d.startswith(PREFIX):
            subprocess.run(["virsh", "-c", "qemu:///system", "destroy", d], capture_output=True)
    time.sleep(1)
    e.h.stop()


def main():
    build, template_dir = sys.argv[1], sys.argv[2]
    e = E2e(build, template_dir)
    ok = False
    try:
        e.run()
        # Guests of the sanitizer build: tests/guest/init copies the report of a
        # daemon that died of one to the console.
        for f in sorted(glob.glob(os.path.join(e.h.state_dir, "consoles", "*.log"))):
            with open(f, errors="replace") as c:
                if "vmfed-init: sanitizer report" in c.read():
                    raise Failure("%s: a daemon in the guest died of a sanitizer report" % os.path.basename(f))
        ok = True
    except Exception as ex:  # noqa: BLE001
        out("FAIL: %s" % ex)
        if not isinstance(ex, Failure):
            traceback.print_exc()
        if MODE == "demo":
            keep_logs(e)
        try:
            e.h.dump_log()
            for f in sorted(glob.glob(os.path.join(e.h.state_dir, "consoles", "*.log"))):
                with open(f, errors="replace") as c:
                    sys.stderr.write("---- %s (tail) ----\n%s\n" % (f, "".join(c.readlines()[-25:])))
            for vm in ("netvm", A, B):
                try:
                    sh = e.shell(vm, timeout=10) if e.state(vm) == "running" else None
                except Exception:  # noqa: BLE001
                    sh = None
                if sh:
                    for f in ("/run/vmfed-netd.log", "/run/vmfed-agent.log"):
                        try:
                            rc, o = sh.run("tail -n 25 %s 2>/dev/null; ip addr; ip route; cat /etc/resolv.conf" % f, timeout=5)
                            sys.stderr.write("---- %s:%s ----\n%s\n" % (vm, f, o))
                        except Exception:  # noqa: BLE001
                            pass
        except Exception:  # noqa: BLE001
            pass
    finally:
        teardown(e)
    if ok:
        out("")
        out("Steps:")
        for t, s in e.steps:
            out("  %7.2f s  %s" % (s, t))
        out("  %7.2f s  total" % e.figures["total_s"])
        print(json.dumps({"e2e": e.figures}), flush=True)
        out("e2e: PASS" if MODE == "test" else "demo finished; everything it started is being removed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
