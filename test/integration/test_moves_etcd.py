"""Moving buckets of a section whose map is in etcd, with two pgmux in front of the same shards.

A throwaway etcd holds the map; two pgmux read and watch the same key and register under it.
The move runs on the first (the coordinator): the second holds the moving buckets when the
move's record says so, confirms once its own units on them ended, and both put the next map
in force when the coordinator writes it over the key. Writers go through both instances on
moving and other keys; an instance that never confirms (stopped) makes the move abort.
"""
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import psycopg
import pytest
import rawpg

from conftest import wait_for
from test_moves import (BUCKETS, MOVING, Writer, assert_moved, clean, cleaned_up,  # noqa: F401
                        keys, load_users, move_in_hold, replication_objects, restart, rows, servers,
                        stop_after_more, wait_step)
from test_shard_etcd import Etcd, etcd  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from pgcluster import PGMUX_BIN  # noqa: E402

KEY = "/pgmux/maps/users"


def etcd_get(e, key):
    """(value, mod_revision) of key, (None, 0) when absent."""
    req = urllib.request.Request(
        e.url + "/v3/kv/range", data=json.dumps({"key": base64.b64encode(key.encode()).decode()})
        .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        kvs = json.load(r).get("kvs", [])
    if not kvs:
        return None, 0
    return base64.b64decode(kvs[0].get("value", "")).decode(), int(kvs[0]["mod_revision"])


def etcd_keys(e, prefix):
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    req = urllib.request.Request(
        e.url + "/v3/kv/range",
        data=json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                         "range_end": base64.b64encode(end.encode()).decode(),
                         "keys_only": True}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return [base64.b64decode(kv["key"]).decode() for kv in json.load(r).get("kvs", [])]


def map_version_in(e):
    text, _ = etcd_get(e, KEY)
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("version ")))


@pytest.fixture
def two(pgmux, clean, etcd, tmp_path):  # noqa: F811
    return start_two(pgmux, clean, etcd, tmp_path)


def start_two(pgmux, clean, etcd, tmp_path, **section):  # noqa: F811
    """Two pgmux sharing the map in etcd; section: more [shards.users] keys."""
    path = str(tmp_path / "users.map")
    subprocess.run([PGMUX_BIN, "--shard-map", "create", "--buckets", str(BUCKETS), "a", "b",
                    "-o", path], check=True, capture_output=True)
    etcd.put_file(KEY, path)
    lines = []
    for name, s in zip(("one", "two"), clean):
        lines += ["", f"[cluster.{name}]", f"hosts = 127.0.0.1:{s.port}",
                  "health_check_interval = 0.2"]
    lines += ["", "[shards.users]", "key = user_id", f"map = etcd:{etcd.url}{KEY}",
              "shard.a = cluster=one", "shard.b = cluster=two"]
    lines += [f"{k} = {v}" for k, v in section.items()]
    muxes = [pgmux(databases={"app": "shards=users dbname=app"},
                   extra_sections="\n".join(lines) + "\n") for _ in range(2)]
    # both registered under the key, each with its map in force
    wait_for(lambda: len(etcd_keys(etcd, KEY + "/instances/")) == 2, timeout=15,
             what="two instances registered")
    for m in muxes:
        wait_for(lambda: m.admin("SHOW SHARD FOR 1"), timeout=15, what="a map in force")
    return muxes


def start_move(mux):
    mux.admin(f"MOVE BUCKETS users {MOVING[0]}-{MOVING[1]} TO b")
    notice = mux.admin_notices[-1]
    assert notice.startswith("move "), notice
    return int(notice.split()[1])


def move_row(mux, move_id):
    return next(r for r in mux.admin("SHOW MOVES") if r["id"] == str(move_id))


def shard_for(mux, key):
    return mux.admin(f"SHOW SHARD FOR {key}")[0]["shard"]


@pytest.mark.timeout(150)
def test_move_through_two_instances(two, clean, etcd):  # noqa: F811
    a, b = clean
    one, other = two
    moving, staying = keys(a, 40, True), keys(a, 40, False)
    load_users(one, moving + staying)
    # writers through both instances, each on keys of its own
    writers = [Writer(one, 1, moving[:20]), Writer(other, 2, moving[20:]),
               Writer(one, 3, staying[:20]), Writer(other, 4, staying[20:])]
    for w in writers:
        w.start()
    wait_for(lambda: all(len(w.acked) > 20 for w in writers), timeout=20, what="writes")
    a.sql("ALTER SEQUENCE notes_id_seq MAXVALUE 999999999", dbname="app")
    b.sql("ALTER SEQUENCE notes_id_seq MINVALUE 1000000000 START 1000000000 RESTART", dbname="app")
    try:
        move_id = start_move(one)
        row = wait_step(one, move_id, ("done", "failed"), timeout=90)
    finally:
        a.sql("ALTER SEQUENCE notes_id_seq NO MAXVALUE", dbname="app")
        b.sql("ALTER SEQUENCE notes_id_seq MINVALUE 1 START 1 RESTART", dbname="app")
    assert row["step"] == "done", (row, one.log()[-3000:], other.log()[-3000:])
    assert row["error"] is None and row["confirmed"] == "1/1", row
    # the next map is the one in etcd, and both instances have it in force
    assert map_version_in(etcd) == 2
    assert shard_for(one, moving[0]) == "b"
    assert shard_for(other, moving[0]) == "b"
    assert "confirmed after" in other.log() and "released" in other.log()
    # each learnt of the move's record and the confirmations from its watch of the key
    assert all(f"watching {KEY} and the keys under it" in m.log() for m in two)
    counts = [len(w.acked) for w in writers]
    wait_for(lambda: all(len(w.acked) > n + 10 for w, n in zip(writers, counts)), timeout=20,
             what="writes after the switch")
    for w in writers:
        w.stop.set()
    for w in writers:
        w.join(10)
    assert [e for w in writers for e in w.errors] == []
    for label, ws in (("moving", writers[:2]), ("other", writers[2:])):
        t = sorted(x * 1000 for w in ws for x in w.times)
        print(f"{label} keys: {len(t)} transactions, ms p50 {t[len(t) // 2]:.1f} "
              f"p99 {t[len(t) * 99 // 100]:.1f} max {t[-1]:.1f}")

    # every acknowledged write of a moving key, through either instance, is on b, once
    assert_moved(a, b, writers, moving)
    one.admin(f"MOVE CLEANUP {move_id}")
    assert wait_step(one, move_id, ("cleaned",))["error"] is None
    assert replication_objects(clean) == ("0", "0", "0")


@pytest.mark.timeout(150)
@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGKILL], ids=["stopped", "killed"])
def test_instance_that_never_confirms_aborts_the_move(two, clean, etcd, sig):  # noqa: F811
    a, b = clean
    one, other = two
    moving, staying = keys(a, 10, True), keys(a, 10, False)
    load_users(one, moving + staying)
    before = (a.sql("SELECT * FROM users ORDER BY 1", dbname="app"),
              b.sql("SELECT * FROM users ORDER BY 1", dbname="app"))
    text_before, rev_before = etcd_get(etcd, KEY)
    writers = [Writer(one, 1, moving), Writer(one, 2, staying)]
    for w in writers:
        w.start()
    wait_for(lambda: all(len(w.acked) > 10 for w in writers), timeout=20, what="writes")
    # the other instance runs a unit on a moving key, so it cannot confirm, and then stops (or
    # dies) during the hold: its registration expires meanwhile, and it must still be waited for
    open_txn = other.connect(dbname="app", autocommit=False)
    open_txn.execute("SELECT n FROM users WHERE user_id = %s", (moving[0],))
    stopped = False
    try:
        move_id = start_move(one)
        wait_step(one, move_id, "hold", timeout=60)
        if sig == signal.SIGKILL:
            other.expect_exit = True
        os.kill(other.pid, sig)
        stopped = sig == signal.SIGSTOP
        wait_for(lambda: move_row(one, move_id)["confirmed"] == "0/1", timeout=10,
                 what="the hold waiting for the other instance")
        row = wait_step(one, move_id, "failed", timeout=60)
    finally:
        if stopped:
            os.kill(other.pid, signal.SIGCONT)
    try:
        open_txn.rollback()
        open_txn.close()
    except psycopg.Error:
        assert sig == signal.SIGKILL  # its pgmux is gone
    assert "0 of 1 other pgmux instances confirmed" in row["error"], row
    # the map is as it was, in etcd and in force on both
    assert etcd_get(etcd, KEY) == (text_before, rev_before)
    assert shard_for(one, moving[0]) == "a"
    acked = stop_after_more(writers, 5, 20, "writes after the abort")
    # the surviving instance's clients paused, none failed
    assert [e for w in writers for e in w.errors] == []
    # all writes on a, none on b; b's copy was rolled back
    assert rows(a, "SELECT id, user_id FROM events") == acked
    assert b.sql("SELECT count(*) FROM events", dbname="app") == "0"
    assert b.sql("SELECT * FROM users ORDER BY 1", dbname="app") == before[1]
    assert replication_objects(clean) == ("0", "0", "0")
    if sig == signal.SIGKILL:
        return
    # the other instance, running again, serves the moving keys on a, as before
    wait_for(lambda: shard_for(other, moving[0]) == "a", timeout=10, what="other instance")
    with other.connect(dbname="app") as c:
        t0 = time.monotonic()
        port, = c.execute("SELECT inet_server_port() FROM users WHERE user_id = %s",
                          (moving[0],)).fetchone()
        assert port == a.port and time.monotonic() - t0 < 20


def test_move_refused_while_etcd_is_unreachable(two, clean, etcd):  # noqa: F811
    one, _ = two
    etcd.stop()
    wait_for(lambda: "moves cannot be coordinated until it answers" in one.log(), timeout=10,
             what="etcd found unreachable")
    with pytest.raises(rawpg.PgError) as e:
        start_move(one)
    assert e.value.sqlstate == "57P03", e.value
    assert "not registered under the map's key" in str(e.value)
    assert one.admin("SHOW MOVES") == []


def states(e):
    """The moves' states under the map key: {name: value}."""
    return {k.rsplit("/", 1)[1]: etcd_get(e, k)[0] for k in etcd_keys(e, KEY + "/state/")}


def adopted(mux):
    """Wait until mux (started again) shows the move its previous process left."""
    # the previous process's registration expires first: up to 10 s after it was killed
    wait_for(lambda: mux.admin("SHOW MOVES"), timeout=30, what="the move adopted")


@pytest.mark.timeout(150)
def test_coordinator_restarted_mid_move(two, clean, etcd):  # noqa: F811
    """The coordinator killed during the hold, and started again on its port: once its old
    registration has expired it finds the move's state in etcd and rolls the move back (the
    map unchanged, no replication object left, the target empty), and the other instance
    serves the moving keys from the source again. Killed after a switch, it finds the move
    done, and MOVE CLEANUP runs there."""
    a, b = clean
    one, other = two
    moving, open_txn, move_id = move_in_hold(one, a)
    (name, state), = states(etcd).items()
    assert state.startswith(f"move {name} {MOVING[0]}-{MOVING[1]} a b hold by "), state
    restart(one)
    open_txn.close()
    adopted(one)
    row = wait_step(one, 1, "failed", timeout=60)
    assert "pgmux restarted during step hold" in row["error"], row
    assert f"adopted move {name}" in one.log()
    assert map_version_in(etcd) == 1
    wait_for(lambda: replication_objects(clean) == ("0", "0", "0"), timeout=10,
             what="no replication object left")
    assert b.sql("SELECT count(*) FROM users", dbname="app") == "0"
    assert states(etcd) == {}
    # the other instance's hold ended with the coordinator's record: the keys are a's again
    with other.connect(dbname="app") as c:
        c.execute("UPDATE users SET n = n + 1 WHERE user_id = %s", (moving[1],))
    assert shard_for(other, moving[1]) == "a"

    # killed after the switch: found done, and cleaned up by the process started again
    wait_for(lambda: len(etcd_keys(etcd, KEY + "/instances/")) == 2, timeout=15,
             what="both instances registered")
    move_id = start_move(one)
    assert wait_step(one, move_id, ("done", "failed"), timeout=60)["step"] == "done"
    assert list(states(etcd).values())[0].split(" by ")[0].endswith(" done")
    restart(one)
    adopted(one)
    row = wait_step(one, 1, "done", timeout=60)
    assert row["buckets"] == f"{MOVING[0]}-{MOVING[1]}" and row["to"] == "b", row
    assert map_version_in(etcd) == 2
    cleaned_up(one, 1, clean, moving)
    assert states(etcd) == {}


def test_stopped_instance_leaves_at_once(two, etcd):  # noqa: F811
    """An instance stopped cleanly revokes its registration before it exits, rather than
    leaving it to expire (up to 10 s, during which a move would wait for it and abort)."""
    one, other = two
    other.close_admin()
    other.expect_exit = True
    assert other.stop() == 0
    assert "registration in etcd revoked" in other.log()
    # gone as the process exited: an expiry would take 7 s at least (renewed every 3 s)
    assert len(etcd_keys(etcd, KEY + "/instances/")) == 1


@pytest.mark.timeout(120)
def test_refused_while_cut_off_from_etcd(pgmux, clean, etcd, tmp_path):  # noqa: F811
    """etcd_outage = refuse: once this pgmux's registration may have expired (a move begun then
    would not wait for it), the section's work is refused with 57P03, inside a transaction
    too; once etcd answers again, it registers, reads the map and serves."""
    a, b = clean
    one, _ = start_two(pgmux, clean, etcd, tmp_path, etcd_outage="refuse")
    uid = keys(a, 1, False)[0]
    load_users(one, [uid])
    c = one.connect(dbname="app")
    txn = one.connect(dbname="app", autocommit=False)
    txn.execute("SELECT n FROM users WHERE user_id = %s", (uid,))

    def refused(conn):
        try:
            conn.execute("SELECT n FROM users WHERE user_id = %s", (uid,))
            return None
        except psycopg.Error as e:
            return e

    etcd.stop()
    try:
        err = wait_for(lambda: refused(c), timeout=20, what="work refused without etcd")
        assert err.sqlstate == "57P03" and "etcd_outage = refuse" in str(err), err
        err = refused(txn)
        assert err is not None and err.sqlstate == "57P03", err
        txn.rollback()
    finally:
        etcd.start()
    wait_for(lambda: refused(c) is None, timeout=30, what="work served again")
    assert refused(txn) is None
