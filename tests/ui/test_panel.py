#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Drive the real vmfed-panel on a real display server, as a person would.

One headless sway (WLR_BACKENDS=headless, pixman) runs as the unprivileged
user nobody (sway refuses root) with its own XDG_RUNTIME_DIR (0700); the
panel runs there as nobody with the supplementary group `users`, which is
vmfedd's --manage-group, so the broker lets it act.  The real vmfedd runs on
test:///default on a private bus (tests/broker/harness.py), real
vmfed-agent processes stand in for VMs (tests/services/svc.py), a private
session bus carries the panel's notifications to notify-server.  Input is
sent with wtype (sway's virtual-keyboard protocol); the window tree is read
with swaymsg; grim takes the screenshots, saved in meson-logs/ui/.

What the panel shows is read from its trace (G_MESSAGES_DEBUG=vmfed-panel:
one line per label it sets), from the window tree and from the broker.

Usage: test_panel.py VMFEDD VMFED_AGENT VMFED_GUEST VMFED_PANEL NOTIFY_SERVER FAKE_BROKER
"""
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("VMFED_SOURCE_ROOT", os.path.dirname(__file__) + "/../.."),
                                "tests", "services"))
from svc import ServicesHarness, vm  # noqa: E402
import harness  # noqa: E402
from harness import Monitor, _die_with_parent  # noqa: E402

NOBODY_UID = 65534
USERS_GID = 100
# --pdeathsig: a credential change clears the parent-death signal _die_with_parent set.
AS_NOBODY = ["setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}", f"--groups={USERS_GID}", "--pdeathsig=KILL"]

DEV = "0000:01:00.0"
VMS = {"alice": vm(), "bob": vm(), "carol": vm(), "netvm": vm("service"),
       "gondor": vm("persona"), "rivendale": vm("persona"),
       "mordor": vm("persona", f"[Passthrough]\nDevices={DEV}\n"),
       "usbvm": vm("service", f"[Passthrough]\nDevices={DEV}\n")}
POLICY = {"30-ui.policy": (
    "vmfed.Admin.ListVMs        *  rivendale  @host          allow\n"
    "vmfed.Admin.SwitchPersona  *  rivendale  @role:persona  ask\n"
    "vmfed.OpenURL          *  alice  @default  ask default_target=bob\n"
    "vmfed.OpenURL          *  alice  bob       ask\n"
    "vmfed.OpenURL          *  carol  @default  ask\n"
    "vmfed.OpenURL          *  carol  @anyvm    ask\n"
    "vmfed.Clipboard.Paste  *  alice  bob       ask\n"
    "*                      *  @anyvm @anyvm    deny\n"
)}
CONF = "[Ask]\nTimeout=20\n[Agents]\nConnectTimeout=20\n"
SORTED = sorted(VMS)

SWAY_CONFIG = """output HEADLESS-1 resolution 1024x768
default_border normal 2
font pango:DejaVu Sans 10
focus_on_window_activation focus
"""


def log_dir():
    d = os.path.join(os.environ.get("VMFED_BUILD_ROOT", "."), "meson-logs", "ui")
    os.makedirs(d, exist_ok=True)
    return d


class PanelTrace:
    """A panel process and its trace (G_MESSAGES_DEBUG=vmfed-panel: one line per label it sets)."""

    def __init__(self, cmd, env, log_path):
        self.lines = []
        self._cond = threading.Condition()
        self.log_path = log_path
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        with open(self.log_path, "w") as log:
            for line in self.proc.stdout:  # (GLib writes debug messages to stdout)
                log.write(line)
                log.flush()
                m = re.search(r"vmfed-panel-DEBUG: [\d:.]+: (.*)$", line.rstrip("\n"))
                with self._cond:
                    self.lines.append((time.monotonic(), m.group(1) if m else line.rstrip("\n")))
                    self._cond.notify_all()

    def mark(self):
        with self._cond:
            return len(self.lines)

    def wait(self, pred, what, timeout=15, start=0):
        """The first trace line from index start matching pred (a regex or function): (index, line, time)."""
        if isinstance(pred, str):
            rx = re.compile(pred)
            pred = rx.search
        end = time.monotonic() + harness.scaled(timeout)
        with self._cond:
            while True:
                for i in range(start, len(self.lines)):
                    t, line = self.lines[i]
                    m = pred(line)
                    if m:
                        return i, line, t
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    self.dump()
                    raise AssertionError(f"the panel did not show {what}")
                self._cond.wait(min(left, 0.5))

    def has(self, pattern, start=0):
        with self._cond:
            return any(re.search(pattern, line) for _, line in self.lines[start:])

    def dump(self):
        with self._cond:
            sys.stderr.write(f"---- panel trace {os.path.basename(self.log_path)} (exit status {self.proc.poll()}) "
                             "----\n" + "\n".join(l for _, l in self.lines) + "\n")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(2)


class Desktop:
    """sway + the panel as nobody, and the panel's trace."""

    def __init__(self, h, panel, session_address):
        self.h = h
        self.dir = os.path.join(h.tmp, "desktop")
        self.run = os.path.join(self.dir, "run")
        home = os.path.join(self.dir, "home")
        for d in (self.dir, self.run, home):
            os.makedirs(d, exist_ok=True)
            os.chown(d, NOBODY_UID, NOBODY_UID)
        os.chmod(self.run, 0o700)
        conf = os.path.join(self.dir, "sway.conf")
        with open(conf, "w") as f:
            f.write(SWAY_CONFIG)
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "XDG_RUNTIME_DIR": self.run,
                    "WLR_BACKENDS": "headless", "WLR_RENDERER": "pixman", "WLR_LIBINPUT_NO_DEVICES": "1",
                    "XDG_CONFIG_HOME": os.path.join(home, ".config"), "XDG_CACHE_HOME": os.path.join(home, ".cache"),
                    "LANG": "C.UTF-8"}
        self.sway_log = open(os.path.join(self.dir, "sway.log"), "w")
        self.sway = subprocess.Popen(AS_NOBODY + ["sway", "-c", conf], env=self.env, stdout=self.sway_log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        h._wait(lambda: self.wayland_display() is not None, "sway's Wayland socket", 30)
        self.env["WAYLAND_DISPLAY"] = self.wayland_display()
        self.env["SWAYSOCK"] = self.sway_socket()
        # The person's keyboard: with WLR_LIBINPUT_NO_DEVICES the seat has none, and a
        # window without a keyboard is never told it has the focus (GtkWindow:is-active).
        # A wtype that sleeps is a virtual keyboard for as long as the test runs.
        self.keyboard = subprocess.Popen(AS_NOBODY + ["wtype", "-s", "3600000", "-k", "Shift_L"], env=self.env,
                                         preexec_fn=_die_with_parent)
        self.panel = None
        self.start_panel(panel, h.address, h.config_dir, session_address, "panel.log")

    def start_panel(self, panel, address, config_dir, session_address, log_name, replace=True, guest=False):
        """Run a panel (as nobody, on this display) against the bus at address (or, guest=True, the
        agent's Guest1 socket); with replace, it becomes the panel the methods below read."""
        if replace and self.panel:
            self.stop_panel()
        penv = dict(self.env, GDK_BACKEND="wayland", GSK_RENDERER="cairo", GTK_A11Y="none", NO_AT_BRIDGE="1",
                    G_MESSAGES_DEBUG="vmfed-panel", DBUS_SESSION_BUS_ADDRESS=session_address)
        args = ["--guest-socket", address] if guest else ["--address", address, "--config-dir", config_dir]
        t = PanelTrace(AS_NOBODY + [panel] + args, penv, os.path.join(self.dir, log_name))
        if replace:
            self.trace, self.panel = t, t.proc
        return t

    def stop_panel(self):
        self.trace.stop()

    def wayland_display(self):
        for n in os.listdir(self.run):
            if n.startswith("wayland-") and not n.endswith(".lock"):
                return n
        return None

    def sway_socket(self):
        for n in os.listdir(self.run):
            if n.startswith("sway-ipc."):
                return os.path.join(self.run, n)
        return None

    def mark(self):
        return self.trace.mark()

    def wait(self, *args, **kw):
        return self.trace.wait(*args, **kw)

    def has(self, *args, **kw):
        return self.trace.has(*args, **kw)

    def dump(self):
        self.trace.dump()

    def key(self, *keys, lead=1300):
        """Keys as a person types them: a key name, or ("alt", "w") for a mnemonic.

        One wtype for all of them: each wtype is a new virtual keyboard with
        its own keymap, and GTK may read the first key after a keymap change
        with the previous one; so the keys come lead ms after it appears.  A
        new keyboard also gives the focused window the focus again, which
        disarms an ask's Allow for a second: the default lead waits that out."""
        args = ["-s", str(lead)]
        for k in keys:
            args += ["-M", k[0], k[1], "-m", k[0]] if isinstance(k, tuple) else ["-k", k]
            args += ["-s", "100"]
        subprocess.run(AS_NOBODY + ["wtype"] + args, env=self.env, check=True, timeout=30)

    def tree(self):
        r = subprocess.run(AS_NOBODY + ["swaymsg", "-t", "get_tree", "-r"], env=self.env, capture_output=True,
                           text=True, check=True, timeout=10)
        return json.loads(r.stdout)

    def windows(self):
        out = []

        def walk(n):
            if n.get("type") in ("con", "floating_con") and n.get("pid"):
                out.append(n)
            for c in n.get("nodes", []) + n.get("floating_nodes", []):
                walk(c)
        walk(self.tree())
        return out

    def focused_title(self):
        return next((w.get("name") for w in self.windows() if w.get("focused")), None)

    def screenshot(self, name):
        r = subprocess.run(AS_NOBODY + ["grim", "-l", "9", "-"], env=self.env, capture_output=True, timeout=20)
        assert r.returncode == 0 and r.stdout.startswith(b"\x89PNG"), f"grim failed: {r.stderr!r}"
        path = os.path.join(log_dir(), name + ".png")
        with open(path, "wb") as f:
            f.write(r.stdout)
        print(f"screenshot: {path}", flush=True)
        return path

    def stop(self):
        self.stop_panel()
        for p in (self.keyboard, self.sway):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.sway_log.close()


def start_session_bus(h, notify_server):
    path = os.path.join(h.tmp, "session")
    conf = os.path.join(h.tmp, "session.conf")
    with open(conf, "w") as f:
        f.write(harness.DBUS_CONFIG.format(path=path))
    bus = subprocess.Popen(["dbus-daemon", "--config-file=" + conf, "--nofork", "--nopidfile"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    h._wait(lambda: os.path.exists(path), "session bus socket")
    address = "unix:path=" + path
    server = subprocess.Popen([notify_server, address], stdout=subprocess.PIPE, text=True,
                              preexec_fn=_die_with_parent)
    assert server.stdout.readline().strip() == "READY"
    notes = []

    def read():
        for line in server.stdout:
            notes.append(line.rstrip("\n").split("\t"))
    threading.Thread(target=read, daemon=True).start()
    return address, [bus, server], notes


def in_background(fn):
    result = []
    t = threading.Thread(target=lambda: result.append(fn()))
    t.start()
    return t, result


def pending(h):
    return h.call("org.vmfed.Federation1.Ask", "ListAsks")[0]


def vm_lines(d, start=0):
    """The last 'vm: NAME ROLE STATE' the panel showed for each VM."""
    shown = {}
    with d.trace._cond:
        for _, line in d.trace.lines[start:]:
            m = re.match(r"vm: (\S+) (\S+) (\S+)$", line)
            if m:
                shown[m.group(1)] = (m.group(2), m.group(3))
    return shown


def select_keys(name):
    """Home, then Down to NAME's row (the list is sorted by name)."""
    return ["Home"] + ["Down"] * SORTED.index(name)


def check_federation_view(h, d):
    """The VM list matches ListVMs; it follows a state change (no polling: PropertiesChanged)."""
    d.wait(r"^active: ", "the active persona")
    for name in VMS:
        d.wait(rf"^vm: {name} ", f"VM {name}")
    listed = {n: (role, state) for n, role, state, _ in h.call("Manager", "ListVMs")[0]}
    assert vm_lines(d) == listed, (vm_lines(d), listed)
    h._wait(lambda: d.focused_title() == "vmfed", "the panel's window, focused")
    time.sleep(0.5)  # (its first frame drawn)
    d.screenshot("federation-view")
    mark = d.mark()
    t0 = time.monotonic()
    h.call("Manager", "StartVM", "s", "netvm")
    _, _, t1 = d.wait(r"^vm: netvm service running$", "netvm running", start=mark)
    print(f"state change shown {1000 * (t1 - t0):.0f} ms after StartVM was sent", flush=True)
    return t1 - t0


def check_switch(h, d):
    """Switch with the keyboard (select the row, Alt+W): each Progress line of the panel's call is shown."""
    with Monitor(h, match="type='signal',interface='org.vmfed.Federation1.Manager',member='Progress'") as mon:
        for target, previous in (("gondor", ""), ("rivendale", "gondor")):
            mark, start = d.mark(), len(mon.messages)
            d.key(*select_keys(target), ("alt", "w"))
            d.wait(rf"^status: Done: switch to {target}\.$", f"the switch to {target} done", 30, mark)
            assert h.get_property("Manager", "ActivePersona") == target
            d.wait(rf"^active: {target}$", f"{target} active", start=mark)
            lines = [m["payload"]["data"][1] for m in mon.messages[start:]]
            ours = [m["payload"]["data"][1] for m in mon.messages[start:]
                    if not m["payload"]["data"][0].startswith("vmfedd/")]
            assert ours, f"no Progress for the switch to {target}: {lines}"
            for line in ours:
                d.wait(lambda s, line=line: s == "progress: " + line, f"progress line {line!r}", 5, mark)
            if previous:
                assert any(previous in line for line in ours), ours
            if target == "rivendale":
                d.screenshot("switch-progress")


def check_switch_refused(h, d, notes):
    """A switch the broker refuses (mordor's device is held by usbvm) says why, in the window and
    in a notification; the active persona stays."""
    h.call("Manager", "StartVM", "s", "usbvm")
    mark = d.mark()
    h._wait(lambda: d.focused_title() == "vmfed", "the main window focused")
    d.key(*select_keys("mordor"), ("alt", "w"))
    _, line, _ = d.wait(r"^status: Could not switch to mordor: ", "the refusal", start=mark)
    assert DEV in line, line
    h._wait(lambda: any(n[2] == "Persona switch failed" and DEV in n[3] for n in notes), "the notification")
    assert h.get_property("Manager", "ActivePersona") == "rivendale"
    print(f"refused switch shown as: {line}", flush=True)
    h.call("Manager", "StopVM", "sb", "usbvm", "true")


def check_generations(h, d):
    """Alt+G lists the generations, newest first, the current one marked; Esc closes the window."""
    h.call("Policy", "ReplaceFile", "sss", "40-ui.policy", "vmfed.OpenURL * bob @default deny\n", "")
    mark = d.mark()
    h._wait(lambda: d.focused_title() == "vmfed", "the main window focused")
    d.key(("alt", "g"))
    gens = h.call("Manager", "ListGenerations")[0]
    assert len(gens) == 2, gens
    d.wait(rf"^generation: {gens[1][0]} \(.*\) — current$", "the current generation", start=mark)
    d.wait(rf"^generation: {gens[0][0]} \(.*\)$", "the first generation", start=mark)
    h._wait(lambda: d.focused_title() == "vmfed: generations", "the generations window focused")
    d.key("Escape")
    h._wait(lambda: d.focused_title() == "vmfed", "the generations window closed")


def check_persona(h, d, panel, session, agents):
    """The panel in a persona (rivendale's agent's Guest1): its switch to gondor is the policy's ask,
    answered on the host console's panel; then the persona's panel says it is done."""
    assert h.get_property("Manager", "ActivePersona") == "rivendale"
    guest = d.start_panel(panel, agents["rivendale"].socket, None, session, "panel-persona.log", replace=False,
                          guest=True)
    try:
        guest.wait(r"^vm: gondor saved$", "gondor in the persona's panel")
        h._wait(lambda: d.focused_title() == "vmfed (persona)", "the persona's panel focused")
        mark = d.mark()
        d.key(*select_keys("gondor"), ("alt", "w"))
        guest.wait(r"^status: Asked to switch to gondor", "the request sent")
        i, line, _ = d.wait(r"^ask (\d+): shown: source=rivendale service=vmfed.Admin.SwitchPersona arg= "
                            r"candidates=gondor selected=gondor$", "the persona's ask on the host panel", start=mark)
        ask = re.match(r"ask (\d+)", line).group(1)
        d.wait(rf"^ask {ask}: allow armed$", "Allow armed", start=i)
        d.screenshot("persona-switch-ask")
        d.key("Return")
        d.wait(rf"^ask {ask}: allow gondor$", "the answer", start=i)
        guest.wait(r"^status: Done: switch to gondor\.$", "the switch done in the persona's panel", 30)
        assert h.get_property("Manager", "ActivePersona") == "gondor"
        guest.wait(r"^vm: rivendale saved$", "rivendale saved in the persona's panel")
    except BaseException:
        guest.dump()
        raise
    finally:
        guest.stop()


def check_ask_default(h, d, agents):
    """alice's URL asks with default_target=bob: Enter at once does nothing; Enter once armed allows bob."""
    mark = d.mark()
    t, res = in_background(lambda: agents["alice"].guest("open-url", "https://example.org/asked"))
    i, line, _ = d.wait(r"^ask (\d+): shown: source=alice service=vmfed.OpenURL .*selected=bob$", "alice's ask",
                        start=mark)
    ask = re.match(r"ask (\d+)", line).group(1)
    d.wait(rf"^ask {ask}: focused, allow disarmed", "the ask focused", start=mark)
    d.key("Return", lead=300)
    d.wait(rf"^ask {ask}: key ignored, allow not armed yet$", "Enter ignored", start=i)
    assert [q[0] for q in pending(h)] == [int(ask)], "Enter in the first second answered the ask"
    assert not d.has(rf"^ask {ask}: allow ", i)
    assert d.focused_title() == "vmfed: alice asks", d.windows()
    d.wait(rf"^ask {ask}: allow armed$", "Allow armed", start=i)
    d.screenshot("ask-dialog")
    d.key("Return")
    d.wait(rf"^ask {ask}: allow bob$", "the answer", start=i)
    d.wait(rf"^ask {ask}: closed$", "the dialog closed", start=i)
    t.join()
    assert res[0][0] == 0 and res[0][1].strip() == b"bob", res
    h._wait(lambda: re.search(rf"ask {ask} .*allowed.*bob|VMFED_REQUEST_ID=\d+ .*VMFED_TARGET=bob", h.log()),
            "the audit line of the answer")


def check_ask_choose(h, d, agents):
    """carol's URL asks with no default: nothing chosen, Enter does nothing; space on a target, Enter allows it."""
    mark = d.mark()
    t, res = in_background(lambda: agents["carol"].guest("open-url", "https://example.org/chosen"))
    i, line, _ = d.wait(r"^ask (\d+): shown: source=carol .*candidates=(\S+) selected=$", "carol's ask", start=mark)
    ask, cands = re.match(r"ask (\d+): .*candidates=(\S+) ", line).groups()
    first = cands.split(",")[0]
    d.wait(rf"^ask {ask}: allow armed$", "Allow armed", start=i)
    d.key("Return")
    time.sleep(0.5)
    assert [q[0] for q in pending(h)] == [int(ask)], "Enter with no target chosen answered the ask"
    d.key("space")
    d.wait(rf"^ask {ask}: chose {first}$", "the chosen target", start=i)
    d.key("Return")
    d.wait(rf"^ask {ask}: allow {first}$", "the answer", start=i)
    t.join()
    assert res[0][0] == 0 and res[0][1].strip() == first.encode(), res
    h._wait(lambda: f"VMFED_TARGET={first} VMFED_SERVICE=vmfed.OpenURL" in h.log(), "the audit line")
    return first


def check_esc_denies_paste(h, d, agents, notes):
    """bob's paste of alice's copy asks; Esc denies; the refusal is notified on the session bus."""
    agents["alice"].guest_ok("copy", input=b"secret")
    h._wait(lambda: any(n[2] == "Clipboard" and "alice copied 6 bytes (text/plain)" in n[3] for n in notes),
            "the notification of the copy")
    mark = d.mark()
    t, res = in_background(lambda: agents["bob"].guest("paste"))
    i, line, _ = d.wait(r"^ask (\d+): shown: source=alice service=vmfed.Clipboard.Paste ", "the paste ask",
                        start=mark)
    ask = re.match(r"ask (\d+)", line).group(1)
    d.key("Escape")
    d.wait(rf"^ask {ask}: deny$", "the denial", start=i)
    t.join()
    assert res[0][0] != 0 and "AccessDenied" in res[0][2], res
    h._wait(lambda: any(n[2] == "Request refused" and "alice asked for vmfed.Clipboard.Paste" in n[3]
                        and "denied" in n[3] for n in notes), "the notification of the refused paste")


def check_timeout(h, d, agents, notes):
    """An unanswered ask closes when the broker times it out, and says so."""
    mark = d.mark()
    t, res = in_background(lambda: agents["carol"].guest("open-url", "https://example.org/late"))
    i, line, _ = d.wait(r"^ask (\d+): shown: source=carol ", "carol's second ask", start=mark)
    ask = re.match(r"ask (\d+)", line).group(1)
    # "shown" is traced when GTK presents the window; sway maps it a moment later.
    h._wait(lambda: any(w.get("name", "").endswith("carol asks") for w in d.windows()), "carol's ask window")
    d.wait(rf"^ask {ask}: finished timeout $", "the timeout", 40, i)
    d.wait(rf"^ask {ask}: closed$", "the dialog closed", 5, i)
    t.join()
    assert res[0][0] != 0 and "AccessDenied" in res[0][2], res
    h._wait(lambda: not any(w.get("name", "").endswith("carol asks") for w in d.windows()), "the window gone")
    h._wait(lambda: any("nobody answered in time" in n[3] for n in notes), "the notification of the timeout")


def check_forged_signal(h, d):
    """An AskRequested that another bus client sends is not shown (only the broker's count)."""
    mark = d.mark()
    subprocess.run(["dbus-send", "--bus=" + h.address, "--type=signal", "/org/vmfed/Federation1",
                    "org.vmfed.Federation1.Ask.AskRequested", "uint64:999", "string:alice",
                    "string:vmfed.OpenURL+<b>evil</b>", "array:string:bob", "string:bob"], check=True)
    # A real ask afterwards shows; the forged one never did.
    h.call("Manager", "StopVM", "sb", "netvm", "true")
    d.wait(r"^vm: netvm service stopped$", "netvm stopped", start=mark)
    assert not d.has(r"^ask 999:", mark), "a forged AskRequested was shown"


def check_hostile_text(h, d, panel, fake_broker, session):
    """What the real broker never relays (it validates every argument): an ask whose service argument
    is markup, 64 KiB and bidi controls, from a stand-in broker on a bus of its own.  The panel shows
    it as text, bounded, with every control character visible as <U+XXXX>; Esc denies it."""
    path = os.path.join(h.tmp, "fakebus")
    conf = os.path.join(h.tmp, "fakebus.conf")
    with open(conf, "w") as f:
        f.write(harness.DBUS_CONFIG.format(path=path))
    bus = subprocess.Popen(["dbus-daemon", "--config-file=" + conf, "--nofork", "--nopidfile"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    fake = None
    try:
        h._wait(lambda: os.path.exists(path), "the stand-in broker's bus")
        fake = subprocess.Popen([fake_broker, "unix:path=" + path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, preexec_fn=_die_with_parent)
        assert fake.stdout.readline().strip() == "READY"
        d.start_panel(panel, "unix:path=" + path, h.config_dir, session, "panel-hostile.log")
        d.wait(r"^vm: alice app running$", "the stand-in's VM")
        h._wait(lambda: d.focused_title() == "vmfed", "the second panel's window, focused")
        fake.stdin.write("ask\n")
        fake.stdin.flush()
        _, line, _ = d.wait(r"^ask 1: shown: ", "the hostile ask")
        arg = re.search(r" arg=(.*) candidates=", line).group(1)
        assert arg.startswith("<b>bold</b>&amp;<span foreground='red'>x</span><U+202E>gnp.exe<U+2066>AAA"), arg
        assert re.search(r"… \(\d+ more bytes\)$", arg) and len(arg) < 400, arg
        assert not re.search("[\u202a-\u202e\u2066-\u2069]", line), line
        assert line.endswith(" candidates=bob,<i>carol</i><U+202E> selected="), line
        h._wait(lambda: d.focused_title() == "vmfed: alice asks", "the hostile ask focused")
        time.sleep(0.5)
        d.screenshot("ask-hostile")
        d.key("Escape")
        assert fake.stdout.readline().strip() == "DENY 1"
        d.wait(r"^ask 1: closed$", "the hostile ask closed")
    finally:
        for p in (fake, bus):
            if p and p.poll() is None:
                p.kill()
                p.wait()


def main(vmfedd, agent, guest, panel, notify_server, fake_broker):
    for tool in ("sway", "swaymsg", "wtype", "grim"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} is not installed (tools/setup.sh installs it)")
            return 77
    t_start = time.monotonic()
    with ServicesHarness(vmfedd, agent, guest, vms=VMS, policy=POLICY, services_conf=CONF,
                         extra_args=["--manage-group", "users"], env={"VMFED_TEST_FAKE_PASSTHROUGH": "1"}) as h:
        session, procs, notes = start_session_bus(h, notify_server)
        agents = {n: h.agent(n) for n in ("alice", "bob", "carol", "rivendale")}
        d = Desktop(h, panel, session)
        try:
            latency = check_federation_view(h, d)
            check_switch(h, d)
            check_switch_refused(h, d, notes)
            check_generations(h, d)
            check_persona(h, d, panel, session, agents)
            check_ask_default(h, d, agents)
            check_ask_choose(h, d, agents)
            check_esc_denies_paste(h, d, agents, notes)
            check_forged_signal(h, d)
            check_timeout(h, d, agents, notes)
            assert d.panel.poll() is None, "the panel exited"
            check_hostile_text(h, d, panel, fake_broker, session)
        except BaseException:
            d.dump()
            raise
        finally:
            d.stop()
            for p in procs:
                p.kill()
                p.wait()
    print(json.dumps({"test": "ui-panel", "seconds": round(time.monotonic() - t_start, 1),
                      "state_change_ms": round(1000 * latency)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
