# SPDX-License-Identifier: LGPL-2.1-or-later
"""A tiny raw D-Bus peer for tests that must misbehave: forge header fields,
flood without reading, send garbage.  Little-endian marshalling of method
calls whose arguments are strings and byte arrays only."""
import socket
import struct


def _pad(buf, n):
    return buf + b"\0" * ((-len(buf)) % n)


def _string(buf, s, sig=False):
    b = s.encode()
    if sig:
        return buf + struct.pack("<B", len(b)) + b + b"\0"
    buf = _pad(buf, 4)
    return buf + struct.pack("<I", len(b)) + b + b"\0"


def method_call(serial, path, interface, member, args=(), sender=None, destination=None):
    """args: list of ("s", str) or ("ay", bytes)."""
    body = b""
    sig = ""
    for t, v in args:
        sig += t
        if t == "s":
            body = _string(body, v)
        elif t == "ay":
            body = _pad(body, 4) + struct.pack("<I", len(v)) + v
    fields = []
    fields.append((1, "o", path))
    if interface:
        fields.append((2, "s", interface))
    fields.append((3, "s", member))
    if destination:
        fields.append((6, "s", destination))
    if sender:
        fields.append((7, "s", sender))
    if sig:
        fields.append((8, "g", sig))
    hdr = b""
    for code, t, v in fields:
        hdr = _pad(hdr, 8) + struct.pack("<B", code) + _string(b"", t, sig=True)
        hdr = _string(hdr, v, sig=(t == "g"))
    head = struct.pack("<cBBBII", b"l", 1, 0, 1, len(body), serial)
    msg = head + struct.pack("<I", len(hdr)) + hdr
    return _pad(msg, 8) + body


class RawPeer:
    def __init__(self, path, auth=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.serial = 0
        if auth:
            self.s.sendall(b"\0AUTH ANONYMOUS\r\n")
            line = self._line()
            if line.startswith(b"DATA"):
                self.s.sendall(b"DATA\r\n")
                line = self._line()
            assert line.startswith(b"OK "), line
            self.s.sendall(b"BEGIN\r\n")

    def _line(self):
        buf = b""
        while not buf.endswith(b"\r\n"):
            c = self.s.recv(1)
            if not c:
                raise ConnectionError("closed during auth")
            buf += c
        return buf

    def send(self, *a, **kw):
        self.serial += 1
        self.s.sendall(method_call(self.serial, *a, **kw))
        return self.serial

    def read_message(self, timeout=5):
        """(type, error_name_or_None, raw) of the next message; type 2 = return, 3 = error."""
        self.s.settimeout(timeout)
        head = self._recv(16)
        _, mtype, _, _, body_len, _, fields_len = struct.unpack("<cBBBIII", head)
        rest = self._recv(((fields_len + 7) & ~7) + body_len)
        err = None
        fields = rest[:fields_len]
        i = 0
        while i < len(fields):
            i = (i + 7) & ~7
            if i >= len(fields):
                break
            code, siglen = fields[i], fields[i + 1]
            sig = fields[i + 2:i + 2 + siglen]
            i += 3 + siglen
            if sig == b"g":
                n = fields[i]
                val, i = fields[i + 1:i + 1 + n], i + 2 + n
            elif sig == b"u":
                i = (i + 3) & ~3
                val, i = None, i + 4
            else:
                i = (i + 3) & ~3
                n = struct.unpack("<I", fields[i:i + 4])[0]
                val, i = fields[i + 4:i + 4 + n], i + 5 + n
            if code == 4:
                err = val.decode()
        return mtype, err, head + rest

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            c = self.s.recv(n - len(buf))
            if not c:
                raise ConnectionError("closed")
            buf += c
        return buf

    def closed_by_peer(self, timeout=10):
        """True when the other side closes within timeout (data is drained)."""
        import time
        end = time.monotonic() + timeout
        self.s.settimeout(0.5)
        while time.monotonic() < end:
            try:
                if not self.s.recv(65536):
                    return True
            except socket.timeout:
                continue
            except OSError:
                return True
        return False

    def close(self):
        self.s.close()
