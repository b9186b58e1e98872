#!/usr/bin/env python3
"""Check the size rules of docs/HACKING.md §1 over the C sources.

  - no .c file over 700 lines;
  - no function over 100 lines unless a comment in the 6 lines above its
    first line says why, starting with "Long:" (e.g. "/* Long: one switch
    over every key of the file format. */").

A function is counted from the line that opens its body (a line at column 0
that ends in "{" after a ")", or a lone "{" after such a signature) to the
next "}" at column 0.  Prints every finding, then a summary; exit 1 when there
is one.  Folders or .c files: the arguments, default every source folder of the tree.

  tools/check-sizes.py                 # the whole tree
  tools/check-sizes.py --list broker   # also every file's size, largest first
"""
import os
import re
import sys

MAX_FILE = 700
MAX_FUNC = 100
FOLDERS = ["common", "policy", "federation", "broker", "services", "netvm", "ctl", "ui", "tests"]
SIG_END = re.compile(r"^[A-Za-z_].*\)\s*(\{)?\s*$")


def functions(lines):
    """Yield (name, first_line_no, n_lines) for each top-level function."""
    i = 0
    while i < len(lines):
        line = lines[i]
        start = None
        if SIG_END.match(line) and not line.rstrip().endswith(";") and "=" not in line.split("(")[0]:
            if line.rstrip().endswith("{"):
                start = i
            elif i + 1 < len(lines) and lines[i + 1].rstrip() == "{":
                start = i
        if start is None:
            i += 1
            continue
        # the signature may start on earlier lines (continuation): find its first line
        first = start
        while first > 0 and lines[first - 1].strip() and not lines[first - 1].rstrip().endswith((";", "}", "*/")) \
                and not lines[first - 1].startswith(("#", "/*", " *", "//")) and lines[first - 1][:1] in " \t":
            first -= 1
        while first > 0 and lines[first - 1][:1].isalpha() and not lines[first - 1].rstrip().endswith((";", "}", "*/", "{")):
            first -= 1
        m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", "".join(lines[first:start + 1]))
        name = m.group(1) if m else "?"
        j = start + 1
        while j < len(lines) and not lines[j].startswith("}"):
            j += 1
        yield name, first, j - start + 1
        i = j + 1


def main():
    args = sys.argv[1:]
    listing = "--list" in args
    args = [a for a in args if a != "--list"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folders = args or FOLDERS
    findings, sizes = [], []
    paths = []
    for folder in folders:
        top = folder if os.path.isabs(folder) else os.path.join(root, folder)
        if os.path.isfile(top):
            paths.append(top)
        for dirpath, _, files in os.walk(top):
            paths += [os.path.join(dirpath, fn) for fn in sorted(files)]
    for p in paths:
                if not p.endswith(".c"):
                    continue
                rel = os.path.relpath(p, root)
                with open(p, encoding="utf-8", errors="replace") as f:
                    lines = f.read().split("\n")
                n = len(lines) - (1 if lines and lines[-1] == "" else 0)
                sizes.append((n, rel))
                if n > MAX_FILE:
                    findings.append("%s: %d lines (at most %d)" % (rel, n, MAX_FILE))
                for name, first, length in functions(lines):
                    if length <= MAX_FUNC:
                        continue
                    above = "\n".join(lines[max(0, first - 6):first])
                    if "Long:" in above:
                        continue
                    findings.append("%s:%d: %s() is %d lines (at most %d without a \"Long:\" comment above it)"
                                    % (rel, first + 1, name, length, MAX_FUNC))
    if listing:
        for n, rel in sorted(sizes, reverse=True):
            print("%6d %s" % (n, rel))
    for f in findings:
        print(f)
    print("check-sizes: %d .c files, %d findings" % (len(sizes), len(findings)))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
