#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A disposable whose domain vanished behind the broker's back while a routed
request to it is pending, and whose agent connection drops before the broker
has heard of the domain's end (issue 12's use-after-free path).

The broker runs the federation on libvirtd's test driver
(test+unix:///default, one instance shared by every connection to that
daemon), so `virsh destroy` can make the transient disposable's domain go
away from outside.  vmfedd is stopped (SIGSTOP) meanwhile, so that when it
runs on, the agent's hang-up and libvirt's "stopped" event are both
waiting: the hang-up is handled first (the connection is reaped from a
high-priority idle, libvirt's remote driver delivers events from a
zero-timeout timer), the routed call fails, the request's end releases the
disposable, the federation finds no domain and reports it stopped at once.

Before issue 12's redesign that last report closed the disposable's
channel from inside the channel's own teardown (channel.c read it
afterwards): an ASan report (build-san) or a crash.  What a user sees
now: the caller gets an error, the disposable is gone from ListVMs, its
channel is closed, vmfedd keeps serving and exits cleanly.

Usage: test_dispvm_gone.py VMFEDD VMFED_AGENT VMFED_GUEST [VMFEDCTL]
(run by test-dispvm-gone.sh, which provides libvirtd)
"""
import os
import signal
import subprocess
import threading
import time

from svc import AgentSpawner, ServicesHarness, expect_error, run, vm

SOCKET = os.environ.get("VMFED_LIBVIRT_SOCK", "/run/libvirt/libvirt-sock")
URI = "test+unix:///default?socket=" + SOCKET
PREFIX = f"vmfed-dg{os.getpid()}-"
VMS = {"alice": vm(), "dvm": vm("disposable-template")}
POLICY = {"30-open.policy": (
    "vmfed.OpenFile  *  alice  @dispvm  allow\n"
    "vmfed.Ping      *  @anyvm @anyvm   allow\n"
    "*               *  @anyvm @anyvm   deny\n"
)}
CONF = "[Agents]\nConnectTimeout=20\n"


def virsh(*args):
    return subprocess.run(["virsh", "-c", URI] + list(args), capture_output=True, text=True, timeout=30)


def main(vmfedd, agent, guest, vmfedctl=""):
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY, services_conf=CONF, uri=URI,
                         extra_args=["--domain-prefix", PREFIX]) as h:
        a = h.agent("alice")
        path = os.path.join(h.tmp, "doc.txt")
        with open(path, "w") as f:
            f.write("doc")
        spawner = AgentSpawner(h, skip=["alice", "dvm"], file_mode="sleep")
        handler_pid = None
        try:
            res = []
            t = threading.Thread(target=lambda: res.append(a.guest("open-file", path, "@dispvm")))
            t.start()
            h._wait(lambda: spawner.started, "a disposable's channel", 20)
            d = spawner.started[0]
            h._wait(lambda: d in h.agents and any(e["mode"] == "file-sleep" for e in h.agents[d].read_events()),
                    "the viewer running in the disposable", 20)
            handler_pid = [e for e in h.agents[d].read_events() if e["mode"] == "file-sleep"][0]["pid"]
            assert virsh("domstate", PREFIX + d).stdout.strip() == "running"

            os.kill(h.daemon.pid, signal.SIGSTOP)
            try:
                r = virsh("destroy", PREFIX + d)
                assert r.returncode == 0, r.stderr
                ag = h.agents[d]
                ag.proc.kill()  # the hang-up: no answer to the routed call
                ag.proc.wait()
                ag.proc = None
                time.sleep(0.3)
            finally:
                os.kill(h.daemon.pid, signal.SIGCONT)

            t.join(30)
            assert res, "open-file did not return"
            expect_error(res[0], "Failed", "disconnected before it answered")
            assert h.daemon.poll() is None, "vmfedd died"
            h._wait(lambda: not os.path.exists(h.channel(d)), "the disposable's channel closed", 15)
            vms = [v[0] for v in h.call("Manager", "ListVMs")[0]]
            assert d not in vms, vms
            assert a.guest_ok("ping", "alice").strip() == b"alice"
        finally:
            spawner.stop()
            if handler_pid:
                try:
                    os.kill(handler_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    return 0


if __name__ == "__main__":
    run(main)
