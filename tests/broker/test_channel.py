#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run test-channel (C, sd-bus clients) against a real vmfedd's guest channels.

Usage: test_channel.py VMFEDD TEST_CHANNEL
"""
import subprocess
import sys

from harness import Harness


def main():
    vmfedd, client = sys.argv[1], sys.argv[2]
    with Harness(vmfedd) as h:
        r = subprocess.run([client, h.state_dir], timeout=240)
        log = h.log()
        alive = h.daemon.poll() is None
        if r.returncode != 0 or not alive:
            h.dump_log()
            print(f"test-channel exited {r.returncode}, vmfedd alive: {alive}")
            return 1
        # The broker said why it dropped the misbehaving peers, and audited the refused call.
        for needle in ["replaced by a new connection", "does not read its replies",
                       "VMFED_SOURCE=rivendale", "VMFED_SERVICE=org.vmfed.Federation1.Policy.ReplaceFile",
                       "VMFED_DECISION=deny"]:
            if needle not in log:
                h.dump_log()
                print("missing in the broker log: " + needle)
                return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
