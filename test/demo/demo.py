#!/usr/bin/python3
"""pgmux in one minute: many clients, few server connections.

Run by `make demo` from the repository root. It starts a throwaway PostgreSQL 15 on a free port
in a temporary directory, loads pgbench's tables, starts ./pgmux in front of it in transaction
mode with five server connections for the database `app`, runs pgbench through pgmux with 50
and then 20 clients, shows how many server connections PostgreSQL saw meanwhile, and asks the
admin console for SHOW POOLS and SHOW STATS. Everything it started is stopped and removed at
the end, also after an error or Ctrl-C.
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

from pgcluster import PG_BIN, PGMUX_BIN, PgCluster, Pgmux  # noqa: E402

POOL_SIZE = 5
SCALE = 5
RUN_SECONDS = 5

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


def admin(mux, command):
    heading(f"Admin console: {command}")
    # Expanded output (-x): one "column | value" line each, narrow enough for any terminal.
    cmd = [PSQL, "-X", "-x", "-h", "127.0.0.1", "-p", str(mux.port), "-U", "admin",
           "-d", "pgmux", "-P", "pager=off", "-c", command]
    res = run(cmd, f"psql -U admin pgmux -c '{command}'")
    for line in res.stdout.rstrip().splitlines():
        say(line)


def demo(state):
    if not os.access(PGMUX_BIN, os.X_OK):
        raise SystemExit(f"{PGMUX_BIN} is missing: run `make` first (or `make demo`)")

    heading("Starting a throwaway PostgreSQL 15")
    pg = state["pg"] = PgCluster()
    pg.init().start()
    say(f"port {pg.port}, data in {pg.basedir}")
    pg.sql("CREATE DATABASE app")
    t0 = time.time()
    run([PGBENCH, "-i", "-s", str(SCALE), "-q", "-h", "127.0.0.1", "-p", str(pg.port),
         "-U", "postgres", "app"], "pgbench -i")
    say(f"pgbench -i -s {SCALE}: {SCALE * 100000:,} accounts loaded into database app "
        f"in {time.time() - t0:.1f} s")

    heading("Starting pgmux in front of it")
    mux = state["mux"] = Pgmux(
        databases={"app": f"host=127.0.0.1 port={pg.port} dbname=app pool_size={POOL_SIZE}"},
        settings={"pool_mode": "transaction", "default_pool_size": POOL_SIZE,
                  "max_client_conn": 200, "admin_users": "admin"})
    mux.pg = pg
    mux.start()
    say(f"port {mux.port}: database app, pool_mode = transaction, pool_size = {POOL_SIZE}")
    say(f"try it yourself meanwhile: psql -h 127.0.0.1 -p {mux.port} -U postgres app")

    pgbench_through(mux, "Read-only, 50 clients",
                    ["-S", "-c", "50", "-j", "2", "-T", str(RUN_SECONDS)], 50)
    pgbench_through(mux, "Read/write (TPC-B like), 20 clients",
                    ["-c", "20", "-j", "2", "-T", str(RUN_SECONDS)], 20)

    admin(mux, "SHOW POOLS")
    admin(mux, "SHOW STATS")


def cleanup(state):
    mux, pg = state.get("mux"), state.get("pg")
    if mux is not None:
        mux.stop()
        shutil.rmtree(mux.basedir, ignore_errors=True)
    if pg is not None:
        pg.destroy()


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main():
    # A SIGTERM (say, from a timeout) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, on_sigterm)
    print("pgmux demo: many clients, few PostgreSQL connections", flush=True)
    state = {}
    status = 0
    try:
        demo(state)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        status = 130
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
        mux = state.get("mux")
        if mux is not None and mux.log():
            print("last lines of pgmux's log:\n    "
                  + "\n    ".join(mux.log().rstrip().splitlines()[-10:]), file=sys.stderr)
        status = 1
    finally:
        heading("Cleaning up")
        # A second Ctrl-C must not leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup(state)
        say("stopped pgmux and PostgreSQL, removed their temporary directories")
    return status


if __name__ == "__main__":
    sys.exit(main())
