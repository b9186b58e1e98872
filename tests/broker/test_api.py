#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmfedd's D-Bus admin API end to end: a private dbus-daemon, the real
vmfedd on test:///default, driven with busctl, dbus-send and vmfedctl.

Usage: test_api.py VMFEDD [VMFEDCTL]
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import harness
from harness import Harness, CallError, ROOT

VMFEDD = None
VMFEDCTL = None

E = "org.vmfed.Federation1.Error."


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


class Api(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.h = Harness(VMFEDD)
        cls.h.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.h.__exit__(None, None, None)

    def setUp(self):
        # Each test starts from the default policy.
        h = self.h
        for name in os.listdir(h.policy_dir):
            os.unlink(os.path.join(h.policy_dir, name))
        for name, text in harness.DEFAULT_POLICY.items():
            with open(os.path.join(h.policy_dir, name), "w") as f:
                f.write(text)
        h.call("Manager", "Reload")

    def tearDown(self):
        if hasattr(self, "_outcome") and any(e for _, e in getattr(self._outcome, "errors", []) if e):
            self.h.dump_log()

    def revision(self):
        return self.h.get_property("Policy", "Revision")

    def files_on_disk(self):
        out = {}
        for name in sorted(os.listdir(self.h.policy_dir)):
            with open(os.path.join(self.h.policy_dir, name)) as f:
                out[name] = f.read()
        return out

    # ---- Manager ---------------------------------------------------------
    def test_list_vms(self):
        (vms,) = self.h.call("Manager", "ListVMs")
        self.assertEqual([v[0] for v in vms], ["gondor", "netvm", "rivendale", "test"])
        by_name = {v[0]: v for v in vms}
        self.assertEqual(by_name["rivendale"][1], "persona")
        self.assertEqual(by_name["netvm"][1], "service")
        # State comes from the federation: nothing runs.  (test:///default's own running domain
        # "test" is not ours: vmfed's domains are named vmfed-NAME.)
        self.assertEqual(by_name["test"][2], "stopped")
        self.assertEqual(by_name["gondor"][2], "stopped")
        self.assertEqual(by_name["test"][3], ROOT + "/vm/test")

    def test_get_vm(self):
        self.assertEqual(self.h.call("Manager", "GetVM", "s", "rivendale"), [ROOT + "/vm/rivendale"])
        name, msg = self.h.call_error("Manager", "GetVM", "mordor")
        self.assertEqual(name, E + "NotFound")
        self.assertIn("mordor", msg)
        name, _ = self.h.call_error("Manager", "GetVM", "x" * 5000)
        self.assertEqual(name, E + "NotFound")

    def test_manager_properties(self):
        self.assertRegex(self.h.get_property("Manager", "Version"), r"^\d+\.\d+")
        self.assertEqual(self.h.get_property("Manager", "ActivePersona"), "")

    def test_vm_objects(self):
        p = ROOT + "/vm/rivendale"
        self.assertEqual(self.h.get_property("VM", "Name", path=p), "rivendale")
        self.assertEqual(self.h.get_property("VM", "Role", path=p), "persona")
        self.assertEqual(self.h.get_property("VM", "Tags", path=p), ["dev", "work"])
        self.assertEqual(self.h.get_property("VM", "State", path=ROOT + "/vm/test"), "stopped")
        tree = self.h.busctl("tree", harness.BUS).stdout
        for vm in ["gondor", "netvm", "rivendale", "test"]:
            self.assertIn(ROOT + "/vm/" + vm, tree)
        (objs,) = self.h.call("org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
        self.assertEqual(sorted(objs), sorted(ROOT + "/vm/" + v for v in ["gondor", "netvm", "rivendale", "test"]))
        self.assertIn("org.vmfed.Federation1.VM", objs[ROOT + "/vm/test"])
        # No object for an unknown VM.
        r = self.h.busctl("get-property", harness.BUS, ROOT + "/vm/mordor", harness.IFACE["VM"], "Name",
                          check=False)
        self.assertNotEqual(r.returncode, 0)

    def test_vm_name_escaping(self):
        # Names with '-' need escaping in object paths.
        with open(os.path.join(self.h.config_dir, "vms.d", "work-vm.vm"), "w") as f:
            f.write("[VM]\nRole=app\nKernel=%s\n" % self.h.kernel)
        try:
            self.h.call("Manager", "Reload")
            (path,) = self.h.call("Manager", "GetVM", "s", "work-vm")
            self.assertEqual(path, ROOT + "/vm/work_2dvm")
            self.assertEqual(self.h.get_property("VM", "Name", path=path), "work-vm")
        finally:
            os.unlink(os.path.join(self.h.config_dir, "vms.d", "work-vm.vm"))
            self.h.call("Manager", "Reload")

    def test_vm_without_its_boot_file_has_no_object(self):
        # One model of vms.d/, the federation's: a VM it could not start gets no object either.
        path = os.path.join(self.h.config_dir, "vms.d", "ghost.vm")
        with open(path, "w") as f:
            f.write("[VM]\nRole=app\nKernel=%s\n" % os.path.join(self.h.tmp, "no-such-kernel"))
        try:
            name, msg = self.h.call_error("Manager", "Reload")
            self.assertEqual(name, E + "Failed")
            self.assertIn("vms.d/ghost.vm:3: key Kernel", msg)
            self.assertEqual(msg.count("vms.d/ghost.vm:3: key Kernel"), 1)  # reported once, not per loader
            name, _ = self.h.call_error("Manager", "GetVM", "ghost")
            self.assertEqual(name, E + "NotFound")
            # The whole reload is refused: the previous VMs stay.
            self.assertEqual(self.h.call("Manager", "GetVM", "s", "rivendale"), [ROOT + "/vm/rivendale"])
            with open(os.path.join(self.h.tmp, "no-such-kernel"), "w") as f:
                f.write("now it exists\n")
            self.assertIsNone(self.h.call_error("Manager", "Reload")[0])
            self.assertEqual(self.h.call("Manager", "GetVM", "s", "ghost"), [ROOT + "/vm/ghost"])
        finally:
            os.unlink(path)
            self.h.call("Manager", "Reload")

    def test_reload_authorization(self):
        name, msg = self.h.call_error("Manager", "Reload", user="nobody")
        self.assertEqual(name, E + "AccessDenied")
        self.assertIn("org.vmfed.manage", msg)
        self.assertIn("uid=65534", msg)
        self.assertIn("VMFED_DECISION=deny", self.h.log())
        self.assertIsNone(self.h.call_error("Manager", "Reload")[0])

    def test_reload_broken_policy_fails_closed(self):
        with open(os.path.join(self.h.policy_dir, "50-broken.policy"), "w") as f:
            f.write("vmfed.OpenURL * rivendale @default alow\n")
        name, msg = self.h.call_error("Manager", "Reload")
        self.assertEqual(name, E + "Failed")
        self.assertIn("50-broken.policy:1", msg)
        self.assertFalse(self.h.get_property("Policy", "Valid"))
        diags = self.h.get_property("Policy", "Diagnostics")
        self.assertTrue(any("50-broken.policy:1" in d for d in diags), diags)
        action = self.h.call("Policy", "Evaluate", "sss", "rivendale", "@default", "vmfed.OpenURL")[0]
        self.assertEqual(action, "deny")
        os.unlink(os.path.join(self.h.policy_dir, "50-broken.policy"))
        self.h.call("Manager", "Reload")
        self.assertTrue(self.h.get_property("Policy", "Valid"))

    def test_sighup_reloads(self):
        path = os.path.join(self.h.config_dir, "vms.d", "mordor.vm")
        with open(path, "w") as f:
            f.write("[VM]\nRole=persona\nTags=games\nKernel=%s\n" % self.h.kernel)
        try:
            rev = self.revision()
            self.h.daemon.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.revision() == rev:
                time.sleep(0.05)
            self.assertEqual(self.h.call("Manager", "GetVM", "s", "mordor"), [ROOT + "/vm/mordor"])
            self.assertTrue(os.path.exists(os.path.join(self.h.state_dir, "channels", "mordor.sock")))
        finally:
            os.unlink(path)
            self.h.call("Manager", "Reload")
        self.assertFalse(os.path.exists(os.path.join(self.h.state_dir, "channels", "mordor.sock")))

    # ---- Policy: reading -------------------------------------------------
    def test_evaluate(self):
        ev = lambda *a: self.h.call("Policy", "Evaluate", "sss", *a)
        self.assertEqual(ev("rivendale", "gondor", "vmfed.Clipboard.Paste"),
                         ["ask", "gondor", "gondor", "30-user.policy:1"])
        self.assertEqual(ev("gondor", "rivendale", "vmfed.Clipboard.Paste"),
                         ["deny", "", "", "30-user.policy:2"])
        self.assertEqual(ev("rivendale", "@default", "vmfed.OpenURL"),
                         ["allow", "netvm", "", "30-user.policy:3"])
        # No rule: the default deny, no rule named.
        self.assertEqual(ev("gondor", "@default", "vmfed.Launch+org.mozilla.firefox")[0], "deny")
        self.assertEqual(ev("gondor", "@default", "vmfed.Launch+org.mozilla.firefox")[3], "")
        # Everyone may evaluate.
        self.assertEqual(self.h.call("Policy", "Evaluate", "sss", "rivendale", "@default", "vmfed.OpenURL",
                                     user="nobody")[0], "allow")
        name, _ = self.h.call_error("Policy", "Evaluate", "rivendale", "gondor", "x" * 300)
        self.assertEqual(name, E + "InvalidArgs")

    def test_list_and_get_files(self):
        (files,) = self.h.call("Policy", "ListFiles", user="nobody")
        text = harness.DEFAULT_POLICY["30-user.policy"]
        self.assertEqual(files, [["30-user.policy", sha(text)]])
        self.assertEqual(self.h.call("Policy", "GetFile", "s", "30-user.policy", user="nobody"), [text, sha(text)])
        name, msg = self.h.call_error("Policy", "GetFile", "40-none.policy")
        self.assertEqual(name, E + "NotFound")
        for bad in ["../etc/passwd", "a/b.policy", ".hidden.policy", "UPPER.policy", "x..y.policy",
                    "nosuffix", ".policy", ""]:
            name, msg = self.h.call_error("Policy", "GetFile", bad)
            self.assertEqual(name, E + "InvalidArgs", bad)
        # Files with other names are not listed.
        open(os.path.join(self.h.policy_dir, "README"), "w").close()
        (files,) = self.h.call("Policy", "ListFiles")
        self.assertEqual([f[0] for f in files], ["30-user.policy"])

    # ---- Policy: editing -------------------------------------------------
    def test_replace_create_and_update(self):
        rev = self.revision()
        text = ("vmfed.Launch +org.mozilla.firefox gondor @default allow target=rivendale\n"
                "vmfed.Launch +org.mozilla.firefox gondor rivendale allow\n")
        (etag,) = self.h.call("Policy", "ReplaceFile", "sss", "40-launch.policy", text, "")
        self.assertEqual(etag, sha(text))
        self.assertEqual(self.files_on_disk()["40-launch.policy"], text)
        self.assertEqual(self.revision(), rev + 1)
        self.assertEqual(self.h.call("Policy", "Evaluate", "sss", "gondor", "@default",
                                     "vmfed.Launch+org.mozilla.firefox")[:2], ["allow", "rivendale"])
        text2 = text.replace("allow target=rivendale", "deny")
        (etag2,) = self.h.call("Policy", "ReplaceFile", "sss", "40-launch.policy", text2, etag)
        self.assertEqual(etag2, sha(text2))
        self.assertEqual(self.revision(), rev + 2)
        # No temp files left behind.
        self.assertEqual(sorted(os.listdir(self.h.policy_dir)), ["30-user.policy", "40-launch.policy"])
        # Same content again: a no-op, Revision unchanged.
        self.assertEqual(self.h.call("Policy", "ReplaceFile", "sss", "40-launch.policy", text2, etag2), [etag2])
        self.assertEqual(self.revision(), rev + 2)
        self.assertIn("VMFED_SERVICE=vmfed.Admin.ReplacePolicyFile VMFED_ARG=40-launch.policy", self.h.log())

    def test_replace_conflicts(self):
        text = harness.DEFAULT_POLICY["30-user.policy"]
        rev = self.revision()
        # Stale etag.
        name, msg = self.h.call_error("Policy", "ReplaceFile", "30-user.policy", text + "\n", sha("old"))
        self.assertEqual(name, E + "Conflict")
        self.assertIn(sha(text), msg)
        # "" means create: refused when the file exists.
        name, msg = self.h.call_error("Policy", "ReplaceFile", "30-user.policy", text + "\n", "")
        self.assertEqual(name, E + "Conflict")
        # A non-empty etag for a file that does not exist.
        name, msg = self.h.call_error("Policy", "ReplaceFile", "40-new.policy", text, sha(text))
        self.assertEqual(name, E + "Conflict")
        self.assertEqual(self.files_on_disk(), harness.DEFAULT_POLICY)
        self.assertEqual(self.revision(), rev)

    def test_replace_invalid_leaves_everything(self):
        before = self.files_on_disk()
        rev = self.revision()
        bad = "vmfed.OpenURL * rivendale @default allow\nvmfed.OpenURL * rivendale @default alow\n"
        name, msg = self.h.call_error("Policy", "ReplaceFile", "40-bad.policy", bad, "")
        self.assertEqual(name, E + "InvalidArgs")
        self.assertRegex(msg, r"40-bad\.policy:2:\d+")
        text = harness.DEFAULT_POLICY["30-user.policy"]
        name, msg = self.h.call_error("Policy", "ReplaceFile", "30-user.policy", "@@@ garbage\n", sha(text))
        self.assertEqual(name, E + "InvalidArgs")
        self.assertRegex(msg, r"30-user\.policy:1:\d+")
        self.assertEqual(self.files_on_disk(), before)
        self.assertEqual(self.revision(), rev)
        self.assertTrue(self.h.get_property("Policy", "Valid"))

    def test_replace_bad_names(self):
        for bad in ["../x.policy", "sub/x.policy", ".x.policy", "x.txt", "X.policy"]:
            name, _ = self.h.call_error("Policy", "ReplaceFile", bad, "", "")
            self.assertEqual(name, E + "InvalidArgs", bad)
        self.assertEqual(self.files_on_disk(), harness.DEFAULT_POLICY)

    def test_replace_unauthorized(self):
        rev = self.revision()
        text = harness.DEFAULT_POLICY["30-user.policy"]
        name, msg = self.h.call_error("Policy", "ReplaceFile", "30-user.policy", text + "# more\n", sha(text),
                                      user="nobody")
        self.assertEqual(name, E + "AccessDenied")
        self.assertIn("org.vmfed.manage", msg)
        name, msg = self.h.call_error("Policy", "ReplaceFile", "40-new.policy", "", "", user="nobody")
        self.assertEqual(name, E + "AccessDenied")
        name, msg = self.h.call_error("Policy", "RemoveFile", "30-user.policy", sha(text), user="nobody")
        self.assertEqual(name, E + "AccessDenied")
        self.assertEqual(self.files_on_disk(), harness.DEFAULT_POLICY)
        self.assertEqual(self.revision(), rev)
        log = self.h.log()
        self.assertIn("VMFED_CALLER=uid=65534", log)
        self.assertIn("VMFED_SERVICE=vmfed.Admin.RemovePolicyFile VMFED_ARG=30-user.policy VMFED_DECISION=deny", log)

    def test_remove(self):
        text = "vmfed.OpenFile * @anyvm @dispvm allow\n"
        (etag,) = self.h.call("Policy", "ReplaceFile", "sss", "40-open.policy", text, "")
        rev = self.revision()
        name, _ = self.h.call_error("Policy", "RemoveFile", "40-open.policy", sha("nope"))
        self.assertEqual(name, E + "Conflict")
        name, _ = self.h.call_error("Policy", "RemoveFile", "40-open.policy", "")
        self.assertEqual(name, E + "Conflict")
        name, _ = self.h.call_error("Policy", "RemoveFile", "41-none.policy", etag)
        self.assertEqual(name, E + "NotFound")
        name, _ = self.h.call_error("Policy", "RemoveFile", "../30-user.policy", etag)
        self.assertEqual(name, E + "InvalidArgs")
        self.assertEqual(self.revision(), rev)
        self.assertEqual(self.h.call("Policy", "RemoveFile", "ss", "40-open.policy", etag), [])
        self.assertNotIn("40-open.policy", self.files_on_disk())
        self.assertEqual(self.revision(), rev + 1)

    def test_too_large(self):
        if not VMFEDCTL:
            self.skipTest("vmfedctl not built")
        big = os.path.join(self.h.tmp, "big.policy")
        with open(big, "w") as f:
            f.write(("# " + "x" * 97 + "\n") * 11000)  # 1.1 MB of comments
        r = subprocess.run([VMFEDCTL, "policy", "replace", "--address", self.h.address, "--etag=",
                            "40-big.policy", big], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(E + "TooLarge", r.stderr)
        self.assertNotIn("40-big.policy", self.files_on_disk())

    def test_concurrent_replace_one_wins(self):
        text = harness.DEFAULT_POLICY["30-user.policy"]
        etag = sha(text)
        n = 8
        procs = []
        for i in range(n):
            content = text + f"# writer {i}\n"
            procs.append(subprocess.Popen(
                ["dbus-send", "--bus=" + self.h.address, "--print-reply", "--dest=" + harness.BUS, ROOT,
                 harness.IFACE["Policy"] + ".ReplaceFile", "string:30-user.policy", "string:" + content,
                 "string:" + etag], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = [(p.wait(), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        winners = [i for i, (rc, _) in enumerate(results) if rc == 0]
        self.assertEqual(len(winners), 1, results)
        for i, (rc, err) in enumerate(results):
            if rc != 0:
                self.assertIn(E + "Conflict", err)
        self.assertEqual(self.files_on_disk()["30-user.policy"], text + f"# writer {winners[0]}\n")

    def test_revision_emits_properties_changed(self):
        import select
        mon = subprocess.Popen(["dbus-monitor", "--address", self.h.address,
                                "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out = ""
        try:
            time.sleep(0.5)  # let the monitor register its match
            for i in range(5):
                self.h.call("Policy", "ReplaceFile", "sss", f"40-x{i}.policy",
                            "vmfed.OpenURL * gondor @default deny\n", "")
                rev = self.revision()
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline and f"uint64 {rev}" not in out:
                    ready, _, _ = select.select([mon.stdout], [], [], 0.1)
                    if ready:
                        out += os.read(mon.stdout.fileno(), 65536).decode(errors="replace")
                if f"uint64 {rev}" in out:
                    break
        finally:
            mon.terminate()
            mon.communicate()
        self.assertIn("org.vmfed.Federation1.Policy", out)
        self.assertIn('"Revision"', out)
        self.assertIn(f"uint64 {rev}", out)

    def test_introspection_is_readable_by_nobody(self):
        r = self.h.busctl("introspect", harness.BUS, ROOT, user="nobody")
        self.assertIn("org.vmfed.Federation1.Policy", r.stdout)

    # ---- vmfedctl ----------------------------------------------------------
    def ctl(self, *args, check=True):
        r = subprocess.run([VMFEDCTL] + list(args), capture_output=True, text=True)
        if check:
            self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def test_vmfedctl(self):
        if not VMFEDCTL:
            self.skipTest("vmfedctl not built")
        a = "--address=" + self.h.address
        st = json.loads(self.ctl("status", a, "--json").stdout)
        self.assertEqual(st["vms"], 4)
        self.assertTrue(st["policy_valid"])
        self.assertIn("Policy revision:", self.ctl("status", a).stdout)
        vms = json.loads(self.ctl("vms", a, "--json").stdout)
        self.assertEqual([v["name"] for v in vms], ["gondor", "netvm", "rivendale", "test"])
        table = self.ctl("vms", a).stdout.splitlines()
        self.assertEqual(table[0].split(), ["NAME", "ROLE", "STATE", "OBJECT"])
        self.assertEqual(table[0].index("ROLE"), table[1].index("persona"))  # aligned
        files = json.loads(self.ctl("policy", "files", a, "--json").stdout)
        self.assertEqual(files[0]["name"], "30-user.policy")
        got = json.loads(self.ctl("policy", "get", a, "--json", "30-user.policy").stdout)
        self.assertEqual(got["content"], harness.DEFAULT_POLICY["30-user.policy"])
        ev = json.loads(self.ctl("policy", "evaluate", a, "--json", "rivendale", "@default", "vmfed.OpenURL").stdout)
        self.assertEqual(ev, {"action": "allow", "target": "netvm", "default_target": "", "rule": "30-user.policy:3"})
        src = os.path.join(self.h.tmp, "new.policy")
        with open(src, "w") as f:
            f.write("vmfed.OpenURL * gondor @default deny\n")
        out = json.loads(self.ctl("policy", "replace", a, "--json", "--etag=", "45-ctl.policy", src).stdout)
        self.assertEqual(out["etag"], sha("vmfed.OpenURL * gondor @default deny\n"))
        r = self.ctl("policy", "replace", a, "--etag=", "45-ctl.policy", src, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Conflict", r.stderr)
        r = self.ctl("policy", "replace", a, "--etag=", "46-ctl.policy", src, check=False)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", VMFEDCTL, "policy",
                            "remove", a, "45-ctl.policy"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("AccessDenied", r.stderr)
        self.ctl("policy", "remove", a, "45-ctl.policy")
        self.ctl("policy", "remove", a, "46-ctl.policy")
        self.assertEqual(self.files_on_disk(), harness.DEFAULT_POLICY)


class Lifecycle(unittest.TestCase):
    def test_sigterm_clean_exit_and_restart(self):
        with Harness(VMFEDD) as h:
            sock = os.path.join(h.state_dir, "channels", "rivendale.sock")
            self.assertTrue(os.path.exists(sock))
            self.assertEqual(h.stop_daemon(signal.SIGTERM), 0)
            self.assertFalse(os.path.exists(sock))
            h.start_daemon()
            self.assertEqual(h.call("Manager", "GetVM", "s", "rivendale"), [ROOT + "/vm/rivendale"])
            self.assertEqual(h.stop_daemon(signal.SIGINT), 0)

    def test_second_instance_refused(self):
        with Harness(VMFEDD) as h:
            r = subprocess.run([VMFEDD, "--config-dir", h.config_dir, "--state-dir", h.tmp + "/state2",
                                "--libvirt-uri", "test:///default", "--bus-address", h.address],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 1)
            self.assertIn("already owned", r.stderr)

    def test_manage_group(self):
        # Members of the manage group (vmfed in production; "users", gid 100, here so the
        # test needs no system changes) may change things: as egid or as supplementary gid.
        import grp
        try:
            gid = grp.getgrnam("users").gr_gid
        except KeyError:
            self.skipTest("no group 'users'")
        with Harness(VMFEDD, extra_args=["--manage-group", "users"], debug=True) as h:
            def reload_as(*setpriv):
                r = subprocess.run(["setpriv", "--reuid=65534"] + list(setpriv) + [
                    "dbus-send", "--bus=" + h.address, "--print-reply", "--dest=" + harness.BUS, ROOT,
                    harness.IFACE["Manager"] + ".Reload"], capture_output=True, text=True)
                return r.returncode, r.stderr
            rc, err = reload_as("--regid=65534", "--clear-groups")
            self.assertEqual(rc, 1)
            self.assertIn("AccessDenied", err)
            rc, err = reload_as(f"--regid={gid}", "--clear-groups")
            self.assertEqual(rc, 0, err + h.log())
            rc, err = reload_as("--regid=65534", f"--groups={gid}")
            self.assertEqual(rc, 0, err + h.log())
            self.assertIn("VMFED_RULE=group-vmfed", h.log())

    def test_installed_dbus_policy(self):
        # A system-like bus (deny by default) with broker/data/org.vmfed.Federation1.conf.
        conf = os.path.join(os.environ.get("VMFED_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "../..")),
                            "broker", "data", "org.vmfed.Federation1.conf")
        with Harness(VMFEDD, system_policy=conf) as h:
            # Everyone may read...
            self.assertEqual(len(h.call("Manager", "ListVMs", user="nobody")[0]), 4)
            self.assertEqual(h.call("Policy", "Evaluate", "sss", "rivendale", "@default", "vmfed.OpenURL",
                                    user="nobody")[0], "allow")
            self.assertEqual(h.get_property("VM", "State", path=ROOT + "/vm/test", user="nobody"), "stopped")
            (objs,) = h.call("org.freedesktop.DBus.ObjectManager", "GetManagedObjects", user="nobody")
            self.assertEqual(len(objs), 4)
            self.assertIn("org.vmfed.Federation1.Manager",
                          h.busctl("introspect", harness.BUS, ROOT, user="nobody").stdout)
            # ...and ask to change things, which vmfedd itself refuses.
            name, msg = h.call_error("Manager", "Reload", user="nobody")
            self.assertEqual(name, E + "AccessDenied")
            # Nobody but root may own the name.
            r = subprocess.run(harness.NOBODY + ["dbus-send", "--bus=" + h.address, "--print-reply",
                                                 "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                 "org.freedesktop.DBus.RequestName",
                                                 "string:org.vmfed.Federation1", "uint32:0"],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("AccessDenied", r.stderr)
            # Root may manage.
            self.assertIsNone(h.call_error("Manager", "Reload")[0])

    def test_vm_model_without_libvirt(self):
        # The model of vms.d/ needs no hypervisor: with libvirt unreachable the VMs are there (State
        # unknown), loaded with every check, and a VM without its kernel still gets no object.
        vms = dict(harness.DEFAULT_VMS, ghost="[VM]\nRole=app\nKernel=/nonexistent/vmlinuz\n")
        with Harness(VMFEDD, vms=vms, uri="qemu+unix:///system?socket=/nonexistent/libvirt-sock") as h:
            listed = sorted(n for n, _, _, _ in h.call("Manager", "ListVMs")[0])
            self.assertEqual(listed, [])  # the one load failed (ghost.vm), so no VM at all: fail closed
            name, msg = h.call_error("Manager", "Reload")
            self.assertEqual(name, E + "Failed")
            self.assertIn("vms.d/ghost.vm:3: key Kernel", msg)
            os.unlink(os.path.join(h.config_dir, "vms.d", "ghost.vm"))
            self.assertIsNone(h.call_error("Manager", "Reload")[0])
            listed = {n: st for n, _, st, _ in h.call("Manager", "ListVMs")[0]}
            self.assertEqual(sorted(listed), ["gondor", "netvm", "rivendale", "test"])
            self.assertEqual(set(listed.values()), {"unknown"})

    def test_bad_vm_definitions_keep_serving(self):
        with Harness(VMFEDD, vms={"ok": "[VM]\nRole=app\nKernel=@KERNEL@\n", "bad": "[VM]\nRole=wizard\nKernel=@KERNEL@\n"}) as h:
            # The federation starts empty (fail closed) but the API answers.
            self.assertEqual(h.call("Manager", "ListVMs"), [[]])
            name, msg = h.call_error("Manager", "Reload")
            self.assertEqual(name, E + "Failed")
            self.assertIn("bad.vm", msg)


if __name__ == "__main__":
    VMFEDD = sys.argv[1]
    if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
        VMFEDCTL = sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])
