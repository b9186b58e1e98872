#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Traffic endpoints for the netvm tests, run inside network namespaces.

  nettool.py serve-tcp ADDR PORT [LOG]     TCP echo server (one thread per peer)
  nettool.py serve-udp ADDR PORT [LOG]     UDP echo server; LOG gets "peer payload" lines
  nettool.py tcp ADDR PORT                 exit 0 if an echo round trip works within 2 s
  nettool.py udp ADDR PORT [--src ADDR] [--token T]   same over UDP
  nettool.py stream ADDR PORT COUNTFILE    long-lived TCP flow: one echo round trip
                                           every 20 ms, the count written to COUNTFILE;
                                           writes "dead" and exits when the flow breaks
  nettool.py udp-late PORT INFO TRIGGER    UDP peer of a flow: answers the first datagram,
                                           writes its "ADDR PORT" to INFO, then once
                                           TRIGGER exists sends it "late" 10 times (50 ms apart)
  nettool.py udp-from SPORT ADDR PORT      one UDP round trip from source port SPORT
  nettool.py refused tcp|udp ADDR PORT     print "ERRNO-NAME MILLISECONDS" of a connection
                                           attempt (TCP connect; UDP send then receive), 3 s at most
  nettool.py dns NAME SERVER               one DNS query for NAME's A record: prints the first
                                           address, exit 1 without an answer within 2 s
  nettool.py dhcp6 IFACE MAC               a minimal DHCPv6 client (Solicit, Advertise, Request,
                                           Reply; DUID-LL of MAC): prints "ADDRESS DNS MS", exit 1
                                           without a lease within 3 s
"""
import os
import socket
import sys
import threading
import time


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def log_line(path, text):
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


def serve_tcp(addr, port, logpath=None):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family_of(addr) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(64)

    def handle(c, peer):
        log_line(logpath, "%s connected" % (peer[0],))
        try:
            while True:
                data = c.recv(4096)
                if not data:
                    break
                c.sendall(data)
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, peer = s.accept()
        threading.Thread(target=handle, args=(c, peer), daemon=True).start()


def serve_udp(addr, port, logpath=None):
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(4096)
        log_line(logpath, "%s %s" % (peer[0], data.decode(errors="replace")))
        s.sendto(data, peer)


def probe_tcp(addr, port):
    try:
        with socket.create_connection((addr, port), timeout=2) as c:
            c.settimeout(2)
            c.sendall(b"ping\n")
            return c.recv(16) == b"ping\n"
    except OSError:
        return False


def probe_udp(addr, port, src=None, token="ping"):
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    s.settimeout(0.7)
    if src:
        s.bind((src, 0))
    try:
        for _ in range(3):
            s.sendto(token.encode(), (addr, port))
            try:
                data, _peer = s.recvfrom(4096)
                if data == token.encode():
                    return True
            except socket.timeout:
                continue
        return False
    except OSError:
        return False
    finally:
        s.close()


def stream(addr, port, countfile):
    def write(text):
        tmp = countfile + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, countfile)

    try:
        c = socket.create_connection((addr, port), timeout=5)
    except OSError:
        write("dead")
        return 1
    c.settimeout(5)
    n = 0
    try:
        while True:
            c.sendall(b"x" * 64)
            got = b""
            while len(got) < 64:
                chunk = c.recv(64 - len(got))
                if not chunk:
                    raise OSError("closed")
                got += chunk
            n += 1
            write(str(n))
            time.sleep(0.02)
    except OSError:
        write("dead")
        return 1


def udp_late(port, info, trigger):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    data, peer = s.recvfrom(4096)
    s.sendto(data, peer)
    with open(info + ".tmp", "w") as f:
        f.write("%s %d\n" % peer)
    os.rename(info + ".tmp", info)
    while not os.path.exists(trigger):
        time.sleep(0.02)
    for _ in range(10):
        s.sendto(b"late", peer)
        time.sleep(0.05)
    return 0


def udp_from(sport, addr, port):
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    s.settimeout(2)
    s.bind(("::" if family_of(addr) == socket.AF_INET6 else "0.0.0.0", sport))
    s.sendto(b"flow", (addr, port))
    try:
        return 0 if s.recvfrom(4096)[0] == b"flow" else 1
    except OSError:
        return 1


def refused(proto, addr, port):
    import errno
    s = socket.socket(family_of(addr), socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(3)
    t0 = time.monotonic()
    try:
        s.connect((addr, port))
        if proto == "udp":
            s.send(b"x")
            s.recv(16)
        name = "OK"
    except socket.timeout:
        name = "TIMEOUT"
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e.errno))
    print("%s %.3f" % (name, (time.monotonic() - t0) * 1000))
    return 0


def dns(name, server):
    import struct
    q = struct.pack(">HHHHHH", 0x1d1d, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(family_of(server), socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(q, (server, 53))
        data = s.recv(4096)
    except OSError:
        return 1
    ident, flags, qd, an = struct.unpack(">HHHH", data[:8])
    if ident != 0x1d1d or an == 0:
        return 1
    # The answers follow the question: NAME (a pointer) TYPE CLASS TTL RDLENGTH RDATA.
    off = len(q)
    while off + 12 <= len(data):
        typ, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[off + 2:off + 12])
        if typ == 1 and rdlen == 4:
            print(socket.inet_ntoa(data[off + 12:off + 16]))
            return 0
        off += 12 + rdlen
    return 1


def dhcp6_options(data):
    opts, off = [], 0
    while off + 4 <= len(data):
        code, n = int.from_bytes(data[off:off + 2], "big"), int.from_bytes(data[off + 2:off + 4], "big")
        opts.append((code, data[off + 4:off + 4 + n]))
        off += 4 + n
    return opts


def dhcp6(iface, mac):
    import struct

    def opt(code, data):
        return struct.pack(">HH", code, len(data)) + data
    ifindex = socket.if_nametoindex(iface)
    duid = struct.pack(">HH", 3, 1) + bytes.fromhex(mac.replace(":", ""))
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    s.bind(("::", 546))
    s.settimeout(1)
    xid = os.urandom(3)
    t0 = time.monotonic()
    common = opt(1, duid) + opt(8, b"\0\0") + opt(6, struct.pack(">H", 23))

    def exchange(msg, want):
        for _ in range(3):
            s.sendto(msg, ("ff02::1:2", 547, 0, ifindex))
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            if data[0] == want and data[1:4] == xid:
                return dict(dhcp6_options(data[4:]))
        return None
    adv = exchange(bytes([1]) + xid + common + opt(3, struct.pack(">III", 1, 0, 0)), 2)
    if not adv or 3 not in adv:
        return 1
    ia = adv[3]
    rep = exchange(bytes([3]) + xid + common + opt(2, adv[2]) + opt(3, ia), 7)
    if not rep or 3 not in rep:
        return 1
    addrs = [socket.inet_ntop(socket.AF_INET6, d[:16]) for c, d in dhcp6_options(rep[3][12:]) if c == 5]
    dns = socket.inet_ntop(socket.AF_INET6, rep[23][:16]) if 23 in rep else "-"
    if not addrs:
        return 1
    print(addrs[0], dns, "%.3f" % ((time.monotonic() - t0) * 1000))
    return 0


def main(argv):
    cmd = argv[1]
    if cmd == "serve-tcp":
        serve_tcp(argv[2], int(argv[3]), argv[4] if len(argv) > 4 else None)
    elif cmd == "serve-udp":
        serve_udp(argv[2], int(argv[3]), argv[4] if len(argv) > 4 else None)
    elif cmd == "tcp":
        return 0 if probe_tcp(argv[2], int(argv[3])) else 1
    elif cmd == "udp":
        src = None
        token = "ping"
        rest = argv[4:]
        while rest:
            if rest[0] == "--src":
                src = rest[1]
            elif rest[0] == "--token":
                token = rest[1]
            rest = rest[2:]
        return 0 if probe_udp(argv[2], int(argv[3]), src, token) else 1
    elif cmd == "udp-late":
        return udp_late(int(argv[2]), argv[3], argv[4])
    elif cmd == "udp-from":
        return udp_from(int(argv[2]), argv[3], int(argv[4]))
    elif cmd == "refused":
        return refused(argv[2], argv[3], int(argv[4]))
    elif cmd == "dns":
        return dns(argv[2], argv[3])
    elif cmd == "dhcp6":
        return dhcp6(argv[2], argv[3])
    elif cmd == "stream":
        return stream(argv[2], int(argv[3]), argv[4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
