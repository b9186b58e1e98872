#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""docs/dbus/org.vmfed.Agent1.xml and org.vmfed.Guest1.xml must describe
exactly what a running vmfed-agent serves (Agent1 on its broker
connection, Guest1 on its guest socket).  Same comparison as
tests/broker/test_introspection.py.

Usage: test_introspection.py VMFED_AGENT TEST_AGENT_NET DOCS_DBUS_DIR
"""
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("VMFED_SOURCE_ROOT", os.path.dirname(__file__) + "/../.."),
                                "tests", "broker"))
from test_introspection import canonical, interfaces  # noqa: E402
from harness import _die_with_parent  # noqa: E402
from rawbus import RawPeer  # noqa: E402


def introspect_raw(sock, path):
    p = RawPeer(sock)
    p.send(path, "org.freedesktop.DBus.Introspectable", "Introspect")
    mtype, err, raw = p.read_message()
    assert mtype == 2, err
    fields_len = struct.unpack("<I", raw[12:16])[0]
    body = raw[16 + ((fields_len + 7) & ~7):]
    n = struct.unpack("<I", body[:4])[0]
    return body[4:4 + n].decode()


def main():
    agent, fake_broker, docs = sys.argv[1:4]
    tmp = tempfile.mkdtemp(prefix="vmfed-agent-introspect-")
    chan, gsock = os.path.join(tmp, "channel.sock"), os.path.join(tmp, "guest.sock")
    broker = subprocess.Popen([fake_broker, chan, "--introspect"], stdout=subprocess.PIPE, text=True,
                              preexec_fn=_die_with_parent)
    while not os.path.exists(chan):
        time.sleep(0.02)
    a = subprocess.Popen([agent, "--channel", chan, "--guest-socket", gsock], stderr=subprocess.DEVNULL,
                         preexec_fn=_die_with_parent)
    try:
        live = interfaces(broker.communicate(timeout=20)[0])
        while not os.path.exists(gsock):
            time.sleep(0.02)
        live.update(interfaces(introspect_raw(gsock, "/org/vmfed/Guest1")))
    finally:
        a.terminate()
        a.wait()
        broker.kill()
        broker.wait()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)

    failed = False
    for name in ["org.vmfed.Agent1", "org.vmfed.Guest1"]:
        doc = interfaces(open(os.path.join(docs, name + ".xml")).read())
        if name not in live or name not in doc:
            print(f"{name}: missing ({'daemon' if name not in live else 'docs'})")
            failed = True
            continue
        x, y = canonical(live[name]), canonical(doc[name])
        if x != y:
            print(f"{name}: docs/dbus/{name}.xml differs from vmfed-agent")
            for m in sorted(set(x) - set(y)):
                print(f"  agent only: {m}")
            for m in sorted(set(y) - set(x)):
                print(f"  docs only:  {m}")
            failed = True
    if failed:
        return 1
    print("ok: org.vmfed.Agent1, org.vmfed.Guest1 match docs/dbus/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
