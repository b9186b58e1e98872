#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run one services benchmark against a real vmfedd and real agents; print
its one JSON line (everything else goes to stderr).

Usage: bench.py VMFEDD VMFED_AGENT VMFED_GUEST BENCH_SERVICES routed|routed-1cpu|paste-64k|paste-16m
       bench.py VMFEDD VMFED_AGENT VMFED_GUEST BENCH_STREAMS streams

routed-1cpu runs everything (broker, agents, client, raw echo) on CPU 0: on
this nested VM a wakeup across vCPUs costs far more than the work, and the
raw echo pair is placed on one CPU by the scheduler while the three
processes of a routed call are not; pinning compares like with like.
"""
import json
import os
import subprocess
import sys

from svc import ServicesHarness, vm

VMS = {"alice": vm(), "bob": vm(), "carol": vm()}
POLICY = {"30-bench.policy": (
    "vmfed.Ping             *  alice  bob    allow\n"
    "vmfed.Ping             *  carol  bob    allow\n"
    "vmfed.Clipboard.Paste  +  alice  bob    allow\n"
    "test.True              *  alice  bob    allow\n"
    "test.Sink              *  alice  bob    allow\n"
)}
STREAM_SERVICES = {"test.True": "#!/bin/sh\nexit 0\n", "test.Sink": "#!/bin/sh\nexec cat > /dev/null\n"}


def main():
    vmfedd, agent, guest, bench, mode = sys.argv[1:6]
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
