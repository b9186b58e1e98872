#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""docs/dbus/*.xml must describe exactly what the running vmfedd serves.

Every org.vmfed.* interface found on the bus (/org/vmfed/Federation1 and a
VM object) and on a guest channel must have a file docs/dbus/NAME.xml, and
every docs/dbus/org.vmfed.Federation1.*.xml must match the daemon's
interface: members, argument names, types and directions, property access
and annotations.  Comments and order of members do not matter.  Files for
other daemons' interfaces (org.vmfed.NetVM1, org.vmfed.Agent1, ...) are
theirs to check.

Usage: test_introspection.py VMFEDD TEST_CHANNEL DOCS_DBUS_DIR
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import harness
from harness import Harness


def interfaces(xml_text):
    root = ET.fromstring(xml_text)
    return {i.get("name"): i for i in root.findall("interface") if i.get("name", "").startswith("org.vmfed.")}


def canonical(iface):
    def annotations(e):
        return tuple(sorted((a.get("name"), a.get("value")) for a in e.findall("annotation")))

    members = []
    for e in iface:
        if e.tag == "method":
            args = tuple((a.get("name"), a.get("type"), a.get("direction", "in")) for a in e.findall("arg"))
            members.append(("method", e.get("name"), args, annotations(e)))
        elif e.tag == "signal":
            args = tuple((a.get("name"), a.get("type")) for a in e.findall("arg"))
            members.append(("signal", e.get("name"), args, annotations(e)))
        elif e.tag == "property":
            members.append(("property", e.get("name"), (e.get("type"), e.get("access")), annotations(e)))
        elif e.tag == "annotation":
            members.append(("annotation", e.get("name"), e.get("value"), ()))
    return sorted(members)


def main():
    vmfedd, client, docs = sys.argv[1:4]
    live = {}
    with Harness(vmfedd) as h:
        for path in [harness.ROOT, harness.ROOT + "/vm/rivendale"]:
            live.update(interfaces(h.busctl("introspect", "--xml-interface", harness.BUS, path).stdout))
        guest = subprocess.run([client, "--introspect", h.state_dir, "rivendale"], capture_output=True,
                               text=True, check=True).stdout
        live.update(interfaces(guest))

    documented = {}
    for name in sorted(os.listdir(docs)):
        if name.endswith(".xml") and name.startswith("org.vmfed.Federation1."):
            ifs = interfaces(open(os.path.join(docs, name)).read())
            if list(ifs) != [name[:-4]]:
                print(f"docs/dbus/{name}: must describe exactly the interface {name[:-4]}")
                return 1
            documented.update(ifs)

    failed = False
    for name in sorted(set(live) | set(documented)):
        if name not in documented:
            print(f"{name}: served by vmfedd but not documented in docs/dbus/{name}.xml")
            failed = True
        elif name not in live:
            print(f"{name}: documented in docs/dbus/{name}.xml but not served by vmfedd")
            failed = True
        else:
            a, b = canonical(live[name]), canonical(documented[name])
            if a != b:
                print(f"{name}: docs/dbus/{name}.xml differs from the daemon")
                for m in sorted(set(a) - set(b)):
                    print(f"  daemon only: {m}")
                for m in sorted(set(b) - set(a)):
                    print(f"  docs only:   {m}")
                failed = True
    if failed:
        return 1
    print(f"ok: {len(live)} interfaces match docs/dbus/: {', '.join(sorted(live))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
