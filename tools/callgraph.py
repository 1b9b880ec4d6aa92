#!/usr/bin/env python3
"""callgraph: the module graph of pgmux from the calls its object files make, and its dead exports.

tools/modgraph.py reads #include lines, so a module that reaches another through a third one's
header (pool/pool.h brings half the tree) has no arrow there. This reads the built objects
instead: nm lists what each object defines and what it calls (or whose address it takes), and
an arrow a -> b exists when an object of module a uses a function or variable defined in b.
Types and macros leave no trace in an object, so this graph shows calls, not includes; read the
two together. A forbidden arrow of DESIGN.md (modgraph.FORBIDDEN) found here fails the check, and
so does a call of CALLS_FORBIDDEN below (modules whose types another uses, but that it must
not call), a header that declares a function another module defines (a header declares its
own module's API; types may be shared), and a source that calls into a module without including
a header of it (so tools/modgraph.py, which reads includes, sees every arrow the calls make).

--dead lists exported functions (defined in one object, global) that no other object of pgmux
uses and no unit test or fuzz target names: each should be static, or deleted if its own file
does not use it either.

Usage: tools/callgraph.py [BUILD] [--dead]   (BUILD defaults to build/rel; run `make pgmux` first)
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modgraph import FORBIDDEN, OWNER  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# Calls that must never exist although the types may cross (include/pool/pool.h lists the ways
# the client, pool and server modules reach one another): (from, to, why).
CALLS_FORBIDDEN = [
    ("server", "client", "a server reports events through server/events.h"),
    ("pool", "client", "the pool reports events through pool/events.h"),
    ("pool", "route", "routing is the client's (client/route.c)"),
    ("pool", "worker", "the worker runs the pools, not the reverse"),
    ("server", "topo", "the pool speaks to the topology for its servers"),
]


def module_of(rel):
    parts = rel.split(os.sep)
    return os.path.splitext(parts[1])[0] if len(parts) == 2 else parts[1]


def read_objects(build):
    """{object path under src/: (module, defined globals {name: kind}, undefined names)}."""
    objs = {}
    top = os.path.join(build, "src")
    for dirpath, _, files in os.walk(top):
        for f in sorted(files):
            if not f.endswith(".o"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, build)
            # an object left in the build tree by a source since moved or deleted is not pgmux
            if not os.path.exists(os.path.join(ROOT, rel[:-2] + ".c")):
                continue
            out = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout
            defined, used = {}, set()
            for line in out.splitlines():
                p = line.split()
                if len(p) == 3 and p[1] in "TDBR":
                    defined[p[2]] = p[1]
                elif len(p) == 2 and p[0] == "U":
                    used.add(p[1])
            objs[rel] = (module_of(rel), defined, used)
    return objs


# A function declared at file level in a header: its name (comments are removed first).
DECLARATION_RE = re.compile(
    r"^(?!typedef|static|#|\s|struct \w+ \{|enum|union|extern)[A-Za-z_][\w \*]*?\b(\w+)\("
    r"(?:[^;{]|\n)*?\)\s*(?:__attribute__\(\([^;]*\)\))?\s*;", re.M)


def foreign_declarations(owner, root=ROOT):
    """(header, function, module defining it) for each function a header of one module declares
    while another module defines it: a header declares its own module's API only."""
    out = []
    for dirpath, _, files in os.walk(os.path.join(root, "include")):
        for f in sorted(files):
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = re.sub(r"/\*.*?\*/", "", fh.read(), flags=re.S)
            for name in DECLARATION_RE.findall(text):
                if owner.get(name, module_of(rel)) != module_of(rel):
                    out.append((rel, name, owner[name]))
    return out


INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/[^"]+"', re.M)


def hidden_calls(objs, owner, root=ROOT):
    """(source, module, names) for each source that calls into another module without including
    any header of it (reaching its declarations through a third header): the include graph would
    miss that arrow. A source's own header's includes count as its own."""
    out = []
    for rel, (m, _, used) in sorted(objs.items()):
        src = rel[:-2] + ".c"
        mods = set()
        for path in (os.path.join(root, src), os.path.join(root, "include", src[4:-2] + ".h")):
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as fh:
                    mods |= set(INCLUDE_RE.findall(fh.read()))
        missing = {}
        for name in used:
            b = owner.get(name)
            if b and b != m and OWNER not in (m, b) and b not in mods:
                missing.setdefault(b, []).append(name)
        for b, names in sorted(missing.items()):
            out.append((src, b, sorted(names)))
    return out


def dead_exports(objs):
    tests = ""
    for d in ("test/unit", "test/fuzz"):
        for f in sorted(os.listdir(os.path.join(ROOT, d))):
            if f.endswith(".c"):
                with open(os.path.join(ROOT, d, f), encoding="utf-8", errors="replace") as fh:
                    tests += fh.read()
    used = {}
    for rel, (_, _, u) in objs.items():
        for s in u:
            used.setdefault(s, set()).add(rel)
    dead = []
    for rel, (_, defined, _) in sorted(objs.items()):
        for name, kind in sorted(defined.items()):
            if kind != "T" or name == "main" or used.get(name, set()) - {rel}:
                continue
            if re.search(r"\b" + re.escape(name) + r"\b", tests):
                continue
            dead.append((rel, name))
    return dead


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    build = args[0] if args else os.path.join(ROOT, "build", "rel")
    objs = read_objects(build)
    if not objs:
        sys.exit(f"callgraph: no objects under {build}/src (make pgmux first)")
    if "--dead" in argv:
        dead = dead_exports(objs)
        for rel, name in dead:
            print(f"{rel[:-2]}.c: {name}")
        print(f"callgraph: {len(dead)} exported function(s) nothing else uses")
        return 1 if dead else 0

    owner = {}
    for rel, (m, defined, _) in objs.items():
        for name in defined:
            owner[name] = m
    edges = {}
    for rel, (m, _, used) in objs.items():
        for name in used:
            b = owner.get(name)
            if b and b != m and OWNER not in (m, b):
                edges.setdefault((m, b), set()).add(f"{rel[:-2]}.c: {name}")
    modules = sorted({m for m, _, _ in objs.values()} - {OWNER})
    for m in modules:
        outs = sorted(b for (a, b) in edges if a == m)
        print(f"  {m:8} {len(outs):2} -> {' '.join(outs)}")
    bad = 0
    for a, b, why in FORBIDDEN + CALLS_FORBIDDEN:
        if (a, b) in edges:
            bad += 1
            print(f"FORBIDDEN {a} -> {b} ({why}): {', '.join(sorted(edges[(a, b)]))}")
    for src, b, names in hidden_calls(objs, owner):
        bad += 1
        print(f"HIDDEN {src} calls {b} ({', '.join(names)}) without including a header of {b}")
    for rel, name, m in foreign_declarations(owner):
        bad += 1
        print(f"FOREIGN {rel} declares {name}, which {m} defines")
    print("callgraph: " + ("ok" if not bad else f"{bad} violation(s)"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
