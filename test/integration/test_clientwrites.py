"""tools/clientwrites.py (run by make modgraph) passes on the tree and fails, naming file:line,
on each kind of write to a client field from outside the client module: an assignment, a
compound assignment, an increment, a write into an embedded member, through a `->client->`
chain, an address handed to a function that may write through it, and an array member handed
to snprintf. Reads, writes through a pointer the client holds, and an address handed on as
const stay allowed.
"""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "clientwrites.py")

PLANTED = """
static void planted(struct client *c, struct server *s)
{
	struct client *other = s->client;
	const struct param_set *seen = &c->params;

	if (c->pending_ready == 0 && c->tx_status != 'I' && seen && strcmp(c->user, "x") == 0)
		c->server->state = SERVER_IDLE;
	c->pending_ready = 0;
	other->unsynced |= true;
	++c->pending_ready;
	s->client->in_copy = false;
	c->portal_dealloc = true;
	param_store(&c->params, PARAM_TIMEZONE, "UTC");
	snprintf(c->addr, sizeof(c->addr), "%s", c->dbname);
	log_info("%s", c->addr);
}
"""
# Lines (from the planted function's first line) that the tool must name, with the field.
EXPECTED = [(8, "pending_ready"), (9, "unsynced"), (10, "pending_ready"), (11, "in_copy"),
            (12, "portal_dealloc"), (13, "params"), (14, "addr")]


def run(root):
    return subprocess.run([sys.executable, TOOL, root], capture_output=True, text=True, timeout=60)


def test_tree_passes():
    out = run(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_planted_writes_fail_with_file_and_line(tmp_path):
    for d in ("src", "include"):
        shutil.copytree(os.path.join(ROOT, d), tmp_path / d)
    target = tmp_path / "src" / "admin" / "show.c"
    first = target.read_text().count("\n") + 1  # the planted text starts with a newline
    with open(target, "a") as fh:
        fh.write(PLANTED)

    out = run(str(tmp_path))
    assert out.returncode == 1, out.stdout + out.stderr
    named = [line for line in out.stdout.splitlines() if "written outside" in line]
    want = [f"src/admin/show.c:{first + n}: client.{field} written outside the client module"
            for n, field in EXPECTED]
    assert named == want, out.stdout
