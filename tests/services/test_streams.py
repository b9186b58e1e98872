#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Data streams between VMs (docs/streams.md) with real agents standing in
for VMs: each agent emulates QEMU's stream ports on
STATE/channels/NAME.stream.I.sock and runs handlers from its own services
directory; the real vmfedd decides with the policy and splices.

Checked: bytes arrive identical both ways, each direction ends on its own,
the caller gets the handler's exit status (also 128+signal), SERVICE+ARG is
looked up before SERVICE, the handler's environment is clean, deny and a
missing handler are clear errors, the target's agent or the broker going
away mid-stream gives the caller an error and kills the handler, and the
next stream works; 64 concurrent streams between three VMs; a VM flooding
streams beside one that copies; one audit line per stream.

Usage: test_streams.py VMFEDD VMFED_AGENT VMFED_GUEST [VMFEDCTL]
"""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from svc import HANDLER, ServicesHarness, expect_error, run, vm

VMS = {"alice": vm(), "bob": vm(), "carol": vm(), "dave": vm()}
LONG_SERVICE = "test." + "M" * 122  # 127 characters: the longest service name
POLICY = {"30-streams.policy": (
    LONG_SERVICE + " * alice bob allow\n"
    "test.Echo     *   alice   carol   deny\n"
    "test.Echo     *   @host   bob     allow\n"
    "test.Exit     *   @host   bob     allow\n"
    "test.Missing  *   @host   bob     allow\n"
    "test.Echo     *   @anyvm  @anyvm  allow\n"
    "test.Count    *   alice   bob     allow\n"
    "test.Sink     *   @anyvm  bob     allow\n"
    "test.Head     *   @anyvm  bob     allow\n"
    "test.Sink     *   @host   bob     allow\n"
    "test.Head     *   @host   bob     allow\n"
    "test.Exit     *   alice   bob     allow\n"
    "test.Env      *   alice   bob     allow\n"
    "test.Sleep    *   @anyvm  bob     allow\n"
    "test.Missing  *   alice   bob     allow\n"
    "test.BadInterpreter * alice bob   allow\n"
    "vmfed.FileCopy *  alice   bob     allow\n"
    "vmfed.FileMove *  alice   bob     allow\n"
    "vmfed.FileCopy *  alice   dave    allow\n"
    "vmfed.FileMove *  alice   dave    allow\n"
    "vmfed.OpenFile *  alice   @anyvm  allow\n"
    "*             *   @anyvm  @anyvm  deny\n"
)}


def handlers(pid_dir, receiver, incoming, max_bytes="4G", opener=None, events=None, open_limit="4G"):
    """vmfed.OpenFile: opener (vmfed-open-file-receive) taking at most open_limit, with handler.py's
    file-by-content as its viewer; with open_limit "hostile" a script answering pid_dir/open-answer."""
    open_dir = os.path.join(os.path.dirname(incoming), "open-" + os.path.basename(incoming))
    viewer = f"{sys.executable} {HANDLER} file-by-content {events}"
    if open_limit == "hostile":
        opener_script = f"#!/bin/sh\ncat >/dev/null\nexec cat {pid_dir}/open-answer\n"
    else:
        opener_script = (f"#!/bin/sh\nexec {opener} --dir {open_dir} --max-bytes {open_limit} "
                         f"--viewer '{viewer}'\n")
    return {
        "vmfed.OpenFile": opener_script,
        "vmfed.FileCopy": f"#!/bin/sh\nexec {receiver} --dest-dir {incoming} --max-bytes {max_bytes}\n",
        "vmfed.FileMove": f"#!/bin/sh\nexec {receiver} --dest-dir {incoming} --max-bytes {max_bytes}\n",
        "test.Echo": "#!/bin/sh\nexec cat\n",
        "test.Count": "#!/bin/sh\nwc -c\n",
        "test.Sink": "#!/bin/sh\nexec cat >/dev/null\n",
        "test.BadInterpreter": "#!/nonexistent/interpreter\n",
        "test.Head": "#!/bin/sh\nhead -c 5\n",
        "test.Exit": "#!/bin/sh\ncat >/dev/null\nexit 3\n",
        "test.Exit+7": "#!/bin/sh\ncat >/dev/null\nexit \"$VMFED_ARGUMENT\"\n",
        "test.Env": "#!/bin/sh\nenv | sort\n",
        "test.Sleep": f"#!/bin/sh\necho $$ > {pid_dir}/sleep.$VMFED_STREAM\necho started\nexec sleep 600\n",
    }


def run_stream(agent, target, service, data=b"", timeout=60):
    return agent.guest("run", target, service, input=data, timeout=timeout)


def endless_stream(command, target, service="test.Head"):
    """COMMAND... TARGET SERVICE (a run command) with /dev/zero as its input: (rc, stdout, stderr)."""
    with open("/dev/zero", "rb") as zero:
        r = subprocess.run(command + [target, service], stdin=zero, capture_output=True, timeout=60)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def wait_file(path, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def sleeping_stream(h, a, pid_dir):
    """A stream to bob's test.Sleep that runs in the background: (thread, result list, handler pid)."""
    before = set(os.listdir(pid_dir))
    res = []
    t = threading.Thread(target=lambda: res.append(run_stream(a, "bob", "test.Sleep", timeout=120)))
    t.start()
    h._wait(lambda: set(os.listdir(pid_dir)) - before, "the sleeping handler", 20)
    name = sorted(set(os.listdir(pid_dir)) - before)[0]
    wait_file(os.path.join(pid_dir, name))
    return t, res, int(open(os.path.join(pid_dir, name)).read())


def check_basic(h, a, b, pid_dir):
    data = os.urandom(3 * 1024 * 1024 + 17)
    rc, out, err = run_stream(a, "bob", "test.Echo", data)
    assert rc == 0, (rc, err)
    assert out == data, f"echo: {len(out)} bytes back of {len(data)}"
    # Each direction ends on its own: wc sees the caller's EOF, then answers.
    rc, out, err = run_stream(a, "bob", "test.Count", b"x" * 100000)
    assert rc == 0 and out.strip() == b"100000", (rc, out, err)
    # A service that closes its output at once and reads on gets all of the input.
    rc, out, err = run_stream(a, "bob", "test.Sink", data)
    assert rc == 0 and out == b"", (rc, out, err)
    h._wait(lambda: f"alice -> bob test.Sink: allow, {len(data)} bytes in" in h.log(), "test.Sink's audit line", 10)
    # One that exits before the input ends: the caller ends too (endless input: no hang).
    rc, out, err = endless_stream([h.guest_path, "--socket", a.socket, "run"], "bob")
    assert rc == 0 and out == b"\0" * 5, (rc, out, err)
    # Exit status; SERVICE+ARG before SERVICE.
    rc, out, err = run_stream(a, "bob", "test.Exit+7")
    assert rc == 7, (rc, err)
    rc, out, err = run_stream(a, "bob", "test.Exit+1")
    assert rc == 3, (rc, err)
    # A clean environment: the source and service are there, the agent's own variables are not.
    rc, out, err = run_stream(a, "bob", "test.Env+x1")
    env = dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
    assert rc == 0, (rc, err)
    assert env.get("VMFED_SOURCE") == "alice" and env.get("VMFED_SERVICE") == "test.Env", env
    assert env.get("VMFED_ARGUMENT") == "x1", env
    assert "VMFED_TEST_SECRET" not in env and "DBUS_SESSION_BUS_ADDRESS" not in env, env
    # Killed by a signal: 128+N.
    t, res, pid = sleeping_stream(h, a, pid_dir)
    os.kill(pid, signal.SIGKILL)
    t.join(30)
    assert res and res[0][0] == 128 + signal.SIGKILL, res


def check_refusals(h, a):
    expect_error(run_stream(a, "carol", "test.Echo", b"no"), "AccessDenied")
    expect_error(run_stream(a, "bob", "test.Unlisted", b"no"), "AccessDenied")
    err = expect_error(run_stream(a, "bob", "test.Missing", b"no"), "NotFound")
    assert "test.Missing" in err, err
    # The same with the longest names: the reason (the agent names both twice) is cut to what a
    # StreamEnded may carry, the caller still hears it, and every port of alice's to bob works after.
    rc, out, err = run_stream(a, "bob", LONG_SERVICE + "+" + "a" * 127, b"no")
    assert rc == 125 and "(NotFound)" in err and LONG_SERVICE[:40] in err, (rc, err)
    for i in range(8):
        rc, out, err = run_stream(a, "bob", "test.Echo", b"after a long refusal %d" % i)
        assert rc == 0 and out == b"after a long refusal %d" % i, (i, rc, out, err)
    # Found, but it cannot run (exec fails after the stream was set up): the caller's input is refused,
    # the reason comes with the exit status, and the next stream on that port works.
    rc, out, err = run_stream(a, "bob", "test.BadInterpreter", os.urandom(1 << 20))
    assert rc == 125 and "Cannot run" in err and "test.BadInterpreter" in err, (rc, err)
    rc, out, err = run_stream(a, "bob", "test.Echo", b"after a handler that could not run")
    assert rc == 0 and out == b"after a handler that could not run", (rc, out, err)
    expect_error(run_stream(a, "bob", "bad/name", b"no"), "InvalidArgs")
    expect_error(run_stream(a, "bob", "test.Echo+../x", b"no"), "InvalidArgs")


def check_target_gone(h, a, pid_dir):
    """bob's agent dies mid-stream: alice gets an error, the handler is gone, bob's next agent serves again."""
    t, res, pid = sleeping_stream(h, a, pid_dir)
    b = h.agents["bob"]
    b.proc.kill()
    b.proc.wait()
    t.join(30)
    # The agent's emulated ports die with it (in a VM QEMU keeps them): either reason may come first.
    assert res and res[0][0] != 0 and ("went away" in res[0][2] or "connection was closed" in res[0][2]), res
    h._wait(lambda: not pid_alive(pid), "the handler killed with its agent", 10)
    b.proc = None
    b.start()
    b.wait_connected()
    rc, out, err = run_stream(a, "bob", "test.Echo", b"after the agent came back")
    assert rc == 0 and out == b"after the agent came back", (rc, out, err)


def check_abort_while_starting(h, a, pid_dir):
    """A stream aborted while the target's agent has not answered StartService yet (bob stopped):
    its StopStream and StartService both wait for bob; once bob runs again, no handler is left."""
    bob = h.agents["bob"]
    before = set(os.listdir(pid_dir))
    log0 = len(h.log())
    os.kill(bob.proc.pid, signal.SIGSTOP)
    try:
        p = subprocess.Popen([h.guest_path, "--socket", a.socket, "run", "bob", "test.Sleep"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        h._wait(lambda: "alice -> bob test.Sleep" in h.log()[log0:] or "to bob open" in h.log()[log0:],
                "the stream to the stopped bob set up", 20)
        p.kill()
        p.wait()
        h._wait(lambda: re.search(r"Stream \d+ alice -> bob test\.Sleep aborted", h.log()[log0:]),
                "the stream aborted while bob was stopped", 20)
    finally:
        os.kill(bob.proc.pid, signal.SIGCONT)
    # bob gets StartService, then StopStream: whatever it started is killed.
    time.sleep(1)
    for name in set(os.listdir(pid_dir)) - before:
        path = os.path.join(pid_dir, name)
        wait_file(path)
        pid = int(open(path).read())
        h._wait(lambda: not pid_alive(pid), "the handler of the aborted stream stopped", 10)
    data = os.urandom(100000)
    rc, out, err = run_stream(a, "bob", "test.Echo", data)
    assert rc == 0 and out == data, (rc, len(out), err)


def check_broker_gone(h, a, pid_dir):
    """vmfedd SIGKILLed mid-stream: error, handler killed; after a restart streams work."""
    t, res, pid = sleeping_stream(h, a, pid_dir)
    h.stop_daemon(signal.SIGKILL)
    t.join(30)
    assert res and res[0][0] != 0 and "lost" in res[0][2], res
    h._wait(lambda: not pid_alive(pid), "the handler killed when the broker went", 10)
    h.start_daemon()
    for n in ("alice", "bob", "carol", "dave"):
        h.agents[n].wait_connected(20)
    data = os.urandom(200000)
    rc, out, err = run_stream(a, "bob", "test.Echo", data)
    assert rc == 0 and out == data, (rc, len(out), err)


def check_concurrent(h):
    """64 streams at once between three VMs, each byte-identical."""
    names = ["alice", "bob", "carol"]
    jobs = []
    for i in range(64):
        src, dst = names[i % 3], names[(i + 1) % 3]
        data = os.urandom(65536 + i * 1000)
        p = subprocess.Popen([h.guest_path, "--socket", h.agents[src].socket, "run", dst, "test.Echo"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        jobs.append((p, data))
    results = [None] * len(jobs)

    def talk(i):
        p, data = jobs[i]
        results[i] = p.communicate(data, timeout=180)

    threads = [threading.Thread(target=talk, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(200)
    for i, (p, data) in enumerate(jobs):
        out, err = results[i]
        assert p.returncode == 0, (i, p.returncode, err)
        assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest(), (i, len(out), len(data))


def check_many_clients(h):
    """80 apps of one VM at once: the agent serves 64 Guest1 clients, the other 16 wait in its listen
    queue (not refused) until one leaves; every stream runs, byte-identical."""
    jobs = []
    for i in range(80):
        p = subprocess.Popen([h.guest_path, "--socket", h.agents["alice"].socket, "run", "bob", "test.Echo"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        jobs.append((p, b"client %d\n" % i))
    time.sleep(0.5)  # all connected and waiting on their input: 64 served, 16 queued
    for p, _ in jobs:
        assert p.poll() is None, p.communicate()
    for p, data in jobs:  # all inputs first: a stream's turn at bob's ports comes in the broker's order
        p.stdin.write(data)
        p.stdin.close()
    for i, (p, data) in enumerate(jobs):
        out, err = p.stdout.read(), p.stderr.read()
        p.wait(timeout=120)
        assert p.returncode == 0 and out == data, (i, p.returncode, out, err)


def check_flood(h, a, d, pid_dir):
    """dave holds as many of bob's ports as it may and queues more; alice's copy still goes through."""
    flood = [subprocess.Popen([h.guest_path, "--socket", d.socket, "run", "bob", "test.Sleep"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(20)]
    h._wait(lambda: len(os.listdir(pid_dir)) >= 4, "dave's streams running", 30)
    data = os.urandom(8 * 1024 * 1024)
    rc, out, err = run_stream(a, "bob", "test.Echo", data, timeout=120)
    assert rc == 0 and out == data, (rc, len(out), err)
    for p in flood:
        p.kill()
        p.wait()
    # dave's streams still queued would start later: its agent restarting aborts them all.
    d.stop()
    d.start()
    d.wait_connected()
    time.sleep(0.5)
    for name in os.listdir(pid_dir):
        try:
            os.kill(int(open(os.path.join(pid_dir, name)).read()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
        os.unlink(os.path.join(pid_dir, name))


def make_tree(root, scale):
    """A directory of files of several sizes, a subdirectory, a symlink inside it; {relative path: bytes}."""
    os.makedirs(os.path.join(root, "sub", "deeper"))
    want = {}
    for rel, size in (("a.bin", 5 * scale + 3), ("sub/b.bin", 2 * scale), ("sub/deeper/c.txt", 1),
                      ("sub/empty", 0), ("top file with spaces", scale // 3)):
        data = os.urandom(size)
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
        want[rel] = data
    os.chmod(os.path.join(root, "a.bin"), 0o750)
    os.symlink("deeper/c.txt", os.path.join(root, "sub", "link"))
    return want


def check_tree(got_root, want):
    for rel, data in want.items():
        with open(os.path.join(got_root, rel), "rb") as f:
            got = f.read()
        assert got == data, f"{rel}: {len(got)} bytes, want {len(data)}"
    assert os.readlink(os.path.join(got_root, "sub", "link")) == "deeper/c.txt"
    assert os.stat(os.path.join(got_root, "a.bin")).st_mode & 0o777 == 0o750


def check_copy_to(h, a, incoming):
    """vmfed-guest copy-to / move-to through vmfed.FileCopy / FileMove: a tree byte-identical in
    bob's Incoming/alice/, a move removes its sources, a refused copy keeps them and leaves nothing."""
    src = os.path.join(h.tmp, "copy-src")
    want = make_tree(os.path.join(src, "tree"), 1 << 20)
    rc, out, err = a.guest("copy-to", "bob", os.path.join(src, "tree"), timeout=120)
    assert rc == 0 and b"Copied 5 files, 3 directories, 1 symlink" in out, (rc, out, err)
    check_tree(os.path.join(incoming["bob"], "alice", "tree"), want)
    # Again: a second copy never overwrites the first, it arrives beside it.
    rc, out, err = a.guest("copy-to", "bob", os.path.join(src, "tree"), timeout=120)
    assert rc == 0, (rc, err)
    check_tree(os.path.join(incoming["bob"], "alice", "tree (1)"), want)
    # A move: everything arrives, then the sources are gone.
    mv = os.path.join(h.tmp, "move-src")
    want_mv = make_tree(os.path.join(mv, "moved"), 64 << 10)
    # A move keeps what changed since the coarse clock's last tick before it began (docs/file-copy.md):
    # on a fast machine the move begins within the tick the tree was written in.
    time.sleep(3 * time.clock_getres(5))  # 5: CLOCK_REALTIME_COARSE (Linux), not named by Python 3.11
    rc, out, err = a.guest("move-to", "bob", os.path.join(mv, "moved"), timeout=120)
    assert rc == 0 and b"Moved" in out, (rc, out, err)
    check_tree(os.path.join(incoming["bob"], "alice", "moved"), want_mv)
    assert not os.path.exists(os.path.join(mv, "moved")), os.listdir(mv)
    # dave's receiver takes at most 1 MiB: refused with its reason, the move keeps its sources,
    # nothing under a final name in dave's Incoming.
    want_big = make_tree(os.path.join(mv, "big"), 1 << 20)
    rc, out, err = a.guest("move-to", "dave", os.path.join(mv, "big"), timeout=120)
    assert rc == 1 and "limit" in err, (rc, out, err)
    check_tree(os.path.join(mv, "big"), want_big)
    left = []
    for dirpath, dirs, files in os.walk(os.path.join(incoming["dave"], "alice")):
        left += [os.path.join(dirpath, f) for f in files]
    assert not left, left
    # Denied by the policy (carol is not listed): the reason, and nothing sent.
    rc, out, err = a.guest("copy-to", "carol", os.path.join(src, "tree"))
    assert rc == 1 and "AccessDenied" in err, (rc, err)
    # Nothing to send: said before any stream exists.
    rc, out, err = a.guest("copy-to", "bob", os.path.join(src, "no-such-file"))
    assert rc == 1 and "no-such-file" in err, (rc, err)
    assert "alice -> bob vmfed.FileMove: allow" in h.log()


def expect_failure(result, needle):
    """vmfed-guest failed (rc 1) and said why on stderr."""
    rc, out, err = result
    err = err.decode(errors="replace") if isinstance(err, bytes) else err
    assert rc == 1 and needle in err, (rc, out, err)


def check_open_file(h, a, pid_dir, events, opener):
    """vmfed-guest open-file through a vmfed.OpenFile stream: over 16 MiB by itself, smaller with
    --stream; the edited file replaces the original (mode kept), an unchanged or removed one leaves
    it alone; the target's limit, a cut-off, an overlong and a garbage answer leave it as it was."""
    work = os.path.join(h.tmp, "open")
    os.makedirs(work)
    big = os.path.join(work, "big report.bin")
    body = b"edit\n" + os.urandom(20 << 20)
    with open(big, "wb") as f:
        f.write(body)
    os.chmod(big, 0o640)
    out = a.guest_ok("open-file", big, "bob", timeout=120)
    assert out.split() == [b"bob", b"changed"], out
    with open(big, "rb") as f:
        assert f.read() == body + b" (edited)"
    assert os.stat(big).st_mode & 0o777 == 0o640
    ev = [json.loads(line) for line in open(events["bob"])][-1]
    assert ev["mode"] == "file-by-content" and ev["size"] == len(body), {k: ev[k] for k in ev if k != "content"}
    assert ev["sha256"] == hashlib.sha256(body).hexdigest() and ev["argv"][0].endswith("/big report.bin"), ev
    open_dir = os.path.join(h.tmp, "open-incoming-bob")
    assert os.listdir(open_dir) == [], os.listdir(open_dir)  # the private directory is gone, backups and all
    rx = re.compile(r"audit: stream \d+ alice -> bob vmfed\.OpenFile: allow, (\d+) bytes in, (\d+) bytes out")
    h._wait(lambda: rx.search(h.log()), "the audit line of the stream")
    m = rx.search(h.log())
    assert int(m.group(1)) > len(body) and int(m.group(2)) > len(body), m.group(0)

    small = os.path.join(work, "notes.txt")
    for first, want in ((b"keep", b"unchanged"), (b"rm", b"unchanged"), (b"edit", b"changed")):
        with open(small, "wb") as f:
            f.write(first + b"\nsmall")
        before = os.stat(small)
        out = a.guest_ok("open-file", "--stream", small, "bob")
        assert out.split() == [b"bob", want], (first, out)
        now = os.stat(small)
        if want == b"unchanged":
            assert (now.st_ino, now.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), first
        else:
            assert open(small, "rb").read() == b"edit\nsmall (edited)"

    # A stream aborted while the viewer has the file (the caller killed): the handler is killed with
    # it and leaves its directory; the next handler there removes it.
    with open(small, "wb") as f:
        f.write(b"sleep\nsmall")
    p = subprocess.Popen([h.guest_path, "--socket", a.socket, "open-file", "--stream", small, "bob"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        h._wait(lambda: any(os.path.exists(os.path.join(open_dir, d, "notes.txt")) for d in os.listdir(open_dir)),
                "the file in the handler's directory")
    finally:
        p.kill()
        p.communicate()
    h._wait(lambda: "vmfed.OpenFile: aborted" in h.log(), "the aborted stream's audit line")
    stale = os.listdir(open_dir)
    assert len(stale) == 1 and stale[0].startswith("open-"), stale
    assert open(small, "rb").read() == b"sleep\nsmall"
    with open(small, "wb") as f:
        f.write(b"keep\nsmall")
    assert a.guest_ok("open-file", "--stream", small, "bob").split() == [b"bob", b"unchanged"]
    assert os.listdir(open_dir) == [], os.listdir(open_dir)

    # dave takes at most 1 MiB: refused before anything is stored, the file as it was.
    two = os.path.join(work, "two.bin")
    data = os.urandom(2 << 20)
    with open(two, "wb") as f:
        f.write(data)
    # 2 MiB is over this broker's [Clipboard] MaxSize=1M: the D-Bus call gets TooLarge (before the
    # policy: nothing was asked), and vmfed-guest takes the stream instead.
    log0 = len(h.log())
    out = a.guest_ok("open-file", two, "bob")
    assert out.split() == [b"bob", b"unchanged"] and open(two, "rb").read() == data, out
    assert re.search(r"audit: stream \d+ alice -> bob vmfed\.OpenFile: allow", h.log()[log0:]), h.log()[log0:]
    expect_failure(a.guest("open-file", "--stream", two, "dave"), "over this VM's limit of 1048576 bytes")
    assert open(two, "rb").read() == data

    # carol answers hostile things: alice's file stays as it was, no temporary file is left.
    answer = os.path.join(pid_dir, "open-answer")
    for reply, why in ((b"CHANGED 100\n" + b"x" * 50, "cut off after 50 of 100 bytes"),
                       (b"CHANGED 5\nhelloEXTRA", "More than the 5 bytes announced"),
                       (b"CHANGED 99999999999999\n", "over the limit"),
                       (b"CHANGED 05\nhello", "not UNCHANGED, CHANGED SIZE or ERROR"),
                       (b"ERROR \x1b[31mno\n", "?[31mno"),
                       (b"\x00" * 4096, "not a line of at most 512 bytes"),
                       (b"", "ended without an answer")):
        with open(answer, "wb") as f:
            f.write(reply)
        expect_failure(a.guest("open-file", "--stream", two, "carol"), why)
        assert open(two, "rb").read() == data, reply
        assert sorted(os.listdir(work)) == ["big report.bin", "notes.txt", "two.bin"], os.listdir(work)
    # No setuid bit comes back on a file edited in another VM.
    with open(small, "wb") as f:
        f.write(b"edit\nsmall")
    os.chmod(small, 0o4755)
    assert a.guest_ok("open-file", "--stream", small, "bob").split() == [b"bob", b"changed"]
    assert os.stat(small).st_mode & 0o7777 == 0o755, oct(os.stat(small).st_mode)

    # A header the handler cannot take: the real receiver's own refusals, from the raw stream.
    for raw, why in ((b"VMFED-OPENFILE1 5 ../x\nhello", "not a plain name"),
                     (b"VMFED-OPENFILE1 5 x\nhelloMORE", "More data followed"),
                     (b"VMFED-OPENFILE1 9 x\nhello", "ended after 5 of the file's 9 bytes"),
                     (b"VMFED-OPENFILE2 5 x\nhello", "does not start with VMFED-OPENFILE1")):
        r = subprocess.run([opener, "--dir", os.path.join(work, "raw"), "--viewer", "true"], input=raw,
                           capture_output=True, timeout=30, env={"VMFED_SOURCE": "alice", "HOME": work})
        assert r.returncode == 1 and r.stdout.startswith(b"ERROR ") and why.encode() in r.stdout, (raw, r)
        assert not os.path.exists(os.path.join(work, "raw")) or os.listdir(os.path.join(work, "raw")) == [], raw


def check_host(h, vmfedctl):
    """vmfedctl run: a stream from the host (policy source @host), plain bytes, the handler's status."""
    def ctl(*args, data=b""):
        r = subprocess.run([vmfedctl, "run", "--address", h.address] + list(args), input=data,
                           capture_output=True, timeout=60)
        return r.returncode, r.stdout, r.stderr.decode(errors="replace")
    data = os.urandom(1 << 20)
    rc, out, err = ctl("bob", "test.Echo", data=data)
    assert rc == 0 and out == data, (rc, len(out), err)
    # More than the sockets and pipes on the way hold: the copy must read the output while it writes.
    big = os.urandom(16 << 20)
    rc, out, err = ctl("bob", "test.Echo", data=big)
    assert rc == 0 and out == big, (rc, len(out), err)
    rc, out, err = ctl("bob", "test.Sink", data=big)
    assert rc == 0 and out == b"", (rc, len(out), err)
    h._wait(lambda: f"@host -> bob test.Sink: allow, {len(big)} bytes in" in h.log(), "the host's test.Sink", 10)
    rc, out, err = endless_stream([vmfedctl, "run", "--address", h.address], "bob")
    assert rc == 0 and out == b"\0" * 5, (rc, out, err)
    rc, out, err = ctl("bob", "test.Exit+7")
    assert rc == 7, (rc, err)
    rc, out, err = ctl("carol", "test.Echo", data=b"no")
    assert rc == 125 and "AccessDenied" in err, (rc, err)
    rc, out, err = ctl("bob", "test.Missing")
    assert rc == 125 and "test.Missing" in err, (rc, err)
    assert "audit: stream" in h.log() and "@host -> bob test.Echo: allow" in h.log()


def main(vmfedd, agent, guest, vmfedctl=""):
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY, services_conf="[Clipboard]\nMaxSize=1M\n") as h:
        pid_dir = os.path.join(h.tmp, "pids")
        os.makedirs(pid_dir)
        os.environ["VMFED_TEST_SECRET"] = "must not reach a handler"
        receiver = os.path.join(os.path.dirname(os.path.abspath(guest)), "vmfed-file-copy-receive")
        incoming = {n: os.path.join(h.tmp, "incoming-" + n) for n in VMS}
        opener = os.path.join(os.path.dirname(os.path.abspath(guest)), "vmfed-open-file-receive")
        events = {n: os.path.join(h.tmp, "open-events-" + n) for n in VMS}
        open_limits = {"dave": "1M", "carol": "hostile"}
        agents = {n: h.agent(n, services=handlers(pid_dir, receiver, incoming[n],
                                                   max_bytes="1M" if n == "dave" else "4G", opener=opener,
                                                   events=events[n], open_limit=open_limits.get(n, "4G")))
                  for n in ("alice", "bob", "carol", "dave")}
        a = agents["alice"]
        check_basic(h, a, agents["bob"], pid_dir)
        check_copy_to(h, a, incoming)
        check_open_file(h, a, pid_dir, events, opener)
        check_refusals(h, a)
        check_concurrent(h)
        check_many_clients(h)
        if vmfedctl:
            check_host(h, vmfedctl)
        check_flood(h, a, agents["dave"], pid_dir)
        check_target_gone(h, a, pid_dir)
        check_abort_while_starting(h, a, pid_dir)
        check_broker_gone(h, a, pid_dir)
        log = h.log()
        assert "audit: stream" in log and "alice -> bob test.Echo: allow" in log, log[-3000:]
        assert "bytes in" in log and "exit status 0" in log


if __name__ == "__main__":
    run(main)
