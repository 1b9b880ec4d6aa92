#!/usr/bin/python3
"""What sharding costs pgmux per statement, measured with pgbench.

Two PostgreSQL 15 servers; one pgmux (transaction pooling) serves three ways to the same kind
of row, a user read by its id (1..100,000):

    sharded  (a) `shards=users` over both servers, half the buckets each; pgmux finds the key
                 in the statement (WHERE user_id = ... in the SQL, or the Bind's parameter)
    hinted   (b) the same database, the statement led by /* pgmux: shard_key=:uid */
    plain    (c) one server's database holding all the users, no sharding (host=)

Each is run with pgbench -M prepared and -M simple, a select-only keyed script, 8 clients, in
interleaved rounds (the order of the three turns from round to round): tps on shared cores
moves by tens of percent from run to run, so they are compared only within one run, by the
median over rounds. The ratios (a)/(c) and (b)/(c) are what sharding costs against one server
with no sharding; each shard here holds half the rows, which barely matters for a keyed read.

pgbench turns every :uid into a parameter ($1, $2) in -M prepared and extended, also inside a
comment, so a hint can only carry the key's value in -M simple; a row that failed says why.

Usage: shards.py [--quick] [--rounds N] [--duration S]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test", "lib"))

from pgcluster import PG_BIN, PGMUX_BIN, PgCluster, Pgmux  # noqa: E402
from shardmap import map_ranges  # noqa: E402

USERS = 100_000
BUCKETS = 16384
CLIENTS = 8
JOBS = 2
POOL_SIZE = 8
MODES = ("prepared", "simple")
TARGETS = ("sharded", "hinted", "plain")
LABELS = {"sharded": "(a) 2 shards, key from the SQL",
          "hinted": "(b) 2 shards, key from a hint",
          "plain": "(c) one server, not sharded"}
SELECT = "SELECT name FROM users WHERE user_id = :uid;\n"
SCRIPTS = {
    "sharded": "\\set uid random(1, 100000)\n" + SELECT,
    "hinted": "\\set uid random(1, 100000)\n/* pgmux: shard_key=:uid */ " + SELECT,
    "plain": "\\set uid random(1, 100000)\n" + SELECT,
}
DATABASE = {"sharded": "app", "hinted": "app", "plain": "whole"}
SETTINGS = {"full": dict(rounds=3, duration=10, warmup=2),
            "quick": dict(rounds=2, duration=3, warmup=1)}
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:5.0f}s] {msg}", flush=True)


def load(server, dbname, where="true"):
    server.sql(f"CREATE DATABASE {dbname}")
    server.sql("CREATE TABLE users (user_id bigint PRIMARY KEY, name text NOT NULL); "
               f"INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, {USERS}) g "
               f"WHERE {where}", dbname=dbname)
    server.sql("VACUUM ANALYZE users", dbname=dbname)


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.dir = tempfile.mkdtemp(prefix="pgmux-bench-shards-")
        self.servers = []
        self.mux = None
        self.tps = {(m, t): [] for m in MODES for t in TARGETS}
        self.errors = {}

    def start(self):
        self.servers = [PgCluster().init().start() for _ in range(2)]
        map_path = os.path.join(self.dir, "users.map")
        subprocess.run([PGMUX_BIN, "--shard-map", "create", "--buckets", str(BUCKETS), "a", "b",
                        "-o", map_path], check=True, capture_output=True)
        bucket = f"(hashint8extended(g, 0) & {BUCKETS - 1})"
        for shard, server in zip("ab", self.servers):
            where = " OR ".join(f"{bucket} BETWEEN {lo} AND {hi}"
                                for lo, hi in map_ranges(map_path)[shard])
            load(server, "app", where)
        load(self.servers[0], "whole")
        sections = []
        for name, s in zip(("one", "two"), self.servers):
            sections += ["", f"[cluster.{name}]", f"hosts = 127.0.0.1:{s.port}",
                         "health_check_interval = 1"]
        sections += ["", "[shards.users]", "key = user_id", f"map = {map_path}",
                     "shard.a = cluster=one", "shard.b = cluster=two"]
        self.mux = Pgmux(
            {"app": "shards=users dbname=app",
             "whole": f"host=127.0.0.1 port={self.servers[0].port} dbname=whole"},
            settings={"pool_mode": "transaction", "default_pool_size": POOL_SIZE,
                      "max_client_conn": 200, "log_connections": 0, "log_disconnections": 0},
            basedir=os.path.join(self.dir, "pgmux"), extra_sections="\n".join(sections) + "\n")
        os.makedirs(self.mux.basedir, exist_ok=True)
        self.mux.start()
        for t, text in SCRIPTS.items():
            with open(os.path.join(self.dir, f"{t}.sql"), "w") as f:
                f.write(text)

    def pgbench(self, mode, target, duration):
        """tps of one run, or None (the reason in self.errors)."""
        cmd = [os.path.join(PG_BIN, "pgbench"), "-h", "127.0.0.1", "-p", str(self.mux.port),
               "-U", "postgres", "-n", "-M", mode, "-c", str(CLIENTS), "-j", str(JOBS),
               "-T", str(duration), "-f", os.path.join(self.dir, f"{target}.sql"),
               DATABASE[target]]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        except subprocess.TimeoutExpired:
            self.errors[(mode, target)] = "pgbench hung"
            return None
        m = re.search(r"^tps = ([\d.]+)", r.stdout, re.M)
        failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
        if r.returncode != 0 or not m or (failed and failed.group(1) != "0"):
            lines = [x for x in (r.stdout + r.stderr).splitlines()
                     if "error" in x.lower() or "abort" in x.lower()]
            why = (lines or ["exit %d" % r.returncode])[0].strip()
            self.errors[(mode, target)] = re.sub(r"^(pgbench: )+(error: )*", "", why)[:160]
            return None
        return float(m.group(1))

    def run(self):
        o = self.opts
        for mode in MODES:
            log(f"== pgbench -M {mode} -c {CLIENTS} -j {JOBS}, select by user id: warm-up "
                f"{o.warmup} s, then {o.rounds} x {o.duration} s per target, interleaved")
            for t in TARGETS:
                self.pgbench(mode, t, o.warmup)
            for i in range(o.rounds):
                order = TARGETS[i % 3:] + TARGETS[:i % 3]
                line = []
                for t in order:
                    if (mode, t) in self.errors:
                        continue
                    tps = self.pgbench(mode, t, o.duration)
                    if tps is None:
                        line.append(f"{t} FAILED")
                        continue
                    self.tps[(mode, t)].append(tps)
                    line.append(f"{t} {tps:,.0f}")
                log(f"  round {i + 1}: " + ", ".join(line))

    def median(self, mode, t):
        values = self.tps[(mode, t)]
        return statistics.median(values) if values and (mode, t) not in self.errors else None

    def report(self):
        o = self.opts
        print()
        print(f"Sharded reads through pgmux: tps, median of {o.rounds} runs of {o.duration} s "
              f"(min-max), pgbench -c {CLIENTS} -j {JOBS}, pool size {POOL_SIZE}")
        print()
        width = max(len(v) for v in LABELS.values())
        print(f"{'target':<{width}}  " + "  ".join(f"{'-M ' + m:>24}" for m in MODES))
        for t in TARGETS:
            cells = []
            for mode in MODES:
                med, values = self.median(mode, t), self.tps[(mode, t)]
                cells.append(f"{med:>9,.0f} ({min(values):,.0f}-{max(values):,.0f})"
                             if med is not None else "failed")
            print(f"{LABELS[t]:<{width}}  " + "  ".join(f"{c:>24}" for c in cells))
        for t in ("sharded", "hinted"):
            ratios = []
            for mode in MODES:
                a, c = self.median(mode, t), self.median(mode, "plain")
                ratios.append(f"{a / c:.3f}" if a is not None and c else "-")
            print(f"{'ratio ' + LABELS[t][:3] + '/(c)':<{width}}  "
                  + "  ".join(f"{r:>24}" for r in ratios))
        for (mode, t), why in sorted(self.errors.items()):
            print(f"\n{LABELS[t]} with -M {mode} failed: {why}")

    def stop(self):
        if self.mux is not None:
            self.mux.stop()
        for s in self.servers:
            s.destroy()
        subprocess.run(["rm", "-rf", self.dir], check=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_const", dest="mode", const="quick", default="full",
                   help="2 rounds of 3 s (about a minute)")
    p.add_argument("--rounds", type=int)
    p.add_argument("--duration", type=int)
    opts = p.parse_args(argv)
    s = SETTINGS[opts.mode]
    opts.rounds = opts.rounds or s["rounds"]
    opts.duration = opts.duration or s["duration"]
    opts.warmup = s["warmup"]
    if not os.access(PGMUX_BIN, os.X_OK):
        sys.exit(f"{PGMUX_BIN} is missing: run `make pgmux` first")
    b = Bench(opts)
    try:
        log(f"starting two PostgreSQL servers, loading {USERS:,} users, starting pgmux")
        b.start()
        b.run()
    finally:
        b.stop()
    b.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
