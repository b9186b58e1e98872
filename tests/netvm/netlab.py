# SPDX-License-Identifier: LGPL-2.1-or-later
"""Network namespaces for the netvm tests, removed again on any exit.

Names carry the test's PID, so runs never collide; every namespace, process
and temporary directory is cleaned up by cleanup(), which the tests call from
`finally` and from SIGTERM/SIGINT handlers.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NETTOOL = os.path.join(HERE, "nettool.py")
PYTHON = sys.executable or "python3"


class Failure(Exception):
    pass


class Lab:
    def __init__(self, tag):
        self.prefix = "vmf%s%d" % (tag, os.getpid())
        self.namespaces = []
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="vmfed-%s-" % tag)
        self.checks = 0
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)

    def _signal(self, signum, frame):
        self.cleanup()
        sys.exit(128 + signum)

    # -- namespaces and commands --

    def ns(self, name):
        full = "%s-%s" % (self.prefix, name)
        self.sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        self.sh("ip", "-n", full, "link", "set", "lo", "up")
        # No DAD delays: addresses in these tests are unique by construction.
        self.nsx(full, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0")
        self.nsx(full, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0")
        return full

    def sh(self, *argv, check=True, capture=False, timeout=30):
        r = subprocess.run(argv, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise Failure("command failed (%d): %s\n%s" % (r.returncode, " ".join(argv), r.stderr))
        return r.stdout if capture else r.returncode

    def nsx(self, ns, *argv, **kw):
        return self.sh("ip", "netns", "exec", ns, *argv, **kw)

    def spawn(self, ns, *argv, log=None):
        out = open(log, "a") if log else subprocess.DEVNULL
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out, stderr=out,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def tool(self, ns, *args):
        """Run a nettool probe in ns; True when it succeeded."""
        return self.nsx(ns, PYTHON, NETTOOL, *args, check=False, timeout=20) == 0

    def veth(self, ns_a, name_a, ns_b, name_b, mac_a=None):
        self.sh("ip", "link", "add", "vt%d" % os.getpid(), "netns", ns_a, "type", "veth",
                "peer", "name", "vu%d" % os.getpid(), "netns", ns_b)
        self.sh("ip", "-n", ns_a, "link", "set", "vt%d" % os.getpid(), "name", name_a)
        self.sh("ip", "-n", ns_b, "link", "set", "vu%d" % os.getpid(), "name", name_b)
        if mac_a:
            self.sh("ip", "-n", ns_a, "link", "set", name_a, "address", mac_a)
        self.sh("ip", "-n", ns_a, "link", "set", name_a, "up")
        self.sh("ip", "-n", ns_b, "link", "set", name_b, "up")

    # -- assertions --

    def check(self, cond, what):
        self.checks += 1
        if not cond:
            raise Failure("FAILED: " + what)
        print("ok %d - %s" % (self.checks, what), flush=True)

    def wait_for(self, fn, what, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if fn():
                return
            time.sleep(0.05)
        raise Failure("timed out waiting for " + what)

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                self.stop(p, signal.SIGKILL if p.poll() is None else signal.SIGTERM)
            except Exception:
                pass
        self.procs = []
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        self.namespaces = []
        shutil.rmtree(self.tmp, ignore_errors=True)


def require_root():
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        sys.exit(77)
