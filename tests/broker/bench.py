#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run one broker benchmark against a real vmfedd on a private bus; print its
one JSON line (everything else goes to stderr).

Usage: bench.py VMFEDD BENCH_BROKER bus|channel|bus-1cpu|channel-1cpu

The -1cpu modes run everything (bus daemon, vmfedd, the benchmark and its
forked echo server) on CPU 0.  Unpinned, the scheduler decides per run
whether a path crosses CPUs, and on this project's 2-vCPU nested VM waking
an idle vCPU costs ~55 µs per round trip: measured here, the raw echo forced
across CPUs took 72 µs while vmfedd's Hello on the client's CPU took 17 µs.
So the ratio against the floor is only meaningful with both paths placed
alike; the unpinned line is kept for information.
"""
import json
import os
import subprocess
import sys

from harness import Harness


def main():
    vmfedd, bench, mode = sys.argv[1:4]
    pinned = mode.endswith("-1cpu")
    if pinned:
        os.sched_setaffinity(0, {0})  # inherited by everything started below
        mode = mode[: -len("-1cpu")]
    with Harness(vmfedd) as h:
        args = [bench, "bus", h.address] if mode == "bus" else [bench, "channel", h.state_dir, "rivendale"]
        r = subprocess.run(args, stdout=subprocess.PIPE, timeout=300)
        if r.returncode != 0:
            h.dump_log()
            return r.returncode
        line = json.loads(r.stdout.decode())
        line["placement"] = "cpu0" if pinned else "unpinned"
        if pinned:
            line["benchmark"] += "-1cpu"
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
