"""Growing from two shards to three while clients write.

Shard c is in [shards.users] but not in the map yet (it serves no key). The map tool plans the
next map for a b c and prints the MOVE BUCKETS commands that reach it online; both run at once
(one from a, one from b) while writers bump users and add events on keys of every shard. The
first switch adds c to the map, the second finds it there. Afterwards the map holds what the
plan said, every acknowledged write is on the shard its key is on now (once), the keys that
moved are the plan's third, and the clean-up leaves each row on one shard only.
"""
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from pgcluster import PGMUX_BIN, PgCluster  # noqa: E402
from conftest import wait_for  # noqa: E402
from test_moves import (BUCKET, BUCKETS, SCHEMA, Writer, clean, load_users,  # noqa: E402,F401
                        replication_objects, rows, servers, stop_after_more, wait_step)

USERS = list(range(1, 301))


@pytest.fixture(scope="module")
def third():
    c = PgCluster(settings=["wal_level = logical"]).init().start()
    c.sql("CREATE DATABASE app")
    c.sql(SCHEMA, dbname="app")
    yield c
    c.destroy()


def start(pgmux, servers, tmp_path):
    path = str(tmp_path / "users.map")
    subprocess.run([PGMUX_BIN, "--shard-map", "create", "--buckets", str(BUCKETS), "a", "b",
                    "-o", path], check=True, capture_output=True)
    lines = []
    for name, s in zip(("one", "two", "three"), servers):
        lines += ["", f"[cluster.{name}]", f"hosts = 127.0.0.1:{s.port}",
                  "health_check_interval = 0.2"]
    lines += ["", "[shards.users]", "key = user_id", f"map = {path}",
              "shard.a = cluster=one", "shard.b = cluster=two", "shard.c = cluster=three"]
    mux = pgmux(databases={"app": "shards=users dbname=app"},
                extra_sections="\n".join(lines) + "\n")
    mux.map_path = path
    return mux


def plan(path, nxt):
    """The plan's report and the console commands it prints, for section users."""
    r = subprocess.run([PGMUX_BIN, "--shard-map", "plan", path, "a", "b", "c", "-o", nxt],
                       check=True, capture_output=True, text=True)
    report = r.stdout + r.stderr
    commands = [line.strip().replace("<section>", "users").rstrip(";")
                for line in report.splitlines() if line.strip().startswith("MOVE BUCKETS")]
    return report, commands


def in_ranges(spec):
    """SQL: is the row's bucket in spec ("lo-hi,lo-hi")?"""
    parts = []
    for r in spec.split(","):
        lo, _, hi = r.partition("-")
        parts.append(f"({BUCKET}) BETWEEN {lo} AND {hi or lo}")
    return "(" + " OR ".join(parts) + ")"


@pytest.mark.timeout(150)
def test_grow_two_shards_to_three(pgmux, clean, third, tmp_path):
    a, b = clean
    c = third
    c.sql("TRUNCATE users, events, notes", dbname="app")
    mux = start(pgmux, (a, b, c), tmp_path)
    load_users(mux, USERS)
    nxt = str(tmp_path / "next.map")
    report, commands = plan(mux.map_path, nxt)
    print("\n" + report)
    assert len(commands) == 2 and all(cmd.endswith(" TO c") for cmd in commands), report
    moved_sql = " OR ".join(in_ranges(cmd.split()[3]) for cmd in commands)

    writers = [Writer(mux, i + 1, USERS[i::4]) for i in range(4)]
    for w in writers:
        w.start()
    wait_for(lambda: all(len(w.acked) > 20 for w in writers), timeout=20, what="writes")
    wait_for(lambda: all(r["primary"] for r in mux.admin("SHOW SHARDS")), timeout=10,
             what="every shard's primary")
    ids = []
    for cmd in commands:                # both at once: a -> c and b -> c
        mux.admin(cmd)
        ids.append(int(mux.admin_notices[-1].split()[1]))
    for i in ids:
        row = wait_step(mux, i, ("done", "failed"), timeout=90)
        assert row["step"] == "done", (row, mux.log()[-3000:])
    acked = stop_after_more(writers, 10, 20, "writes after both switches")
    assert [e for w in writers for e in w.errors] == []

    # the map is the plan's
    diff = subprocess.run([PGMUX_BIN, "--shard-map", "diff", mux.map_path, nxt],
                          check=True, capture_output=True, text=True).stdout
    assert "buckets moved, from -> to: none" in diff, diff

    # every acknowledged write on the shard its key is on now, once
    moved = {int(k) for k in c.sql(f"SELECT user_id FROM users WHERE {moved_sql}",
                                   dbname="app").split()}
    fraction = len(moved) / len(USERS)
    print(f"keys moved growing 2 -> 3 shards: {len(moved)} of {len(USERS)} "
          f"({fraction:.3f}, ideal 0.333)")
    assert 0.2 < fraction < 0.47, fraction
    assert rows(c, "SELECT id, user_id FROM events") == {r for r in acked if r[1] in moved}
    for mux_cmd in ids:
        mux.admin(f"MOVE CLEANUP {mux_cmd}")
    for i in ids:
        assert wait_step(mux, i, ("cleaned", "done"), timeout=60)["step"] == "cleaned"
    on_ab = rows(a, "SELECT id, user_id FROM events") | rows(b, "SELECT id, user_id FROM events")
    assert on_ab == {r for r in acked if r[1] not in moved}
    bumps = {}
    for _, uid in acked:
        bumps[uid] = bumps.get(uid, 0) + 1
    users = (rows(a, "SELECT user_id, n FROM users") | rows(b, "SELECT user_id, n FROM users")
             | rows(c, "SELECT user_id, n FROM users"))
    assert users == {(uid, bumps.get(uid, 0)) for uid in USERS}
    assert replication_objects((a, c)) == ("0", "0", "0")
    assert replication_objects((b, c)) == ("0", "0", "0")
    # through pgmux, a moved key is read from c
    some = sorted(moved)[0]
    assert mux.admin(f"SHOW SHARD FOR {some}")[0]["shard"] == "c"
    with mux.connect(dbname="app") as conn:
        assert conn.execute("SELECT n FROM users WHERE user_id = %s",
                            (some,)).fetchone()[0] == bumps.get(some, 0)
