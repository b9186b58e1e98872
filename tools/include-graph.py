#!/usr/bin/env python3
"""Print the module include graph of one folder and its cycles.

A module is a .c/.h pair of that folder named by its stem (broker/channel.c
and broker/channel.h are the module "channel").  Module A depends on module
B when A.c or A.h includes "FOLDER/B.h".  Prints one line per module with
what it depends on, then every strongly connected component of more than one
module (a cycle), then a summary line.

  tools/include-graph.py broker            # the broker's graph
  tools/include-graph.py --cycles broker   # only the cycles (exit 1 if any)
  tools/include-graph.py --cycles --allow "federation federation-internal" federation
                                           # exit 1 only for a cycle that is not within an
                                           # allowed set (the ones docs/architecture.md justifies)
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def graph(root, folder):
    d = os.path.join(root, folder)
    mods = sorted({os.path.splitext(f)[0] for f in os.listdir(d) if f.endswith((".c", ".h"))})
    edges = {m: set() for m in mods}
    for m in mods:
        for ext in (".c", ".h"):
            p = os.path.join(d, m + ext)
            if not os.path.exists(p):
                continue
            with open(p, encoding="utf-8", errors="replace") as f:
                for line in f:
                    g = INCLUDE.match(line)
                    if not g:
                        continue
                    inc = g.group(1)
                    if inc.startswith(folder + "/") and inc.endswith(".h"):
                        dep = os.path.splitext(inc[len(folder) + 1:])[0]
                        if dep != m and dep in edges:
                            edges[m].add(dep)
    return edges


def sccs(edges):
    """Tarjan's algorithm, iterative enough for a few hundred nodes."""
    index, low, on, stack, out, n = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def main():
    args = sys.argv[1:]
    only_cycles = "--cycles" in args
    args = [a for a in args if a != "--cycles"]
    allowed = []
    while "--allow" in args:
        i = args.index("--allow")
        if i + 1 >= len(args):
            print("include-graph: --allow needs a list of modules", file=sys.stderr)
            return 2
        allowed.append(set(args[i + 1].split()))
        del args[i:i + 2]
    folder = args[0] if args else "broker"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    edges = graph(root, folder)
    if not only_cycles:
        for m in sorted(edges):
            print("%-22s -> %s" % (m, " ".join(sorted(edges[m])) or "-"))
    cycles = sccs(edges)
    for c in sorted(cycles, key=len, reverse=True):
        print("cycle (%d): %s" % (len(c), " ".join(c)))
    hub = sorted(m for m in edges if folder in edges[m]) if folder in edges else []
    n_edges = sum(len(v) for v in edges.values())
    print("%s: %d modules, %d edges, %d cycles (largest %d), %d modules include %s/%s.h" %
          (folder, len(edges), n_edges, len(cycles), max([len(c) for c in cycles] or [0]),
           len(hub), folder, folder))
    unjustified = [c for c in cycles if not any(set(c) <= a for a in allowed)]
    for c in unjustified if allowed else []:
        print("include-graph: cycle not allowed: %s" % " ".join(c), file=sys.stderr)
    return 1 if (only_cycles and unjustified) else 0


if __name__ == "__main__":
    sys.exit(main())
