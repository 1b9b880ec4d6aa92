#!/usr/bin/python3
"""pgmux during a Patroni switchover under load: write pause, failed statements, dropped clients.

Run by `make demo-ha` from the repository root. It starts etcd and a three-member Patroni
cluster of throwaway PostgreSQL 15 servers, and pgmux in front of it in transaction mode with
one routed database, `app = cluster=main`, whose members come from Patroni's REST API. A small
load runs through pgmux: writer threads insert numbered rows, reader threads count them (on the
replicas), and a few more connections stay idle. Then `patronictl switchover` moves the leader
to another member while the load goes on. Once writes flow again the demo reports how long
they waited, which statements failed and why, whether any client lost its connection, and
whether every acknowledged insert is on the new primary. Everything it started is stopped and
removed at the end, also after an error or Ctrl-C.
"""
import collections
import os
import shutil
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
sys.path.insert(0, HERE)

import psycopg  # noqa: E402

from demo import admin, admin_table, heading, run_demo, say, wait_topology  # noqa: E402
from patroni import PatroniCluster  # noqa: E402
from pgcluster import PGMUX_BIN, Pgmux  # noqa: E402

WRITERS = 3
READERS = 3
IDLE = 5
PAUSE = 0.01              # seconds between two statements of one client
TOPOLOGY_TIMEOUT = 20
WRITES_BACK_TIMEOUT = 45  # primary_wait_timeout (30 s) and then some
RUNNING = ("running", "streaming")      # Patroni's states of a member that is up
TOPOLOGY_COLUMNS = ["member", "port", "role", "state", "timeline", "lag_bytes", "healthy",
                    "servers", "last_error"]


class Client(threading.Thread):
    """One client connection to pgmux running statements in a loop until stop is set.

    A writer inserts (writer, n) with n = 1, 2, 3... and keeps the numbers that were
    acknowledged; a reader counts the rows. Failures are counted by SQLSTATE; a failure that
    leaves the connection broken is a disconnection (the client then connects again)."""

    def __init__(self, kind, index, dsn, stop):
        super().__init__(daemon=True, name=f"{kind}{index}")
        self.kind, self.index, self.dsn, self.stop = kind, index, dsn, stop
        self.acks = []                       # (monotonic time, n) of acknowledged statements
        self.failures = collections.Counter()  # SQLSTATE -> count
        self.first_error = {}                # SQLSTATE -> message
        self.failed_at = collections.defaultdict(list)  # SQLSTATE -> monotonic times
        self.disconnects = 0
        self.conn = None
        self.crash = None

    def connect(self):
        self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)

    def run(self):
        try:
            self.loop()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.crash = e

    def loop(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                if self.kind == "writer":
                    self.conn.execute("INSERT INTO ha_writes (writer, n) VALUES (%s, %s)",
                                      (self.index, n))
                else:
                    self.conn.execute("SELECT count(*) FROM ha_writes").fetchone()
                self.acks.append((time.monotonic(), n))
            except psycopg.Error as e:
                code = e.sqlstate or "no SQLSTATE"
                self.failures[code] += 1
                self.failed_at[code].append(time.monotonic())
                self.first_error.setdefault(code, str(e).strip().splitlines()[0])
                if self.conn.broken or self.conn.closed:
                    self.disconnects += 1
                    while not self.stop.is_set():
                        try:
                            self.connect()
                            break
                        except psycopg.Error:
                            time.sleep(0.1)
            self.stop.wait(PAUSE)

    def close(self):
        if self.conn is not None:
            self.conn.close()


class LeaderWatch(threading.Thread):
    """Polls Patroni's GET /cluster every 20 ms and notes when the leader changes."""

    def __init__(self, pc, old):
        super().__init__(daemon=True)
        self.pc, self.old = pc, old
        self.stop = threading.Event()
        self.gone_at = None       # first poll without `old` as leader
        self.new_at = None        # first poll with another member as leader
        self.new = None

    def poll(self):
        for name in self.pc.names:
            try:
                status, body = self.pc.rest(name, "/cluster", timeout=0.5)
            except (OSError, ValueError):
                continue
            if status == 200 and isinstance(body, dict):
                return [m["name"] for m in body.get("members", []) if m.get("role") == "leader"]
        return None

    def run(self):
        while not self.stop.is_set() and self.new_at is None:
            leaders = self.poll()
            now = time.monotonic()
            if leaders is not None:
                if self.old not in leaders and self.gone_at is None:
                    self.gone_at = now
                others = [n for n in leaders if n != self.old]
                if others:
                    self.new, self.new_at = others[0], now
            self.stop.wait(0.02)


def topology(mux, title):
    admin_table(mux, "SHOW TOPOLOGY", TOPOLOGY_COLUMNS, note=f" ({title}, some columns)")


def demo(state):
    if not os.access(PGMUX_BIN, os.X_OK):
        raise SystemExit(f"{PGMUX_BIN} is missing: run `make` first (or `make demo-ha`)")

    heading("Starting etcd and a three-member Patroni cluster")
    t0 = time.monotonic()
    pc = state["pc"] = PatroniCluster(nodes=3)
    pc.start()
    old = pc.leader()
    say(f"leader {old}, replicas {', '.join(pc.replicas())}, ready in "
        f"{time.monotonic() - t0:.1f} s, data in {pc.basedir}")
    for name in pc.names:
        say(f"{name}: PostgreSQL on port {pc.member_port(name)}, "
            f"Patroni REST API {pc.nodes[name].rest_url}")
    pc.execute("CREATE TABLE ha_writes (writer int, n int, PRIMARY KEY (writer, n))")
    pc.wait_replicated()

    heading("Starting pgmux in front of it")
    urls = " ".join(pc.rest_urls)
    mux = state["mux"] = Pgmux(
        databases={"app": "cluster=main dbname=postgres"},
        settings={"pool_mode": "transaction", "default_pool_size": 5,
                  "max_client_conn": 100, "admin_users": "admin"},
        extra_sections=(f"\n[cluster.main]\npatroni = {urls}\npatroni_poll_interval = 0.2\n"
                        "health_check_interval = 0.5\n"))
    mux.start()
    say(f"port {mux.port}, pool_mode = transaction, database app = cluster=main")
    say(f"[cluster.main] patroni = {urls}")
    say("members are polled from Patroni every 0.2 s and health-checked every 0.5 s")
    took = wait_topology(mux, "main", 2, TOPOLOGY_TIMEOUT, RUNNING)
    say(f"pgmux confirmed the primary and 2 healthy replicas after {took:.1f} s")

    heading(f"Load through pgmux: {WRITERS} writers, {READERS} readers, {IDLE} idle "
            "connections")
    stop = state["stop"] = threading.Event()
    dsn = mux.dsn("app")
    writers = [Client("writer", i, dsn, stop) for i in range(WRITERS)]
    readers = [Client("reader", i, dsn, stop) for i in range(READERS)]
    clients = state["clients"] = writers + readers
    for c in clients:
        c.connect()
    idle = state["idle"] = [psycopg.connect(dsn, autocommit=True, connect_timeout=10)
                            for _ in range(IDLE)]
    for conn in idle:
        conn.execute("SELECT 1")
    say("writers: INSERT INTO ha_writes (writer, n) VALUES (w, n), n = 1, 2, 3...")
    say("readers: SELECT count(*) FROM ha_writes; idle: connected, one SELECT 1, then nothing")
    say("each client is one psycopg 3 connection in autocommit mode; as by default, psycopg")
    say("turns a statement it has run five times into a named prepared statement")
    for c in clients:
        c.start()
    time.sleep(1.5)
    say(f"after 1.5 s: {sum(len(w.acks) for w in writers)} inserts and "
        f"{sum(len(r.acks) for r in readers)} reads acknowledged")
    topology(mux, "before")

    heading(f"patronictl switchover: {old} hands over, while the load goes on")
    watch = state["watch"] = LeaderWatch(pc, old)
    watch.start()
    t_switch = time.monotonic()
    new = pc.switchover()
    say(f"patronictl returned after {time.monotonic() - t_switch:.1f} s: the new leader {new} "
        "accepts writes")
    # Writes flow again once an insert is acknowledged after the new leader showed up.
    deadline = time.monotonic() + WRITES_BACK_TIMEOUT
    while True:
        watch.join(0.05)
        back = watch.new_at is not None and any(
            t > watch.new_at for w in writers for t, _ in w.acks[-1:])
        if back:
            break
        crashed = [c for c in clients if c.crash]
        if crashed:
            raise RuntimeError(f"{crashed[0].name} stopped: {crashed[0].crash}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no write acknowledged through pgmux {WRITES_BACK_TIMEOUT} s "
                               "after the switchover began")
    time.sleep(1.0)                      # a little more load on the new primary
    stop.set()
    for c in clients:
        c.join(5)
    watch.stop.set()
    report(state, pc, mux, writers, readers, idle, old, new, t_switch, watch)


def report(state, pc, mux, writers, readers, idle, old, new, t_switch, watch):
    heading("What the clients saw")
    acks = sorted(t for w in writers for t, _ in w.acks)
    gaps = [(b - a, a, b) for a, b in zip(acks, acks[1:])]
    gap, gap_from, gap_to = max(gaps)
    first_after = min(t for t in acks if t > watch.new_at)

    def rel(t):
        return f"{t - t_switch:+.3f} s"

    events = [(t_switch, "patronictl switchover started"),
              (gap_from, "last write acknowledged before the longest gap"),
              (watch.new_at, f"GET /cluster first shows {watch.new} as leader"),
              (gap_to, "first write acknowledged after the longest gap")]
    if first_after != gap_to:
        events.append((first_after, "first write acknowledged after the new leader showed up"))
    if watch.gone_at is not None and watch.gone_at != watch.new_at:
        events.append((watch.gone_at, f"GET /cluster no longer shows {old} as leader"))
    for t, what in sorted(events):
        say(f"{rel(t):>9}  {what}")
    say(f"longest gap between acknowledged writes: {gap * 1000:.0f} ms")
    say(f"new leader in GET /cluster -> first write acknowledged through pgmux: "
        f"{(first_after - watch.new_at) * 1000:.0f} ms")
    reads_in_gap = sum(1 for r in readers for t, _ in r.acks if gap_from < t < gap_to)
    say(f"reads acknowledged while writes waited: {reads_in_gap}")

    n_writes, n_reads = len(acks), sum(len(r.acks) for r in readers)
    say(f"acknowledged: {n_writes} inserts, {n_reads} reads")
    for kind, group in (("writers", writers), ("readers", readers)):
        failures = collections.Counter()
        messages, times = {}, collections.defaultdict(list)
        for c in group:
            failures.update(c.failures)
            for code, msg in c.first_error.items():
                messages.setdefault(code, msg)
            for code, ts in c.failed_at.items():
                times[code] += ts
        if not failures:
            say(f"{kind}: no statement failed")
        else:
            total = sum(failures.values())
            say(f"{kind}: {total} statement{'s' if total > 1 else ''} failed:")
            for code, count in failures.most_common():
                when = rel(min(times[code]))
                if max(times[code]) - min(times[code]) >= 0.001:
                    when += f" .. {rel(max(times[code]))}"
                say(f"  {count} x SQLSTATE {code} at {when}: {messages[code]}")

    dropped = [c.name for c in writers + readers if c.disconnects]
    idle_lost = 0
    for conn in idle:
        try:
            conn.execute("SELECT 1")
        except psycopg.Error:
            idle_lost += 1
    if dropped or idle_lost:
        say(f"DISCONNECTED: {', '.join(dropped) or 'no busy client'}; "
            f"{idle_lost} of {IDLE} idle connections")
    else:
        say(f"no client was disconnected: the {WRITERS} writers and {READERS} readers kept "
            "their connection,")
        say(f"and the {IDLE} idle connections still answer SELECT 1")

    rows = {(w, n) for w, n in pc.execute("SELECT writer, n FROM ha_writes", on=new)}
    acked = {(w.index, n) for w in writers for _, n in w.acks}
    missing = acked - rows
    extra = rows - acked
    if missing:
        say(f"LOST: {len(missing)} acknowledged inserts are not on the new primary {new}, "
            f"e.g. {sorted(missing)[:5]}")
    else:
        say(f"all {len(acked)} acknowledged inserts are on the new primary {new} "
            f"(read there directly)")
    if extra:
        say(f"{len(extra)} more rows there whose insert was not acknowledged (failed in "
            "flight)")
    for conn in idle:
        conn.close()
    for c in writers + readers:
        c.close()
    state["idle"] = state["clients"] = []

    heading("After the switchover")
    try:
        took = wait_topology(mux, "main", 2, TOPOLOGY_TIMEOUT, RUNNING)
        say(f"{old} rejoined as a replica: pgmux sees {new} as primary and 2 healthy "
            f"replicas,")
        say(f"all running for Patroni (after {took:.1f} s more)")
    except RuntimeError as e:
        say(f"not settled yet: {e}")
    topology(mux, "after")
    admin(mux, "SHOW ROUTES")


def cleanup(state):
    stop = state.get("stop")
    if stop is not None:
        stop.set()
    for c in state.get("clients", []):
        if c.is_alive():
            c.join(2)
        if not c.is_alive():
            c.close()
    for conn in state.get("idle", []):
        conn.close()
    if state.get("watch") is not None:
        state["watch"].stop.set()
    mux, pc = state.get("mux"), state.get("pc")
    if mux is not None:
        # SIGINT: pgmux closes each client outside a transaction and exits
        mux.stop(signal.SIGINT, timeout=5)
        shutil.rmtree(mux.basedir, ignore_errors=True)
    if pc is not None:
        pc.stop()


def main():
    return run_demo("pgmux HA demo: a Patroni switchover under load", demo, cleanup,
               "stopped pgmux, Patroni, PostgreSQL and etcd, removed their temporary directories",
               log_lines=15)


if __name__ == "__main__":
    sys.exit(main())
