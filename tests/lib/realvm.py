# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the whole-federation tests (tests/e2e/e2e.py, tests/faults/faults.py)
share on the Python side; tests/lib/realvm.sh is their shell side.

Every domain of a run is named PREFIX + VM (the broker's DomainPrefix).
"""
import grp
import hashlib
import os
import subprocess
import threading

VIRSH = ["virsh", "-c", "qemu:///system"]


def running_domains(prefix):
    """The VM names of this run's running domains, or None when virsh failed."""
    r = subprocess.run(VIRSH + ["list", "--name"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return None
    return {d[len(prefix):] for d in r.stdout.split() if d.startswith(prefix)}


def tap_of(prefix, vm):
    """The host tap of vm's NIC, as federation/domain-xml.c names it."""
    return "vmf" + hashlib.sha256((prefix + vm).encode()).hexdigest()[:8]


def share_channels_with_qemu(state_dir):
    """Make STATE/channels reachable by QEMU, which runs as libvirt-qemu (the broker
    creates it 0750; tmpfiles.d gives it QEMU's group in a deployment)."""
    channels = os.path.join(state_dir, "channels")
    os.makedirs(channels, mode=0o750, exist_ok=True)
    try:
        os.chown(channels, 0, grp.getgrnam("libvirt-qemu").gr_gid)
    except (KeyError, OSError):
        pass


class PersonaSampler(threading.Thread):
    """Samples libvirt's running domains every `interval` s while it runs: any
    moment with more than one of `personas` running is a violation (the
    exclusive device had two holders).  halt.set() and join() to stop it."""

    def __init__(self, prefix, personas, interval=0.25):
        super().__init__(daemon=True)
        self.prefix = prefix
        self.personas = tuple(personas)
        self.interval = interval
        self.halt = threading.Event()
        self.samples = 0
        self.violations = []

    def run(self):
        while not self.halt.is_set():
            running = running_domains(self.prefix)
            if running is not None:
                self.samples += 1
                up = sorted(p for p in self.personas if p in running)
                if len(up) > 1:
                    self.violations.append(up)
            self.halt.wait(self.interval)
