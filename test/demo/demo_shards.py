#!/usr/bin/python3
"""pgmux sharding in one minute: one connection string, users spread over two clusters.

Run by `make demo-shards` from the repository root. It starts two throwaway PostgreSQL 15
clusters, each a primary with one streaming replica, and pgmux in front of them with one
sharded database, `app = shards=users`: the key is users.user_id, the map (made with
`pgmux --shard-map create`) gives half of the 16384 buckets to shard a (cluster one) and half
to shard b (cluster two).

10,000 users are written through one connection to pgmux, half with INSERTs, half with one
COPY that pgmux splits by key over the shards. Then, per shard, three figures
must agree: the rows its primary holds, the rows PostgreSQL itself places in the shard's
bucket ranges (hashint8extended(user_id, 0) & 16383, ranges from the map file), and what
SHOW SHARDS predicts from the shard's share of the buckets (close, not equal: keys fall into
buckets at random). A keyed read is shown served by the shard's replica, a statement whose
keys are on both shards is refused, and `pgmux --shard-map plan` shows what adding a third
shard would move. Then the third shard is added while a writer runs: a third cluster, its
section lines and a RELOAD, and the plan's MOVE BUCKETS commands in the admin console, which
copy the rows with PostgreSQL's logical replication and switch the map; afterwards every row
is on the shard the planned map says, and the writer saw no error. The demo exits non-zero
when a check fails. Everything it started is
stopped and removed at the end, also after an error or Ctrl-C.
"""
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
sys.path.insert(0, HERE)

import psycopg  # noqa: E402

from demo import admin_query, admin_table, heading, run_demo, say, wait_topology  # noqa: E402
from pgcluster import PGMUX_BIN, Pgmux  # noqa: E402
from shardmap import map_ranges  # noqa: E402
from replication import ReplicaSet  # noqa: E402

USERS = 10_000
BUCKETS = 16384
TOPOLOGY_TIMEOUT = 15
PREDICTION_TOLERANCE = 0.05   # |rows - share x USERS| / (share x USERS); sd is about 1.4 %
CLUSTERS = (("a", "one"), ("b", "two"))   # shard, cluster
THIRD = ("c", "three")
# Moves copy with logical replication: the shards the buckets leave need wal_level = logical.
LOGICAL = ["wal_level = logical"]
SCHEMA = "CREATE TABLE users (user_id bigint PRIMARY KEY, name text NOT NULL)"


class CheckFailed(RuntimeError):
    pass


def check(ok, what):
    """Say what was checked; a failed check stops the demo with a non-zero exit."""
    if not ok:
        raise CheckFailed(f"check failed: {what}")
    say(f"  ok: {what}")


def map_tool(*args):
    res = subprocess.run([PGMUX_BIN, "--shard-map", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"pgmux --shard-map {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout + res.stderr


def in_ranges(ranges):
    """SQL predicate: the row's bucket is in one of ranges."""
    bucket = f"(hashint8extended(user_id, 0) & {BUCKETS - 1})"
    return " OR ".join(f"{bucket} BETWEEN {lo} AND {hi}" for lo, hi in ranges) or "false"


def start_clusters(state):
    """Both clusters at once: each pg_basebackup waits for its primary's checkpoint."""
    sets = state["sets"] = [ReplicaSet(replicas=1, settings=LOGICAL) for _ in CLUSTERS]
    errors = []

    def start(rs):
        try:
            rs.start()
        except BaseException as e:  # noqa: B036 - raised below
            errors.append(e)

    threads = [threading.Thread(target=start, args=(rs,)) for rs in sets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"starting a cluster failed: {errors[0]}")
    return sets


def start_mux(state, sets):
    mux = state["mux"] = Pgmux(
        databases={"app": "shards=users dbname=app"},
        settings={"pool_mode": "transaction", "default_pool_size": 5, "admin_users": "admin"},
        extra_sections="")
    map_path = os.path.join(mux.basedir, "users.map")
    map_tool("create", "--buckets", str(BUCKETS), "a", "b", "-o", map_path)
    mux.extra_sections = sections(list(zip(CLUSTERS, sets)), map_path)
    mux.start()
    return mux, map_path


def sections(shards, map_path):
    """The [cluster.NAME] and [shards.users] sections for ((shard, cluster), ReplicaSet)s."""
    lines = []
    for (shard, cluster), rs in shards:
        hosts = " ".join(f"127.0.0.1:{n.port}" for n in rs.nodes)
        lines += ["", f"[cluster.{cluster}]", f"hosts = {hosts}", "health_check_interval = 0.5"]
    lines += ["", "[shards.users]", "key = user_id", f"map = {map_path}"]
    lines += [f"shard.{shard} = cluster={cluster}" for (shard, cluster), _ in shards]
    return "\n".join(lines) + "\n"


def demo(state):
    if not os.access(PGMUX_BIN, os.X_OK):
        raise SystemExit(f"{PGMUX_BIN} is missing: run `make` first (or `make demo-shards`)")
    t_start = time.monotonic()

    heading("Starting two PostgreSQL 15 clusters, each a primary with one streaming replica")
    sets = start_clusters(state)
    for (shard, cluster), rs in zip(CLUSTERS, sets):
        rs.execute("CREATE DATABASE app")
        rs.execute(SCHEMA, dbname="app")
        say(f"cluster {cluster}: primary on port {rs.primary.port}, replica on port "
            f"{rs.replicas[0].port}; database app with table users")
    say(f"ready in {time.monotonic() - t_start:.1f} s")

    heading("Starting pgmux in front of them, with one sharded database")
    mux, map_path = start_mux(state, sets)
    say(f"pgmux --shard-map create --buckets {BUCKETS} a b -o users.map")
    with open(map_path) as f:
        for line in f:
            if line.startswith(("version", "buckets", "shard", "range")):
                say(f"  users.map: {line.strip()}")
    say("[databases] app = shards=users dbname=app")
    say("[shards.users] key = user_id, map = users.map, shard.a = cluster=one, "
        "shard.b = cluster=two")
    for cluster in ("one", "two"):
        wait_topology(mux, cluster, 1, TOPOLOGY_TIMEOUT)
    say("pgmux's health checks see each cluster's primary and replica")

    heading(f"Inserting {USERS:,} users through one connection string")
    url = f"postgresql://postgres@127.0.0.1:{mux.port}/app"
    say(f"DATABASE_URL={url}")
    half = USERS // 2
    say(f"INSERT INTO users (user_id, name) VALUES (%s, %s), for user_id = 1 .. {half:,}")
    t0 = time.monotonic()
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        for uid in range(1, half + 1):
            conn.execute("INSERT INTO users (user_id, name) VALUES (%s, %s)",
                         (uid, f"user {uid}"))
        say(f"done in {time.monotonic() - t0:.1f} s; pgmux found each row's shard from the "
            "user_id parameter of the Bind")
        say(f"COPY users (user_id, name) FROM STDIN, user_id = {half + 1:,} .. {USERS:,}")
        t0 = time.monotonic()
        with conn.cursor() as cur:
            with cur.copy("COPY users (user_id, name) FROM STDIN") as copy:
                for uid in range(half + 1, USERS + 1):
                    copy.write_row((uid, f"user {uid}"))
            check(cur.rowcount == USERS - half, f"one COPY answered COPY {cur.rowcount}")
    say(f"done in {time.monotonic() - t0:.2f} s; pgmux sent each row to its key's shard, "
        "one transaction per shard, committed when all succeeded")
    for rs in sets:
        rs.wait_caught_up(timeout=30)

    placement(mux, sets, map_path)
    keyed_read(mux, sets, url)
    cross_shard(mux, url)
    report, next_path = third_shard(sets, map_path)
    grow_online(state, mux, sets, map_path, next_path, report, url)
    heading(f"All checks passed in {time.monotonic() - t_start:.1f} s")


def placement(mux, sets, map_path):
    heading("Where the rows are: each primary, PostgreSQL's bucket ranges, SHOW SHARDS")
    admin_table(mux, "SHOW SHARDS", ["shard", "cluster", "primary", "buckets", "share",
                                     "map_version", "map_checksum"], note=" (some columns)")
    _, rows = admin_query(mux, "SHOW SHARDS")
    shards = {r["shard"]: r for r in rows}
    ranges = map_ranges(map_path)
    table = []
    for (shard, _), rs in zip(CLUSTERS, sets):
        on_primary = rs.scalar("SELECT count(*) FROM users", dbname="app")
        in_buckets = rs.scalar(f"SELECT count(*) FROM users WHERE {in_ranges(ranges[shard])}",
                               dbname="app")
        share = float(shards[shard]["share"])
        table.append((shard, on_primary, in_buckets, share * USERS, shards[shard]["buckets"],
                      ", ".join(f"{lo}-{hi}" for lo, hi in ranges[shard])))
    heading("Per shard")
    say(f"{'shard':<6}{'rows on primary':>16}{'rows in its ranges':>20}"
        f"{'predicted':>11}{'buckets':>9}  ranges")
    for shard, on_primary, in_buckets, predicted, buckets, rng in table:
        say(f"{shard:<6}{on_primary:>16,}{in_buckets:>20,}{predicted:>11,.0f}{buckets:>9}  {rng}")
    say(f"rows in its ranges: SELECT count(*) FROM users WHERE "
        f"(hashint8extended(user_id, 0) & {BUCKETS - 1}) BETWEEN lo AND hi, on the shard's "
        "primary")
    say("predicted: the shard's share of the buckets (SHOW SHARDS) x 10,000")
    check(sum(t[1] for t in table) == USERS, f"the primaries hold {USERS:,} rows in all")
    for shard, on_primary, in_buckets, predicted, _, _ in table:
        check(on_primary == in_buckets,
              f"shard {shard}: every row on its primary is in its bucket ranges "
              f"({on_primary:,} = {in_buckets:,})")
        off = abs(on_primary - predicted) / predicted
        check(off <= PREDICTION_TOLERANCE,
              f"shard {shard}: {on_primary:,} rows, {off:.1%} from the prediction "
              f"{predicted:,.0f} (tolerance {PREDICTION_TOLERANCE:.0%})")


def owner(mux, key):
    _, rows = admin_query(mux, f"SHOW SHARD FOR {key}")
    return rows[0]


def keyed_read(mux, sets, url):
    heading("A keyed read, served by the replica of the key's shard")
    key = 4242
    where = owner(mux, key)
    say(f"SHOW SHARD FOR {key}: hash {where['hash']}, bucket {where['bucket']}, shard "
        f"{where['shard']} (cluster {where['cluster']})")
    sql = f"SELECT name FROM users WHERE user_id = {key}"
    _, rows = admin_query(mux, f"SHOW ROUTE FOR {sql}")
    route = rows[0]
    say(f"SHOW ROUTE FOR {sql}: shard {route['shard']}, found by {route['found_by']}, "
        f"{route['role']} {route['member']}")
    rs = sets[[s for s, _ in CLUSTERS].index(where["shard"])]
    replica = rs.replicas[0].port
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        name, port, standby = conn.execute(
            "SELECT name, inet_server_port(), pg_is_in_recovery() FROM users WHERE user_id = %s",
            (key,)).fetchone()
    say(f"through pgmux: SELECT name, inet_server_port(), pg_is_in_recovery() FROM users "
        f"WHERE user_id = {key}")
    say(f"  -> {name!r}, port {port}, in recovery: {'yes' if standby else 'no'}")
    check(route["shard"] == where["shard"] and route["role"] == "replica",
          f"SHOW ROUTE sends it to a replica of shard {where['shard']}")
    check(route["member"] == f"127.0.0.1:{replica}",
          f"SHOW ROUTE names that replica, port {replica}")
    check(name == f"user {key}" and port == replica and standby,
          f"the row came back from that replica (port {port})")


def cross_shard(mux, url):
    heading("A statement whose keys are on both shards is refused")
    a = next(k for k in range(1, 100) if owner(mux, k)["shard"] == "a")
    b = next(k for k in range(1, 100) if owner(mux, k)["shard"] == "b")
    sql = f"SELECT name FROM users WHERE user_id IN ({a}, {b})"
    say(f"{a} is on shard a, {b} on shard b: {sql}")
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        try:
            conn.execute(sql)
            refused = None
        except psycopg.errors.FeatureNotSupported as e:
            refused = e
        if refused is not None:
            say(f"  -> ERROR {refused.sqlstate}: {refused.diag.message_primary}")
        check(refused is not None, "refused with SQLSTATE 0A000 before reaching either shard")
        count = conn.execute("SELECT count(*) FROM users WHERE user_id = %s", (a,)).fetchone()[0]
    check(count == 1, "the connection goes on: a keyed statement after it runs")


def third_shard(sets, map_path):
    heading("Adding a third shard: the plan")
    next_path = map_path + ".next"
    say("pgmux --shard-map plan users.map a b c -o users.map.next")
    report = map_tool("plan", map_path, "a", "b", "c", "-o", next_path)
    for line in report.strip().splitlines():
        say(f"  {line}")
    m = re.search(r"moved (\d+) of (\d+) buckets: ([\d.]+) of the keys \(ideal ([\d.]+)\); "
                  r"(\d+) between shards in both maps", report)
    check(m is not None, "the plan ends with its summary line")
    fraction, ideal, between = float(m.group(3)), float(m.group(4)), int(m.group(5))
    check(abs(fraction - 1 / 3) < 0.001 and fraction == ideal,
          f"it moves {fraction:.4f} of the keys, the ideal 1/3")
    check(between == 0, "no bucket moves between a and b")
    # What the plan would move of our rows, counted by each shard's PostgreSQL.
    now, after = map_ranges(map_path), map_ranges(next_path)
    moving = 0
    for (shard, _), rs in zip(CLUSTERS, sets):
        staying = rs.scalar(f"SELECT count(*) FROM users WHERE {in_ranges(after.get(shard, []))}",
                            dbname="app")
        held = rs.scalar("SELECT count(*) FROM users", dbname="app")
        moving += held - staying
        say(f"shard {shard}: {held - staying:,} of its {held:,} rows are in buckets that go to c")
    now_all = sum(len(r) for r in now.values())
    say(f"{moving:,} of {USERS:,} rows would move ({moving / USERS:.1%}); "
        f"the map goes from {now_all} ranges to {sum(len(r) for r in after.values())}")
    check(abs(moving / USERS - 1 / 3) < 0.03, "about a third of the rows would move")
    return report, next_path


class Writer(threading.Thread):
    """Transactions through pgmux on random users while the shard is added: a count, the
    errors and the slowest."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.done, self.errors, self.slowest = url, 0, [], 0.0
        self.stop = threading.Event()

    def run(self):
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            uid = 0
            while not self.stop.is_set():
                uid = uid * 7919 % USERS + 1
                t0 = time.monotonic()
                try:
                    with conn.transaction():
                        conn.execute("UPDATE users SET name = name WHERE user_id = %s", (uid,))
                except psycopg.Error as e:
                    self.errors.append(f"user {uid}: {e.sqlstate} {e}")
                    continue
                self.done += 1
                self.slowest = max(self.slowest, time.monotonic() - t0)


def wait_moves(mux, ids, steps, timeout=120):
    """SHOW MOVES rows of ids once each is in one of steps."""
    deadline = time.monotonic() + timeout
    while True:
        rows = {r["id"]: r for r in admin_query(mux, "SHOW MOVES")[1]}
        if all(rows[i]["step"] in steps for i in ids):
            return [rows[i] for i in ids]
        if time.monotonic() > deadline:
            raise CheckFailed(f"check failed: moves {ids} still in "
                              f"{[rows[i]['step'] for i in ids]} after {timeout} s")
        time.sleep(0.2)


def grow_online(state, mux, sets, map_path, next_path, report, url):
    heading("Adding the third shard online, while a writer runs")
    rs = ReplicaSet(replicas=0)
    state["sets"].append(rs)
    rs.start()
    rs.execute("CREATE DATABASE app")
    rs.execute(SCHEMA, dbname="app")
    say(f"cluster three: a primary on port {rs.primary.port}; database app, table users empty")
    mux.extra_sections = sections(list(zip(CLUSTERS, sets)) + [(THIRD, rs)], map_path)
    mux.reload()
    say("[cluster.three] hosts = ..., [shards.users] shard.c = cluster=three; RELOAD")
    wait_topology(mux, "three", 0, TOPOLOGY_TIMEOUT)
    say("shard c is in the section but not in the map yet: it serves no key")
    writer = Writer(url)
    writer.start()
    commands = [line.strip().replace("<section>", "users").rstrip(";")
                for line in report.splitlines() if line.strip().startswith("MOVE BUCKETS")]
    t0 = time.monotonic()
    ids = []
    for command in commands:
        admin_query(mux, command)
        ids.append(admin_query(mux, "SHOW MOVES")[1][-1]["id"])
        say(f"{command}  -> move {ids[-1]}")
    rows = wait_moves(mux, ids, ("done", "failed"))
    took = time.monotonic() - t0
    time.sleep(0.5)
    writer.stop.set()
    writer.join(10)
    admin_table(mux, "SHOW MOVES", ["id", "buckets", "from", "to", "step", "rows", "error"])
    check(all(r["step"] == "done" for r in rows),
          f"both moves copied their rows and switched the map in {took:.1f} s")
    check(not writer.errors,
          f"the writer ran {writer.done:,} transactions meanwhile, none failed "
          f"(the slowest took {writer.slowest * 1000:.0f} ms)"
          + (f": {writer.errors[0]}" if writer.errors else ""))
    diff = map_tool("diff", map_path, next_path)
    check("buckets moved, from -> to: none" in diff,
          "the map in force is the one the plan wrote (pgmux --shard-map diff: nothing moves)")
    for i in ids:
        admin_query(mux, f"MOVE CLEANUP {i}")
    wait_moves(mux, ids, ("cleaned",))
    say("MOVE CLEANUP: the subscriptions and publications dropped, the moved rows deleted "
        "from a and b")
    ranges = map_ranges(map_path)
    total = 0
    for (shard, _), s in zip(CLUSTERS + (THIRD,), sets + [rs]):
        held = s.scalar("SELECT count(*) FROM users", dbname="app")
        inside = s.scalar(f"SELECT count(*) FROM users WHERE {in_ranges(ranges[shard])}",
                          dbname="app")
        total += held
        check(held == inside, f"shard {shard}: {held:,} rows, every one in its bucket ranges")
    check(total == USERS, f"{USERS:,} rows in all, each on one shard")


def cleanup(state):
    mux = state.get("mux")
    if mux is not None:
        mux.stop()
        shutil.rmtree(mux.basedir, ignore_errors=True)
    for rs in state.get("sets", []):
        rs.stop()


def main():
    return run_demo("pgmux sharding demo: one connection string, users on two clusters",
                    demo, cleanup,
                    "stopped pgmux and the five PostgreSQL servers, removed their temporary "
                    "directories")


if __name__ == "__main__":
    sys.exit(main())
