#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Stands in for a browser, a file viewer or an app inside a test VM.

handler.py url EVENTS URL                 record the URL
handler.py app EVENTS APP_ID ARGS...      record the app and its argv
handler.py file-keep EVENTS PATH          record the file's content
handler.py file-edit EVENTS PATH          ... and append " (edited)" to it
handler.py file-sleep EVENTS PATH         ... and take a minute (a viewer left open)
handler.py file-by-content EVENTS PATH    what its first line says: "edit" as file-edit (and
                                          leaves a backup PATH~ and a directory beside it, as
                                          editors do), "rm" removes it, "sleep" as file-sleep,
                                          anything else as file-keep

Each call appends one JSON line to EVENTS (with the argv it got: proof
that no shell was involved).
"""
import hashlib
import json
import os
import sys

mode, events = sys.argv[1], sys.argv[2]
rest = sys.argv[3:]
ev = {"mode": mode, "argv": rest, "pid": os.getpid()}
if mode.startswith("file"):
    with open(rest[0], "rb") as f:
        data = f.read()
    # Large files (vmfed.OpenFile streams): their size and digest, not a JSON line of megabytes.
    if len(data) > 65536:
        ev.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    else:
        ev["content"] = data.decode(errors="replace")
    if mode == "file-by-content":
        first = data.split(b"\n", 1)[0]
        mode = {b"edit": "file-edit", b"rm": "file-rm", b"sleep": "file-sleep"}.get(first, "file-keep")
        if mode == "file-edit":
            with open(rest[0] + "~", "wb") as f:
                f.write(data)
            os.makedirs(os.path.join(os.path.dirname(rest[0]), ".cache", "thumbs"))
    if mode == "file-rm":
        os.unlink(rest[0])
    if mode == "file-sleep":
        with open(events, "a") as f:
            f.write(json.dumps(ev) + "\n")
        import time
        time.sleep(60)
        sys.exit(0)
    if mode == "file-edit":
        with open(rest[0], "ab") as f:
            f.write(b" (edited)")
with open(events, "a") as f:
    f.write(json.dumps(ev) + "\n")
