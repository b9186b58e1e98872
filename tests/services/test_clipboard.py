#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Clipboard between VMs through the real broker and real agents.

A->B allowed, A->C denied, cleared after a paste, oversize refused with
TooLarge (nothing truncated), text must be UTF-8, other types only where
the policy names them, the admin sees owner/type/size but never the
contents and can clear it.

Usage: test_clipboard.py VMFEDD VMFED_AGENT VMFED_GUEST
"""
import os

from svc import ServicesHarness, expect_error, run, vm

VMS = {"alice": vm(), "bob": vm(), "carol": vm(), "dave": vm()}
POLICY = {"30-clip.policy": (
    "vmfed.Clipboard.Paste  +            alice   bob     allow\n"
    "vmfed.Clipboard.Paste  +image.png   alice   bob     allow\n"
    "vmfed.Clipboard.Paste  +            bob     alice   allow\n"
    "vmfed.Clipboard.Paste  *            alice   carol   deny\n"
    "vmfed.Clipboard.Paste  *            @anyvm  @anyvm  deny\n"
)}


def main(vmfedd, agent, guest, vmfedctl=""):
    conf = "[Clipboard]\nMaxSize=1M\n"
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY, services_conf=conf) as h:
        a, b, c = h.agent("alice"), h.agent("bob"), h.agent("carol")

        # A -> B: allowed; the paste is the data, from alice, as text/plain.
        a.guest_ok("copy", input="hello from alice ✓".encode())
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Owner") == "alice"
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Mime") == "text/plain"
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Size") == len("hello from alice ✓".encode())
        rc, out, err = b.guest("paste")
        assert rc == 0, err
        assert out == "hello from alice ✓".encode(), out
        assert "from alice" in err

        # Cleared after the paste: a second paste finds nothing.
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Owner") == ""
        expect_error(b.guest("paste"), "NotFound", "empty")

        # A -> C: denied by policy, and the clipboard stays (denied paste clears nothing).
        a.guest_ok("copy", input=b"secret")
        expect_error(c.guest("paste"), "AccessDenied", "alice")
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Owner") == "alice"
        # The refusal is audited.
        log = h.log()
        assert "VMFED_SERVICE=vmfed.Clipboard.Paste" in log and "VMFED_TARGET=carol VMFED_SERVICE" in log, log

        # Admin: the interface has no way to read the contents.
        intro = h.busctl("introspect", "--xml-interface", "org.vmfed.Federation1", "/org/vmfed/Federation1").stdout
        clip = intro[intro.index('<interface name="org.vmfed.Federation1.Clipboard">'):]
        clip = clip[:clip.index("</interface>")]
        assert 'name="Clear"' in clip and "ay" not in clip and "secret" not in intro, clip
        # Clear needs authorization (nobody is refused), root may.
        r = h.busctl("call", "org.vmfed.Federation1", "/org/vmfed/Federation1",
                     "org.vmfed.Federation1.Clipboard", "Clear", user="nobody", check=False)
        assert r.returncode != 0 and "needs uid 0" in r.stderr, r.stderr
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Owner") == "alice"
        h.call("org.vmfed.Federation1.Clipboard", "Clear")
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Owner") == ""
        expect_error(b.guest("paste"), "NotFound")

        # Oversize: refused with TooLarge, told to the user, nothing truncated or replaced.
        b.guest_ok("copy", input=b"small")
        big = b"x" * (1024 * 1024 + 1)
        err = expect_error(a.guest("copy", input=big), "TooLarge", "1048576")
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Owner") == "bob"
        # Exactly the limit fits and arrives whole.
        exact = bytes(range(97, 123)) * (1024 * 1024 // 26) + b"a" * (1024 * 1024 % 26)
        a.guest_ok("copy", input=exact)
        assert b.guest_ok("paste") == exact

        # Text must be UTF-8.
        expect_error(a.guest("copy", input=b"\xff\xfe bad"), "InvalidArgs", "UTF-8")
        # Other types: only where the policy names them.  image/png alice->bob is allowed ...
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
        a.guest_ok("copy", "--mime", "image/png", input=png)
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Mime") == "image/png"
        assert b.guest_ok("paste") == png
        # ... bob->alice only for text.
        b.guest_ok("copy", "--mime", "image/png", input=png)
        expect_error(a.guest("paste"), "AccessDenied")
        b.guest_ok("copy", "--mime", "text/plain; charset=utf-8", input=b"text ok")
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Mime") == "text/plain"
        assert a.guest_ok("paste") == b"text ok"
        expect_error(a.guest("copy", "--mime", "no-slash", input=b"x"), "InvalidArgs")

        # Pasting back into the copying VM crosses no boundary.
        c.guest_ok("copy", input=b"mine")
        assert c.guest_ok("paste") == b"mine"

    # ClearAfterPaste=false keeps it.
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY,
                         services_conf="[Clipboard]\nClearAfterPaste=false\n") as h:
        a, b = h.agent("alice"), h.agent("bob")
        a.guest_ok("copy", input=b"keep me")
        assert b.guest_ok("paste") == b"keep me"
        assert b.guest_ok("paste") == b"keep me"
        assert h.get_property("org.vmfed.Federation1.Clipboard", "Owner") == "alice"
        assert h.get_property("org.vmfed.Federation1.Clipboard", "MaxSize") == 256 * 1024 * 1024
    return 0


if __name__ == "__main__":
    run(main)
