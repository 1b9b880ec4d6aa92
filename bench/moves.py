#!/usr/bin/python3
"""What a bucket move costs and how long it takes, through pgmux, on two PostgreSQL 15 servers.

Shard a holds buckets 0-8191 of 16384, b the others. The moving buckets 0-4095 hold ROWS event
rows (1,000,000 by default) of about 2,500 users; a move (MOVE BUCKETS) sends them to b while
writers run through pgmux, each a transaction that bumps a user and adds an event: three on
keys of the moving buckets, two on other keys of a. Printed:

  - the copy: rows, seconds (from the copy's start to the catch-up), rows per second, and the
    whole move from MOVE BUCKETS to done;
  - the pause of the moving keys at the cutover: their transactions' latency around it (p50,
    p99, max), beside the hold as pgmux logs it;
  - the other keys' latency before the move and during it (p50, p99, max);
  - the clean-up: rows deleted from a and seconds.

Latencies on shared cores move by tens of percent from run to run: read them against each
other, within one run.

Usage: moves.py [--rows N] [--quick]   (--quick: 200,000 rows)
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test", "lib"))

import psycopg  # noqa: E402

from pgcluster import PG_BIN, PGMUX_BIN, PgCluster, Pgmux  # noqa: E402
from timedwriter import TimedWriter, percentile  # noqa: E402

BUCKETS = 16384
MOVING = (0, 4095)
USERS = 20000  # ids 1..USERS, those of a's buckets loaded: about half
BUCKET = f"(hashint8extended(user_id, 0) & {BUCKETS - 1})"
SCHEMA = """
CREATE TABLE users (user_id bigint PRIMARY KEY, name text, n int NOT NULL DEFAULT 0);
CREATE TABLE events (id bigint, user_id bigint NOT NULL, seq int NOT NULL,
                     PRIMARY KEY (user_id, id));
"""
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:5.0f}s] {msg}", flush=True)


def pct(values, p):
    return percentile(values, p) * 1000


class Bench:
    def __init__(self, rows):
        self.rows = rows
        self.dir = tempfile.mkdtemp(prefix="pgmux-bench-moves-")
        self.servers, self.mux = [], None

    def start(self):
        self.servers = [PgCluster(settings=["wal_level = logical"]).init().start()
                        for _ in range(2)]
        for s in self.servers:
            s.sql("CREATE DATABASE app")
            s.sql(SCHEMA, dbname="app")
        a = self.servers[0]
        log(f"loading a's users of ids 1-{USERS} and {self.rows:,} event rows in buckets "
            f"{MOVING[0]}-{MOVING[1]}")
        a.sql(f"INSERT INTO users (user_id, name) SELECT g, 'u' || g FROM generate_series(1, "
              f"{USERS}) g WHERE (hashint8extended(g, 0) & {BUCKETS - 1}) < 8192",
              dbname="app")
        a.sql(f"INSERT INTO events SELECT g, m.ids[1 + g % cardinality(m.ids)], g "
              f"FROM generate_series(1, {self.rows}) g, (SELECT array_agg(user_id) ids FROM "
              f"users WHERE {BUCKET} BETWEEN {MOVING[0]} AND {MOVING[1]}) m", dbname="app")
        a.sql("VACUUM ANALYZE", dbname="app")
        path = os.path.join(self.dir, "users.map")
        subprocess.run([PGMUX_BIN, "--shard-map", "create", "--buckets", str(BUCKETS), "a", "b",
                        "-o", path], check=True, capture_output=True)
        sections = []
        for name, s in zip(("one", "two"), self.servers):
            sections += ["", f"[cluster.{name}]", f"hosts = 127.0.0.1:{s.port}",
                         "health_check_interval = 0.5"]
        sections += ["", "[shards.users]", "key = user_id", f"map = {path}",
                     "shard.a = cluster=one", "shard.b = cluster=two"]
        self.mux = Pgmux({"app": "shards=users dbname=app"},
                         settings={"pool_mode": "transaction", "default_pool_size": 8},
                         basedir=os.path.join(self.dir, "pgmux"),
                         extra_sections="\n".join(sections) + "\n")
        os.makedirs(self.mux.basedir, exist_ok=True)
        self.mux.start()

    def admin(self, sql):
        """The console's answer: a list of {column: value}."""
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-A", "-F", "\t", "-P",
                            "footer=off", "-h", "127.0.0.1", "-p", str(self.mux.port), "-U",
                            "postgres", "-d", "pgmux", "-c", sql],
                           capture_output=True, text=True, check=True)
        lines = r.stdout.splitlines()
        head = lines[0].split("\t") if lines else []
        return [dict(zip(head, line.split("\t"))) for line in lines[1:]]

    def keys(self, moving, n):
        cond = (f"BETWEEN {MOVING[0]} AND {MOVING[1]}" if moving
                else f"BETWEEN {MOVING[1] + 1} AND 8191")
        out = self.servers[0].sql(f"SELECT user_id FROM users WHERE {BUCKET} {cond} "
                                  f"ORDER BY user_id LIMIT {n}", dbname="app")
        return [int(k) for k in out.split()]

    def run(self):
        dsn = self.mux.dsn("app")
        moving, other = self.keys(True, 60), self.keys(False, 40)
        def connect():
            return psycopg.connect(dsn, autocommit=True)
        writers = ([TimedWriter(connect, 1 + i, moving[i::3]) for i in range(3)]
                   + [TimedWriter(connect, 4 + i, other[i::2]) for i in range(2)])
        for w in writers:
            w.start()
        time.sleep(5)
        t_move = time.monotonic()
        self.admin(f"MOVE BUCKETS users {MOVING[0]}-{MOVING[1]} TO b")
        log("MOVE BUCKETS users %d-%d TO b" % MOVING)
        seen, step = {}, None
        while step not in ("done", "failed"):
            row = self.admin("SHOW MOVES")[-1]
            step = row["step"]
            seen.setdefault(step, time.monotonic())
            time.sleep(0.05)
        t_done = time.monotonic()
        time.sleep(3)
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(10)
        if step != "done":
            raise SystemExit(f"the move failed: {row.get('error')}")
        hold = re.findall(r"the hold lasted ([\d.]+) ms", self.mux.log())
        copy_start = seen.get("copy", t_move)
        copy_s = seen.get("catch-up", seen.get("hold", t_done)) - copy_start
        cut = seen.get("hold", t_done)
        t_clean = time.monotonic()
        self.admin("MOVE CLEANUP 1")
        while self.admin("SHOW MOVES")[-1]["step"] not in ("cleaned", "failed"):
            time.sleep(0.05)
        clean_s = time.monotonic() - t_clean
        deleted = self.admin("SHOW MOVES")[-1]["rows"]

        print()
        print(f"Bucket move of {self.rows:,} rows (buckets {MOVING[0]}-{MOVING[1]} of "
              f"{BUCKETS}, a quarter of the keys), 3 writers on moving keys, 2 on others")
        print(f"  copy: {copy_s:.2f} s, {self.rows / copy_s:,.0f} rows/s; whole move "
              f"{t_done - t_move:.2f} s")
        print(f"  hold (pgmux's log): {hold[-1] if hold else '?'} ms")
        print(f"  clean-up: {int(deleted):,} rows (every table) deleted from a in "
              f"{clean_s:.2f} s")
        print(f"  {'transactions':<28}{'count':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")

        def line(label, values):
            print(f"  {label:<28}{len(values):>8}{pct(values, 50):>9.1f}{pct(values, 99):>9.1f}"
                  f"{max(values) * 1000 if values else float('nan'):>9.1f}")
        others, movers = writers[3:], writers[:3]
        line("other keys, before", [d for w in others for d in w.between(0, t_move)])
        line("other keys, during", [d for w in others for d in w.between(t_move, t_done)])
        line("moving keys, before", [d for w in movers for d in w.between(0, t_move)])
        line("moving keys, at the cutover",
             [d for w in movers for d in w.between(cut - 0.5, t_done + 0.5)])
        errors = [e for w in writers for e in w.errors]
        print(f"  client errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))

    def stop(self):
        if self.mux is not None:
            self.mux.stop()
        for s in self.servers:
            s.destroy()
        subprocess.run(["rm", "-rf", self.dir], check=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true", help="200,000 rows")
    opts = p.parse_args(argv)
    b = Bench(200_000 if opts.quick else opts.rows)
    try:
        b.start()
        b.run()
    finally:
        b.stop()


if __name__ == "__main__":
    main()
