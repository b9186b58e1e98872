#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""notify= of vmfed.policy(5): a guest's request decided by a rule with
notify=yes (the default) is announced as Policy.RequestNotified for the
desktop side; one decided by a rule with notify=no is not.  Covered: a
paste, routed OpenURL calls allowed and denied, the default deny, and asks
(announced with their outcome when answered, not when asked).  Signals go
out only while a peer is subscribed (Policy.Subscribe()): none before, none
after the subscriber left the bus.

Usage: test_notify.py VMFEDD VMFED_AGENT VMFED_GUEST [VMFEDCTL]
"""
import re
import threading

from svc import ServicesHarness, expect_error, run, vm
import harness  # noqa: E402 (svc puts tests/broker on the path)
import dbuswire  # noqa: E402

VMS = {"alice": vm(), "bob": vm(), "carol": vm()}
POLICY = {"30-notify.policy": (
    "vmfed.Clipboard.Paste  *  alice  bob    allow\n"                           # 1: notify (default)
    "vmfed.Clipboard.Paste  *  alice  carol  allow notify=no\n"                 # 2
    "vmfed.OpenURL          *  alice  bob    allow notify=no\n"                 # 3
    "vmfed.OpenURL          *  alice  carol  deny\n"                            # 4: notify (default)
    "vmfed.OpenURL          *  bob    carol  deny notify=no\n"                  # 5
    "vmfed.OpenURL          *  carol  bob    ask notify=yes\n"                  # 6
    "vmfed.OpenURL          *  carol  alice  ask notify=no\n"                   # 7
    "vmfed.OpenURL          *  alice  alice  allow notify=yes\n"                # 8
)}
FILE = "30-notify.policy"


def in_background(fn):
    result = []
    t = threading.Thread(target=lambda: result.append(fn()))
    t.start()
    return t, result


def notified(mon):
    """(service, argument, source, target, decision, rule) of every RequestNotified so far, and their ids."""
    out, ids = [], []
    for m in mon.messages:
        if m.get("member") == "RequestNotified" and m.get("interface") == harness.IFACE["Policy"]:
            d = m["payload"]["data"]
            ids.append(d[0])
            out.append(tuple(d[1:]))
    return out, ids


def wait_ask(h):
    end_ok = []

    def pending():
        asks = h.call("org.vmfed.Federation1.Ask", "ListAsks")[0]
        end_ok[:] = asks
        return bool(asks)
    h._wait(pending, "a pending question", 10)
    return end_ok[0][0]


def main(vmfedd, agent, guest, vmfedctl=""):
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY) as h, harness.Monitor(h) as mon:
        a, b, c = h.agent("alice"), h.agent("bob"), h.agent("carol")
        marker = 0

        # Nobody subscribed: a notify=yes decision sends nothing.
        a.guest_ok("open-url", "https://example.org/unheard", "alice")
        expect_error(a.guest("open-url", "https://example.org/unheard", "carol"), "AccessDenied")
        # A desktop subscribes and stays on the bus (the subscription lives as long as its connection).
        sub = dbuswire.Connection.bus(h.bus_path)
        m = sub.call(harness.BUS, harness.ROOT, harness.IFACE["Policy"], "Subscribe")
        assert m.error is None, m
        m = sub.call(harness.BUS, harness.ROOT, harness.IFACE["Policy"], "Subscribe")  # twice is once
        assert m.error is None, m

        def mark():
            # A notified request of its own: everything announced before it has arrived by then.
            nonlocal marker
            marker += 1
            url = "https://example.org/marker%d" % marker
            a.guest_ok("open-url", url, "alice")
            h._wait(lambda: sum(n[2:4] == ("alice", "alice") for n in notified(mon)[0]) == marker,
                    "marker %d announced" % marker, 10)
            return ("vmfed.OpenURL", "", "alice", "alice", "allow", FILE + ":8")

        want = []
        # A paste, rule 1 (notify by default): announced as allowed, before the data is delivered.
        a.guest_ok("copy", input=b"one")
        assert b.guest_ok("paste") == b"one"
        want.append(("vmfed.Clipboard.Paste", "", "alice", "bob", "allow", FILE + ":1"))
        # A paste, rule 2 (notify=no): delivered, not announced.
        a.guest_ok("copy", input=b"two")
        assert c.guest_ok("paste") == b"two"
        # Routed, allowed with notify=no (rule 3): silent.
        assert a.guest_ok("open-url", "https://example.org/quiet", "bob").strip() == b"bob"
        want.append(mark())
        # Routed, denied (rule 4, default notify): announced as denied.
        expect_error(a.guest("open-url", "https://example.org/no", "carol"), "AccessDenied")
        want.append(("vmfed.OpenURL", "", "alice", "carol", "deny", FILE + ":4"))
        # Denied with notify=no (rule 5): silent.
        expect_error(b.guest("open-url", "https://example.org/no", "carol"), "AccessDenied")
        # No rule matches: the default deny notifies.
        expect_error(b.guest("open-url", "https://example.org/nothing", "alice"), "AccessDenied")
        want.append(("vmfed.OpenURL", "", "bob", "alice", "deny", "no rule matches (default deny)"))
        want.append(mark())

        # An ask with notify=yes (rule 6): nothing when asked, the outcome when answered.
        t, res = in_background(lambda: c.guest("open-url", "https://example.org/asked", "bob"))
        qid = wait_ask(h)
        assert not any(n[2] == "carol" for n in notified(mon)[0]), notified(mon)
        h.call("org.vmfed.Federation1.Ask", "AnswerAsk", "ts", qid, "bob")
        t.join()
        assert res[0][0] == 0 and res[0][1].strip() == b"bob", res
        want.append(("vmfed.OpenURL", "", "carol", "bob", "allow", "uid=0"))  # who answered
        # An ask with notify=no (rule 7), denied: silent.
        t, res = in_background(lambda: c.guest("open-url", "https://example.org/asked", "alice"))
        qid = wait_ask(h)
        h.call("org.vmfed.Federation1.Ask", "DenyAsk", "t", qid)
        t.join()
        expect_error(res[0], "AccessDenied")
        want.append(mark())

        got, ids = notified(mon)
        assert got == want, "\n got %s\nwant %s" % (got, want)

        # Unsubscribed: silent again.  A second subscriber that just leaves the bus ends its subscription too.
        m = sub.call(harness.BUS, harness.ROOT, harness.IFACE["Policy"], "Unsubscribe")
        assert m.error is None, m
        sub.close()
        expect_error(a.guest("open-url", "https://example.org/unheard-again", "carol"), "AccessDenied")
        sub2 = dbuswire.Connection.bus(h.bus_path)
        assert sub2.call(harness.BUS, harness.ROOT, harness.IFACE["Policy"], "Subscribe").error is None
        want.append(mark())
        sub2.close()
        # A round trip over the bus: dbus-daemon tells the broker sub2 left (NameOwnerChanged) before this.
        h.call("Policy", "ListFiles")
        expect_error(a.guest("open-url", "https://example.org/unheard-again", "carol"), "AccessDenied")
        a.guest_ok("open-url", "https://example.org/unheard-again", "alice")
        assert notified(mon)[0] == want, notified(mon)[0]
        # The id is the audit line's: a desktop can find the request in the journal.
        log = h.log()
        paste_id = ids[0]
        assert re.search(r"VMFED_REQUEST_ID=%d VMFED_SOURCE=alice VMFED_CALLER=channel VMFED_TARGET=bob "
                         r"VMFED_SERVICE=vmfed.Clipboard.Paste" % paste_id, log), log
    return 0


if __name__ == "__main__":
    run(main)
