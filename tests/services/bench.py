#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run one services benchmark against a real vmfedd and real agents; print
its one JSON line (everything else goes to stderr).

Usage: bench.py VMFEDD VMFED_AGENT VMFED_GUEST BENCH_SERVICES routed|routed-1cpu|paste-64k|paste-16m
       bench.py VMFEDD VMFED_AGENT VMFED_GUEST BENCH_STREAMS streams
       bench.py VMFEDD VMFED_AGENT VMFED_GUEST - clipboard-stream

clipboard-stream: 64 MiB copied in alice and pasted in bob through the
clipboard's streams (vmfed-guest copy/paste, process start included), beside
the same bytes through a socketpair in this process (the floor), median of 5.

routed-1cpu runs everything (broker, agents, client, raw echo) on CPU 0: on
this nested VM a wakeup across vCPUs costs far more than the work, and the
raw echo pair is placed on one CPU by the scheduler while the three
processes of a routed call are not; pinning compares like with like.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

from svc import ServicesHarness, vm

VMS = {"alice": vm(), "bob": vm(), "carol": vm()}
POLICY = {"30-bench.policy": (
    "vmfed.Ping             *  alice  bob    allow\n"
    "vmfed.Ping             *  carol  bob    allow\n"
    "vmfed.Clipboard.Paste  +  alice  bob    allow\n"
    "vmfed.Clipboard.Paste  +application.octet-stream  alice  bob  allow\n"
    "test.True              *  alice  bob    allow\n"
    "test.Sink              *  alice  bob    allow\n"
)}
STREAM_SERVICES = {"test.True": "#!/bin/sh\nexit 0\n", "test.Sink": "#!/bin/sh\nexec cat > /dev/null\n"}


def socketpair_ms(data):
    """The same bytes through a socketpair, a writer thread and a reader here (ms)."""
    a, b = socket.socketpair()
    t0 = time.monotonic()
    w = threading.Thread(target=lambda: (a.sendall(data), a.shutdown(socket.SHUT_WR)))
    w.start()
    buf, got = bytearray(1 << 20), 0
    while True:
        n = b.recv_into(buf)
        if n == 0:
            break
        got += n
    w.join()
    ms = (time.monotonic() - t0) * 1000
    a.close()
    b.close()
    assert got == len(data)
    return ms


def clipboard_stream(h):
    a, b = h.agent("alice", services={}), h.agent("bob", services={})
    size = 64 << 20
    data = os.urandom(1 << 20) * 64
    path = os.path.join(h.tmp, "clip.bin")
    with open(path, "wb") as f:
        f.write(data)
    copy, paste, floor = [], [], []
    for _ in range(5):
        t0 = time.monotonic()
        a.guest_ok("copy", "--mime", "application/octet-stream", path, timeout=120)
        copy.append((time.monotonic() - t0) * 1000)
        t0 = time.monotonic()
        r = subprocess.run([h.guest_path, "--socket", b.socket, "paste"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        paste.append((time.monotonic() - t0) * 1000)
        assert r.returncode == 0 and "pasted %d bytes" % size in r.stderr, r.stderr
        floor.append(socketpair_ms(data))
    assert "through a stream" in h.log()
    med = statistics.median
    return {"benchmark": "services-clipboard-stream", "bytes": size,
            "copy_ms_p50": round(med(copy), 1), "paste_ms_p50": round(med(paste), 1),
            "socketpair_ms_p50": round(med(floor), 1),
            "copy_MBps": round(size / 1e6 / (med(copy) / 1000), 1),
            "paste_MBps": round(size / 1e6 / (med(paste) / 1000), 1),
            "paste_vs_socketpair": round(med(paste) / med(floor), 2)}


def main():
    vmfedd, agent, guest, bench, mode = sys.argv[1:6]
    if mode == "clipboard-stream":
        with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY) as h:
            sys.stdout.write(json.dumps(clipboard_stream(h)) + "\n")
        return 0
    if mode.endswith("-1cpu"):
        os.sched_setaffinity(0, {0})
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY) as h:
        if mode == "streams":
            a = h.agent("alice", services={})
            h.agent("bob", services=STREAM_SERVICES)
            args = [bench, a.socket, "bob", str(h.daemon.pid), str(256 * 1024 * 1024)]
        else:
            b = h.agent("bob")
        if mode == "streams":
            pass
        elif mode.startswith("routed"):
            c = h.agent("carol")  # the Guest1 path: an app in carol
            args = [bench, "routed", h.state_dir, "alice", "bob", c.socket]
        else:
            size = 64 * 1024 if mode == "paste-64k" else 16 * 1024 * 1024
            args = [bench, "paste", h.state_dir, "alice", b.socket, str(size)]
        r = subprocess.run(args, stdout=subprocess.PIPE, timeout=300)
        if r.returncode != 0:
            h.dump_log()
            return r.returncode
        line = json.loads(r.stdout.decode())
        if mode.endswith("-1cpu"):
            line["benchmark"] += "-1cpu"
        sys.stdout.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
