#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Agents that lie, flood, send garbage or vanish, and a broker that restarts.

- a peer on mallory's channel that sends garbage, or floods without reading
  its replies, is cut off while alice and bob keep copying and pasting;
- whatever a peer on alice's channel forges (sender, destination, path,
  arguments naming bob), it is alice: it owns what it copies, it pastes as
  alice, it cannot reach the admin API or call anything but Guest;
- Agent1 is not served on the guest side (a guest app cannot make its own
  agent exec anything);
- the broker restarts: agents reconnect and re-handshake; a request in
  flight fails (never reported as success); a routed call whose target
  agent dies fails too.

Usage: test_robust.py VMFEDD VMFED_AGENT VMFED_GUEST [VMFEDCTL]
"""
import os
import threading
import time

from rawbus import RawPeer
from svc import ServicesHarness, expect_error, run, vm

VMS = {"alice": vm(), "bob": vm(), "mallory": vm()}
POLICY = {"30-robust.policy": (
    "vmfed.Clipboard.Paste  *  @anyvm   @anyvm  allow\n"
    "vmfed.OpenURL          *  alice    bob     ask\n"
    "vmfed.OpenFile         *  alice    bob     allow\n"
    "vmfed.Ping             *  alice    bob     allow\n"
    "*                      *  @anyvm   @anyvm  deny\n"
)}
ROOT = "/org/vmfed/Federation1"
GUEST = "org.vmfed.Federation1.Guest"


def clipboard_works(a, b, data):
    a.guest_ok("copy", input=data)
    assert b.guest_ok("paste") == data


def main(vmfedd, agent, guest, vmfedctl=""):
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY) as h:
        a, b = h.agent("alice"), h.agent("bob", file_mode="sleep")
        mallory_sock = h.channel("mallory")
        owner = lambda: h.get_property("org.vmfed.Federation1.Clipboard", "Owner")  # noqa: E731

        # Garbage instead of the handshake, and after a good handshake.
        p = RawPeer(mallory_sock, auth=False)
        p.s.sendall(b"\0" + bytes((i * 7919 + 13) & 0xff for i in range(65536)))
        assert p.closed_by_peer(), "garbage handshake not cut off"
        clipboard_works(a, b, b"after garbage 1")
        p = RawPeer(mallory_sock)
        p.s.sendall(b"l\x01\x00\x01\xff\xff\xff\x7f\x01\x00\x00\x00\xff\xff\xff\x0f" + b"\0" * 64)
        assert p.closed_by_peer(), "absurd header not cut off"
        clipboard_works(b, a, b"after garbage 2")

        # Flood: thousands of calls, never reading a reply.  Cut off; the others keep working meanwhile.
        p = RawPeer(mallory_sock)
        stop = []

        def flood():
            try:
                for _ in range(200000):
                    if stop:
                        break
                    p.send(ROOT, GUEST, "Ping")
            except OSError:
                stop.append("cut off")
        t = threading.Thread(target=flood)
        t.start()
        try:
            for i in range(5):
                clipboard_works(a, b, f"during flood {i}".encode())
            t.join(60)  # never reading: the broker must hang up, which ends the sending
        finally:
            stop.append("done")
            t.join(5)
        assert stop[0] == "cut off", stop
        assert p.closed_by_peer(10)
        assert "does not read its replies" in h.log()
        # A 16 MiB + 1 copy from mallory is refused (TooLarge) and the connection survives it.
        p = RawPeer(mallory_sock)
        p.send(ROOT, GUEST, "Copy", [("s", "text/plain"), ("ay", b"a" * (16 * 1024 * 1024 + 1))])
        mtype, err, _ = p.read_message(20)
        assert mtype == 3 and err == "org.vmfed.Federation1.Error.TooLarge", (mtype, err)
        assert owner() != "mallory"  # nothing stored

        # Identity: a peer on alice's channel forging everything is still alice.
        a.stop()  # (else its reconnects would replace our connection: one per channel, newest wins)
        p = RawPeer(h.channel("alice"))
        for sender, dest, path in [(None, None, ROOT), ("org.vmfed.vm.bob", None, ROOT),
                                   (":1.1", "org.vmfed.Federation1", ROOT),
                                   ("org.vmfed.Federation1", "org.vmfed.vm.bob", ROOT)]:
            p.send(path, GUEST, "Copy", [("s", "text/plain"), ("ay", b"forged")], sender=sender, destination=dest)
            mtype, err, _ = p.read_message()
            assert mtype == 2, err
            assert owner() == "alice", owner()
        # Paste: alice -> alice needs no policy; the data comes back to this connection, not to bob.
        p.send(ROOT, GUEST, "Paste", sender="org.vmfed.vm.bob")
        mtype, err, raw = p.read_message()
        assert mtype == 2 and b"forged" in raw
        # No admin API and no Agent1 on a channel; the refusal is audited.
        for iface, member in [("org.vmfed.Federation1.Manager", "StartVM"), ("org.vmfed.Federation1.Policy", "ReplaceFile"),
                              ("org.vmfed.Agent1", "OpenURL"), ("org.vmfed.Federation1.Ask", "AnswerAsk")]:
            p.send(ROOT, iface, member, [("s", "bob")])
            mtype, err, _ = p.read_message()
            assert mtype == 3 and err.startswith("org.freedesktop.DBus.Error.Unknown"), (iface, err)
        assert "VMFED_SOURCE=alice VMFED_CALLER=channel VMFED_TARGET=@host VMFED_SERVICE=org.vmfed.Agent1.OpenURL" in h.log()
        # Arguments naming another VM do not change who asks: alice may ping bob, mallory's channel may not.
        p.send(ROOT, GUEST, "PingVM", [("s", "bob")], sender="org.vmfed.vm.mallory")
        mtype, err, raw = p.read_message()
        assert mtype == 2 and b"bob" in raw, err
        m = RawPeer(mallory_sock)
        m.send(ROOT, GUEST, "PingVM", [("s", "bob")], sender="org.vmfed.vm.alice")
        mtype, err, _ = m.read_message()
        assert mtype == 3 and err == "org.vmfed.Federation1.Error.AccessDenied", err
        p.close()
        m.close()
        a.start()
        a.wait_connected()

        # Agent1 is not served to the guest side: a guest app cannot make its agent exec.
        g = RawPeer(a.socket)
        g.send("/org/vmfed/Agent1", "org.vmfed.Agent1", "OpenURL", [("s", "https://example.org/")])
        mtype, err, _ = g.read_message()
        assert mtype == 3 and err.startswith("org.freedesktop.DBus.Error.Unknown"), err
        g.close()
        assert not b.read_events() and not a.read_events()

        # A routed call whose target agent dies: the caller gets an error, not success.
        path = os.path.join(h.tmp, "doc.txt")
        with open(path, "w") as f:
            f.write("doc")
        res = []
        t = threading.Thread(target=lambda: res.append(a.guest("open-file", path, "bob")))
        t.start()
        b.wait_event(lambda e: e["mode"] == "file-sleep", "viewer running in bob")
        b.stop()
        t.join(20)
        expect_error(res[0], "Failed", "disconnected before it answered")
        assert open(path).read() == "doc"
        b = h.agent("bob")

        # Broker restart: a request in flight (waiting at an ask) fails; agents reconnect.
        res = []
        t = threading.Thread(target=lambda: res.append(a.guest("open-url", "https://example.org/x", "bob")))
        t.start()
        h._wait(lambda: "VMFED_DECISION=ask" in h.log(), "the ask", 10)
        h.stop_daemon()
        t.join(20)
        rc, out, err = res[0]
        assert rc != 0 and ("lost" in err or "shutting down" in err), (rc, out, err)
        expect_error(a.guest("copy", input=b"nobody home"), "Failed", "Not connected")
        h.start_daemon()
        a.wait_connected(15)
        b.wait_connected(15)
        clipboard_works(a, b, b"after restart")
        assert a.guest_ok("ping", "bob").strip() == b"bob"
        assert b.read_events() == [e for e in b.read_events() if e["mode"] == "file-sleep"]

        # Guest1 on the guest's system bus (here: the test's bus daemon stands in for it).
        a.stop()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=h.address)
        log = open(a.log_path, "a")
        import subprocess
        from harness import _die_with_parent
        sysagent = subprocess.Popen([h.agent_path, "--channel", h.channel("alice")], env=env, stdout=log,
                                    stderr=log, preexec_fn=_die_with_parent)
        try:
            def status():
                r = subprocess.run([h.guest_path, "status"], env=env, capture_output=True)
                return r.returncode == 0 and b"vm alice" in r.stdout
            h._wait(status, "Guest1 on the system bus", 15)
            r = subprocess.run([h.guest_path, "copy"], env=env, input=b"via the system bus", capture_output=True)
            assert r.returncode == 0, r.stderr
            assert b.guest_ok("paste") == b"via the system bus"
        finally:
            sysagent.terminate()
            sysagent.wait(5)
    return 0


if __name__ == "__main__":
    run(main)
