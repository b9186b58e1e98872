#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Check the examples in docs/ with the programs that read those files.

A fenced block whose info string has a word "check:KIND" is an example that
must be accepted (docs/HACKING.md, "Examples in docs/"):

  ```ini check:netvm-state             a vmfed-netd state file: vmfed-netd --state F --check
  ```text check:firewall               a vmfed.firewall(5) rules file, checked as the
                                       RulesFile= of a client of a minimal state
  ```ini check:vms.d/NAME.vm           a VM file, and
  ```text check:policy.d/NAME.policy   a policy file: each doc's VM and policy examples go
                                       into one configuration directory (over a copy of
                                       examples/etc-vmfed/vms.d) checked by
                                       vmfedctl policy lint

Usage: check_examples.py DOCS_DIR VMFED_NETD VMFEDCTL EXAMPLES_DIR
Exits 1 on any rejected example, and when a known-bad example of each kind
is accepted (the checks must be able to fail).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^```(\S*)(.*)$")

STATE_HEADER = """[Uplink]
Interface=eth0
DNS=192.0.2.53
[Downstream]
Interface=eth1
Address=10.137.0.1/24
Address=fd00:137::1/64
[Client example]
MAC=52:54:00:00:00:0a
Address=10.137.0.10
RulesFile=example.rules
"""


def blocks(path):
    """(line, kind, text) of every marked block of a Markdown file."""
    out, cur = [], None
    for no, line in enumerate(open(path, encoding="utf-8"), 1):
        m = FENCE.match(line.rstrip("\n"))
        if cur is None and m:
            kinds = [w[6:] for w in m.group(2).split() if w.startswith("check:")]
            cur = (no, kinds[0] if kinds else None, [])
        elif cur is not None and line.startswith("```"):
            if cur[1]:
                out.append((cur[0], cur[1], "".join(cur[2])))
            cur = None
        elif cur is not None:
            cur[2].append(line)
    return out


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


class Checker:
    def __init__(self, netd, ctl, examples, tmp):
        self.netd, self.ctl, self.examples, self.tmp = netd, ctl, examples, tmp

    def state(self, text):
        d = tempfile.mkdtemp(dir=self.tmp)
        p = os.path.join(d, "example.state")
        with open(p, "w") as f:
            f.write(text)
        return run([self.netd, "--state", p, "--check"])

    def firewall(self, text):
        d = tempfile.mkdtemp(dir=self.tmp)
        with open(os.path.join(d, "example.rules"), "w") as f:
            f.write(text)
        p = os.path.join(d, "example.state")
        with open(p, "w") as f:
            f.write(STATE_HEADER)
        return run([self.netd, "--state", p, "--check"])

    def config(self, files):
        """files: {relative path: text}; lint a config dir of the examples' VMs plus these."""
        d = tempfile.mkdtemp(dir=self.tmp)
        shutil.copytree(os.path.join(self.examples, "vms.d"), os.path.join(d, "vms.d"))
        os.mkdir(os.path.join(d, "policy.d"))
        for rel, text in files.items():
            with open(os.path.join(d, rel), "w") as f:
                f.write(text)
        rc, out = run([self.ctl, "policy", "lint", "--config-dir", d, "--policy-dir", os.path.join(d, "policy.d")])
        return rc, out


def main():
    docs, netd, ctl, examples = sys.argv[1:5]
    tmp = tempfile.mkdtemp(prefix="vmfed-doc-examples-")
    ck = Checker(netd, ctl, examples, tmp)
    failures, n = 0, 0
    try:
        for name in sorted(os.listdir(docs)):
            if not name.endswith(".md"):
                continue
            path = os.path.join(docs, name)
            config = {}
            for line, kind, text in blocks(path):
                n += 1
                where = "%s:%d (%s)" % (name, line, kind)
                if kind == "netvm-state":
                    rc, out = ck.state(text)
                elif kind == "firewall":
                    rc, out = ck.firewall(text)
                elif re.fullmatch(r"(vms\.d/[a-z0-9_.-]+\.vm|policy\.d/[a-z0-9_.-]+\.policy)", kind):
                    config[kind] = text
                    continue
                else:
                    rc, out = 1, "unknown kind check:%s" % kind
                print("%s %s%s" % ("ok" if rc == 0 else "FAILED", where, "" if rc == 0 else ":\n" + out))
                failures += rc != 0
            if config:
                rc, out = ck.config(config)
                print("%s %s: %s%s" % ("ok" if rc == 0 else "FAILED", name, ", ".join(sorted(config)),
                                      "" if rc == 0 else ":\n" + out))
                failures += rc != 0
        # The checks must be able to fail: one known-bad example of each kind.
        bad = [
            ("a state line with a comment after its value", ck.state(STATE_HEADER.replace(
                "RulesFile=example.rules\n", "Address=fd00:137::10   # a comment\n"))),
            ("a firewall rule with a typo", ck.firewall("acept dns\n")),
            ("a VM file with an unknown key", ck.config({"vms.d/bad.vm": "[VM]\nRole=persona\nMemroy=1G\n"})),
            ("a policy with an unknown action", ck.config({"policy.d/50-bad.policy":
                                                          "vmfed.OpenURL * @anyvm @anyvm alow\n"})),
        ]
        for what, (rc, out) in bad:
            print("%s known-bad example refused: %s" % ("ok" if rc != 0 else "FAILED", what))
            failures += rc == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if n == 0:
        print("FAILED: no marked example found in %s" % docs)
        return 1
    print("%d marked example(s), %d failure(s)" % (n, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
