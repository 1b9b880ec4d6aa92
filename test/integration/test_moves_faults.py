"""Bucket moves that fail part-way, on two plain PostgreSQL servers, and what clients of other
keys feel while a move runs.

Each fault strikes at a chosen step, held there on purpose rather than by timing:
- copy: a SHARE lock on the target's notes table (taken in the test) keeps that table's
  initial copy waiting while the other tables are copied and followed;
- catch-up: pgmux is stopped (SIGSTOP) while the copy ends, the target's apply worker is stopped
  too and the source writes more than the 1 MB at which the hold would start; pgmux then
  resumes into a catch-up it cannot finish.
Faults: the subscription disabled or dropped on the target during the copy, or disabled during
the catch-up (the move fails),
its workers terminated again and again (the move survives), the target's primary stopped
during catch-up, pgmux killed (SIGKILL) during the copy and started again (it rolls back from
its state file). After each failure the map is unchanged, the source's rows are as they were,
the target has no row of the moving buckets, and no publication, subscription or slot is left.

Run with -s for the latency of clients of other keys before and during a move (and around its
cutover), beside the pause that clients of the moving keys see at the cutover.
"""
import os
import signal
import sys
import time

import psycopg
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from conftest import wait_for  # noqa: E402
from timedwriter import TimedWriter, percentile  # noqa: E402
from test_moves import (IN_MOVE, MOVING, clean, keys, load_users, map_version,  # noqa: E402,F401
                        move_row, replication_objects, restart, servers, sharded, start_move,
                        wait_step)

TABLES = ("users", "events", "notes")


def fingerprint(server):
    """Each table's rows as a count and a digest: equal means the same rows."""
    return {t: server.sql(f"SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' "
                          f"ORDER BY x::text)), '') FROM {t} x", dbname="app") for t in TABLES}


def moving_rows(server):
    return {t: int(server.sql(f"SELECT count(*) FROM {t} WHERE {IN_MOVE}", dbname="app"))
            for t in TABLES}


def sub_states(server):
    """{table: srsubstate} of the target's subscription tables."""
    out = server.sql("SELECT c.relname, r.srsubstate FROM pg_subscription_rel r "
                     "JOIN pg_class c ON c.oid = r.srrelid", dbname="app")
    return dict(line.split("|") for line in out.split())


def load(mux, a, n_moving=10):
    """Users on moving and other keys, events and notes of the moving ones (all on a)."""
    moving, staying = keys(a, n_moving, True), keys(a, n_moving, False)
    load_users(mux, moving + staying)
    a.sql("INSERT INTO events SELECT g, (ARRAY[" + ",".join(map(str, moving + staying)) +
          "])[1 + g % " + str(2 * n_moving) + "], g FROM generate_series(1, 2000) g",
          dbname="app")
    a.sql("INSERT INTO notes (user_id) SELECT (ARRAY[" + ",".join(map(str, moving)) +
          "])[1 + g % " + str(n_moving) + "] FROM generate_series(1, 100) g", dbname="app")
    return moving, staying


def copy_held(b):
    """A transaction on b holding notes in SHARE mode: notes' initial copy (ROW EXCLUSIVE)
    waits for it, reads do not."""
    conn = psycopg.connect(b.dsn("app"), autocommit=False)
    conn.execute("LOCK TABLE notes IN SHARE MODE")
    return conn


def start_held_copy(mux, a, b):
    """A move held in its copy: users and events copied and followed, notes waiting."""
    lock = copy_held(b)
    move_id = start_move(mux)
    wait_for(lambda: (lambda s: s.get("users") == "r" and s.get("events") == "r"
                      and s.get("notes", "r") != "r")(sub_states(b)),
             timeout=30, interval=0.05, what="users and events copied, notes waiting")
    assert move_row(mux, move_id)["step"] == "copy"
    assert moving_rows(b)["events"] == moving_rows(a)["events"] > 0
    return move_id, lock


def assert_rolled_back(mux, a, b, a_before):
    """The map and the data as they were, nothing of the move left on either server."""
    assert map_version(mux) == 1
    wait_for(lambda: replication_objects((a, b)) == ("0", "0", "0"), timeout=10,
             what="no publication, slot or subscription left")
    assert moving_rows(b) == {t: 0 for t in TABLES}
    assert b.sql("SELECT count(*) FROM users", dbname="app") == "0"
    assert fingerprint(a) == a_before
    assert not os.path.exists(mux.map_path + ".moves")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["disable", "drop"])
def test_subscription_lost_during_copy(sharded, clean, how):
    mux = sharded
    a, b = clean
    load(mux, a)
    a_before = fingerprint(a)
    move_id, lock = start_held_copy(mux, a, b)
    name = b.sql("SELECT subname FROM pg_subscription", dbname="app")
    if how == "disable":
        b.sql(f"ALTER SUBSCRIPTION {name} DISABLE", dbname="app")
        want = f"the subscription {name} was disabled on shard b"
    else:
        # as one would drop it by hand: its slot on a goes with it
        b.sql(f"DROP SUBSCRIPTION {name}", dbname="app")
        want = f"the subscription {name} is gone from shard b"
    row = wait_step(mux, move_id, ("rollback", "failed"), timeout=20)
    lock.close()
    row = wait_step(mux, move_id, "failed", timeout=30)
    assert want in row["error"], row
    assert "rollback" not in row["error"], row       # everything could be dropped
    assert_rolled_back(mux, a, b, a_before)


def apply_worker(b):
    return int(b.sql("SELECT pid FROM pg_stat_subscription WHERE relid IS NULL AND pid IS NOT "
                     "NULL"))


@pytest.mark.timeout(60)
def test_workers_terminated_during_copy_survived(sharded, clean):
    """The subscription's workers killed again and again: PostgreSQL restarts them, and the
    move ends with every row on b."""
    mux = sharded
    a, b = clean
    # the launcher starts a failed worker again after this interval (5 s by default)
    b.sql("ALTER SYSTEM SET wal_retrieve_retry_interval = '200ms'")
    b.sql("SELECT pg_reload_conf()")
    moving, _ = load(mux, a)
    move_id, lock = start_held_copy(mux, a, b)
    for i in range(5):
        worker = apply_worker(b)
        b.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_subscription")
        # writes on a while the workers are down: they must reach b all the same
        a.sql(f"INSERT INTO events VALUES ({100000 + i}, {moving[i]}, {i})", dbname="app")
        wait_for(lambda: b.sql("SELECT count(*) FROM pg_stat_subscription WHERE relid IS NULL "
                               f"AND pid IS NOT NULL AND pid <> {worker}") == "1",
                 timeout=10, what="a new apply worker")
    assert move_row(mux, move_id)["step"] == "copy"
    lock.close()
    row = wait_step(mux, move_id, ("done", "failed"), timeout=40)
    assert row["step"] == "done", row
    assert moving_rows(b) == moving_rows(a)
    mux.admin(f"MOVE CLEANUP {move_id}")
    assert wait_step(mux, move_id, ("cleaned", "done"))["step"] == "cleaned"
    assert replication_objects((a, b)) == ("0", "0", "0")


def start_held_catchup(mux, a, b):
    """Rows loaded (load), and a move of them held in its catch-up: copied, then behind by
    more than 1 MB that the target's apply worker (stopped) cannot apply. Returns the move's
    id, the worker's pid and the source's fingerprint once the rows behind were written."""
    moving, _ = load(mux, a)
    move_id, lock = start_held_copy(mux, a, b)
    # pgmux must not see the copy end before the target falls behind: it waits, stopped
    mux.proc.send_signal(signal.SIGSTOP)
    try:
        lock.close()
        wait_for(lambda: set(sub_states(b).values()) == {"r"}, timeout=20,
                 what="every table copied")
        worker = apply_worker(b)
        os.kill(worker, signal.SIGSTOP)
        # a few MB of changes on the moving buckets that b cannot apply
        a.sql(f"INSERT INTO events SELECT 200000 + g, {moving[0]}, g "
              "FROM generate_series(1, 40000) g", dbname="app")
    finally:
        mux.proc.send_signal(signal.SIGCONT)
    try:
        row = wait_step(mux, move_id, ("catch-up", "hold", "done", "failed"), timeout=20)
        assert row["step"] == "catch-up", row
        # lag_bytes is NULL until the catch-up's first look at the slot
        wait_for(lambda: int(move_row(mux, move_id)["lag_bytes"] or 0) > 1024 * 1024,
                 timeout=10, what="the lag seen")
    except BaseException:
        os.kill(worker, signal.SIGCONT)     # else the next test's clean-up waits for it
        raise
    return move_id, worker, fingerprint(a)


@pytest.mark.timeout(90)
def test_subscription_disabled_during_catchup(sharded, clean):
    """Disabled while behind, the subscription would never catch up: the move fails and
    rolls back, rather than waiting with a growing lag."""
    mux, (a, b) = sharded, clean
    move_id, worker, a_before = start_held_catchup(mux, a, b)
    name = b.sql("SELECT subname FROM pg_subscription", dbname="app")
    b.sql(f"ALTER SUBSCRIPTION {name} DISABLE", dbname="app")
    # it ends at its next message, before it could apply (and confirm) what it was sent; a
    # disabled subscription's worker is not started again
    b.sql(f"SELECT pg_terminate_backend({worker})")
    os.kill(worker, signal.SIGCONT)
    row = wait_step(mux, move_id, "failed", timeout=30)
    assert f"the subscription {name} was disabled on shard b" in row["error"], row
    assert "rollback" not in row["error"], row
    assert_rolled_back(mux, a, b, a_before)


@pytest.mark.timeout(90)
def test_target_stopped_during_catchup(sharded, clean):
    mux, (a, b) = sharded, clean
    move_id, worker, a_before = start_held_catchup(mux, a, b)
    # b's primary goes: its stopped worker is killed, the rest shut down at once
    os.kill(worker, signal.SIGKILL)
    b.stop("immediate")
    try:
        # nothing switches while b is away: the move waits in catch-up until aborted
        assert move_row(mux, move_id)["step"] == "catch-up"
        mux.admin(f"MOVE ABORT {move_id}")
        row = wait_step(mux, move_id, "failed", timeout=60)
        assert "aborted by MOVE ABORT" in row["error"], row
        assert "rollback" in row["error"], row     # b's part could not be dropped
        assert map_version(mux) == 1
        assert a.sql("SELECT count(*) FROM pg_publication", dbname="app") == "0"
    finally:
        b.start()
    # the rollback again, b back: its subscription and the rows it copied go
    mux.admin(f"MOVE CLEANUP {move_id}")
    wait_step(mux, move_id, "failed", timeout=60)
    assert_rolled_back(mux, a, b, a_before)


@pytest.mark.timeout(90)
def test_pgmux_killed_during_copy(sharded, clean):
    mux = sharded
    a, b = clean
    moving, _ = load(mux, a)
    a_before = fingerprint(a)
    move_id, lock = start_held_copy(mux, a, b)
    with open(mux.map_path + ".moves") as f:
        assert f.read().split()[-1] == "copy"
    restart(mux)            # SIGKILL: pgmux drops nothing itself
    # the subscription outlives pgmux: let it finish its copy and follow a, as it would
    lock.close()
    row = wait_step(mux, 1, "failed", timeout=30)
    assert row["buckets"] == f"{MOVING[0]}-{MOVING[1]}", row
    assert "pgmux restarted during step copy: rolled back" == row["error"], row
    assert_rolled_back(mux, a, b, a_before)
    # the buckets can move again
    move_id = start_move(mux)
    assert wait_step(mux, move_id, ("done", "failed"), timeout=40)["step"] == "done"
    assert moving_rows(b) == moving_rows(a)
    assert map_version(mux) == 2


@pytest.mark.timeout(120)
def test_latency_of_other_keys_during_a_move(sharded, clean):
    """Writers on keys that stay and on keys that move, before and during a move of 200k
    rows; the figures are printed side by side (pytest -s)."""
    mux = sharded
    a, b = clean
    moving, staying = keys(a, 20, True), keys(a, 20, False)
    load_users(mux, moving + staying)
    a.sql(f"INSERT INTO events SELECT g, (ARRAY[{','.join(map(str, moving))}])[1 + g % 20], g "
          "FROM generate_series(1, 200000) g", dbname="app")
    def connect():
        return mux.connect(dbname="app")
    others = [TimedWriter(connect, i + 1, staying[i::2]) for i in range(2)]
    movers = [TimedWriter(connect, 3 + i, moving[i::3]) for i in range(3)]
    for w in others + movers:
        w.start()
    t_before = time.monotonic()
    wait_for(lambda: all(len(w.samples) >= 300 for w in others), timeout=30,
             what="writes before the move")
    t_start = time.monotonic()
    move_id = start_move(mux)
    t_hold = wait_step(mux, move_id, ("hold", "switch", "done", "failed"), timeout=60) and \
        time.monotonic()           # within a poll (50 ms) of the hold's start
    row = wait_step(mux, move_id, ("done", "failed"), timeout=60)
    t_done = time.monotonic()
    for w in others + movers:
        w.stop.set()
    for w in others + movers:
        w.join(10)
    assert row["step"] == "done", row
    assert [e for w in others + movers for e in w.errors] == []

    before = [d * 1000 for w in others for d in w.between(t_before, t_start)]
    during = [d * 1000 for w in others for d in w.between(t_start, t_done)]
    paused = [d * 1000 for w in movers for d in w.between(t_start, t_done)]
    # the transactions that ended from the hold on: those of moving keys waited for the switch
    cut_other = [d * 1000 for w in others for d in w.between(t_hold - 0.05, t_done + 0.5)]
    cut_moving = [d * 1000 for w in movers for d in w.between(t_hold - 0.05, t_done + 0.5)]
    print(f"\nmove of buckets {MOVING[0]}-{MOVING[1]} ({moving_rows(b)['events']} events rows) "
          f"took {t_done - t_start:.1f} s")
    print(f"{'other keys':<22}{'transactions':>14}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for label, t in (("before the move", before), ("during the move", during),
                     ("  around the cutover", cut_other), ("moving keys, during", paused),
                     ("  around the cutover", cut_moving)):
        print(f"{label:<22}{len(t):>14}{percentile(t, 50):>10.1f}{percentile(t, 99):>10.1f}"
              f"{max(t, default=float('nan')):>10.1f}")
    assert len(before) >= 600 and len(during) > 0
    # other keys are never held: no transaction of theirs waits anything like a hold
    assert max(during) < 2000, max(during)
