# SPDX-License-Identifier: LGPL-2.1-or-later
"""Start a private dbus-daemon and a real vmfedd for a test; clean up always.

Usage:
    with Harness(vmfedd) as h:
        h.call("Manager", "ListVMs")

Everything lives in one temporary directory (mode 0755 so the nobody user
can reach the bus socket); the dbus-daemon and vmfedd are killed and the
directory removed on exit, on exceptions and on SIGTERM/SIGINT.

A test fails when vmfedd did not stop cleanly: when it exits non-zero (or
hangs) after SIGTERM/SIGINT, or when its log holds a sanitizer report
(ASan/LSan/UBSan in the build-san build) or a valgrind error.  With
VMFED_TEST_VALGRIND=1 vmfedd runs under valgrind memcheck (any error or
definite leak fails the test; suppressions: tests/valgrind/vmfed.supp) and every
wait in the harness is VMFED_TEST_TIMEOUT_SCALE (default 10) times longer.
"""
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUS = "org.vmfed.Federation1"
ROOT = "/org/vmfed/Federation1"
IFACE = {
    "Manager": "org.vmfed.Federation1.Manager",
    "Policy": "org.vmfed.Federation1.Policy",
    "VM": "org.vmfed.Federation1.VM",
}
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

DBUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

# Like Debian's /usr/share/dbus-1/system.conf: deny by default, then our
# installed policy file (broker/data/org.vmfed.Federation1.conf).
DBUS_SYSTEM_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>{policy_file}</include>
</busconfig>
"""

# @KERNEL@ becomes a (dummy) file in the test's directory: the federation
# needs a boot source that exists; test:///default never reads it.
DEFAULT_VMS = {
    "rivendale": "[VM]\nRole=persona\nTags=dev;work\nKernel=@KERNEL@\n",
    "gondor": "[VM]\nRole=persona\nTags=games\nKernel=@KERNEL@\n",
    "netvm": "[VM]\nRole=service\nKernel=@KERNEL@\n",
    "test": "[VM]\nRole=app\nTags=probe\nKernel=@KERNEL@\n",
}

DEFAULT_POLICY = {
    "30-user.policy": (
        "vmfed.Clipboard.Paste  *  @tag:dev  @tag:games  ask default_target=gondor\n"
        "vmfed.Clipboard.Paste  *  @anyvm    @anyvm      deny\n"
        "vmfed.OpenURL          *  rivendale @default    allow target=netvm\n"
        "vmfed.OpenURL          *  rivendale netvm       allow\n"
    ),
}

_live = []

VALGRIND = os.environ.get("VMFED_TEST_VALGRIND") == "1"
TIMEOUT_SCALE = float(os.environ.get("VMFED_TEST_TIMEOUT_SCALE", "10" if VALGRIND else "1"))
VALGRIND_EXIT = 99  # vmfedd's exit status when valgrind found an error or a definite leak
VALGRIND_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "valgrind", "vmfed.supp")

SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: UndefinedBehaviorSanitizer|"
                              r"^\S+:\d+:\d+: runtime error: ", re.M)
VALGRIND_REPORT = re.compile(r"^==\d+== (ERROR SUMMARY: [1-9]\d* errors|\s*definitely lost: [1-9][\d,]* bytes)", re.M)


def scaled(seconds):
    """A timeout for the test's environment: longer under valgrind."""
    return seconds * TIMEOUT_SCALE


def wrap_command(args):
    """args, run under valgrind memcheck when VMFED_TEST_VALGRIND=1.

    --child-silent-after-fork: g_spawn_async() forks an intermediate child
    that forks the program and _exit()s.  valgrind leak-checks that child
    too, with only the forking thread's stack: a block held at that instant
    only by another thread (GLib's worker) was reported as "definitely lost"
    under the daemon's name (CI, agent dave in valgrind-services-open, 88
    bytes; the parent itself reported 0).  What runs between fork and exec
    is GLib's, and the daemon's own exit is still checked."""
    if not VALGRIND:
        return args
    return ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite", "--error-exitcode=%d" % VALGRIND_EXIT,
            "--suppressions=" + os.path.normpath(VALGRIND_SUPP), "--num-callers=30",
            "--trace-children=no", "--child-silent-after-fork=yes"] + args


def memory_errors(text):
    """The sanitizer or valgrind reports in a daemon's log, as short strings."""
    found = [m.group(0).strip() for m in SANITIZER_REPORT.finditer(text)]
    found += [m.group(0).strip() for m in VALGRIND_REPORT.finditer(text)]
    return found


class DaemonError(AssertionError):
    """vmfedd did not stop cleanly or reported memory errors."""


def _die_with_parent():
    """In a child: get SIGKILL when the test process dies, however it dies."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def kill_processes_using(path):
    """SIGKILL every process (but us) whose command line names path.

    Catches what the test's children started in turn and left behind, such as
    apps an agent launched: they are not our children, and PR_SET_PDEATHSIG
    does not reach them."""
    me = os.getpid()
    needle = path.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


def _cleanup_all(*_):
    for h in list(_live):
        h.stop()


atexit.register(_cleanup_all)


def _on_signal(signum, frame):
    _cleanup_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


class CallError(Exception):
    def __init__(self, name, message, stderr):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.stderr = stderr


class Harness:
    def __init__(self, vmfedd, vms=None, policy=None, debug=False, extra_args=(), system_policy=None,
                 uri="test:///default", env=None):
        self.vmfedd_path = vmfedd
        self.vms = DEFAULT_VMS if vms is None else vms
        self.policy = DEFAULT_POLICY if policy is None else policy
        self.debug = debug
        self.extra_args = list(extra_args)
        self.system_policy = system_policy  # path of our D-Bus policy file: a system-like bus
        self.uri = uri
        self.env = env  # extra environment for vmfedd
        self.dbus = None
        self.daemon = None
        self.tmp = None
        self.problems = []  # why vmfedd did not stop cleanly (see stop_daemon)

    # ---- lifecycle -------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.dump_log()
        self.stop()
        return False

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="vmfed-broker-test-")
        _live.append(self)
        os.chmod(self.tmp, 0o755)
        self.bus_path = os.path.join(self.tmp, "bus")
        self.address = "unix:path=" + self.bus_path
        self.config_dir = os.path.join(self.tmp, "etc")
        self.state_dir = os.path.join(self.tmp, "state")
        self.policy_dir = os.path.join(self.config_dir, "policy.d")
        os.makedirs(os.path.join(self.config_dir, "vms.d"))
        os.makedirs(self.policy_dir)
        os.makedirs(self.state_dir)
        self.kernel = os.path.join(self.tmp, "kernel")
        with open(self.kernel, "w") as f:
            f.write("not a kernel: test:///default does not boot\n")
        for name, text in self.vms.items():
            with open(os.path.join(self.config_dir, "vms.d", name + ".vm"), "w") as f:
                f.write(text.replace("@KERNEL@", self.kernel))
        for name, text in self.policy.items():
            with open(os.path.join(self.policy_dir, name), "w") as f:
                f.write(text)
        conf = os.path.join(self.tmp, "bus.conf")
        with open(conf, "w") as f:
            if self.system_policy:
                f.write(DBUS_SYSTEM_CONFIG.format(path=self.bus_path, policy_file=self.system_policy))
            else:
                f.write(DBUS_CONFIG.format(path=self.bus_path))
        self.dbus = subprocess.Popen(["dbus-daemon", "--config-file=" + conf, "--nofork", "--nopidfile"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        self._wait(lambda: os.path.exists(self.bus_path), "dbus-daemon socket")
        self.start_daemon()

    def start_daemon(self):
        self.log_path = os.path.join(self.tmp, "vmfedd.log")
        log = open(self.log_path, "a")
        args = [self.vmfedd_path, "--config-dir", self.config_dir, "--state-dir", self.state_dir,
                "--libvirt-uri", self.uri, "--bus-address", self.address]
        if self.debug:
            args.append("--debug")
        args += self.extra_args
        env = dict(os.environ, **self.env) if self.env else None
        if VALGRIND:
            env = dict(env or os.environ, G_SLICE="always-malloc", G_DEBUG="gc-friendly")
        self.daemon = subprocess.Popen(wrap_command(args), stdout=log, stderr=log,
                                       preexec_fn=_die_with_parent, env=env)
        log.close()
        self._wait(self._daemon_ready, "vmfedd on the bus")

    def stop_daemon(self, sig=signal.SIGTERM, timeout=10):
        """Stop vmfedd with sig; its exit status (negative: killed by a signal).

        After SIGTERM or SIGINT vmfedd must exit with status 0 within timeout
        (scaled); else the harness records a problem and stop() fails.  When
        vmfedd already exited (a test killed it), nothing is sent or judged."""
        hung = sent = False
        if self.daemon and self.daemon.poll() is None:
            sent = True
            self.daemon.send_signal(sig)
            try:
                self.daemon.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                hung = True
                self.daemon.kill()
                self.daemon.wait()
        rc = self.daemon.returncode if self.daemon else None
        # (A daemon that a test killed itself before is not judged here; its log still is.)
        if sent and sig in (signal.SIGTERM, signal.SIGINT):
            if hung:
                self.problems.append(f"vmfedd did not exit within {scaled(timeout):g} s of {sig.name}")
            elif rc == VALGRIND_EXIT and VALGRIND:
                self.problems.append(f"valgrind found errors or definite leaks in vmfedd (exit {rc})")
            elif rc != 0:
                self.problems.append(f"vmfedd exited with {rc} after {sig.name}")
        self.daemon = None
        return rc

    def check_daemon_log(self):
        """Record the sanitizer/valgrind reports in vmfedd's log as problems."""
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except (OSError, AttributeError):
            return
        self.problems += [f"vmfedd.log: {e}" for e in memory_errors(text)]

    def stop(self):
        """Stop everything and remove the temp dir; raise DaemonError when vmfedd
        did not stop cleanly or its log has sanitizer/valgrind reports."""
        self.stop_daemon()
        self.check_daemon_log()
        problems, self.problems = self.problems, []
        if problems and self.tmp:
            self.dump_log()
        if self.dbus and self.dbus.poll() is None:
            self.dbus.kill()
            self.dbus.wait()
        self.dbus = None
        if self.tmp:
            kill_processes_using(self.tmp)
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        if self in _live:
            _live.remove(self)
        if problems:
            raise DaemonError("; ".join(dict.fromkeys(problems)))

    def dump_log(self):
        try:
            with open(self.log_path) as f:
                sys.stderr.write("---- vmfedd log ----\n" + f.read() + "--------------------\n")
        except (OSError, AttributeError):
            pass

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def _daemon_ready(self):
        if self.daemon.poll() is not None:
            self.dump_log()
            raise RuntimeError(f"vmfedd exited with {self.daemon.returncode}")
        r = subprocess.run(["busctl", "--address=" + self.address, "status", BUS],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0

    @staticmethod
    def _wait(cond, what, timeout=15):
        timeout = scaled(timeout)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            time.sleep(0.02)
        raise RuntimeError("timed out waiting for " + what)

    # ---- calling ---------------------------------------------------------
    def busctl(self, *args, user=None, check=True):
        cmd = (NOBODY if user == "nobody" else []) + ["busctl", "--address=" + self.address] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr}")
        return r

    def call(self, iface, method, signature="", *args, path=ROOT, user=None):
        """Call a method with busctl; returns the list of out values, raises CallError."""
        cmd = ["--json=short", "call", BUS, path, IFACE.get(iface, iface), method]
        if signature:
            cmd += [signature] + [str(a) for a in args]
        r = self.busctl(*cmd, user=user, check=False)
        if r.returncode != 0:
            raise CallError("?", r.stderr.strip(), r.stderr)
        out = r.stdout.strip()
        return json.loads(out)["data"] if out else []

    def call_error(self, iface, method, *args, path=ROOT, user=None):
        """Call with string arguments through dbus-send, which prints the error name.

        Returns (error_name, message) or (None, stdout) when the call succeeded."""
        cmd = (NOBODY if user == "nobody" else []) + [
            "dbus-send", "--bus=" + self.address, "--print-reply", "--dest=" + BUS, path,
            IFACE.get(iface, iface) + "." + method] + ["string:" + a for a in args]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            return None, r.stdout
        line = r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""
        # "Error org.vmfed.Federation1.Error.Conflict: message"
        if line.startswith("Error "):
            name, _, msg = line[len("Error "):].partition(": ")
            return name, msg
        return "?", r.stderr

    def call_error_typed(self, iface, method, *args, path=ROOT, user=None):
        """Like call_error with dbus-send typed arguments ("string:x", "boolean:true", "uint32:3")."""
        cmd = (NOBODY if user == "nobody" else []) + [
            "dbus-send", "--bus=" + self.address, "--print-reply", "--dest=" + BUS, path,
            IFACE.get(iface, iface) + "." + method] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            return None, r.stdout
        line = r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""
        if line.startswith("Error "):
            name, _, msg = line[len("Error "):].partition(": ")
            return name, msg
        return "?", r.stderr

    def get_property(self, iface, name, path=ROOT, user=None):
        r = self.busctl("--json=short", "get-property", BUS, path, IFACE.get(iface, iface), name, user=user)
        return json.loads(r.stdout)["data"]


class Monitor:
    """Collect the broker's signals in the background (busctl monitor --json=short).

    with Monitor(h) as mon:
        ...
        msg = mon.wait(lambda m: m["member"] == "Progress", timeout=5)
    Each message is busctl's JSON object ("member", "path", "interface",
    "payload": {"type": ..., "data": [...]}, "timestamp-realtime" in usec).
    """

    def __init__(self, h, match="type='signal',sender='" + BUS + "'"):
        import threading
        self.messages = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(["busctl", "--address=" + h.address, "monitor", "--json=short",
                                      "--match=" + match], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, preexec_fn=_die_with_parent)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        # busctl installs its match before it prints anything; a ping through the bus makes sure.
        time.sleep(0.3)

    def _read(self):
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                self.messages.append(msg)
                self._cond.notify_all()

    def wait(self, pred, timeout=10, start=0):
        """The first message (from index start) for which pred is true, or None after timeout (scaled)."""
        end = time.monotonic() + scaled(timeout)
        with self._cond:
            while True:
                for m in self.messages[start:]:
                    try:
                        if pred(m):
                            return m
                    except (KeyError, IndexError, TypeError):
                        pass
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(2)
        self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def state_changed(path, state):
    """A predicate for Monitor.wait: PropertiesChanged of VM.State on path to state."""
    def pred(m):
        if m.get("member") != "PropertiesChanged" or m.get("path") != path:
            return False
        data = m["payload"]["data"]
        return data[0] == IFACE["VM"] and data[1].get("State", {}).get("data") == state
    return pred
