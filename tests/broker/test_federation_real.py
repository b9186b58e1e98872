#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmfedd runs the federation on a real libvirtd with tiny TCG guests.

A netvm (service, Autostart) and two personas that claim the same PCI device
(fake passthrough: exclusivity only).  Driven with busctl on a private bus:
switch A -> B -> A, a second switch during one is Busy, the netvm's QEMU pid
never changes, vmfedd killed with SIGKILL and started again adopts what runs
(same pids, same active persona), kill -9 of the persona's QEMU shows as
VM.State "stopped" (PropertiesChanged) within a second.  Never two personas
at once: checked at every step over D-Bus and, all along, by sampling
libvirt's list of running domains.

Run by test-federation-real.sh (libvirtd, guest image, cleanup of domains).
Usage: test_federation_real.py VMFEDD   (env VMFED_GUEST_DIR, VMFED_TEST_PREFIX)
Prints one JSON line of figures on stdout at the end.
"""
import json
import os
import signal
import subprocess
import sys
import time
import traceback

import harness
from harness import Harness, Monitor, ROOT, state_changed

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import realvm  # noqa: E402

E = "org.vmfed.Federation1.Error."
DEV = "0000:01:00.0"
PERSONAS = ("alpha", "beta")


def vm_text(name, role, guest, extra=""):
    return ("[VM]\nRole=%s\nMemory=256M\nVCPUs=1\nAccel=tcg\nKernel=%s/vmlinuz\nInitrd=%s/initrd-base.img\n"
            "Cmdline=console=ttyS0 quiet panic=-1 vmfed.name=%s\nStopTimeout=20\n%s"
            % (role, guest, guest, name, extra))


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


class RealTest:
    def __init__(self, vmfedd, guest, prefix):
        self.prefix = prefix
        vms = {
            "netvm": vm_text("netvm", "service", guest, "DefaultNetVM=true\nAutostart=true\n"),
            "alpha": vm_text("alpha", "persona", guest, "[Passthrough]\nDevices=%s\n" % DEV),
            "beta": vm_text("beta", "persona", guest, "[Passthrough]\nDevices=%s\n" % DEV),
        }
        self.h = Harness(vmfedd, vms=vms, policy={}, debug=True, uri="qemu:///system",
                         extra_args=["--domain-prefix", prefix],
                         env={"VMFED_FORCE_TCG": "1", "VMFED_TEST_FAKE_PASSTHROUGH": "1"})
        self.figures = {}

    # ---- helpers ---------------------------------------------------------------
    def qemu_pid(self, vm):
        try:
            with open("/run/libvirt/qemu/%s%s.pid" % (self.prefix, vm)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 0

    def state(self, vm):
        return self.h.get_property("VM", "State", path=ROOT + "/vm/" + vm)

    def active(self):
        return self.h.get_property("Manager", "ActivePersona")

    def wait_up(self, vm, n, timeout=120):
        """Wait for the n-th "vmfed-init: VM up" on the guest's serial log (acpid runs then)."""
        path = os.path.join(self.h.state_dir, "consoles", vm + ".log")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with open(path, errors="replace") as f:
                    if f.read().count("vmfed-init: %s up" % vm) >= n:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise Failure("%s did not boot (boot %d) within %d s" % (vm, n, timeout))

    def boots(self, vm):
        try:
            with open(os.path.join(self.h.state_dir, "consoles", vm + ".log"), errors="replace") as f:
                return f.read().count("vmfed-init: %s up" % vm)
        except OSError:
            return 0

    def busctl_call(self, method, sig, *args, timeout=240):
        """A Manager call through busctl (not vmfedctl); returns wall seconds."""
        t0 = time.monotonic()
        self.h.busctl("--timeout=%d" % timeout, "call", harness.BUS, ROOT, harness.IFACE["Manager"], method, sig,
                      *args)
        return time.monotonic() - t0

    def check_one_persona(self, where):
        (vms,) = self.h.call("Manager", "ListVMs")
        s = {v[0]: v[2] for v in vms}
        up = [p for p in PERSONAS if s[p] in ("starting", "running", "paused", "stopping")]
        check(len(up) <= 1, "%s: two personas active over D-Bus: %s" % (where, s))
        running = realvm.running_domains(self.prefix)
        check(running is not None, "%s: virsh list failed" % where)
        running = sorted(p for p in PERSONAS if p in running)
        check(len(running) <= 1, "%s: two personas running in libvirt: %s" % (where, running))
        return s

    def switch(self, target, net_pid):
        boots = self.boots(target)
        took = self.busctl_call("SwitchPersona", "s", target)
        s = self.check_one_persona("after switch to " + target)
        check(s[target] == "running", "switch to %s: state %s" % (target, s[target]))
        check(self.active() == target, "ActivePersona after switch to %s: %r" % (target, self.active()))
        check(s["netvm"] == "running", "netvm %s after switch to %s" % (s["netvm"], target))
        check(self.qemu_pid("netvm") == net_pid, "the netvm's QEMU changed during the switch to " + target)
        self.wait_up(target, boots + 1)
        print("switch to %s: %.2f s" % (target, took), file=sys.stderr)
        return took

    # ---- the scenario -----------------------------------------------------------------
    def run(self):
        h = self.h
        sampler = realvm.PersonaSampler(self.prefix, PERSONAS, interval=0.15)
        sampler.start()
        try:
            # Autostart: the netvm (service) comes up by itself.
            harness.Harness._wait(lambda: self.state("netvm") == "running", "netvm autostarted", timeout=120)
            net_pid = self.qemu_pid("netvm")
            check(net_pid > 0, "no QEMU pid for the netvm")
            self.wait_up("netvm", 1)
            check(self.active() == "", "a persona runs before any was asked for")

            switches = []
            # A (from nothing), then B, then A: each switch shuts the holder down (ACPI) and boots the other.
            switches.append(self.switch("alpha", net_pid))
            with Monitor(h) as mon:
                # B, and a second switch while it runs: Busy.
                t0 = time.monotonic()
                bg = subprocess.Popen(["busctl", "--address=" + h.address, "--timeout=240", "call", harness.BUS, ROOT,
                                       harness.IFACE["Manager"], "SwitchPersona", "s", "beta"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                m = mon.wait(lambda m: m["member"] == "Progress" and "stopping persona alpha" in m["payload"]["data"][1],
                             30)
                check(m is not None, "no Progress line 'stopping persona alpha' during the switch to beta")
                name, msg = h.call_error("Manager", "SwitchPersona", "alpha")
                check(name == E + "Busy", "second switch during one: %s %s" % (name, msg))
                out, err = bg.communicate(timeout=240)
                check(bg.returncode == 0, "switch to beta failed: " + err)
                switches.append(time.monotonic() - t0)
                op = m["payload"]["data"][0]
                lines = [x["payload"]["data"][1] for x in mon.messages
                         if x.get("member") == "Progress" and x["payload"]["data"][0] == op]
                check(any("beta" in x for x in lines), "Progress lines of the switch: %s" % lines)
                s = self.check_one_persona("after switch to beta")
                check(s["beta"] == "running" and self.active() == "beta", "switch to beta: %s" % s)
                check(self.qemu_pid("netvm") == net_pid, "the netvm's QEMU changed during the switch to beta")
                # Every state change of the personas was announced; the netvm's never.
                check(mon.wait(state_changed(ROOT + "/vm/alpha", "stopped"), 1) is not None,
                      "no PropertiesChanged alpha -> stopped")
                check(mon.wait(state_changed(ROOT + "/vm/beta", "running"), 1) is not None,
                      "no PropertiesChanged beta -> running")
                check(mon.wait(lambda m: m["member"] == "PropertiesChanged" and m["path"] == ROOT + "/vm/netvm",
                               0.1) is None, "the netvm changed state during a switch")
            self.wait_up("beta", self.boots("beta"))
            switches.append(self.switch("alpha", net_pid))
            self.figures["switch_s"] = [round(x, 2) for x in switches]

            # Broker restart: SIGKILL, start again; it adopts what runs as it is.
            a_pid = self.qemu_pid("alpha")
            check(a_pid > 0, "no QEMU pid for alpha")
            h.daemon.send_signal(signal.SIGKILL)
            h.daemon.wait()
            t0 = time.monotonic()
            h.start_daemon()
            harness.Harness._wait(lambda: self.state("alpha") == "running", "alpha adopted", timeout=30)
            self.figures["restart_to_adopted_s"] = round(time.monotonic() - t0, 2)
            s = self.check_one_persona("after the broker restart")
            check(s["netvm"] == "running", "netvm after restart: %s" % s["netvm"])
            check(self.active() == "alpha", "ActivePersona after restart: %r" % self.active())
            check(self.qemu_pid("netvm") == net_pid, "the netvm's QEMU changed across the broker restart")
            check(self.qemu_pid("alpha") == a_pid, "alpha's QEMU changed across the broker restart")
            time.sleep(2)  # resume + autostart ran: still nothing restarted
            check(self.qemu_pid("netvm") == net_pid and self.qemu_pid("alpha") == a_pid,
                  "a VM was restarted after the broker restart")
            check("adopted" in h.log(), "no adoption in the log")

            # Crash: kill -9 the persona's QEMU; VM.State says stopped within a second.
            with Monitor(h) as mon:
                t0 = time.monotonic()
                os.kill(a_pid, signal.SIGKILL)
                m = mon.wait(state_changed(ROOT + "/vm/alpha", "stopped"), 1.0)
                check(m is not None, "no PropertiesChanged alpha -> stopped within 1 s of kill -9 of its QEMU")
                self.figures["crash_to_stopped_ms"] = round((time.monotonic() - t0) * 1000, 1)
                check(self.state("alpha") == "stopped", "alpha after the crash: %s" % self.state("alpha"))
                harness.Harness._wait(lambda: self.active() == "", "ActivePersona cleared", timeout=5)
            s = self.check_one_persona("after the crash")
            check(s["netvm"] == "running" and self.qemu_pid("netvm") == net_pid, "netvm after the crash")

            # The device is given back: the other persona can run now.
            switches.append(self.switch("beta", net_pid))
            self.busctl_call("StopVM", "sb", "beta", "false")
            check(self.state("beta") == "stopped", "beta after StopVM: %s" % self.state("beta"))
            check(self.qemu_pid("netvm") == net_pid, "the netvm's QEMU changed")
        finally:
            sampler.halt.set()
            sampler.join(5)
        check(not sampler.violations, "libvirt ran both personas at once: %s" % sampler.violations[:3])
        self.figures["libvirt_samples"] = sampler.samples


def main():
    vmfedd = sys.argv[1]
    guest = os.environ["VMFED_GUEST_DIR"]
    prefix = os.environ["VMFED_TEST_PREFIX"]
    t = RealTest(vmfedd, guest, prefix)
    t.h.__enter__()
    os.chmod(t.h.tmp, 0o755)
    rc = 0
    try:
        t.run()
        print(json.dumps(dict(name="broker-federation-real", **t.figures)))
        print("ok: switches, Busy, netvm kept, restart adoption, crash detection", file=sys.stderr)
    except Exception:
        traceback.print_exc()
        t.h.dump_log()
        for vm in ("netvm", "alpha", "beta"):
            path = os.path.join(t.h.state_dir, "consoles", vm + ".log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    sys.stderr.write("--- %s (tail)\n%s" % (path, "".join(f.readlines()[-5:])))
        rc = 1
    finally:
        # Leave nothing running: stop this run's VMs (the wrapper removes the domains too).
        subprocess.run(["busctl", "--address=" + t.h.address, "--timeout=60", "call", harness.BUS, ROOT,
                        harness.IFACE["Manager"], "StopVM", "sb", "netvm", "true"], capture_output=True)
        t.h.__exit__(None, None, None)
    return rc


if __name__ == "__main__":
    sys.exit(main())
