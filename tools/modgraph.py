#!/usr/bin/env python3
"""modgraph: the module graph of pgmux from its #include lines, checked against DESIGN.md.

A module is the first path component under src/ or include/ (src/pool/pool.c and
include/pool/pool.h are both "pool"; src/main.c is "main", the program's owner, which may
include anything). An edge a -> b exists when a file of a includes "b/...". The check fails
(exit 1) on an edge DESIGN.md forbids, on a cycle through a module that must stay out of
cycles, or on a module with more arrows out than ARROWS_ALLOWED lets it have; it prints the
modules, the edges, each module's outgoing arrows and the largest cycle (strongly connected
component) either way.

Usage: tools/modgraph.py [ROOT] [-v]   (ROOT defaults to the parent of tools/; -v lists files)
"""
import os
import re
import sys

# Arrows that must never exist (DESIGN.md, "Modules"): (from, to, why).
FORBIDDEN = [
    ("proto", "ev", "the codec is pure"),
    ("proto", "pool", "the codec is pure"),
    ("route", "ev", "routing is pure policy"),
    ("route", "pool", "routing is pure policy"),
    ("shard", "ev", "sharding is pure policy"),
    ("shard", "pool", "sharding is pure policy"),
    ("config", "pool", "config is a snapshot, applied by its owner"),
    ("admin", "ev", "admin replies go through the client module"),
    ("topo", "pool", "pools subscribe to topology changes"),
    ("pool", "admin", "admin registers its hooks with the pool"),
    ("ev", "config", "ev takes settings structs"),
    # The worker (src/worker/) was part of pool when DESIGN.md drew these walls: they hold for it too.
    ("proto", "worker", "the codec is pure"),
    ("route", "worker", "routing is pure policy"),
    ("shard", "worker", "sharding is pure policy"),
    ("config", "worker", "config is a snapshot, applied by its owner"),
    ("topo", "worker", "the worker's pools subscribe to topology changes"),
    ("worker", "admin", "admin registers its hooks with the worker"),
    ("server", "worker", "a server reads only what its pools lend it (struct server_env)"),
    ("pool", "worker", "the pools read only what the worker lends them (struct pools)"),
    ("client", "worker", "a client reads only what the worker lends it (struct clients), and "
     "reaches the console and the bucket moves through their tables"),
    ("worker", "metrics", "main.c hands the exporter to the metrics endpoint: the worker does not "
     "know it"),
    ("pool", "metrics", "pools count with core/histogram; /metrics reads them"),
    # Online resharding (src/reshard/) runs on the worker's loop with the worker's slots, lent in
    # struct reshard; the worker and the modules below it never reach it by name.
    ("worker", "reshard", "main.c attaches the moves to the worker through struct "
     "worker_resharding_ops"),
    ("reshard", "worker", "the moves read only what the worker lends them (struct reshard)"),
    ("reshard", "pool", "the client module counts the units a hold waits for "
     "(client_units_running)"),
    ("reshard", "proto", "the moves speak SQL through ev/pgquery and etcd through shard/etcd"),
    ("reshard", "admin", "admin calls the moves' verbs, not the reverse"),
    ("pool", "reshard", "the pools know nothing of shard maps and moves"),
    ("client", "reshard", "clients reach the moves through shard_moves_ops"),
    ("shard", "reshard", "sharding is pure policy"),
    ("topo", "reshard", "topology is read by the moves, never the reverse"),
    ("config", "reshard", "config is a snapshot, applied by its owner"),
]
# Arrows out of a module (other modules whose headers it includes; tools/callgraph.py checks that
# a source includes a header of every module it calls, so these include the calls): the aim is
# at most ARROWS_AIM for every module. ARROWS_ALLOWED holds what the modules above it have today,
# a ratchet: a module may lose arrows, never gain one, and its line goes when it reaches the aim.
# The admin console shows everything on the loop, and the client runs the protocol with every
# part of pgmux (login, routing, shards, prepared statements). The admin console gained reshard
# when the moves left the worker (which so reached the aim): its SHOW SHARDS still reads the
# shard module's map (struct shard_map, shard_map_counts), which no reshard function answers.
ARROWS_AIM = 6
ARROWS_ALLOWED = {"admin": 10, "client": 9}
# Modules no cycle may pass through.
ACYCLIC = ("topo", "admin", "route", "shard", "reshard")
# The program's entry point owns everything and is nobody's dependency.
OWNER = "main"

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/[^"]+"', re.M)


def module_of(rel):
    parts = rel.split(os.sep)
    if len(parts) == 2:  # src/main.c
        return os.path.splitext(parts[1])[0]
    return parts[1]


def read_graph(root):
    edges = {}  # (a, b) -> sorted files
    modules = set()
    for top in ("src", "include"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if not f.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, root)
                a = module_of(rel)
                modules.add(a)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                for b in INCLUDE_RE.findall(text):
                    if b != a:
                        edges.setdefault((a, b), set()).add(rel)
    for a, b in edges:
        modules.add(b)
    modules.discard(OWNER)
    edges = {k: sorted(v) for k, v in edges.items() if OWNER not in k}
    return sorted(modules), edges


def sccs(modules, edges):
    """Tarjan's strongly connected components, each a sorted list."""
    succ = {m: sorted(b for (a, b) in edges if a == m) for m in modules}
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ.get(v, ()):
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

    for m in modules:
        if m not in index:
            visit(m)
    return [c for c in out if len(c) > 1]


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    modules, edges = read_graph(root)

    print(f"modules {len(modules)}: {' '.join(modules)}")
    print(f"module edges {len(edges)}")
    for m in modules:
        outs = sorted(b for (a, b) in edges if a == m)
        print(f"  {m:8} {len(outs):2} -> {' '.join(outs)}")
        if verbose:
            for b in outs:
                print(f"             {b}: {', '.join(edges[(m, b)])}")
    fan = max((sum(1 for (a, _) in edges if a == m), m) for m in modules)
    print(f"most arrows out: {fan[1]} ({fan[0]})")

    cycles = sccs(modules, edges)
    largest = max(cycles, key=len) if cycles else []
    print(f"cycles {len(cycles)}, largest: " + (" <-> ".join(largest) if largest else "none"))

    bad = 0
    for a, b, why in FORBIDDEN:
        if (a, b) in edges:
            bad += 1
            print(f"FORBIDDEN {a} -> {b} ({why}): {', '.join(edges[(a, b)])}")
    for m in modules:
        n = sum(1 for (a, _) in edges if a == m)
        allowed = ARROWS_ALLOWED.get(m, ARROWS_AIM)
        if n > allowed:
            bad += 1
            print(f"ARROWS {m}: {n} out, more than the {allowed} allowed (ARROWS_ALLOWED)")
        elif m in ARROWS_ALLOWED and n < allowed:
            print(f"note: {m} has {n} arrows out now: lower ARROWS_ALLOWED to {n}")
    for c in cycles:
        through = [m for m in c if m in ACYCLIC]
        if through:
            bad += 1
            print(f"CYCLE through {', '.join(through)}: {' <-> '.join(c)}")
    print("modgraph: " + ("ok" if not bad else f"{bad} violation(s)"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
