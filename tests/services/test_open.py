#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""OpenURL, OpenFile and Launch between VMs, with real agents.

Arguments arrive as one argv word each (no shell anywhere), URL schemes and
app ids are checked, target= redirects apply, a denied target gets nothing,
a stopped target is started when the policy allows autostart (and refused
with autostart=no), a URL and a file go to a disposable that is destroyed
afterwards, and an edited file comes back to the caller.

Usage: test_open.py VMFEDD VMFED_AGENT VMFED_GUEST [VMFEDCTL]
"""
import os

from svc import AgentSpawner, ServicesHarness, expect_error, run, vm

VMS = {"alice": vm(), "bob": vm(), "carol": vm(), "dave": vm(), "dvm": vm("disposable-template")}
POLICY = {"30-open.policy": (
    "vmfed.OpenURL   *                    alice   @default  allow target=bob\n"
    "vmfed.OpenURL   *                    alice   bob       allow\n"
    "vmfed.OpenURL   *                    alice   dave      allow\n"
    "vmfed.OpenURL   *                    alice   @dispvm   allow\n"
    "vmfed.OpenURL   *                    alice   carol     deny\n"
    "vmfed.OpenFile  *                    alice   bob       allow\n"
    "vmfed.OpenFile  *                    alice   @dispvm   allow\n"
    "vmfed.Launch    +org.example.Editor  alice   bob       allow\n"
    "vmfed.Launch    +org.example.Other   alice   bob       allow\n"
    "vmfed.Launch    *                    alice   carol     allow autostart=no\n"
    "vmfed.Ping      *                    @anyvm  @anyvm    allow\n"
    "*               *                    @anyvm  @anyvm    deny\n"
)}
CONF = "[Apps]\nbob=org.example.Editor\ncarol=org.example.Editor\n[Agents]\nConnectTimeout=20\n"


def main(vmfedd, agent, guest, vmfedctl=""):
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY, services_conf=CONF) as h:
        a = h.agent("alice")
        b = h.agent("bob", apps=["org.example.Editor", "org.example.Other"], file_mode="edit")

        # A URL with shell metacharacters arrives as one argv word in bob (redirected from @default).
        url = "https://example.org/a?x=1&y=$(id);touch${IFS}/tmp/pwned|`id`"
        assert a.guest_ok("open-url", url).strip() == b"bob"
        b.wait_event(lambda e: e["mode"] == "url", "URL in bob")
        ev = [e for e in b.read_events() if e["mode"] == "url"][-1]
        assert ev["argv"] == [url], ev
        assert not os.path.exists("/tmp/pwned")

        # Schemes other than http/https/ftp, and junk, are refused before the policy.
        for bad in ["javascript:alert(1)", "file:///etc/passwd", "https://a b", "no-scheme"]:
            expect_error(a.guest("open-url", bad, "bob"), "InvalidArgs")
        # A denied target gets nothing.
        expect_error(a.guest("open-url", "https://example.org/", "carol"), "AccessDenied", "carol")
        expect_error(a.guest("open-url", "https://example.org/", "@host"), "InvalidArgs")

        # Launch: declared app, arguments as argv words.
        assert a.guest_ok("launch", "org.example.Editor", "bob", "--", "my file; rm -rf ~",
                          "$HOME").strip() == b"bob"
        b.wait_event(lambda e: e["mode"] == "app", "app in bob")
        ev = [e for e in b.read_events() if e["mode"] == "app"][-1]
        assert ev["argv"] == ["org.example.Editor", "my file; rm -rf ~", "$HOME"], ev
        # Allowed by policy but not declared for bob: NotFound; option injection: InvalidArgs.
        expect_error(a.guest("launch", "org.example.Other", "bob"), "NotFound", "org.example.Other")
        expect_error(a.guest("launch", "org.example.Editor", "bob", "--", "--profile=/x"), "InvalidArgs")
        expect_error(a.guest("launch", "../../bin/sh", "bob"), "InvalidArgs")
        # carol is not running and the rule says autostart=no.
        expect_error(a.guest("launch", "org.example.Editor", "carol"), "Failed", "autostart=no")

        # OpenFile: the viewer in bob edits the file; the change comes back into alice's file.
        path = os.path.join(h.tmp, "report.txt")
        with open(path, "w") as f:
            f.write("draft")
        out = a.guest_ok("open-file", path, "bob")
        assert out.split() == [b"bob", b"changed"], out
        assert open(path).read() == "draft (edited)"
        ev = [e for e in b.read_events() if e["mode"] == "file-edit"][-1]
        assert ev["content"] == "draft" and ev["argv"][0].endswith("/report.txt"), ev

        # Routed ping.
        assert a.guest_ok("ping", "bob").strip() == b"bob"
        expect_error(a.guest("ping", "carol"), "Failed", "not running")

        # Autostart: dave is stopped; the broker starts it, the "guest" boots (the spawner
        # plays QEMU + agent: the channel exists already, so start dave's agent when it runs).
        assert h.get_property("VM", "State", path="/org/vmfed/Federation1/vm/dave") == "stopped"
        # (Agents are started from the main thread: PR_SET_PDEATHSIG follows the creating thread.)
        import threading
        result = []
        t = threading.Thread(target=lambda: result.append(a.guest("open-url", "https://example.org/dave", "dave")))
        t.start()
        h._wait(lambda: h.get_property("VM", "State", path="/org/vmfed/Federation1/vm/dave") == "running",
                "dave running", 20)
        h.agent("dave", wait=False)
        t.join()
        assert result[0][0] == 0 and result[0][1].strip() == b"dave", result
        h.agents["dave"].wait_event(lambda e: e["mode"] == "url", "URL in dave")

        # A URL to a disposable: started, the agent there opens it, the disposable is destroyed after.
        spawner = AgentSpawner(h, skip=["alice", "bob", "carol", "dave", "dvm"])
        try:
            out = a.guest_ok("open-url", "https://example.org/untrusted", "@dispvm").strip().decode()
            assert out.startswith("disp"), out
            d = h.agents[out]
            ev = [e for e in d.read_events() if e["mode"] == "url"]
            assert ev and ev[0]["argv"] == ["https://example.org/untrusted"], ev
            h._wait(lambda: not os.path.exists(h.channel(out)), "disposable's channel closed", 15)
            vms = h.call("Manager", "ListVMs")[0]
            assert out not in [v[0] for v in vms], vms
            assert "Disposable " + out + " released" in h.log()

            # A file edited in a disposable comes back; the disposable goes away.
            for name in spawner.started:
                h.agents[name].file_mode = "edit"
            spawner.agent_kw = {"file_mode": "edit"}
            with open(path, "w") as f:
                f.write("untrusted.pdf")
            out = a.guest_ok("open-file", path, "@dispvm").split()
            assert out[1] == b"changed" and out[0].startswith(b"disp"), out
            assert open(path).read() == "untrusted.pdf (edited)"
            h._wait(lambda: not os.path.exists(h.channel(out[0].decode())), "second disposable gone", 15)
        finally:
            spawner.stop()
    return 0


if __name__ == "__main__":
    run(main)
