# SPDX-License-Identifier: LGPL-2.1-or-later
"""Type commands into a test guest's root shell through its serial console.

The test guest (tests/guest/init) runs a shell on ttyS0 when its kernel
command line has vmfed.debugshell=1; with VMFED_TEST_CONSOLE_SOCKET=1 the
federation gives the domain a serial console that is a listening unix
socket, STATE/consoles/NAME.sock (and still logs to NAME.log).  This is the
real path a person at the console would take: no agent hook, no mock.

    sh = GuestShell(path)
    sh.connect(timeout=60)
    rc, out = sh.run("vmfed-guest status")
"""
import os
import socket
import time


class ShellError(Exception):
    pass


class GuestShell:
    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b""
        self.n = 0

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        self.buf = b""

    def connect(self, timeout=60):
        """Connect to the console socket and wait until the guest's shell answers."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.close()
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.path)
                self.sock = s
                # Make the shell quiet (no echo, no prompt) and check it answers.
                rc, _ = self.run("stty -echo 2>/dev/null; PS1=''; export PS1", timeout=min(5, max(1, end - time.monotonic())))
                if rc == 0:
                    return
            except (OSError, ShellError):
                pass
            time.sleep(0.5)
        raise ShellError("no shell on %s within %d s" % (self.path, timeout))

    def _read_until(self, needle, timeout, start=0):
        """Receive until needle appears in self.buf[start:]; returns its index in self.buf."""
        end = time.monotonic() + timeout
        while True:
            i = self.buf.find(needle, start)
            if i >= 0:
                return i
            left = end - time.monotonic()
            if left <= 0:
                raise ShellError("timed out waiting for the guest's answer on %s" % self.path)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ShellError("the console %s closed" % self.path)
            self.buf += chunk

    def run(self, command, timeout=60):
        """Run command in the guest's shell; returns (exit status, output with \r removed)."""
        if not self.sock:
            raise ShellError("not connected")
        self.n += 1
        tag = "VMFEDSH%d%d" % (os.getpid(), self.n)
        # The marker words are split with '' so that an echo of the typed line never matches them.
        line = "echo %s''_BEGIN; %s; echo %s''_RC=$?\n" % (tag, command, tag)
        self.sock.sendall(line.encode())
        begin = ("%s_BEGIN" % tag).encode()
        b = self._read_until(begin, timeout) + len(begin)
        rc_mark = ("%s_RC=" % tag).encode()
        i = self._read_until(rc_mark, timeout, b)
        j = self._read_until(b"\n", 5, i)
        out = self.buf[b:i]
        rc = int(self.buf[i + len(rc_mark):j].strip(b"\r") or b"255")
        self.buf = self.buf[j + 1:]
        return rc, out.decode(errors="replace").replace("\r", "").strip("\n")
