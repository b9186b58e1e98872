#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The federation through vmfedd's D-Bus API, fast: a private dbus-daemon and
the real vmfedd on libvirt's test:///default (fake passthrough, so two
personas can claim the same PCI device).  Every method, its error paths,
PropertiesChanged, Progress signals, vmfedctl's verbs, generations and
rollback of vms.d/ and policy.d/.

Usage: test_federation.py VMFEDD VMFEDCTL SWITCH_CLIENT
"""
import json
import os
import subprocess
import sys
import unittest

import harness
from harness import Harness, Monitor, ROOT, state_changed

VMFEDD = VMFEDCTL = SWITCH_CLIENT = None
E = "org.vmfed.Federation1.Error."
DEV = "0000:01:00.0"

VMS = {
    "netvm": "[VM]\nRole=service\nKernel=@KERNEL@\nDefaultNetVM=true\nAutostart=true\n",
    "rivendale": "[VM]\nRole=persona\nTags=dev\nKernel=@KERNEL@\n[Passthrough]\nDevices=%s\n" % DEV,
    "gondor": "[VM]\nRole=persona\nTags=games\nKernel=@KERNEL@\n[Passthrough]\nDevices=%s\n" % DEV,
    "mordor": "[VM]\nRole=persona\nKernel=@KERNEL@\n",
    "usbvm": "[VM]\nRole=service\nKernel=@KERNEL@\nNetVM=\n[Passthrough]\nDevices=%s\n" % DEV,
}
POLICY = {"30-user.policy": "vmfed.OpenURL * @anyvm @default deny\n"}


def vm_path(name):
    return ROOT + "/vm/" + name


def read_dir(d):
    out = {}
    for n in sorted(os.listdir(d)):
        with open(os.path.join(d, n)) as f:
            out[n] = f.read()
    return out


class Federation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.h = Harness(VMFEDD, vms=VMS, policy=POLICY, debug=True,
                        env={"VMFED_TEST_FAKE_PASSTHROUGH": "1"})
        cls.h.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.h.__exit__(None, None, None)

    def setUp(self):
        h = self.h
        # Autostart ran at start: the netvm runs.  Each test starts with no persona and no usbvm.
        harness.Harness._wait(lambda: self.state("netvm") == "running", "netvm autostarted")
        for vm in ["rivendale", "gondor", "mordor", "usbvm"]:
            if self.state(vm) not in ("stopped", "unknown"):
                h.call("Manager", "StopVM", "sb", vm, "true")

    def tearDown(self):
        if hasattr(self, "_outcome") and any(e for _, e in getattr(self._outcome, "errors", []) if e):
            self.h.dump_log()

    def state(self, vm):
        return self.h.get_property("VM", "State", path=vm_path(vm))

    def states(self):
        (vms,) = self.h.call("Manager", "ListVMs")
        return {v[0]: v[2] for v in vms}

    def assert_one_persona(self):
        s = self.states()
        running = [v for v in ("rivendale", "gondor", "mordor") if s.get(v) in ("starting", "running", "paused")]
        self.assertLessEqual(len(running), 1, s)
        holders = [v for v in ("rivendale", "gondor", "usbvm") if s.get(v) in ("starting", "running", "paused")]
        self.assertLessEqual(len(holders), 1, s)

    def ctl(self, *args, check=True):
        r = subprocess.run([VMFEDCTL] + [args[0], "--address", self.h.address] + list(args[1:]),
                           capture_output=True, text=True)
        if check and r.returncode != 0:
            self.fail(f"vmfedctl {' '.join(args)}: {r.returncode} {r.stderr}")
        return r

    # ---- start/stop ---------------------------------------------------------
    def test_autostart(self):
        self.assertEqual(self.state("netvm"), "running")
        self.assertIn("autostart", self.h.log())

    def test_start_stop_emit_properties_changed(self):
        h = self.h
        with Monitor(h) as mon:
            h.call("Manager", "StartVM", "s", "rivendale")
            self.assertEqual(self.state("rivendale"), "running")
            self.assertIsNotNone(mon.wait(state_changed(vm_path("rivendale"), "running"), 5))
            self.assertEqual(h.get_property("Manager", "ActivePersona"), "rivendale")
            self.assertIsNotNone(mon.wait(lambda m: m["member"] == "PropertiesChanged" and m["path"] == ROOT and
                                          m["payload"]["data"][1]["ActivePersona"]["data"] == "rivendale", 5))
            # Start again: nothing to do.
            h.call("Manager", "StartVM", "s", "rivendale")
            h.call("Manager", "StopVM", "sb", "rivendale", "false")
            self.assertEqual(self.state("rivendale"), "stopped")
            self.assertIsNotNone(mon.wait(state_changed(vm_path("rivendale"), "stopped"), 5))
            self.assertEqual(h.get_property("Manager", "ActivePersona"), "")
            # Stop again: nothing to do.
            h.call("Manager", "StopVM", "sb", "rivendale", "false")

    def test_vm_object_methods(self):
        h = self.h
        h.call("VM", "Start", path=vm_path("mordor"))
        self.assertEqual(self.state("mordor"), "running")
        h.call("VM", "Stop", "b", "true", path=vm_path("mordor"))
        self.assertEqual(self.state("mordor"), "stopped")

    def test_progress_signals_and_operation_id(self):
        h = self.h
        with Monitor(h) as mon:
            h.call("Manager", "StartVM", "s", "rivendale")
            m = mon.wait(lambda m: m["member"] == "Progress", 5)
            self.assertIsNotNone(m)
            op, line = m["payload"]["data"]
            # "SENDER/COOKIE": the caller's unique name and its call's serial.
            self.assertRegex(op, r"^:\d+\.\d+/\d+$")
            lines = [x["payload"]["data"][1] for x in mon.messages if x.get("member") == "Progress" and
                     x["payload"]["data"][0] == op]
            self.assertTrue(any("rivendale" in x for x in lines), lines)

    def test_not_found(self):
        for method, args in [("StartVM", ["isengard"]), ("SwitchPersona", ["isengard"])]:
            name, msg = self.h.call_error("Manager", method, *args)
            self.assertEqual(name, E + "NotFound", msg)
            self.assertIn("isengard", msg)
        name, msg = self.h.call_error_typed("Manager", "StopVM", "string:isengard", "boolean:false")
        self.assertEqual(name, E + "NotFound", msg)
        name, _ = self.h.call_error("Manager", "StartVM", "x" * 5000)
        self.assertEqual(name, E + "NotFound")
        # No object, no methods.
        name, msg = self.h.call_error("VM", "Start", path=vm_path("isengard"))
        self.assertEqual(name, "org.freedesktop.DBus.Error.UnknownObject", msg)

    def test_unauthorized(self):
        h = self.h
        for method, args in [("StartVM", ["rivendale"]), ("SwitchPersona", ["gondor"])]:
            name, msg = h.call_error("Manager", method, *args, user="nobody")
            self.assertEqual(name, E + "AccessDenied", msg)
        name, msg = h.call_error_typed("Manager", "StopVM", "string:netvm", "boolean:true", user="nobody")
        self.assertEqual(name, E + "AccessDenied", msg)
        name, msg = h.call_error("VM", "Start", path=vm_path("mordor"), user="nobody")
        self.assertEqual(name, E + "AccessDenied", msg)
        self.assertEqual(self.state("mordor"), "stopped")
        self.assertEqual(self.state("netvm"), "running")
        # Reading stays open.
        self.assertEqual(h.get_property("VM", "State", path=vm_path("netvm"), user="nobody"), "running")
        self.assertGreaterEqual(len(h.call("Manager", "ListGenerations", user="nobody")[0]), 1)

    # ---- exclusivity -------------------------------------------------------------
    def test_shared_device_is_exclusive(self):
        h = self.h
        h.call("Manager", "StartVM", "s", "usbvm")
        # Whoever asks: a persona that claims usbvm's device is refused while usbvm runs.
        name, msg = h.call_error("Manager", "StartVM", "rivendale")
        self.assertEqual(name, E + "Busy", msg)
        self.assertIn(DEV, msg)
        name, msg = h.call_error("Manager", "SwitchPersona", "gondor")
        self.assertEqual(name, E + "Busy", msg)
        self.assert_one_persona()
        h.call("Manager", "StopVM", "sb", "usbvm", "false")
        h.call("Manager", "StartVM", "s", "rivendale")
        name, msg = h.call_error("Manager", "StartVM", "usbvm")
        self.assertEqual(name, E + "Busy", msg)
        # A second persona is refused too (switch instead).
        name, msg = h.call_error("Manager", "StartVM", "mordor")
        self.assertEqual(name, E + "Busy", msg)
        self.assert_one_persona()

    def test_service_vm_in_use_needs_force(self):
        h = self.h
        h.call("Manager", "StartVM", "s", "mordor")  # uses the default netvm
        name, msg = h.call_error_typed("Manager", "StopVM", "string:netvm", "boolean:false")
        self.assertEqual(name, E + "Busy", msg)
        self.assertIn("mordor", msg)
        self.assertEqual(self.state("netvm"), "running")

    # ---- switching -----------------------------------------------------------------
    def test_switch_keeps_services_and_one_persona(self):
        h = self.h
        with Monitor(h) as mon:
            for target in ["rivendale", "gondor", "rivendale", "mordor"]:
                h.call("Manager", "SwitchPersona", "s", target)
                self.assertEqual(h.get_property("Manager", "ActivePersona"), target)
                self.assertEqual(self.state(target), "running")
                self.assertEqual(self.state("netvm"), "running")
                self.assert_one_persona()
            # The netvm never changed state during the switches.
            self.assertIsNone(mon.wait(lambda m: m["member"] == "PropertiesChanged" and
                                       m["path"] == vm_path("netvm"), 0.2))
        # Switching to the active persona is done at once.
        h.call("Manager", "SwitchPersona", "s", "mordor")
        name, msg = h.call_error("Manager", "SwitchPersona", "netvm")
        self.assertEqual(name, E + "InvalidArgs", msg)

    def test_second_switch_is_busy(self):
        h = self.h
        h.call("Manager", "SwitchPersona", "s", "rivendale")
        r = subprocess.run([SWITCH_CLIENT, h.address, "pair", "gondor", "mordor"], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        first, second = r.stdout.split()
        self.assertEqual(first, "ok")
        self.assertEqual(second, E + "Busy")
        self.assertEqual(h.get_property("Manager", "ActivePersona"), "gondor")
        self.assert_one_persona()

    def test_vmfedctl_verbs(self):
        r = self.ctl("switch", "gondor")
        self.assertTrue(r.stdout.endswith("done: switched to gondor\n"), r.stdout)
        # Progress lines of our own operation came before the result.
        self.assertIn("starting gondor", r.stdout)
        r = self.ctl("stop", "--force", "gondor")
        self.assertIn("done: stopped gondor", r.stdout)
        r = self.ctl("start", "--json", "rivendale")
        self.assertEqual(json.loads(r.stdout), {"vm": "rivendale", "result": "done"})
        self.assertIn("rivendale", r.stderr)
        r = self.ctl("start", "isengard", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("NotFound", r.stderr)
        r = self.ctl("start", "mordor", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Busy", r.stderr)

    # ---- vms.d/ -----------------------------------------------------------------------
    def test_add_and_remove_vm(self):
        h = self.h
        text = "[VM]\nRole=app\nTags=office\nKernel=%s\n" % h.kernel
        with Monitor(h) as mon:
            h.call("Manager", "AddVM", "ss", "office", text)
            self.assertIsNotNone(mon.wait(lambda m: m["member"] == "InterfacesAdded" and
                                          m["payload"]["data"][0] == vm_path("office"), 5))
            with open(os.path.join(h.config_dir, "vms.d", "office.vm")) as f:
                self.assertEqual(f.read(), text)
            self.assertEqual(h.get_property("VM", "Tags", path=vm_path("office")), ["office"])
            self.assertEqual(self.state("office"), "stopped")
            # Same content again: nothing to do (also for nobody: no-op before authorization).
            h.call("Manager", "AddVM", "ss", "office", text, user="nobody")
            # Running VMs cannot be removed.
            h.call("Manager", "StartVM", "s", "office")
            name, msg = h.call_error("Manager", "RemoveVM", "office")
            self.assertEqual(name, E + "Busy", msg)
            h.call("Manager", "StopVM", "sb", "office", "true")
            name, msg = h.call_error("Manager", "RemoveVM", "office", user="nobody")
            self.assertEqual(name, E + "AccessDenied", msg)
            h.call("Manager", "RemoveVM", "s", "office")
            self.assertIsNotNone(mon.wait(lambda m: m["member"] == "InterfacesRemoved" and
                                          m["payload"]["data"][0] == vm_path("office"), 5))
        self.assertFalse(os.path.exists(os.path.join(h.config_dir, "vms.d", "office.vm")))
        self.assertNotIn("office", self.states())

    def test_add_vm_errors(self):
        h = self.h
        name, msg = h.call_error("Manager", "AddVM", "bad", "[VM]\nRole=app\nMemory=lots\nKernel=%s\n" % h.kernel)
        self.assertEqual(name, E + "InvalidArgs", msg)
        self.assertIn("vms.d/bad.vm:3", msg)
        self.assertIn("Memory", msg)
        name, msg = h.call_error("Manager", "AddVM", "bad", "[VM]\nRole=app\nKernel=%s\nNetVM=gondor\n" % h.kernel)
        self.assertEqual(name, E + "InvalidArgs", msg)
        self.assertIn("NetVM", msg)
        name, msg = h.call_error("Manager", "AddVM", "../evil", "[VM]\nRole=app\n")
        self.assertEqual(name, E + "InvalidArgs", msg)
        name, msg = h.call_error("Manager", "AddVM", "ok", "[VM]\nRole=app\nKernel=%s\n" % h.kernel, user="nobody")
        self.assertEqual(name, E + "AccessDenied", msg)
        self.assertFalse(os.path.exists(os.path.join(h.config_dir, "vms.d", "bad.vm")))
        self.assertFalse(os.path.exists(os.path.join(h.config_dir, "vms.d", "ok.vm")))
        # A running VM cannot go; a service VM cannot go while another VM's NetVM= names it.
        name, msg = h.call_error("Manager", "RemoveVM", "netvm")
        self.assertEqual(name, E + "Busy", msg)
        h.call("Manager", "AddVM", "ss", "client", "[VM]\nRole=app\nKernel=%s\nNetVM=usbvm\n" % h.kernel)
        try:
            name, msg = h.call_error("Manager", "RemoveVM", "usbvm")
            self.assertEqual(name, E + "InvalidArgs", msg)
            self.assertIn("usbvm", msg)
            self.assertTrue(os.path.exists(os.path.join(h.config_dir, "vms.d", "usbvm.vm")))
        finally:
            h.call("Manager", "RemoveVM", "s", "client")
        name, msg = h.call_error("Manager", "RemoveVM", "isengard")
        self.assertEqual(name, E + "NotFound", msg)

    # ---- generations -------------------------------------------------------------------
    def test_generations_and_rollback(self):
        h = self.h
        (gens,) = h.call("Manager", "ListGenerations")
        self.assertGreaterEqual(len(gens), 1)
        self.assertEqual([g for g in gens if g[3]], [gens[-1]])  # the latest is current
        base = gens[-1][0]
        vms_before = sorted(os.listdir(os.path.join(h.config_dir, "vms.d")))
        policy_before = read_dir(h.policy_dir)

        h.call("Manager", "AddVM", "ss", "scratch", "[VM]\nRole=app\nKernel=%s\n" % h.kernel)
        h.call("Policy", "ReplaceFile", "sss", "50-new.policy", "vmfed.OpenURL * scratch @default allow target=netvm\n",
               "")
        (gens,) = h.call("Manager", "ListGenerations")
        descs = [g[2] for g in gens if g[0] > base]
        self.assertEqual(len(descs), 2, gens)
        self.assertIn("scratch", descs[0])
        self.assertIn("50-new.policy", descs[1])
        self.assertTrue(gens[-1][3])
        self.assertGreater(gens[-1][1], 1_600_000_000 * 10**6)  # usec since the epoch

        # Errors first: unknown generation, nobody.
        name, msg = h.call_error_typed("Manager", "Rollback", "uint32:999")
        self.assertEqual(name, E + "NotFound", msg)
        name, msg = h.call_error_typed("Manager", "Rollback", "uint32:%d" % base, user="nobody")
        self.assertEqual(name, E + "AccessDenied", msg)
        self.assertTrue(os.path.exists(os.path.join(h.config_dir, "vms.d", "scratch.vm")))

        rev = h.get_property("Policy", "Revision")
        with Monitor(h) as mon:
            r = self.ctl("rollback", str(base))
            self.assertIn("Rolled back to generation %d" % base, r.stdout)
            self.assertIsNotNone(mon.wait(lambda m: m["member"] == "InterfacesRemoved" and
                                          m["payload"]["data"][0] == vm_path("scratch"), 5))
        self.assertEqual(sorted(os.listdir(os.path.join(h.config_dir, "vms.d"))), vms_before)
        self.assertEqual(read_dir(h.policy_dir), policy_before)
        self.assertNotIn("scratch", self.states())
        self.assertGreater(h.get_property("Policy", "Revision"), rev)
        name, msg = h.call_error("Policy", "GetFile", "50-new.policy")
        self.assertEqual(name, E + "NotFound")
        # The rollback is a generation of its own, and current.
        r = self.ctl("generations", "--json")
        gens = json.loads(r.stdout)
        self.assertIn("rollback", gens[-1]["description"])
        self.assertTrue(gens[-1]["current"])
        # Rolling back to the current generation changes nothing.
        h.call("Manager", "Rollback", "u", str(gens[-1]["generation"]))

    def test_generations_pruned(self):
        # KeepGenerations= of CONFIG/vmfed.conf, read at each record: the oldest beyond it are gone, and a
        # rollback to one of them is NotFound saying so; a number never recorded says that instead.
        h = self.h
        conf = os.path.join(h.config_dir, "vmfed.conf")
        with open(conf, "w") as f:
            f.write("[Generations]\nKeepGenerations=2\n")
        etag = ""
        try:
            for i in range(3):
                (etag,) = h.call("Policy", "ReplaceFile", "sss", "60-prune.policy",
                                 "vmfed.OpenURL * rivendale @default allow target=netvm\n# %d\n" % i, etag)
            (gens,) = h.call("Manager", "ListGenerations")
            self.assertEqual(len(gens), 2, gens)
            self.assertTrue(gens[-1][3])
            nums = sorted(os.listdir(os.path.join(h.state_dir, "generations")))
            self.assertEqual([n for n in nums if n.isdigit()], sorted(str(g[0]) for g in gens))
            pruned = gens[0][0] - 1
            name, msg = h.call_error_typed("Manager", "Rollback", "uint32:%d" % pruned)
            self.assertEqual(name, E + "NotFound", msg)
            self.assertIn("Generation %d was pruned" % pruned, msg)
            self.assertIn("KeepGenerations=", msg)
            name, msg = h.call_error_typed("Manager", "Rollback", "uint32:%d" % (gens[-1][0] + 100))
            self.assertEqual(name, E + "NotFound", msg)
            self.assertIn("There is no generation %d" % (gens[-1][0] + 100), msg)
            self.assertNotIn("pruned", msg)
            # The one kept before the current can still be rolled back to.
            r = self.ctl("rollback", str(gens[0][0]))
            self.assertIn("Rolled back to generation %d" % gens[0][0], r.stdout)
        finally:
            os.unlink(conf)
            h.call("Policy", "RemoveFile", "ss", "60-prune.policy", h.call("Policy", "GetFile", "s",
                                                                              "60-prune.policy")[1])


class Restart(unittest.TestCase):
    def test_resume_interrupted_switch(self):
        # A broker that died mid-switch left its journal; the next one finishes the switch at start.
        with Harness(VMFEDD, vms=VMS, policy=POLICY, env={"VMFED_TEST_FAKE_PASSTHROUGH": "1"}) as h:
            h.stop_daemon()
            journal = os.path.join(h.state_dir, "switch.journal")
            with open(journal, "w") as f:
                f.write("[Switch]\nFrom=rivendale\nTo=gondor\nPhase=stopping\n")
            h.start_daemon()
            harness.Harness._wait(lambda: h.get_property("VM", "State", path=vm_path("gondor")) == "running",
                                  "switch resumed")
            self.assertEqual(h.get_property("Manager", "ActivePersona"), "gondor")
            self.assertEqual(h.get_property("VM", "State", path=vm_path("rivendale")), "stopped")
            harness.Harness._wait(lambda: not os.path.exists(journal), "journal removed")
            # Autostart ran after the resume; the netvm runs too.
            harness.Harness._wait(lambda: h.get_property("VM", "State", path=vm_path("netvm")) == "running",
                                  "netvm autostarted")


if __name__ == "__main__":
    VMFEDD, VMFEDCTL, SWITCH_CLIENT = sys.argv[1:4]
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[4:])
