# SPDX-License-Identifier: LGPL-2.1-or-later
"""Services tests: the real vmfedd on a private bus (tests/broker/harness.py)
plus real vmfed-agent processes standing in for VMs, each connected to the
broker's channel socket STATE/channels/VM.sock with --channel and offering
Guest1 on a private socket, driven with vmfed-guest.

Everything (broker, bus, agents, temp dirs) is torn down on exit, on
exceptions and on SIGTERM/SIGINT (harness.py's handlers).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("VMFED_SOURCE_ROOT", os.path.dirname(__file__) + "/../.."),
                                "tests", "broker"))
import harness  # noqa: E402
from harness import Harness, _die_with_parent, memory_errors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HANDLER = os.path.join(HERE, "handler.py")


def vm(role="app", extra=""):
    return f"[VM]\nRole={role}\nKernel=@KERNEL@\n{extra}"


class ServicesHarness(Harness):
    """A Harness that writes CONFIG/services.conf and runs agents."""

    def __init__(self, vmfedd, agent, guest, services_conf="", **kw):
        super().__init__(vmfedd, **kw)
        self.agent_path = agent
        self.guest_path = guest
        self.services_conf = services_conf
        self.agents = {}

    def start_daemon(self):
        with open(os.path.join(self.config_dir, "services.conf"), "w") as f:
            f.write(self.services_conf)
        super().start_daemon()

    def stop(self):
        for a in list(self.agents.values()):
            a.stop()
        try:
            super().stop()  # (dumps the agents' logs too when something was wrong)
        finally:
            self.agents = {}

    def dump_log(self):
        super().dump_log()
        for a in self.agents.values():
            a.dump_log()

    def channel(self, name):
        return os.path.join(self.state_dir, "channels", name + ".sock")

    def agent(self, name, wait=True, **kw):
        a = Agent(self, name, **kw)
        self.agents[name] = a
        a.start()
        if wait:
            a.wait_connected()
        return a

    def policy_set(self, name, text):
        with open(os.path.join(self.policy_dir, name), "w") as f:
            f.write(text)
        self.call("Manager", "Reload")


class Agent:
    def __init__(self, h, name, apps=(), file_mode="keep", services=None, streams=None):
        self.h = h
        self.name = name
        self.dir = os.path.join(h.tmp, "agent-" + name)
        os.makedirs(self.dir, exist_ok=True)
        self.socket = os.path.join(self.dir, "guest.sock")
        self.events = os.path.join(self.dir, "events.jsonl")
        self.log_path = os.path.join(self.dir, "agent.log")
        self.apps_dir = os.path.join(self.dir, "apps")
        os.makedirs(self.apps_dir, exist_ok=True)
        for app in apps:
            with open(os.path.join(self.apps_dir, app + ".desktop"), "w") as f:
                f.write(f"[Desktop Entry]\nType=Application\nName={app}\n"
                        f"Exec={sys.executable} {HANDLER} app {self.events} {app} %U\n")
        self.file_mode = file_mode
        self.proc = None
        # Streams (docs/streams.md): the agent stands in for QEMU on STATE/channels/NAME.stream.I.sock
        # and runs handlers from its own services dir (name -> script text, made executable).
        self.services = services
        self.streams = streams
        self.services_dir = os.path.join(self.dir, "services")
        if services is not None:
            os.makedirs(self.services_dir, exist_ok=True)
            for svc_name, text in services.items():
                p = os.path.join(self.services_dir, svc_name)
                with open(p, "w") as f:
                    f.write(text)
                os.chmod(p, 0o755)

    def start(self):
        log = open(self.log_path, "a")
        args = [self.h.agent_path, "--channel", self.h.channel(self.name), "--guest-socket", self.socket,
                "--apps-dir", self.apps_dir, "--files-dir", os.path.join(self.dir, "files"),
                "--url-handler", f"{sys.executable} {HANDLER} url {self.events}",
                "--file-handler", f"{sys.executable} {HANDLER} file-{self.file_mode} {self.events}",
                "--debug"]
        if self.services is not None:
            args += ["--stream-socket-prefix", os.path.join(self.h.state_dir, "channels", self.name + ".stream."),
                     "--services-dir", self.services_dir]
            if self.streams is not None:
                args += ["--streams", str(self.streams)]
        env = None
        if harness.VALGRIND:
            env = dict(os.environ, G_SLICE="always-malloc", G_DEBUG="gc-friendly")
        self.proc = subprocess.Popen(harness.wrap_command(args), stdout=log, stderr=log,
                                     preexec_fn=_die_with_parent, env=env)
        log.close()

    def stop(self):
        """Stop the agent with SIGTERM; it must exit 0 (else the harness fails the test)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(harness.scaled(5))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.h.problems.append(f"agent {self.name} did not exit on SIGTERM")
            else:
                if self.proc.returncode != 0:
                    self.h.problems.append(f"agent {self.name} exited with {self.proc.returncode} after SIGTERM")
        self.proc = None
        # Sanitizer reports (build-san) fail the test through the harness.
        try:
            with open(self.log_path, errors="replace") as f:
                self.h.problems += [f"agent {self.name}: {e}" for e in memory_errors(f.read())]
        except OSError:
            pass

    def dump_log(self):
        try:
            with open(self.log_path) as f:
                sys.stderr.write(f"---- agent {self.name} ----\n{f.read()}")
        except OSError:
            pass

    def guest(self, *args, input=None, timeout=60):
        """Run vmfed-guest against this agent: (returncode, stdout bytes, stderr text)."""
        r = subprocess.run([self.h.guest_path, "--socket", self.socket] + list(args), input=input,
                           capture_output=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr.decode(errors="replace")

    def guest_ok(self, *args, input=None, timeout=60):
        rc, out, err = self.guest(*args, input=input, timeout=timeout)
        if rc != 0:
            raise AssertionError(f"vmfed-guest {' '.join(args)} in {self.name} failed ({rc}): {err}")
        return out

    def connected(self):
        if not os.path.exists(self.socket):
            return False
        rc, out, _ = self.guest("status")
        return rc == 0 and f"vm {self.name}".encode() in out

    def wait_connected(self, timeout=15):
        Harness._wait(self.connected, f"agent {self.name} connected", timeout)

    def read_events(self):
        try:
            with open(self.events) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def wait_event(self, pred, what, timeout=15):
        Harness._wait(lambda: any(pred(e) for e in self.read_events()), what, timeout)


def expect_error(result, name, needle=None):
    rc, out, err = result
    assert rc != 0, f"expected {name}, got success: {out!r}"
    assert f"({name})" in err, f"expected ({name}) in: {err}"
    if needle:
        assert needle in err, f"expected '{needle}' in: {err}"
    return err


def run(main):
    """Run a test main(vmfedd, agent, guest, ...) and print ok."""
    rc = main(*sys.argv[1:])
    if rc in (None, 0):
        print("ok")
        sys.exit(0)
    sys.exit(rc)


class AgentSpawner:
    """Start an agent for every channel socket that appears (disposables and
    VMs the broker starts), like QEMU + the guest's agent would.  A thread
    polls STATE/channels; its agents die with it (PR_SET_PDEATHSIG follows
    the creating thread), at stop() at the latest."""

    def __init__(self, h, skip=(), **agent_kw):
        import threading
        self.h = h
        self.known = set(skip)
        self.agent_kw = agent_kw
        self.started = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        d = os.path.join(self.h.state_dir, "channels")
        while not self._stop:
            try:
                names = [n[:-5] for n in os.listdir(d)
                         if n.endswith(".sock") and ".stream." not in n and "@" not in n]
            except OSError:
                names = []
            for n in names:
                if n not in self.known and n not in self.h.agents:
                    self.known.add(n)
                    self.started.append(n)
                    self.h.agent(n, wait=False, **self.agent_kw)
            time.sleep(0.05)

    def stop(self):
        self._stop = True
        self._thread.join(2)
