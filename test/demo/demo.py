#!/usr/bin/python3
"""pgmux in one minute: many clients on few server connections, reads on the replicas.

Run by `make demo` from the repository root. It starts a throwaway PostgreSQL 15 primary with
two streaming replicas, each on a free port in one temporary directory, and loads pgbench's
tables on the primary. pgmux then runs in front of them in transaction mode with two databases:

    app         host= the primary, five server connections: pooling
    app_routed  cluster=main: reads go to the replicas in turn, writes to the primary

First pgbench runs through `app` with 50 and then 20 clients while the demo counts the server
connections PostgreSQL sees, and the admin console shows SHOW POOLS and SHOW STATS. Then, once
pgmux's health checks have found the primary and both replicas, a few statements through
`app_routed` show where each one was answered, followed by SHOW TOPOLOGY and SHOW ROUTES.
Everything it started is stopped and removed at the end, also after an error or Ctrl-C.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))

import psycopg  # noqa: E402

from pgcluster import PG_BIN, PGMUX_BIN, Pgmux  # noqa: E402
from replication import ReplicaSet  # noqa: E402

POOL_SIZE = 5
SCALE = 5
RUN_SECONDS = 5
TOPOLOGY_TIMEOUT = 15

# pgbench's closing lines worth showing.
SUMMARY = re.compile(r"^(number of transactions actually processed|number of failed transactions"
                     r"|latency average|tps = .*without initial connection time)")


def pg_program(name):
    path = os.path.join(PG_BIN, name)
    if os.access(path, os.X_OK):
        return path
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found in {PG_BIN} nor in PATH: run `make deps` first")
    return found


PGBENCH = pg_program("pgbench")
PSQL = pg_program("psql")


def heading(text):
    print(f"\n== {text}", flush=True)


def say(text=""):
    print(f"   {text}" if text else "", flush=True)


def run(cmd, what):
    """Run cmd; on failure show its output and stop the demo."""
    res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        out = (res.stdout + res.stderr).strip().splitlines()
        raise RuntimeError(f"{what} failed (exit {res.returncode}):\n    "
                           + "\n    ".join(out[-15:]))
    return res


class ServerConnSampler(threading.Thread):
    """Counts PostgreSQL backends serving a database, a few times a second, from psql."""

    def __init__(self, pg, dbname):
        super().__init__(daemon=True)
        self.pg = pg
        self.query = ("SELECT count(*) FROM pg_stat_activity "
                      f"WHERE datname = '{dbname}' AND backend_type = 'client backend'")
        self.peak = 0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.peak = max(self.peak, int(self.pg.sql(self.query)))
            except (subprocess.CalledProcessError, ValueError):
                pass
            self.stop_event.wait(0.2)

    def finish(self):
        self.stop_event.set()
        self.join()
        return self.peak


def pgbench_through(mux, title, args, clients):
    heading(f"{title}: pgbench {' '.join(args)} through pgmux")
    sampler = ServerConnSampler(mux.pg, "app")
    sampler.start()
    try:
        res = run([PGBENCH, "-h", "127.0.0.1", "-p", str(mux.port), "-U", "postgres", *args,
                   "app"], "pgbench")
    finally:
        peak = sampler.finish()
    for line in res.stdout.splitlines():
        if SUMMARY.match(line):
            say(line)
    say(f"{clients} clients, and PostgreSQL saw at most {peak} connections to database app "
        f"(pool_size = {POOL_SIZE})")


def admin_query(mux, command):
    """(column names, rows) of an admin console command, every value as text."""
    cmd = [PSQL, "-X", "-A", "-F", "\t", "-h", "127.0.0.1", "-p", str(mux.port), "-U", "admin",
           "-d", "pgmux", "-P", "pager=off", "-P", "footer=off", "-c", command]
    lines = run(cmd, f"psql -U admin pgmux -c '{command}'").stdout.rstrip("\n").split("\n")
    cols = lines[0].split("\t")
    return cols, [dict(zip(cols, line.split("\t"))) for line in lines[1:] if line]


def admin(mux, command, where=None, note=""):
    """Show an admin command's rows (those where(row) accepts) one "column | value" line
    each, like psql -x: narrow enough for any terminal."""
    heading(f"Admin console: {command}{note}")
    cols, rows = admin_query(mux, command)
    rows = [r for r in rows if where is None or where(r)]
    width = max(len(c) for c in cols)
    for i, row in enumerate(rows, 1):
        if len(rows) > 1:
            say(f"-[ RECORD {i} ]")
        for c in cols:
            say(f"{c.ljust(width)} | {row[c]}")


def pooled(row):
    return row["database"] == "app"


def admin_table(mux, command, columns=None, where=None, note=""):
    """Show an admin command as a plain table, with only columns (default: all)."""
    heading(f"Admin console: {command}{note}")
    cols, rows = admin_query(mux, command)
    cols = columns or cols
    rows = [r for r in rows if where is None or where(r)]
    cells = [[r.get(c, "") for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    say("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    say("  ".join("-" * w for w in widths))
    for row in cells:
        say("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def wait_topology(mux, cluster, replicas, timeout, states=None):
    """Poll SHOW TOPOLOGY until pgmux has a healthy primary and `replicas` healthy replicas in
    cluster (each in one of states, when given); return the seconds it took."""
    t0 = time.monotonic()
    seen = ""
    while True:
        _, rows = admin_query(mux, "SHOW TOPOLOGY")
        rows = [r for r in rows if r["cluster"] == cluster]
        healthy = [r["role"] for r in rows
                   if r["healthy"] == "1" and (states is None or r["state"] in states)]
        if healthy.count("primary") == 1 and healthy.count("replica") == replicas:
            return time.monotonic() - t0
        seen = ", ".join(f"{r['member']} {r['role']} {r['state']} healthy={r['healthy']}"
                         for r in rows)
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"pgmux did not confirm a primary and {replicas} replicas in "
                               f"{timeout} s; SHOW TOPOLOGY: {seen or 'no members'}")
        time.sleep(0.1)


def routing(rs, mux):
    names = {rs.primary.port: "the primary"}
    names.update({r.port: f"replica {r.index}" for r in rs.replicas})

    def where(row):
        port, in_recovery = row
        return f"answered by {names.get(port, port)} (port {port}, in recovery: " \
               f"{'yes' if in_recovery else 'no'})"

    heading("Routing: database app_routed, cluster main = the primary and both replicas")
    took = wait_topology(mux, "main", len(rs.replicas), TOPOLOGY_TIMEOUT)
    say(f"pgmux's health checks (every 0.5 s) see the primary and {len(rs.replicas)} healthy "
        "replicas" + (f" (after {took:.1f} s)" if took >= 0.1 else ""))

    probe = "SELECT inet_server_port(), pg_is_in_recovery()"
    with psycopg.connect(mux.dsn("app_routed"), autocommit=True, connect_timeout=10) as conn:
        say(f"reads go to the replicas in turn; four times {probe}:")
        for i in range(4):
            say(f"  read {i + 1}: {where(conn.execute(probe).fetchone())}")

        say("a write goes to the primary:")
        row = conn.execute("INSERT INTO routing_demo (note) VALUES ('hello') "
                           "RETURNING inet_server_port(), pg_is_in_recovery()").fetchone()
        say(f"  INSERT ... RETURNING inet_server_port(): {where(row)}")

        say("a hint sends one read to the primary:")
        row = conn.execute(f"/* pgmux:primary */ {probe}").fetchone()
        say(f"  /* pgmux:primary */ SELECT ...: {where(row)}")

        say("so does an explicit transaction, reads included:")
        with conn.transaction():
            row = conn.execute(probe).fetchone()
        say(f"  BEGIN; SELECT ...; COMMIT: {where(row)}")

    admin_table(mux, "SHOW TOPOLOGY",
                ["member", "role", "state", "timeline", "lag_bytes", "lag_ms", "healthy",
                 "source", "servers"], note=" (some columns)")
    admin(mux, "SHOW ROUTES")
    say("writes: units of work sent to the primary (the INSERT, the hinted read, the "
        "transaction)")
    say("hinted: units of work a hint routed")


def demo(state):
    if not os.access(PGMUX_BIN, os.X_OK):
        raise SystemExit(f"{PGMUX_BIN} is missing: run `make` first (or `make demo`)")

    heading("Starting a throwaway PostgreSQL 15 primary with two streaming replicas")
    t0 = time.time()
    rs = state["rs"] = ReplicaSet(replicas=2)
    rs.start()
    pg = rs.primary
    say(f"primary on port {pg.port}, replicas on ports "
        f"{', '.join(str(r.port) for r in rs.replicas)}, ready in {time.time() - t0:.1f} s")
    say(f"data in {rs.basedir}")
    pg.sql("CREATE DATABASE app")
    t0 = time.time()
    run([PGBENCH, "-i", "-s", str(SCALE), "-q", "-h", "127.0.0.1", "-p", str(pg.port),
         "-U", "postgres", "app"], "pgbench -i")
    rs.execute("CREATE TABLE routing_demo (id serial PRIMARY KEY, note text)", dbname="app")
    rs.wait_caught_up(timeout=30)
    say(f"pgbench -i -s {SCALE}: {SCALE * 100000:,} accounts loaded into database app "
        f"and replicated in {time.time() - t0:.1f} s")

    heading("Starting pgmux in front of them")
    hosts = " ".join(f"127.0.0.1:{n.port}" for n in rs.nodes)
    mux = state["mux"] = Pgmux(
        databases={"app": f"host=127.0.0.1 port={pg.port} dbname=app pool_size={POOL_SIZE}",
                   "app_routed": "cluster=main dbname=app"},
        settings={"pool_mode": "transaction", "default_pool_size": POOL_SIZE,
                  "max_client_conn": 200, "admin_users": "admin"},
        extra_sections=f"\n[cluster.main]\nhosts = {hosts}\nhealth_check_interval = 0.5\n")
    mux.pg = pg
    mux.start()
    say(f"port {mux.port}, pool_mode = transaction")
    say(f"database app: the primary, pool_size = {POOL_SIZE}")
    say(f"database app_routed: cluster main, hosts = {hosts}")
    say(f"try it yourself meanwhile: psql -h 127.0.0.1 -p {mux.port} -U postgres app_routed")

    pgbench_through(mux, "Read-only, 50 clients",
                    ["-S", "-c", "50", "-j", "2", "-T", str(RUN_SECONDS)], 50)
    pgbench_through(mux, "Read/write (TPC-B like), 20 clients",
                    ["-c", "20", "-j", "2", "-T", str(RUN_SECONDS)], 20)

    admin(mux, "SHOW POOLS", pooled, " (database app)")
    admin(mux, "SHOW STATS", pooled, " (database app)")

    routing(rs, mux)


def cleanup(state):
    mux, rs = state.get("mux"), state.get("rs")
    if mux is not None:
        mux.stop()
        shutil.rmtree(mux.basedir, ignore_errors=True)
    if rs is not None:
        rs.stop()


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def run_demo(title, body, cleanup_fn, cleaned, log_lines=10):
    """Print title, run body(state), and always cleanup_fn(state), also after an error or
    Ctrl-C; say cleaned at the end. Returns the exit status."""
    # A SIGTERM (say, from a timeout) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, on_sigterm)
    print(title, flush=True)
    state = {}
    status = 0
    try:
        body(state)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        status = 130
    except (RuntimeError, OSError, subprocess.SubprocessError, psycopg.Error) as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
        mux = state.get("mux")
        if mux is not None and mux.log():
            print("last lines of pgmux's log:\n    "
                  + "\n    ".join(mux.log().rstrip().splitlines()[-log_lines:]), file=sys.stderr)
        status = 1
    finally:
        heading("Cleaning up")
        # A second Ctrl-C must not leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup_fn(state)
        say(cleaned)
    return status


def main():
    return run_demo("pgmux demo: many clients on few PostgreSQL connections, reads on the replicas",
               demo, cleanup,
               "stopped pgmux and the three PostgreSQL servers, removed their temporary "
               "directories")


if __name__ == "__main__":
    sys.exit(main())
