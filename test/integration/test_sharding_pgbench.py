"""pgbench through a sharded database, in each query mode (simple, extended, prepared).

Two servers hold the shards a and b of `app = shards=users` (key user_id, half the buckets each).
A custom script picks a random user id and, each statement its own unit of work, upserts that
user, reads it and updates it, so each transaction adds exactly 2 to the sum of visits:

    \\set uid random(1, 100000)
    INSERT INTO users (user_id, name, visits) VALUES (:uid, ...) ON CONFLICT ... visits + 1
    SELECT name, visits FROM users WHERE user_id = :uid
    UPDATE users SET visits = visits + 1 WHERE user_id = :uid

pgbench runs 8 clients for a few seconds; its report must show no failed transaction. Then, on
the servers: every row's bucket (hashint8extended(user_id, 0) & 16383) is in its shard's ranges
in the map file, no user is on both shards, and the visits add up to twice the transactions.
"""
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from pgcluster import PG_BIN, PGMUX_BIN, PgCluster  # noqa: E402
from shardmap import map_ranges  # noqa: E402

BUCKETS = 16384
SHARDS = ("a", "b")
CLIENTS = 8
SECONDS = 3
SCRIPT = """\\set uid random(1, 100000)
INSERT INTO users (user_id, name, visits) VALUES (:uid, 'user ' || :uid, 1) ON CONFLICT (user_id) DO UPDATE SET visits = users.visits + 1;
SELECT name, visits FROM users WHERE user_id = :uid;
UPDATE users SET visits = visits + 1 WHERE user_id = :uid;
"""


@pytest.fixture(scope="module")
def servers():
    made = []
    try:
        for _ in SHARDS:
            s = PgCluster().init().start()
            made.append(s)
            s.sql("CREATE DATABASE app")
            s.sql("CREATE TABLE users (user_id bigint PRIMARY KEY, name text NOT NULL, "
                  "visits bigint NOT NULL)", dbname="app")
        yield made
    finally:
        for s in made:
            s.destroy()


def in_ranges(ranges):
    bucket = f"(hashint8extended(user_id, 0) & {BUCKETS - 1})"
    return "(" + " OR ".join(f"{bucket} BETWEEN {lo} AND {hi}" for lo, hi in ranges) + ")"


@pytest.fixture
def sharded(pgmux, servers, tmp_path):
    for s in servers:
        s.sql("TRUNCATE users", dbname="app")
    path = str(tmp_path / "users.map")
    subprocess.run([PGMUX_BIN, "--shard-map", "create", "--buckets", str(BUCKETS), *SHARDS,
                    "-o", path], check=True, capture_output=True)
    lines = []
    for name, s in zip(("one", "two"), servers):
        lines += ["", f"[cluster.{name}]", f"hosts = 127.0.0.1:{s.port}",
                  "health_check_interval = 0.2"]
    lines += ["", "[shards.users]", "key = user_id", f"map = {path}", "shard.a = cluster=one",
              "shard.b = cluster=two"]
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 4, "max_client_conn": 200},
                databases={"app": "shards=users dbname=app"},
                extra_sections="\n".join(lines) + "\n")
    mux.map_path = path
    return mux


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_custom_script(sharded, servers, tmp_path, mode):
    script = tmp_path / "users.sql"
    script.write_text(SCRIPT)
    r = subprocess.run([os.path.join(PG_BIN, "pgbench"), "-h", "127.0.0.1", "-p",
                        str(sharded.port), "-U", "postgres", "-n", "-M", mode, "-c", str(CLIENTS),
                        "-j", "2", "-T", str(SECONDS), "-f", str(script), "app"],
                       capture_output=True, text=True, timeout=SECONDS + 30)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"pgbench -M {mode}:\n{out[-3000:]}"
    done = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert done and failed, out
    transactions = int(done.group(1))
    assert transactions > CLIENTS, f"pgbench -M {mode} did almost nothing:\n{out}"
    assert int(failed.group(1)) == 0, f"pgbench -M {mode}:\n{out}"

    ranges = map_ranges(sharded.map_path)
    visits, users, seen = 0, 0, set()
    for shard, s in zip(SHARDS, servers):
        misplaced = s.sql(f"SELECT count(*) FROM users WHERE NOT {in_ranges(ranges[shard])}",
                          dbname="app")
        assert misplaced == "0", f"-M {mode}: {misplaced} rows on shard {shard} belong elsewhere"
        ids = [int(x) for x in s.sql("SELECT user_id FROM users", dbname="app").split()]
        assert ids, f"-M {mode}: shard {shard} got no row"
        assert not seen & set(ids), f"-M {mode}: users on both shards"
        seen |= set(ids)
        users += len(ids)
        visits += int(s.sql("SELECT coalesce(sum(visits), 0) FROM users", dbname="app"))
    assert visits == 2 * transactions, \
        f"-M {mode}: {visits} visits on the shards for {transactions} transactions (2 each)"
    assert users <= transactions
