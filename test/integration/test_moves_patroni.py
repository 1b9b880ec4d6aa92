"""Bucket moves from and to a Patroni cluster, and a switchover there mid-copy.

Shard a is a Patroni cluster (a leader and one replica, wal_level = logical, with
`ignore_slots` for logical pgoutput slots as doc/sharding.md asks: else Patroni drops a move's
slot whenever it is briefly unused); shard b a plain PostgreSQL server. Writers update and
insert on keys of the moving buckets and of others through pgmux. The move's copy is held (a
SHARE lock on b's notes keeps that table's initial copy waiting) and a switchover runs on a.

The logical slots of the move stay on the member they were made on, so the move cannot survive
the switchover: asserted is that it aborts cleanly. The map is unchanged; no publication (on the
new primary), no slot (on either member of a) and no subscription (on b) is left; b holds no
row of the moving buckets; the writers went on and every write they were told committed
is on a's new primary. (A transaction in flight on the old primary when Patroni stops it fails,
as it would without pgmux: pgmux cannot replay a transaction; one such error per writer is
allowed, and printed.) A new move of the same buckets then completes, and its clean-up leaves
nothing behind.

The same the other way: buckets of b move to a, a switchover on a (the target, where the
subscription is) during the copy aborts that move cleanly too (no subscription left on either
member of a, no publication or slot on b), and a new move to a's new primary completes.
"""
import os
import sys
import threading
import time

import psycopg
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from conftest import wait_for  # noqa: E402
from patroni import PatroniCluster  # noqa: E402
from pgcluster import PgCluster  # noqa: E402
from test_moves import (BUCKETS, IN_MOVE, SCHEMA, keys, load_users,  # noqa: E402
                        map_version, move_row, rows, start_move, stop_after_more, wait_step)
from test_moves_faults import TABLES, copy_held, moving_rows, sub_states  # noqa: E402
from test_sharding_patroni import start_sharded_mux  # noqa: E402


# What a transaction caught on the old primary by the switchover's fast stop may get.
IN_FLIGHT_STATES = {"57P01", "08006", "08003", "57P02", "57P03", "25006"}


class Writer(threading.Thread):
    """Numbered writes through pgmux, as test_moves's, that keep their connection: acked holds
    the events whose COMMIT succeeded, errors (sqlstate, message, connection lost) the rest, and
    failed the events of those transactions."""

    def __init__(self, mux, wid, user_ids):
        super().__init__(daemon=True)
        self.mux, self.wid, self.user_ids = mux, wid, user_ids
        self.acked, self.errors, self.failed = [], [], set()
        self.stop = threading.Event()

    def run(self):
        seq = 0
        c = self.mux.connect(dbname="app")
        while not self.stop.is_set():
            seq += 1
            uid = self.user_ids[seq % len(self.user_ids)]
            eid = self.wid * 1_000_000 + seq
            try:
                with c.transaction():
                    c.execute("UPDATE users SET n = n + 1 WHERE user_id = %s", (uid,))
                    c.execute("INSERT INTO events (id, user_id, seq) VALUES (%s, %s, %s)",
                              (eid, uid, seq))
            except psycopg.Error as e:
                lost = c.closed or c.broken
                self.errors.append((getattr(e, "sqlstate", None), str(e).strip() or repr(e), lost))
                self.failed.add((eid, uid))
                if lost:
                    c = self.mux.connect(dbname="app")
                time.sleep(0.01)
                continue
            self.acked.append((eid, uid))
        c.close()


class Leader:
    """Shard a's current primary, with PgCluster's sql() (psql's unaligned output)."""

    def __init__(self, pc, name=None):
        self.pc, self.name = pc, name

    def sql(self, query, dbname="postgres"):
        with psycopg.connect(self.pc.dsn(self.name, dbname=dbname), autocommit=True,
                             connect_timeout=5) as c:
            cur = c.execute(query)
            if cur.description is None:
                return ""
            return "\n".join("|".join("" if v is None else str(v) for v in r)
                             for r in cur.fetchall())


@pytest.fixture(scope="module")
def clusters():
    pc = PatroniCluster(nodes=2, scope="move-a",
                        dcs={"parameters": {"wal_level": "logical"},
                             "ignore_slots": [{"type": "logical", "plugin": "pgoutput"}]})
    plain = PgCluster(settings=["wal_level = logical"])    # the source of the second test
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


@pytest.fixture
def mux(pgmux, clusters, tmp_path):
    patroni, plain = clusters
    return start_sharded_mux(pgmux, patroni, plain, str(tmp_path / "users.map"), BUCKETS)


def logical_slots(pc):
    """{member: logical slots on it} for every member of a."""
    return {name: Leader(pc, name).sql("SELECT count(*) FROM pg_replication_slots "
                                       "WHERE slot_type = 'logical'")
            for name in pc.names}


def nothing_left(pc, b):
    return (Leader(pc).sql("SELECT count(*) FROM pg_publication", dbname="app") == "0"
            and set(logical_slots(pc).values()) == {"0"}
            and b.sql("SELECT count(*) FROM pg_subscription", dbname="app") == "0")


@pytest.mark.timeout(240)
def test_switchover_on_the_source_during_the_copy(mux, clusters):
    pc, b = clusters
    a = Leader(pc)
    moving, staying = keys(a, 20, True), keys(a, 20, False)
    load_users(mux, moving + staying)
    a.sql(f"INSERT INTO notes (user_id) SELECT (ARRAY[{','.join(map(str, moving))}])"
          "[1 + g % 20] FROM generate_series(1, 100) g", dbname="app")
    writers = [Writer(mux, 1, moving[:10]), Writer(mux, 2, moving[10:]),
               Writer(mux, 3, staying[:10]), Writer(mux, 4, staying[10:])]
    for w in writers:
        w.start()
    wait_for(lambda: all(len(w.acked) > 20 for w in writers), timeout=20, what="writes")

    lock = copy_held(b)
    move_id = start_move(mux)
    wait_for(lambda: (lambda s: s.get("users") == "r" and s.get("events") == "r"
                      and s.get("notes", "r") != "r")(sub_states(b)),
             timeout=30, interval=0.05, what="users and events copied, notes waiting")
    assert move_row(mux, move_id)["step"] == "copy"
    old = pc.leader()
    assert logical_slots(pc)[old] != "0"
    new = pc.switchover()
    row = wait_step(mux, move_id, ("rollback", "failed"), timeout=60)
    lock.close()                    # the rollback deletes b's copy of notes too
    row = wait_step(mux, move_id, "failed", timeout=90)
    print(f"\nswitchover {old} -> {new} during the copy: {row['error']}")
    assert "rollback" not in row["error"], row     # nothing was left to do by hand
    pc.wait_member(old, role="replica", timeout=60)
    wait_for(lambda: nothing_left(pc, b), timeout=10, what="no replication object left")
    assert moving_rows(b) == {t: 0 for t in TABLES}
    assert map_version(mux) == 1

    # the clients of every key went on, through the switchover, on a
    counts = [len(w.acked) for w in writers]
    wait_for(lambda: all(len(w.acked) > n + 10 for w, n in zip(writers, counts)), timeout=30,
             what="writes after the switchover")
    for w in writers:
        w.stop.set()
    for w in writers:
        w.join(10)
    errors = [e for w in writers for e in w.errors]
    for e in errors:
        print(f"a writer's transaction caught by the switchover: {e}")
    # Besides the SQLSTATEs above, a transaction in flight may end with its connection (the
    # writer connects again): libpq then reports the end, without the FATAL's SQLSTATE.
    assert all(state in IN_FLIGHT_STATES or (state is None and lost)
               for state, _, lost in errors), errors
    assert all(sum(1 for _ in w.errors) <= 1 for w in writers), errors
    a = Leader(pc)
    acked = {(eid, uid) for w in writers for eid, uid in w.acked}
    on_a = rows(a, "SELECT id, user_id FROM events")
    assert acked <= on_a, "acknowledged writes lost"
    # A COMMIT that the fast stop interrupts once it has committed is reported failed by
    # PostgreSQL itself (CommandComplete, then FATAL 57P01): its event may be there, unacked.
    assert on_a - acked <= {r for w in writers for r in w.failed}, on_a - acked
    assert b.sql("SELECT count(*) FROM events", dbname="app") == "0"

    # the same buckets move once the cluster is settled, from the new primary
    move_id = start_move(mux)
    row = wait_step(mux, move_id, ("done", "failed"), timeout=60)
    assert row["step"] == "done", row
    assert map_version(mux) == 2
    assert moving_rows(b) == moving_rows(a)
    # Every row a had, acknowledged or (a COMMIT the fast stop cut short) not: acked <= on_a above.
    assert rows(b, f"SELECT id, user_id FROM events WHERE {IN_MOVE}") == \
        {(eid, uid) for eid, uid in on_a if uid in moving}
    mux.admin(f"MOVE CLEANUP {move_id}")
    row = wait_step(mux, move_id, ("cleaned", "done"), timeout=60)
    assert row["step"] == "cleaned", row
    wait_for(lambda: nothing_left(pc, b), timeout=10, what="no replication object left")
    assert moving_rows(a) == {t: 0 for t in TABLES}


TO_A = (8192, 9215)                     # on b in the first map
IN_TO_A = f"(hashint8extended(user_id, 0) & {BUCKETS - 1}) BETWEEN {TO_A[0]} AND {TO_A[1]}"


def keys_on_b(b, n):
    out = b.sql(f"SELECT k FROM generate_series(1, 100000) k WHERE (hashint8extended(k, 0) & "
                f"{BUCKETS - 1}) BETWEEN {TO_A[0]} AND {TO_A[1]} ORDER BY k LIMIT {n}")
    return [int(k) for k in out.split()]


def subscriptions(pc):
    """{member: subscriptions on it} for every member of a."""
    return {name: Leader(pc, name).sql("SELECT count(*) FROM pg_subscription", dbname="app")
            for name in pc.names}


@pytest.mark.timeout(240)
def test_switchover_on_the_target_during_the_copy(mux, clusters):
    pc, b = clusters
    a = Leader(pc)
    a.sql("TRUNCATE users, events, notes", dbname="app")
    b.sql("TRUNCATE users, events, notes", dbname="app")
    uids = keys_on_b(b, 20)
    load_users(mux, uids)
    writers = [Writer(mux, 1, uids[:10]), Writer(mux, 2, uids[10:])]
    for w in writers:
        w.start()
    wait_for(lambda: all(len(w.acked) > 20 for w in writers), timeout=20, what="writes")
    # the copy held on a: its leader's notes locked as test_moves_faults does on b
    lock = psycopg.connect(pc.dsn(pc.leader(), dbname="app"), autocommit=False)
    lock.execute("LOCK TABLE notes IN SHARE MODE")
    move_id = start_move(mux, buckets=f"{TO_A[0]}-{TO_A[1]}", to="a")
    wait_for(lambda: Leader(pc).sql("SELECT count(*) FROM pg_subscription_rel r JOIN pg_class c "
                                    "ON c.oid = r.srrelid WHERE c.relname = 'events' AND "
                                    "r.srsubstate = 'r'", dbname="app") == "1",
             timeout=30, interval=0.05, what="events copied to a")
    assert move_row(mux, move_id)["step"] == "copy"
    old = pc.leader()
    new = pc.switchover()
    lock.close()
    row = wait_step(mux, move_id, "failed", timeout=90)
    print(f"\nswitchover {old} -> {new} on the target during the copy: {row['error']}")
    assert "rollback" not in row["error"], row
    pc.wait_member(old, role="replica", timeout=60)
    wait_for(lambda: set(subscriptions(pc).values()) == {"0"}
             and b.sql("SELECT count(*) FROM pg_publication", dbname="app") == "0"
             and b.sql("SELECT count(*) FROM pg_replication_slots") == "0",
             timeout=10, what="no replication object left")
    a = Leader(pc)
    assert a.sql(f"SELECT count(*) FROM users WHERE {IN_TO_A}", dbname="app") == "0"
    assert map_version(mux) == 1

    # a new move to the new primary completes, under the same writers
    move_id = start_move(mux, buckets=f"{TO_A[0]}-{TO_A[1]}", to="a")
    row = wait_step(mux, move_id, ("done", "failed"), timeout=60)
    assert row["step"] == "done", row
    acked = stop_after_more(writers)
    assert [e for w in writers for e in w.errors] == []
    assert rows(a, "SELECT id, user_id FROM events") == acked
    assert map_version(mux) == 2
    mux.admin(f"MOVE CLEANUP {move_id}")
    row = wait_step(mux, move_id, ("cleaned", "done"), timeout=60)
    assert row["step"] == "cleaned", row
    assert b.sql("SELECT count(*) FROM events", dbname="app") == "0"
    wait_for(lambda: set(subscriptions(pc).values()) == {"0"}, timeout=10,
             what="the subscription dropped")
