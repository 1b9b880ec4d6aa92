"""A Patroni switchover inside one shard while the other shard keeps serving.

Database app is sharded by user_id over two clusters: shard a is a Patroni cluster (a leader
and one streaming replica, with its own etcd), shard b a plain PostgreSQL server. Writers
insert numbered rows on keys of both shards through pgmux in transaction mode, readers count
them, idle clients sit connected to each shard; then shard a goes through a switchover.

Asserted: the writers of shard b see no error and no pause (the longest gap between two of
their acknowledged inserts while a switches over stays under a second, and is printed with the
same figure before the switchover); the writers of shard a see no error but for an insert in
flight on the old primary when Patroni stopped it (PostgreSQL terminated it while it ran, and it
fails as it would without pgmux: at most one per writer, 57P0x or a lost connection), pgmux
holding their other writes until the new primary takes them; every acknowledged insert is on
its shard afterwards
(a's new primary, b's server), per writer exactly the acknowledged rows; no client loses its
connection and the idle ones still reach their shard. Run with pytest -s for the figures.
"""
import datetime
import os
import subprocess
import sys
import threading
import time

import psycopg
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from conftest import wait_for  # noqa: E402
from patroni import PatroniCluster  # noqa: E402
from pgcluster import PGMUX_BIN, PgCluster  # noqa: E402

BUCKETS = 16384
WRITERS = 3                 # per shard
READERS = 1                 # per shard
IDLE = 4                    # per shard, and as many without a key
B_PAUSE_LIMIT = 1.0         # seconds: "not paused by a's switchover", generously
# A statement in flight on a member that Patroni stops may fail (the server went away under it).
IN_FLIGHT_STATES = {"08006", "08003", "57P01", "57P02", "57P03"}
SCHEMA = ("CREATE TABLE ledger (user_id bigint NOT NULL, n bigint NOT NULL, writer int, "
          "at timestamptz DEFAULT now(), PRIMARY KEY (user_id, n))")


@pytest.fixture(scope="module")
def clusters():
    """(Patroni cluster of shard a, PgCluster of shard b), each with database app."""
    pc = PatroniCluster(nodes=2, scope="shard-a")
    plain = PgCluster()
    try:
        pc.start(timeout=90)
        pc.execute("CREATE DATABASE app")
        pc.execute(SCHEMA, dbname="app")
        pc.wait_replicated()
        plain.init().start()
        plain.sql("CREATE DATABASE app")
        plain.sql(SCHEMA, dbname="app")
        yield pc, plain
    finally:
        plain.destroy()
        pc.stop()


def start_sharded_mux(pgmux, patroni, plain, map_path, buckets):
    """pgmux over two shards: a (the Patroni cluster) and b (the plain one), with a new map at
    map_path; returned once both shards' primaries are confirmed."""
    patroni.wait_healthy()
    subprocess.run([PGMUX_BIN, "--shard-map", "create", "--buckets", str(buckets), "a", "b",
                    "-o", map_path], check=True, capture_output=True)
    sections = ("\n[cluster.one]\n"
                f"patroni = {' '.join(patroni.rest_urls)}\n"
                "patroni_poll_interval = 0.2\n"
                "health_check_interval = 0.5\n"
                "health_check_timeout = 2\n"
                "primary_wait_timeout = 40\n"
                "\n[cluster.two]\n"
                f"hosts = 127.0.0.1:{plain.port}\n"
                "health_check_interval = 0.2\n"
                "\n[shards.users]\n"
                "key = user_id\n"
                f"map = {map_path}\n"
                "shard.a = cluster=one\n"
                "shard.b = cluster=two\n")
    m = pgmux(databases={"app": "shards=users dbname=app"}, extra_sections=sections,
              settings={"default_pool_size": 4, "query_wait_timeout": 60,
                        "server_connect_timeout": 3, "server_login_retry": 0.2})
    m.map_path = map_path

    def primaries():
        rows = m.admin("SHOW TOPOLOGY")
        return {r["cluster"] for r in rows if r["role"] == "primary"} >= {"one", "two"}
    wait_for(primaries, timeout=20, interval=0.1, what="a primary confirmed on both shards")
    return m


@pytest.fixture
def mux(pgmux, clusters, tmp_path):
    patroni, plain = clusters
    return start_sharded_mux(pgmux, patroni, plain, str(tmp_path / "users.map"), BUCKETS)


def keys_of(mux, shard, count):
    """The first count positive keys that the map puts on shard."""
    found = []
    key = 1
    while len(found) < count:
        if mux.admin(f"SHOW SHARD FOR {key}")[0]["shard"] == shard:
            found.append(key)
        key += 1
    return found


class Writer:
    """Inserts numbered rows for one key until stopped; keeps the acknowledged numbers."""

    def __init__(self, load, shard, index, key):
        self.load, self.shard, self.index, self.key = load, shard, index, key
        # like an application: psycopg prepares a statement it has run five times
        self.conn = load.client()
        self.acked = []             # (n, monotonic time of the acknowledgement)
        self.unknown = set()        # numbers whose insert failed: outcome unknown
        self.errors = []            # (sqlstate, message, monotonic time) of those inserts

    def run(self):
        n = self.load.base
        while not self.load.stop.is_set():
            try:
                self.conn.execute("INSERT INTO ledger (user_id, n, writer) VALUES (%s, %s, %s)",
                                  (self.key, n, self.index))
                self.acked.append((n, time.monotonic()))
            except psycopg.Error as e:
                self.unknown.add(n)
                self.errors.append((e.sqlstate, str(e).strip(), time.monotonic()))
                if self.load.failed(self, e):
                    return
                time.sleep(0.01)
            n += 1

    def gaps(self, t_event):
        """(longest gap between acknowledgements before t_event, longest ending after it)."""
        times = [t for _, t in self.acked]
        before = [b - a for a, b in zip(times, times[1:]) if b <= t_event]
        after = [b - a for a, b in zip(times, times[1:]) if b > t_event]
        return max(before, default=0.0), max(after, default=0.0)

    def acked_after(self, t):
        return sum(1 for _, at in self.acked if at > t)


class Reader:
    def __init__(self, load, shard, key):
        self.load, self.shard, self.key = load, shard, key
        self.conn = load.client()
        self.reads = 0

    def run(self):
        while not self.load.stop.is_set():
            try:
                self.conn.execute("SELECT count(*) FROM ledger WHERE user_id = %s",
                                  (self.key,)).fetchone()
                self.reads += 1
            except psycopg.Error as e:
                if self.load.failed(self, e):
                    return
                time.sleep(0.01)


class Load:
    """Writers and readers on both shards, and idle clients, all through pgmux."""

    def __init__(self, mux, base):
        self.mux = mux
        self.base = base
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors = []            # (shard, kind, sqlstate, message, monotonic time)
        self.disconnects = []
        self.keys = {s: keys_of(mux, s, WRITERS + READERS + IDLE) for s in "ab"}
        self.writers = [Writer(self, s, i, self.keys[s][i]) for s in "ab" for i in range(WRITERS)]
        self.readers = [Reader(self, s, self.keys[s][WRITERS]) for s in "ab"
                        for _ in range(READERS)]
        self.idle = []              # (shard or None, key or None, connection)
        for s in "ab":
            for key in self.keys[s][WRITERS + READERS:]:
                conn = mux.connect(dbname="app", options=f"-c pgmux.shard_key={key}")
                conn.execute("SELECT count(*) FROM ledger WHERE user_id = %s", (key,))
                self.idle.append((s, key, conn))
        for _ in range(IDLE):
            conn = mux.connect(dbname="app")
            conn.execute("SELECT 1")
            self.idle.append((None, None, conn))
        self.threads = [threading.Thread(target=w.run, daemon=True)
                        for w in self.writers + self.readers]

    def client(self):
        conn = psycopg.connect(self.mux.dsn("app", "postgres"), autocommit=True,
                               connect_timeout=5)
        self.mux.conns.append(conn)
        return conn

    def failed(self, who, err):
        """Record err; True when the connection is gone (the thread then stops)."""
        kind = type(who).__name__.lower()
        with self.lock:
            self.errors.append((who.shard, kind, err.sqlstate, str(err).strip(),
                                time.monotonic()))
            if who.conn.closed or who.conn.broken:
                self.disconnects.append((who.shard, kind, str(err).strip()))
                return True
        return False

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def writers_of(self, shard):
        return [w for w in self.writers if w.shard == shard]

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a load thread is stuck"


def wait_acks(load, since, count, timeout, shards="ab"):
    """Wait until every writer of shards has count acknowledgements after since."""
    wait_for(lambda: all(w.acked_after(since) >= count for s in shards
                         for w in load.writers_of(s)),
             timeout=timeout, interval=0.05,
             what=f"{count} acknowledged inserts per writer of shards {shards}")


def rows_of(server_query, key, base):
    """Numbers present for key from base on, via server_query(sql, params) -> rows."""
    return {r[0] for r in server_query("SELECT n FROM ledger WHERE user_id = %s AND n >= %s "
                                       "AND n < %s", (key, base, base + 10_000_000))}


def check(load, patroni, plain, label, t_event, t_new):
    """Assert what the module docstring says; print the figures."""
    assert not load.disconnects, f"{label}: clients lost their connection: {load.disconnects}"
    write_errors = [e for e in load.errors if e[1] == "writer"]
    assert not [e for e in write_errors if e[0] == "b"], \
        f"{label}: writers of shard b saw errors: {write_errors}"
    for w in load.writers_of("a"):
        in_flight = [e for e in w.errors if e[0] in IN_FLIGHT_STATES and e[2] >= t_event]
        assert len(w.errors) <= 1 and in_flight == w.errors, \
            f"{label}: writer a{w.index} saw errors beyond one insert in flight: {w.errors}"
    read_errors = [e for e in load.errors if e[1] == "reader"]
    assert not [e for e in read_errors if e[0] == "b"], \
        f"{label}: readers of shard b saw errors: {read_errors}"
    assert all(e[2] in IN_FLIGHT_STATES for e in read_errors), \
        f"{label}: unexpected read errors on shard a: {read_errors}"

    # every acknowledged insert, and no other, on the shard that holds its key
    patroni.wait_replicated(timeout=30)
    plain_conn = psycopg.connect(plain.dsn("app"), autocommit=True)
    a_conn = psycopg.connect(patroni.dsn(dbname="app"), autocommit=True)
    on = {"a": lambda q, p: a_conn.execute(q, p).fetchall(),
          "b": lambda q, p: plain_conn.execute(q, p).fetchall()}
    counts = {}
    try:
        for w in load.writers:
            acked = {n for n, _ in w.acked}
            present = rows_of(on[w.shard], w.key, load.base)
            other = "b" if w.shard == "a" else "a"
            assert not rows_of(on[other], w.key, load.base), \
                f"{label}: rows of key {w.key} (shard {w.shard}) found on shard {other}"
            assert acked <= present, \
                f"{label}: writer {w.shard}{w.index} lost acknowledged inserts: " \
                f"{sorted(acked - present)[:20]}"
            assert present - acked <= w.unknown, \
                f"{label}: writer {w.shard}{w.index} has rows it never sent: " \
                f"{sorted(present - acked - w.unknown)[:20]}"
            counts[f"{w.shard}{w.index}"] = (len(acked), len(present))
    finally:
        plain_conn.close()
        a_conn.close()

    # idle clients are still connected and reach their shard (a: its new primary or replica)
    ports = {"a": {patroni.member_port(n) for n in patroni.names}, "b": {plain.port}}
    for shard, key, conn in load.idle:
        if shard is None:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            continue
        assert conn.execute("SELECT count(*) FROM ledger WHERE user_id = %s",
                            (key,)).fetchone() == (0,)
        # no table: runs on the shard of the session's key (its startup option)
        port, = conn.execute("SELECT inet_server_port()").fetchone()
        assert port in ports[shard], f"{label}: idle client of key {key} reached port {port}"

    pauses = {s: [w.gaps(t_event) for w in load.writers_of(s)] for s in "ab"}
    first_a = min((t for w in load.writers_of("a") for _, t in w.acked if t > t_new),
                  default=None)
    reads = {s: sum(r.reads for r in load.readers if r.shard == s) for s in "ab"}
    print(f"\n{label}: acknowledged/present per writer {counts}; reads {reads}; "
          f"read errors {[(e[0], e[2]) for e in read_errors]}; "
          f"write errors {[(e[0], e[2]) for e in write_errors]}")
    for s in "ab":
        before = max(p[0] for p in pauses[s])
        during = max(p[1] for p in pauses[s])
        print(f"  shard {s}: longest gap between a writer's inserts: before the switchover "
              f"{before * 1000:.0f} ms, from it on {during * 1000:.0f} ms")
    if first_a is not None:
        print(f"  shard a: new leader writable -> first write through pgmux "
              f"{(first_a - t_new) * 1000:.0f} ms")
    b_pause = max(p[1] for p in pauses["b"])
    assert b_pause < B_PAUSE_LIMIT, \
        f"{label}: shard b's writers paused {b_pause:.2f}s while shard a switched over"
    return pauses


def run_through(mux, patroni, base, event):
    """Start the load, run event(old leader), wait until both shards' writes flow on the new
    primary; return (load, old, new, t_event, t_new)."""
    old = patroni.leader()
    load = Load(mux, base).start()
    t0 = time.monotonic()
    try:
        wait_acks(load, t0, 30, timeout=20)
        t_event = time.monotonic()
        event(old)
        new = patroni.wait_leader(not_name=old, timeout=60)
        t_new = time.monotonic()
        # a's writes flow again through pgmux, and b's went on all along
        wait_acks(load, t_new, 30, timeout=40)
        assert all(w.acked_after(t_event) > 0 for w in load.writers_of("b"))
    finally:
        load.finish()
    return load, old, new, t_event, t_new


def rejoined(patroni, old):
    """Wait until the old leader streams from the new one again (for the next test)."""
    patroni.wait_member(old, "replica", timeout=60)
    patroni.wait_healthy()


@pytest.mark.timeout(240)
def test_switchover_of_one_shard(mux, clusters):
    patroni, plain = clusters
    load, old, new, t_event, t_new = run_through(mux, patroni, 1_000_000,
                                                 lambda old: patroni.switchover())
    assert new != old
    check(load, patroni, plain, "switchover of shard a", t_event, t_new)
    topology = mux.admin("SHOW TOPOLOGY")
    assert [r["member"] for r in topology if r["cluster"] == "one" and r["role"] == "primary"] \
        == [new]
    shards = {r["shard"]: r for r in mux.admin("SHOW SHARDS")}
    assert shards["a"]["primary"] == new, shards
    rejoined(patroni, old)


@pytest.mark.timeout(240)
def test_scheduled_switchover_of_one_shard(mux, clusters):
    """Announced ahead in /cluster: pgmux drains a's old primary before Patroni stops it."""
    patroni, plain = clusters
    draining = []

    def scheduled(old):
        at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=4)
        out = patroni.patronictl("switchover", "--leader", old, "--scheduled",
                                 at.isoformat(timespec="seconds"), "--force", patroni.scope)
        assert out.returncode == 0 and "failed" not in (out.stdout + out.stderr).lower(), \
            out.stdout + out.stderr

        def seen():
            draining.extend(r["member"] for r in mux.admin("SHOW TOPOLOGY")
                            if r["state"] == "draining")
            return draining
        wait_for(seen, timeout=10, interval=0.05, what="a's old primary draining")
    load, old, new, t_event, t_new = run_through(mux, patroni, 2_000_000, scheduled)
    assert new != old
    check(load, patroni, plain, "scheduled switchover of shard a", t_event, t_new)
    assert not load.errors, f"statements failed although the switchover was announced: " \
        f"{load.errors}"
    assert draining and set(draining) == {old}
    rejoined(patroni, old)
