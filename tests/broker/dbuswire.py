# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small D-Bus wire client for tests that send what no library would:
any signature with any values, raw bytes where a string belongs, messages
of any size, many calls in flight, from any uid.

Little-endian marshalling of every type but 'h' (no fd passing); replies
are unmarshalled the same way.  Connect to a bus (EXTERNAL, then Hello), to
a peer-to-peer guest channel (ANONYMOUS), or with no handshake at all
(mech=None: send your own garbage).  tests/services/rawbus.py is a
shorthand on top for the services tests' forged headers and floods.

    c = Connection.bus(address_path)
    reply = c.call(DEST, PATH, IFACE, "GetVM", "s", ["rivendale"])
    reply.error, reply.message, reply.body
"""
import os
import socket
import struct

_FIXED = {"y": ("B", 1), "b": ("I", 4), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4), "u": ("I", 4),
          "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4)}
_ALIGN = dict({k: v[1] for k, v in _FIXED.items()}, s=4, o=4, g=1, a=4, v=1)
_ALIGN["("] = 8
_ALIGN["{"] = 8

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
NO_REPLY_EXPECTED, NO_AUTO_START, ALLOW_INTERACTIVE = 1, 2, 4


def split_signature(sig):
    """Complete types of sig, in order."""
    out, i = [], 0
    while i < len(sig):
        j = _type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _type_end(sig, i):
    c = sig[i]
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        i += 1
        while sig[i] != close:
            i = _type_end(sig, i)
        return i + 1
    return i + 1


class _Writer:
    def __init__(self, offset=0):
        self.buf = bytearray()
        self.offset = offset  # alignment is relative to the start of the message

    def pad(self, n):
        self.buf += b"\0" * ((-(len(self.buf) + self.offset)) % n)

    def put(self, t, v):
        c = t[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.pad(size)
            if c == "b":
                v = 1 if v else 0
            self.buf += struct.pack("<" + fmt, v)
        elif c in "so":
            b = v if isinstance(v, (bytes, bytearray)) else v.encode()
            self.pad(4)
            self.buf += struct.pack("<I", len(b)) + b + b"\0"
        elif c == "g":
            b = v if isinstance(v, (bytes, bytearray)) else v.encode()
            self.buf += struct.pack("<B", len(b)) + b + b"\0"
        elif c == "v":
            sig, val = v
            self.put("g", sig)
            self.put(sig, val)
        elif c == "a":
            elem = t[1:]
            self.pad(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            if elem == "y" and isinstance(v, (bytes, bytearray)):
                self.buf += v
            else:
                items = v.items() if isinstance(v, dict) else v
                for item in items:
                    self.put(elem, item)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        elif c in "({":
            self.pad(8)
            for sub, val in zip(split_signature(t[1:-1]), v):
                self.put(sub, val)
        else:
            raise ValueError("cannot marshal type " + t)


class _Reader:
    def __init__(self, buf, offset=0):
        self.buf = buf
        self.pos = 0
        self.offset = offset

    def align(self, n):
        self.pos += (-(self.pos + self.offset)) % n

    def get(self, t):
        c = t[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.align(size)
            v = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
            self.pos += size
            return bool(v) if c == "b" else v
        if c in "so":
            self.align(4)
            n = struct.unpack_from("<I", self.buf, self.pos)[0]
            v = bytes(self.buf[self.pos + 4:self.pos + 4 + n])
            self.pos += 5 + n
            return v.decode(errors="surrogateescape")
        if c == "g":
            n = self.buf[self.pos]
            v = bytes(self.buf[self.pos + 1:self.pos + 1 + n]).decode()
            self.pos += 2 + n
            return v
        if c == "v":
            sig = self.get("g")
            return (sig, self.get(sig))
        if c == "a":
            elem = t[1:]
            self.align(4)
            n = struct.unpack_from("<I", self.buf, self.pos)[0]
            self.pos += 4
            self.align(_ALIGN[elem[0]])
            end = self.pos + n
            if elem == "y":
                v = bytes(self.buf[self.pos:end])
                self.pos = end
                return v
            out = []
            while self.pos < end:
                out.append(self.get(elem))
            if elem[0] == "{":
                return dict(out)
            return out
        if c in "({":
            self.align(8)
            return tuple(self.get(sub) for sub in split_signature(t[1:-1]))
        raise ValueError("cannot unmarshal type " + t)


def marshal_body(signature, args, offset=0):
    w = _Writer(offset)
    for t, v in zip(split_signature(signature), args):
        w.put(t, v)
    return bytes(w.buf)


def message(mtype, serial, path=None, interface=None, member=None, destination=None, signature="", body=b"",
            flags=0, reply_serial=None, error_name=None, sender=None, raw_body=False, args=(), unix_fds=0):
    """A whole message; body is marshalled from args unless raw_body (then body is used as is)."""
    if not raw_body:
        body = marshal_body(signature, args)
    fields = []
    if path is not None:
        fields.append((1, ("o", path)))
    if interface is not None:
        fields.append((2, ("s", interface)))
    if member is not None:
        fields.append((3, ("s", member)))
    if error_name is not None:
        fields.append((4, ("s", error_name)))
    if reply_serial is not None:
        fields.append((5, ("u", reply_serial)))
    if destination is not None:
        fields.append((6, ("s", destination)))
    if sender is not None:
        fields.append((7, ("s", sender)))
    if signature:
        fields.append((8, ("g", signature)))
    if unix_fds:
        fields.append((9, ("u", unix_fds)))
    w = _Writer()
    w.buf += struct.pack("<cBBBII", b"l", mtype, flags, 1, len(body), serial)
    w.put("a(yv)", fields)
    w.pad(8)
    return bytes(w.buf) + body


class Reply:
    def __init__(self, mtype, serial, fields, body_bytes, body_offset, raw=b""):
        self.type = mtype
        self.raw = raw  # the whole message
        self.serial = serial
        self.fields = fields
        self.reply_serial = fields.get(5, ("u", None))[1]
        self.error = fields.get(4, ("s", None))[1] if mtype == ERROR else None
        self.signature = fields.get(8, ("g", ""))[1]
        self.member = fields.get(3, ("s", None))[1]
        self.raw_body = body_bytes
        try:
            r = _Reader(body_bytes, body_offset)
            self.body = [r.get(t) for t in split_signature(self.signature)]
        except (struct.error, IndexError, ValueError, UnicodeDecodeError):
            self.body = None
        self.message = self.body[0] if self.error and self.body and isinstance(self.body[0], str) else ""

    def __repr__(self):
        if self.error:
            return f"<error {self.error}: {self.message!r}>"
        return f"<reply {self.signature} {str(self.body)[:200]}>"


class Closed(ConnectionError):
    pass


class Connection:
    def __init__(self, path, mech="EXTERNAL", hello=True, timeout=30, unix_fd=False):
        self._args = (path, mech, hello, timeout, unix_fd)
        self.unix_fd = False
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.serial = 0
        self.rbuf = bytearray()
        self.unique_name = None
        self.pending = {}  # replies read while waiting for another
        if mech is None:
            return
        if mech == "EXTERNAL":
            self.s.sendall(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n")
        else:
            self.s.sendall(b"\0AUTH ANONYMOUS\r\n")
        line = self._line()
        if line.startswith(b"DATA"):
            self.s.sendall(b"DATA\r\n")
            line = self._line()
        if not line.startswith(b"OK "):
            raise ConnectionError(f"authentication refused: {line!r}")
        if unix_fd:
            self.s.sendall(b"NEGOTIATE_UNIX_FD\r\n")
            self.unix_fd = self._line().startswith(b"AGREE_UNIX_FD")
        self.s.sendall(b"BEGIN\r\n")
        if hello:
            r = self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello")
            self.unique_name = r.body[0]

    @classmethod
    def bus(cls, path, **kw):
        return cls(path, "EXTERNAL", hello=True, **kw)

    @classmethod
    def peer(cls, path, **kw):
        return cls(path, "ANONYMOUS", hello=False, **kw)

    def _line(self):
        while b"\r\n" not in self.rbuf:
            c = self.s.recv(4096)
            if not c:
                raise Closed("closed during authentication")
            self.rbuf += c
        i = self.rbuf.index(b"\r\n")
        line = bytes(self.rbuf[:i])
        del self.rbuf[:i + 2]
        return line

    def _fill(self, n):
        while len(self.rbuf) < n:
            c = self.s.recv(max(65536, n - len(self.rbuf)))
            if not c:
                raise Closed("closed by peer")
            self.rbuf += c

    def read(self):
        """The next message as a Reply (also signals and calls)."""
        self._fill(16)
        _, mtype, _, _, body_len, serial, fields_len = struct.unpack_from("<cBBBIII", self.rbuf)
        head = 16 + fields_len + ((-fields_len) % 8)
        self._fill(head + body_len)
        raw = bytes(self.rbuf[:head + body_len])
        del self.rbuf[:head + body_len]
        r = _Reader(raw, 0)
        r.pos = 12
        fields = dict(r.get("a(yv)"))
        return Reply(mtype, serial, fields, raw[head:], head, raw)

    def send_raw(self, data):
        self.s.sendall(data)

    def send(self, destination, path, interface, member, signature="", args=(), flags=0, body=None, fds=(),
             sender=None):
        """Send a method call; returns its serial.  body (bytes) replaces the marshalled args; fds go
        along (SCM_RIGHTS, counted in the UNIX_FDS field; an 'h' argument is an index into them);
        sender forges the SENDER field."""
        self.serial += 1
        msg = message(METHOD_CALL, self.serial, path=path, interface=interface, member=member,
                      destination=destination, signature=signature, flags=flags,
                      body=body if body is not None else b"", raw_body=body is not None, args=args,
                      unix_fds=len(fds), sender=sender)
        if fds:
            socket.send_fds(self.s, [msg], list(fds))
            return self.serial
        # A big message may take the peer long to read: the reply timeout is no send timeout.
        timeout = self.s.gettimeout()
        self.s.settimeout(None if timeout is None else max(timeout, 300))
        try:
            self.s.sendall(msg)
        finally:
            self.s.settimeout(timeout)
        return self.serial

    def wait(self, serial):
        if serial in self.pending:
            return self.pending.pop(serial)
        while True:
            m = self.read()
            if m.type in (METHOD_RETURN, ERROR):
                if m.reply_serial == serial:
                    return m
                self.pending[m.reply_serial] = m

    def call(self, *a, **kw):
        return self.wait(self.send(*a, **kw))

    def closed_by_peer(self, timeout=5):
        """True when the other side closes within timeout (whatever it sends meanwhile is dropped)."""
        import time
        end = time.monotonic() + timeout
        self.s.settimeout(0.2)
        try:
            while time.monotonic() < end:
                try:
                    if not self.s.recv(65536):
                        return True
                except socket.timeout:
                    continue
                except OSError:
                    return True
            return False
        finally:
            self.s.settimeout(30)

    def reopen(self):
        """A new connection in place of this one (after a timeout left half a message on the stream)."""
        self.close()
        self.__init__(*self._args)

    def close(self):
        self.s.close()
