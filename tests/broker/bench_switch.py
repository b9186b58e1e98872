#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: what the broker adds to a persona switch over D-Bus.

vmfedd on test:///default (fake passthrough) with two personas sharing a
device; switch-client alternates SwitchPersona calls on one connection and
times each call; vmfedd logs how long each switch operation ran inside it
(from the handler to the reply: "switch to persona X: done in Y ms").  The
D-Bus overhead of a call is its wall time minus its operation's time
(dispatch, authorization, the reply's trip).  Prints one JSON line.

Usage: bench_switch.py VMFEDD SWITCH_CLIENT
"""
import json
import re
import statistics
import subprocess
import sys

from harness import Harness

ROUNDS = 41
VMS = {
    "netvm": "[VM]\nRole=service\nKernel=@KERNEL@\nDefaultNetVM=true\n",
    "rivendale": "[VM]\nRole=persona\nKernel=@KERNEL@\n[Passthrough]\nDevices=0000:01:00.0\n",
    "gondor": "[VM]\nRole=persona\nKernel=@KERNEL@\n[Passthrough]\nDevices=0000:01:00.0\n",
}


def main():
    vmfedd, client = sys.argv[1:3]
    with Harness(vmfedd, vms=VMS, policy={}, env={"VMFED_TEST_FAKE_PASSTHROUGH": "1"}) as h:
        # Warm-up: the first switch also starts the netvm.
        h.call("Manager", "SwitchPersona", "s", "rivendale")
        mark = len(h.log())
        r = subprocess.run([client, h.address, "bench", "rivendale", "gondor", str(ROUNDS)], stdout=subprocess.PIPE,
                           timeout=600, text=True)
        if r.returncode != 0:
            h.dump_log()
            return r.returncode
        calls = [int(x) / 1000.0 for x in r.stdout.split()]
        ops = [float(x) for x in re.findall(r"switch to persona \w+: done in ([0-9.]+) ms", h.log()[mark:])]
    if len(ops) != len(calls):
        print(f"expected {len(calls)} operations in the log, found {len(ops)}", file=sys.stderr)
        return 1
    overhead = [c - o for c, o in zip(calls, ops)]
    print(json.dumps({
        "benchmark": "broker-switch-dbus-overhead",
        "driver": "test:///default",
        "switches": len(calls),
        "call_median_ms": round(statistics.median(calls), 3),
        "operation_median_ms": round(statistics.median(ops), 3),
        "dbus_overhead_median_ms": round(statistics.median(overhead), 3),
        "dbus_overhead_min_ms": round(min(overhead), 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
