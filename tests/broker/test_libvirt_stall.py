#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stalled libvirtd does not stall vmfedd (issue 12).

vmfedd on a real libvirtd (qemu:///system) with one tiny TCG guest.  libvirtd
is stopped (SIGSTOP) for 10 s and a StartVM is sent right after, so the
start waits inside libvirt.  Meanwhile calls keep coming on the bus
(Policy.Evaluate, ListVMs, a VM's State, a second StartVM, answered at once
as the VM is already starting): each must be answered while libvirtd is still
stopped — after every reply /proc/PID/stat of libvirtd must still say 'T'.
That is a functional check, not a timed one: before the fix a reply came
only after SIGCONT (the main loop sat in a libvirt call).  Then libvirtd
continues (SIGCONT, always, in a finally) and the StartVM must complete
(the VM running) or fail with a clear error; the VM is stopped and the
wrapper removes the domain.

Guests keep making routed calls all along: two app VMs' real vmfed-agent
processes (on the host, on the VMs' channel sockets, as in tests/services)
copy in one and paste in the other, allowed by the policy; each paste must
return what was copied, and be answered while libvirtd is stopped.

Prints the call latencies before and during the stall, and one JSON line
on stdout (the benchmark's figure).
Run by test-federation-real.sh (libvirtd, guest image, cleanup of domains).
Usage: test_libvirt_stall.py VMFEDD   (env VMFED_GUEST_DIR, VMFED_TEST_PREFIX)
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback

import harness
from harness import ROOT

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "services"))
from svc import ServicesHarness  # noqa: E402  (real vmfed-agent processes on the VMs' channels)

STALL_S = 10.0


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def vm_text(name, guest):
    return ("[VM]\nRole=service\nMemory=256M\nVCPUs=1\nAccel=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd-base.img\n"
            "Cmdline=console=ttyS0 quiet panic=-1 vmfed.name=%s\nStopTimeout=20\n" % (guest, guest, name))


def app_vm_text(guest):
    # Never started in libvirt: its vmfed-agent runs on the host, on the VM's channel socket
    # (tests/services/svc.py), so its calls go through the broker's real guest channel path.
    return "[VM]\nRole=app\nMemory=128M\nAccel=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd-base.img\n" % (guest, guest)


POLICY = {"30-clip.policy": "vmfed.Clipboard.Paste  +  red  blue  allow\n"}


def libvirtd_pid():
    with open("/run/libvirtd.pid") as f:
        pid = int(f.read().strip())
    with open("/proc/%d/comm" % pid) as f:
        check(f.read().strip() == "libvirtd", "/run/libvirtd.pid does not name a libvirtd")
    return pid


def proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class StallTest:
    def __init__(self, vmfedd, agent, guest_cmd, guest, prefix):
        self.prefix = prefix
        vms = {"alpha": vm_text("alpha", guest), "red": app_vm_text(guest), "blue": app_vm_text(guest)}
        self.h = ServicesHarness(vmfedd, agent, guest_cmd, vms=vms, policy=POLICY, debug=True,
                                 uri="qemu:///system", extra_args=["--domain-prefix", prefix],
                                 env={"VMFED_FORCE_TCG": "1"})
        self.red = self.blue = None
        self.n_pastes = 0
        self.pid = 0
        self.stopped = False
        self.lock = threading.Lock()

    def cont(self):
        with self.lock:
            if self.stopped:
                os.kill(self.pid, signal.SIGCONT)
                self.stopped = False

    def state(self):
        return self.h.get_property("VM", "State", path=ROOT + "/vm/alpha")

    def probe(self):
        """One round of calls that need no libvirt; returns their latencies (s)."""
        h = self.h
        out = []
        t0 = time.monotonic()
        (action,) = h.call("Policy", "Evaluate", "sss", "alpha", "@default", "vmfed.OpenURL")[:1]
        out.append(("Policy.Evaluate", time.monotonic() - t0))
        check(action in ("allow", "deny", "ask"), "Policy.Evaluate answered %r" % (action,))
        t0 = time.monotonic()
        (vms,) = h.call("Manager", "ListVMs")
        out.append(("ListVMs", time.monotonic() - t0))
        check(any(v[0] == "alpha" for v in vms), "ListVMs lacks alpha: %s" % vms)
        t0 = time.monotonic()
        self.state()
        out.append(("State", time.monotonic() - t0))
        # Guest calls over the channels, routed by the broker under the policy: a copy in red, a
        # paste in blue (allowed red -> blue), which must return exactly what red copied.
        self.n_pastes += 1
        data = ("round %d from red" % self.n_pastes).encode()
        t0 = time.monotonic()
        self.red.guest_ok("copy", input=data)
        out.append(("guest copy", time.monotonic() - t0))
        t0 = time.monotonic()
        pasted = self.blue.guest_ok("paste")
        out.append(("guest paste (routed)", time.monotonic() - t0))
        check(pasted == data, "blue pasted %r, red had copied %r" % (pasted, data))
        return out

    def run(self):
        h = self.h
        figures = {}
        self.pid = libvirtd_pid()
        self.red, self.blue = h.agent("red"), h.agent("blue")
        # A libvirtd just started probes QEMU's capabilities on first use, for minutes on a
        # loaded machine: have that done before the clock of the scenario starts.
        subprocess.run(["virsh", "-c", "qemu:///system", "domcapabilities", "--virttype", "qemu"],
                       capture_output=True, timeout=900)
        before = [x for _ in range(10) for x in self.probe()]

        # Stop libvirtd first, then ask for the start: its first libvirt call (the domain lookup)
        # waits inside the stopped libvirtd.  (Stopping it after the start was sent raced: once
        # libvirt's capabilities are cached, "starting" lasts only until QEMU is launched, and a
        # poll could miss it, as in one CI run.)
        with self.lock:
            os.kill(self.pid, signal.SIGSTOP)
            self.stopped = True
        t_stop = time.monotonic()
        timer = threading.Timer(STALL_S, self.cont)  # a blocked call must not keep libvirtd stopped
        timer.start()
        during = []
        rounds = 0
        start = None
        try:
            for _ in range(100):  # the stop reaches every thread in a moment
                if proc_state(self.pid) == "T":
                    break
                time.sleep(0.02)
            check(proc_state(self.pid) == "T", "libvirtd did not stop")
            start = subprocess.Popen(["busctl", "--address=" + h.address, "--timeout=600", "call", harness.BUS, ROOT,
                                      harness.IFACE["Manager"], "StartVM", "s", "alpha"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            harness.Harness._wait(lambda: self.state() == "starting", "alpha starting", timeout=5)
            check(proc_state(self.pid) == "T", "libvirtd continued before the start was asked for")
            while time.monotonic() - t_stop < STALL_S - 2:
                lat = self.probe()
                st = proc_state(self.pid)
                check(st == "T", "a call was answered only after libvirtd continued (state %s; latencies %s)"
                      % (st, ["%s %.2f s" % x for x in lat]))
                during += lat
                rounds += 1
                # A second start while the first waits in libvirt: answered at once too.
                if rounds == 1:
                    t0 = time.monotonic()
                    name, msg = h.call_error("Manager", "StartVM", "alpha")
                    during.append(("StartVM again", time.monotonic() - t0))
                    check(proc_state(self.pid) == "T", "the second StartVM was answered after libvirtd continued")
                    print("second StartVM during the stall: %s" % (name or "ok"), file=sys.stderr)
                time.sleep(0.2)
            check(start.poll() is None, "StartVM finished while libvirtd was stopped: %s" % (start.communicate(),))
        finally:
            timer.cancel()
            self.cont()
        check(start is not None, "the StartVM was never sent")
        out, err = start.communicate(timeout=660)
        if start.returncode == 0:
            harness.Harness._wait(lambda: self.state() == "running", "alpha running after the stall", timeout=60)
            figures["start_after_stall"] = "running"
        else:
            check("Error" in err or "rror" in err, "StartVM failed without a clear error: %r" % err)
            print("StartVM failed after the stall: %s" % err.strip(), file=sys.stderr)
            figures["start_after_stall"] = "failed"
        # Nothing left: stop it (the wrapper removes the domain).
        h.busctl("--timeout=60", "call", harness.BUS, ROOT, harness.IFACE["Manager"], "StopVM", "sb", "alpha", "true")
        harness.Harness._wait(lambda: self.state() in ("stopped", "saved"), "alpha stopped", timeout=60)
        after = [x for _ in range(5) for x in self.probe()]

        def ms(lat, name=None):
            v = [x[1] * 1000 for x in lat if name is None or x[0] == name]
            return {"median_ms": round(statistics.median(v), 1), "max_ms": round(max(v), 1), "n": len(v)}

        figures.update(before=ms(before), during=ms(during), after=ms(after),
                       evaluate_before=ms(before, "Policy.Evaluate"), evaluate_during=ms(during, "Policy.Evaluate"),
                       paste_before=ms(before, "guest paste (routed)"), paste_during=ms(during, "guest paste (routed)"),
                       stall_s=STALL_S, rounds_during_stall=rounds)
        for k in ("before", "during", "after"):
            print("calls %-6s the stall: median %.1f ms, max %.1f ms (%d calls)"
                  % (k, figures[k]["median_ms"], figures[k]["max_ms"], figures[k]["n"]), file=sys.stderr)
        return figures


def main():
    vmfedd = sys.argv[1]
    build = os.environ["VMFED_BUILD_ROOT"]
    t = StallTest(vmfedd, os.path.join(build, "services", "vmfed-agent"), os.path.join(build, "services", "vmfed-guest"),
                  os.environ["VMFED_GUEST_DIR"], os.environ["VMFED_TEST_PREFIX"])
    t.h.__enter__()
    os.chmod(t.h.tmp, 0o755)
    rc = 0
    try:
        figures = t.run()
        print(json.dumps(dict(name="broker-libvirt-stall", **figures)))
        print("ok: every call answered while libvirtd was stopped; the start completed afterwards", file=sys.stderr)
    except Exception:
        traceback.print_exc()
        t.h.dump_log()
        rc = 1
    finally:
        t.cont()
        subprocess.run(["busctl", "--address=" + t.h.address, "--timeout=60", "call", harness.BUS, ROOT,
                        harness.IFACE["Manager"], "StopVM", "sb", "alpha", "true"], capture_output=True)
        t.h.__exit__(None, None, None)
    return rc


if __name__ == "__main__":
    sys.exit(main())
