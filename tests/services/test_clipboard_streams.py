#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Large clipboards through streams to the broker itself (issue 13).

A copy or a paste over 16 MiB (or with --stream) is a vmfed.Clipboard.Copy
or vmfed.Clipboard.Paste stream with target @host: real vmfedd, real
vmfed-agent processes emulating the stream ports, driven with vmfed-guest.

- 40 MiB of binary copied in alice, pasted in bob byte for byte (the
  paste's one-message attempt gets TooLarge before the policy, then the
  stream), cleared after the paste; carol is denied and the clipboard stays.
- --stream for small data both ways; text that is not UTF-8 refused.
- Over [Clipboard] MaxSize= through a stream: TooLarge, clipboard kept.
- Hostile streams (vmfed-guest run @host ...): a bad header, fewer or more
  bytes than declared, an argument, an unknown host service; a copy whose
  caller is killed halfway; a second copy while one runs (Busy).  Each
  leaves the clipboard as it was, and the next copy works.
- vmfedd SIGKILLed mid-copy: the caller fails; after a restart the next
  large copy and paste work.

Usage: test_clipboard_streams.py VMFEDD VMFED_AGENT VMFED_GUEST
"""
import os
import signal
import subprocess
import time

from svc import ServicesHarness, expect_error, run, vm

VMS = {"alice": vm(), "bob": vm(), "carol": vm(), "dave": vm(extra="Streams=0\n")}
POLICY = {"30-clip.policy": (
    "vmfed.Clipboard.Paste  +                          alice  bob  allow\n"
    "vmfed.Clipboard.Paste  +application.octet-stream  alice  bob  allow\n"
    "vmfed.Clipboard.Paste  +                          alice  dave allow\n"
    "vmfed.Clipboard.Paste  *                          @anyvm @anyvm deny\n"
)}
CLIP = "org.vmfed.Federation1.Clipboard"


def owner(h):
    return h.get_property(CLIP, "Owner")


def guest_run(agent, args, data=b"", timeout=60):
    """vmfed-guest run ... with data on stdin: (rc, stdout, stderr)."""
    return agent.guest("run", *args, input=data, timeout=timeout)


def check_large(h, a, b, c):
    big = os.urandom(1 << 20) * 40  # 40 MiB, > the 16 MiB of one message
    a.guest_ok("copy", "--mime", "application/octet-stream", input=big, timeout=120)
    assert owner(h) == "alice"
    assert h.get_property(CLIP, "Size") == len(big)
    assert h.get_property(CLIP, "Mime") == "application/octet-stream"
    assert "copied from alice through a stream" in h.log()
    # carol is denied (the size is checked first, but this goes through the stream's decision) ...
    expect_error(c.guest("paste"), "AccessDenied", "alice")
    assert owner(h) == "alice"
    # ... bob gets it whole.
    rc, out, err = b.guest("paste", timeout=120)
    assert rc == 0, err
    assert out == big, (len(out), len(big))
    assert "pasted %d bytes of application/octet-stream from alice" % len(big) in err, err
    assert owner(h) == ""  # cleared after the paste, as one in a message
    log = h.log()
    assert "pasted from alice into bob through a stream" in log
    assert "VMFED_SERVICE=vmfed.Clipboard.Copy" in log


def check_forced(h, a, b):
    a.guest_ok("copy", "--stream", input="small ✓".encode())
    assert owner(h) == "alice" and h.get_property(CLIP, "Mime") == "text/plain"
    rc, out, err = b.guest("paste", "--stream")
    assert rc == 0 and out == "small ✓".encode(), (rc, out, err)
    # An empty copy is a copy too.
    a.guest_ok("copy", "--stream", input=b"")
    assert owner(h) == "alice" and h.get_property(CLIP, "Size") == 0
    assert b.guest_ok("paste", "--stream") == b""
    # Not UTF-8: refused by the broker after the stream, the clipboard as it was.
    b.guest_ok("copy", input=b"kept")
    expect_error(a.guest("copy", "--stream", input=b"\xff\xfe bad"), "InvalidArgs", "UTF-8")
    assert owner(h) == "bob"
    # A paste allowed but without a stream to carry it (dave has no stream ports) loses nothing.
    a.guest_ok("copy", input=b"for dave")
    expect_error(h.agents["dave"].guest("paste", "--stream"), "Failed", "no stream ports")
    assert owner(h) == "alice"
    assert h.agents["dave"].guest_ok("paste") == b"for dave"
    b.guest_ok("copy", input=b"kept")


def check_hostile(h, a, b):
    b.guest_ok("copy", input=b"kept")
    cases = [
        (b"garbage\n", "InvalidArgs", "not valid"),
        (b"VMFED-CLIP1 10 Text/Plain\n0123456789", "InvalidArgs", "type"),
        (b"VMFED-CLIP1 010 text/plain\n0123456789", "InvalidArgs", "size"),
        (b"VMFED-CLIP1 10 text/plain alice\n0123456789", "InvalidArgs", "more than"),
        (b"VMFED-CLIP1 100 text/plain\n0123456789", "Failed", "after 10 of 100 bytes"),
        (b"VMFED-CLIP1 4 text/plain\n0123456789", "InvalidArgs", "more than the 4 bytes"),
        (b"VMFED-CLIP1 " + b"9" * 300 + b"\n", "InvalidArgs", "longer than"),
        (b"VMFED-CLIP1 5", "Failed", "before its header line was complete"),
    ]
    for data, name, needle in cases:
        rc, out, err = guest_run(a, ["@host", "vmfed.Clipboard.Copy"], data)
        assert rc == 1, (data, rc, err)  # the stream's status: refused
        lines = [ln for ln in h.log().splitlines() if "a copy stream from alice was refused" in ln and needle in ln]
        assert lines and "(%s)" % name in lines[-1], (data, needle, h.log()[-2000:])
        assert owner(h) == "bob", data
    expect_error(guest_run(a, ["@host", "vmfed.Clipboard.Copy+x"]), "InvalidArgs", "no argument")
    expect_error(guest_run(a, ["@host", "vmfed.Nothing"]), "NotFound", "serves no stream")
    # The exact answer a copy gets: the stream's status with the reason.
    expect_error(a.guest("copy", "--stream", "--mime", "text/plain", input=b"\xc3"), "InvalidArgs", "UTF-8")
    assert owner(h) == "bob"

    # A copy whose caller dies halfway, and a second copy while it runs.
    p = subprocess.Popen([h.guest_path, "--socket", a.socket, "run", "@host", "vmfed.Clipboard.Copy"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(b"VMFED-CLIP1 104857600 text/plain\n" + b"x" * (4 << 20))
    p.stdin.flush()
    deadline = time.monotonic() + 20
    while "A copy of alice is still under way" not in a.guest("copy", "--stream", input=b"second")[2]:
        assert time.monotonic() < deadline, "a second copy while one runs was not refused as Busy"
        time.sleep(0.1)
    expect_error(a.guest("copy", "--stream", input=b"second"), "Busy")
    p.kill()
    p.wait()
    deadline = time.monotonic() + 20
    while "the copy stream of alice was aborted" not in h.log():
        assert time.monotonic() < deadline, h.log()[-2000:]
        time.sleep(0.1)
    assert owner(h) == "bob"
    # Nothing is left behind: the next copy (through a stream) works.
    a.guest_ok("copy", "--stream", input=b"after")
    assert owner(h) == "alice" and b.guest_ok("paste") == b"after"


def check_broker_gone(h, a, b, c):
    """vmfedd SIGKILLed while a copy streams in: the caller gets an error, not a success; after a
    restart the clipboard is empty (it lived in the broker) and the next large copy and paste work."""
    p = subprocess.Popen([h.guest_path, "--socket", a.socket, "run", "@host", "vmfed.Clipboard.Copy"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(b"VMFED-CLIP1 104857600 text/plain\n" + b"x" * (4 << 20))
    p.stdin.flush()
    deadline = time.monotonic() + 20
    while "A copy of alice is still under way" not in a.guest("copy", "--stream", input=b"probe")[2]:
        assert time.monotonic() < deadline, "the copy stream did not start"
        time.sleep(0.1)
    h.stop_daemon(signal.SIGKILL)
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
    rc = p.wait(30)
    err = p.stderr.read().decode()
    assert rc != 0 and "lost" in err, (rc, err)
    h.start_daemon()
    for agent in (a, b, c):
        agent.wait_connected(20)
    assert owner(h) == ""
    big = os.urandom(1 << 20) * 20
    a.guest_ok("copy", "--mime", "application/octet-stream", input=big, timeout=120)
    rc, out, err = b.guest("paste", timeout=120)
    assert rc == 0 and out == big, (rc, len(out), err)


def check_too_large(vmfedd, agent, guest):
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY,
                         services_conf="[Clipboard]\nMaxSize=20M\n") as h:
        a, b = h.agent("alice", services={}), h.agent("bob", services={})
        b.guest_ok("copy", input=b"kept")
        expect_error(a.guest("copy", input=b"y" * (24 << 20), timeout=120), "TooLarge", "20971520")
        assert owner(h) == "bob"
        assert h.get_property(CLIP, "MaxSize") == 20 << 20
        a.guest_ok("copy", input=b"z" * (20 << 20), timeout=120)  # exactly the limit: through a stream
        assert owner(h) == "alice" and h.get_property(CLIP, "Size") == 20 << 20


def main(vmfedd, agent, guest, vmfedctl=""):
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY) as h:
        a, b, c = (h.agent(n, services={}) for n in ("alice", "bob", "carol"))
        h.agent("dave")
        assert h.get_property(CLIP, "MaxSize") == 256 << 20
        check_large(h, a, b, c)
        check_forced(h, a, b)
        check_hostile(h, a, b)
        check_broker_gone(h, a, b, c)
    check_too_large(vmfedd, agent, guest)
    return 0


if __name__ == "__main__":
    run(main)
