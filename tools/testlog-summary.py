#!/usr/bin/env python3
"""Print 'N passed, N failed[, N skipped]' from meson's testlog.json files.

Usage: testlog-summary.py [LABEL=]TESTLOG.json...

With several logs (tools/test.sh: the normal and the sanitizer build), one
line per log comes first ("LABEL: N passed, N failed[, N skipped]"), and the
last line is the sum over all of them.  A missing log counts as one failure.
Exit status 1 when any test failed or no test ran at all."""
import json
import sys


def count(path):
    passed = failed = skipped = 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            result = json.loads(line).get("result")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:  # FAIL, ERROR, TIMEOUT, UNEXPECTEDPASS, INTERRUPT
                failed += 1
    return passed, failed, skipped


def line(passed, failed, skipped):
    s = f"{passed} passed, {failed} failed"
    if skipped:
        s += f", {skipped} skipped"
    return s


total = [0, 0, 0]
args = sys.argv[1:]
for arg in args:
    label, sep, path = arg.partition("=")
    if not sep:
        label, path = arg, arg
    try:
        counts = count(path)
    except OSError as e:
        print(f"{label}: no test log ({e.strerror})")
        counts = (0, 1, 0)
    else:
        if len(args) > 1:
            print(f"{label}: {line(*counts)}")
    total = [t + c for t, c in zip(total, counts)]

print(line(*total))
sys.exit(1 if total[1] or total[0] == 0 else 0)
