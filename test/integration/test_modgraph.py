"""tools/modgraph.py (run by make modgraph) passes on the tree, and fails on a copy of it with a
forbidden edge, a cycle through a module that must stay out of cycles, or a module with more
arrows out than it is allowed; tools/callgraph.py finds a header declaring a function of another
module, and a source calling a module it includes no header of.
"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "modgraph.py")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import callgraph  # noqa: E402


def run(root):
    return subprocess.run([sys.executable, TOOL, root], capture_output=True, text=True, timeout=60)


def copy_tree(tmp_path):
    for d in ("src", "include"):
        shutil.copytree(os.path.join(ROOT, d), tmp_path / d)


def plant(tmp_path, rel, header):
    with open(tmp_path / rel, "a") as fh:
        fh.write(f'\n#include "{header}"\n')


def test_tree_passes():
    out = run(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ARROWS" not in out.stdout


@pytest.mark.parametrize("source, header, verdict", [
    # an edge DESIGN.md forbids
    ("src/pool/pool.c", "admin/admin.h", "FORBIDDEN pool -> admin"),
    # route into the client <-> pool <-> server cycle
    ("src/route/router.c", "client/client.h", "CYCLE through route:"),
    # server has no arrow to shard: one more takes it over its allowance
    ("src/server/server.c", "shard/key.h", "ARROWS server:"),
])
def test_planted_include_fails(tmp_path, source, header, verdict):
    copy_tree(tmp_path)
    plant(tmp_path, source, header)
    out = run(str(tmp_path))
    assert out.returncode == 1
    assert verdict in out.stdout, out.stdout


def test_header_declaring_another_modules_function_is_found(tmp_path):
    copy_tree(tmp_path)
    # who defines what, as the objects would say: the client defines client_fast_close
    owner = {"client_fast_close": "client", "pool_sweep": "pool"}
    assert callgraph.foreign_declarations(owner, root=str(tmp_path)) == []
    with open(tmp_path / "include" / "pool" / "events.h", "a") as fh:
        fh.write("\n/* a comment naming client_fast_close(c); is not a declaration */\n"
                 "void client_fast_close(struct client *c);\n")
    assert callgraph.foreign_declarations(owner, root=str(tmp_path)) == [
        ("include/pool/events.h", "client_fast_close", "client")]


def test_call_without_include_is_found(tmp_path):
    (tmp_path / "src" / "pool").mkdir(parents=True)
    source = tmp_path / "src" / "pool" / "x.c"
    source.write_text('#include "pool/pool.h"\n')
    # what nm would say of x.o: it calls client_close, which the client module defines
    objs = {"src/pool/x.o": ("pool", {}, {"client_close", "pool_sweep"})}
    owner = {"client_close": "client", "pool_sweep": "pool"}
    assert callgraph.hidden_calls(objs, owner, root=str(tmp_path)) == [
        ("src/pool/x.c", "client", ["client_close"])]
    source.write_text('#include "pool/pool.h"\n#include "client/client.h"\n')
    assert callgraph.hidden_calls(objs, owner, root=str(tmp_path)) == []
