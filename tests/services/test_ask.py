#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Asks and management requests from guests.

An ask becomes AskRequested on the admin side; answered (vmfedctl ask
answer / ask --watch at a "terminal"), denied, timed out; an answer that is
not a candidate, or that the policy denies by the time it comes, is refused;
only authorized callers may answer.  Guests ask for management through
Guest1 (vmfed.Admin.*): a management VM may start VMs, a persona switch
goes through an ask, other VMs are refused; a routed call to a persona that
needs a switch asks first and never switches silently.

Usage: test_ask.py VMFEDD VMFED_AGENT VMFED_GUEST VMFEDCTL
"""
import json
import os
import subprocess
import threading
import time

from svc import ServicesHarness, expect_error, run, vm

VMS = {"alice": vm(), "bob": vm(), "carol": vm(), "work": vm("persona"), "games": vm("persona")}
POLICY = {"30-ask.policy": (
    "vmfed.OpenURL              *  alice  @default       ask default_target=bob\n"
    "vmfed.OpenURL              *  alice  bob            ask\n"
    "vmfed.OpenURL              *  alice  @role:persona  allow\n"
    "vmfed.OpenURL              *  alice  carol          deny\n"
    "vmfed.Clipboard.Paste      *  alice  carol          ask\n"
    "vmfed.Admin.SwitchPersona  *  alice  @role:persona  ask\n"
    "vmfed.Admin.StartVM        *  alice  @anyvm         allow\n"
    "vmfed.Admin.StopVM         *  alice  @anyvm         allow\n"
    "vmfed.Admin.ListVMs        *  alice  @host          allow\n"
    "vmfed.Admin.SwitchPersona  *  bob    @role:persona  ask\n"
    "*                          *  @anyvm @anyvm         deny\n"
)}
CONF = "[Ask]\nTimeout=3\n[Agents]\nConnectTimeout=20\n"


class Ctl:
    def __init__(self, h, path):
        self.h, self.path = h, path

    def __call__(self, *args, user=None, check=True):
        cmd = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if user == "nobody" else []) + \
            [self.path, "ask", "--address", self.h.address] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd} failed: {r.stderr}")
        return r

    def pending(self):
        return json.loads(self("list", "--json").stdout)

    def wait_pending(self, pred=lambda q: True, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            qs = [q for q in self.pending() if pred(q)]
            if qs:
                return qs[0]
            time.sleep(0.05)
        raise AssertionError("no question appeared")


def in_background(fn):
    result = []
    t = threading.Thread(target=lambda: result.append(fn()))
    t.start()
    return t, result


def vm_state(h, name):
    return h.get_property("VM", "State", path="/org/vmfed/Federation1/vm/" + name)


def main(vmfedd, agent, guest, vmfedctl):
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY, services_conf=CONF) as h:
        ctl = Ctl(h, vmfedctl)
        a, b, c = h.agent("alice"), h.agent("bob"), h.agent("carol")

        # 1. Answered: candidates are what the policy does not deny; a non-candidate is refused.
        t, res = in_background(lambda: a.guest("open-url", "https://example.org/asked"))
        q = ctl.wait_pending()
        assert q["source"] == "alice" and q["service"] == "vmfed.OpenURL", q
        assert q["default_target"] == "bob" and "bob" in q["candidates"] and "carol" not in q["candidates"], q
        r = ctl("answer", str(q["id"]), "carol", check=False)
        assert r.returncode != 0 and "InvalidArgs" in r.stderr, r.stderr
        r = ctl("answer", str(q["id"]), "bob", user="nobody", check=False)
        assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
        ctl("answer", str(q["id"]), "bob")
        t.join()
        assert res[0][0] == 0 and res[0][1].strip() == b"bob", res
        b.wait_event(lambda e: e["argv"] == ["https://example.org/asked"], "URL in bob")
        assert ctl.pending() == []

        # 2. Denied.
        t, res = in_background(lambda: a.guest("open-url", "https://example.org/no", "bob"))
        q = ctl.wait_pending()
        ctl("deny", str(q["id"]))
        t.join()
        expect_error(res[0], "AccessDenied", "denied")

        # 3. Timed out (Timeout=3): denied, and the question is gone.
        t0 = time.monotonic()
        expect_error(a.guest("open-url", "https://example.org/late", "bob"), "AccessDenied", "in time")
        assert 2.5 < time.monotonic() - t0 < 10
        assert ctl.pending() == []
        assert "VMFED_RULE=ask:timeout" in h.log()

        # One VM cannot crowd out the others' questions: at most 8 pending per source.
        threads = [in_background(lambda i=i: a.guest("open-url", f"https://example.org/many{i}", "bob"))
                   for i in range(8)]
        h._wait(lambda: len(ctl.pending()) == 8, "8 questions", 10)
        expect_error(a.guest("open-url", "https://example.org/one-too-many", "bob"), "Busy")
        for q in ctl.pending():
            ctl("deny", str(q["id"]))
        for t, res in threads:
            t.join()
            expect_error(res[0], "AccessDenied")

        # 4. The answer is re-checked against the policy in force when it comes.
        t, res = in_background(lambda: a.guest("open-url", "https://example.org/changed", "bob"))
        q = ctl.wait_pending()
        h.policy_set("10-first.policy", "vmfed.OpenURL * alice bob deny\n")
        r = ctl("answer", str(q["id"]), "bob", check=False)
        assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
        t.join()
        expect_error(res[0], "AccessDenied")
        os.unlink(os.path.join(h.policy_dir, "10-first.policy"))
        h.call("Manager", "Reload")

        # 5. ask --watch at a "terminal": a paste alice -> carol, answered with an empty line (default).
        a.guest_ok("copy", input=b"watched")
        watch = subprocess.Popen([vmfedctl, "ask", "--address", h.address, "--watch"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert "watching" in watch.stdout.readline()
            t, res = in_background(lambda: c.guest("paste"))
            line = watch.stdout.readline()
            assert "alice asks for vmfed.Clipboard.Paste" in line and "carol" in line, line
            watch.stdin.write("\n")
            watch.stdin.flush()
            t.join()
            assert res[0][0] == 0 and res[0][1] == b"watched", res
            assert "allowed" in watch.stdout.readline()
        finally:
            watch.stdin.close()
            watch.wait(10)

        # 6. Management from a guest: alice may start VMs and list them ...
        assert vm_state(h, "work") == "stopped"
        a.guest_ok("start", "work")
        assert vm_state(h, "work") == "running"
        listing = a.guest_ok("list").decode()
        assert "work running" in listing and "bob " in listing, listing
        # ... bob may not, and may not list.
        expect_error(b.guest("start", "games"), "AccessDenied")
        expect_error(b.guest("list"), "AccessDenied")
        expect_error(a.guest("start", "nosuchvm"), "NotFound")
        # A switch asks even for alice; bob's switch request, when denied at the question, changes nothing.
        t, res = in_background(lambda: b.guest("switch", "games"))
        q = ctl.wait_pending()
        assert q["source"] == "bob" and q["service"] == "vmfed.Admin.SwitchPersona" and q["candidates"] == ["games"]
        ctl("deny", str(q["id"]))
        t.join()
        expect_error(res[0], "AccessDenied")
        assert vm_state(h, "work") == "running" and vm_state(h, "games") == "stopped"
        t, res = in_background(lambda: a.guest("switch", "games"))
        q = ctl.wait_pending()
        ctl("answer", str(q["id"]), "games")
        t.join()
        assert res[0][0] == 0, res
        assert vm_state(h, "games") == "running" and vm_state(h, "work") != "running"
        assert h.get_property("Manager", "ActivePersona") == "games"

        # 7. A URL for persona work while games is active: the switch is asked for, never silent.
        t, res = in_background(lambda: a.guest("open-url", "https://example.org/work", "work"))
        q = ctl.wait_pending()
        assert q["service"] == "vmfed.Admin.SwitchPersona+work" and q["candidates"] == ["work"], q
        assert vm_state(h, "work") != "running" and vm_state(h, "games") == "running"
        ctl("answer", str(q["id"]), "work")
        h._wait(lambda: vm_state(h, "work") == "running", "work running after the switch", 20)
        w = h.agent("work", wait=False)
        t.join()
        assert res[0][0] == 0 and res[0][1].strip() == b"work", res
        w.wait_event(lambda e: e["argv"] == ["https://example.org/work"], "URL in work")
        assert vm_state(h, "games") != "running"

        # Asks are audited with their outcome.
        log = h.log()
        assert "VMFED_DECISION=ask" in log and "VMFED_CALLER=ask" in log
    return 0


if __name__ == "__main__":
    run(main)
