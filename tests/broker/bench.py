#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run one broker benchmark against a real vmfedd on a private bus; print its
one JSON line (everything else goes to stderr).

Usage: bench.py VMFEDD BENCH_BROKER bus|channel
"""
import subprocess
import sys

from harness import Harness


def main():
    vmfedd, bench, mode = sys.argv[1:4]
    with Harness(vmfedd) as h:
        args = [bench, "bus", h.address] if mode == "bus" else [bench, "channel", h.state_dir, "rivendale"]
        r = subprocess.run(args, stdout=subprocess.PIPE, timeout=300)
        if r.returncode != 0:
            h.dump_log()
            return r.returncode
        sys.stdout.write(r.stdout.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
