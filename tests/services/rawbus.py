# SPDX-License-Identifier: LGPL-2.1-or-later
"""A raw D-Bus peer for the tests that must misbehave on a guest channel:
forge header fields, flood without reading, send garbage.  A shorthand over
tests/broker/dbuswire.py, which does the marshalling:

    p = RawPeer(channel_socket)            # ANONYMOUS, no Hello
    p.send(PATH, IFACE, "Copy", [("s", "text/plain"), ("ay", b"x")], sender="forged")
    mtype, error_name, raw_message = p.read_message(timeout)
    RawPeer(sock, auth=False).s.sendall(garbage)
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "broker"))
import dbuswire  # noqa: E402


class RawPeer:
    def __init__(self, path, auth=True):
        # No timeout on the socket: a flood blocks until the broker reads or hangs up.
        self.c = dbuswire.Connection(path, "ANONYMOUS" if auth else None, hello=False, timeout=None)
        self.s = self.c.s

    def send(self, path, interface, member, args=(), sender=None, destination=None):
        """A method call; args: a list of (type, value).  Returns its serial."""
        return self.c.send(destination, path, interface or None, member, "".join(t for t, _ in args),
                           [v for _, v in args], sender=sender)

    def read_message(self, timeout=5):
        """(type, error name or None, whole message) of the next message; type 2 = return, 3 = error.
        socket.timeout (an OSError) when none is complete in time."""
        self.s.settimeout(timeout)
        m = self.c.read()
        return m.type, m.error, m.raw

    def closed_by_peer(self, timeout=10):
        """True when the other side closes within timeout (what it sends meanwhile is dropped)."""
        return self.c.closed_by_peer(timeout)

    def close(self):
        self.c.close()
