"""Moving buckets between two shards while clients write (MOVE BUCKETS, SHOW MOVES).

Two PostgreSQL servers with wal_level = logical hold the sharded tables. Buckets 0-1023 live on
shard a in the first map; a move sends them to shard b through a publication with the bucket
row filter and a subscription, holds new units of work on those buckets only at the cutover,
switches the map file to its next version and lets the held work go on to b.
"""
import os
import subprocess
import sys
import tempfile
import threading
import time

import psycopg
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from pgcluster import PGMUX_BIN, PgCluster  # noqa: E402
from conftest import wait_for  # noqa: E402

BUCKETS = 16384
MOVING = (0, 1023)           # shard a holds 0-8191 in the first map
SCHEMA = """
CREATE TABLE users (user_id bigint PRIMARY KEY, name text, n int NOT NULL DEFAULT 0);
CREATE TABLE events (id bigint PRIMARY KEY, user_id bigint NOT NULL, seq int NOT NULL);
ALTER TABLE events REPLICA IDENTITY FULL;
CREATE TABLE notes (id bigserial PRIMARY KEY, user_id bigint NOT NULL);
ALTER TABLE notes REPLICA IDENTITY FULL;
"""
BUCKET = f"hashint8extended(user_id, 0) & {BUCKETS - 1}"
IN_MOVE = f"({BUCKET}) BETWEEN {MOVING[0]} AND {MOVING[1]}"


@pytest.fixture(scope="module")
def servers():
    servers = [PgCluster(settings=["wal_level = logical"]).init().start() for _ in range(2)]
    for s in servers:
        s.sql("CREATE DATABASE app")
        s.sql(SCHEMA, dbname="app")
    yield servers
    for s in servers:
        s.destroy()


@pytest.fixture
def clean(servers):
    """Both servers empty, with no replication object a failed test may have left."""
    for s in servers:
        for sub in s.sql("SELECT subname FROM pg_subscription", dbname="app").split():
            s.sql(f"ALTER SUBSCRIPTION {sub} DISABLE", dbname="app")
            s.sql(f"ALTER SUBSCRIPTION {sub} SET (slot_name = NONE)", dbname="app")
            s.sql(f"DROP SUBSCRIPTION {sub}", dbname="app")
    for s in servers:
        for pub in s.sql("SELECT pubname FROM pg_publication", dbname="app").split():
            s.sql(f"DROP PUBLICATION {pub}", dbname="app")
        # a slot stays active until its walsender notices the subscriber left
        wait_for(lambda: s.sql("SELECT count(*) FROM pg_replication_slots WHERE active") == "0",
                 timeout=10, what="replication slots released")
        s.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")
        s.sql("TRUNCATE users, events, notes", dbname="app")
    return servers


def bucket_of(server, key):
    return int(server.sql(f"SELECT hashint8extended({key}::int8, 0) & {BUCKETS - 1}"))


def keys(server, n, moving):
    """n user ids whose bucket is (moving) or is not (not moving) in the moving range, on a."""
    cond = (f"b BETWEEN {MOVING[0]} AND {MOVING[1]}" if moving
            else f"b BETWEEN {MOVING[1] + 1} AND 8191")
    out = server.sql(f"SELECT k FROM (SELECT k, hashint8extended(k, 0) & {BUCKETS - 1} AS b "
                     f"FROM generate_series(1, 100000) k) s WHERE {cond} ORDER BY k LIMIT {n}")
    return [int(k) for k in out.split()]


@pytest.fixture
def sharded(pgmux, clean, tmp_path):
    return start_sharded(pgmux, clean, tmp_path)


def start_sharded(pgmux, clean, tmp_path, **section):
    """pgmux over shards a and b with a new map file; section: more [shards.users] keys."""
    path = str(tmp_path / "users.map")
    subprocess.run([PGMUX_BIN, "--shard-map", "create", "--buckets", str(BUCKETS), "a", "b",
                    "-o", path], check=True, capture_output=True)
    lines = []
    for name, s in zip(("one", "two"), clean):
        lines += ["", f"[cluster.{name}]", f"hosts = 127.0.0.1:{s.port}",
                  "health_check_interval = 0.2"]
    lines += ["", "[shards.users]", "key = user_id", f"map = {path}",
              "shard.a = cluster=one", "shard.b = cluster=two"]
    lines += [f"{k} = {v}" for k, v in section.items()]
    # a short path: a unix socket's must fit in 108 bytes
    takeover = os.path.join(tempfile.mkdtemp(prefix="pgmux-mv-"), "takeover")
    mux = pgmux(settings={"takeover_socket": takeover},
                databases={"app": "shards=users dbname=app"},
                extra_sections="\n".join(lines) + "\n")
    mux.map_path = path
    return mux


def map_version(mux):
    with open(mux.map_path) as f:
        return int(next(line.split()[1] for line in f if line.startswith("version ")))


def move_row(mux, move_id):
    return next(r for r in mux.admin("SHOW MOVES") if r["id"] == str(move_id))


def wait_step(mux, move_id, steps, timeout=60):
    steps = (steps,) if isinstance(steps, str) else steps
    return wait_for(lambda: (lambda r: r if r["step"] in steps else None)(move_row(mux, move_id)),
                    timeout=timeout, interval=0.05, what=f"move {move_id} to reach {steps}")


def assert_moved(a, b, writers, moving):
    """After a move from a to b under writers (the first two on moving keys, the others on
    keys that stay): every acknowledged write is on b once, the others' on a only, a's copy of
    the moving buckets stopped at the switch, and per bucket the users are the same rows.
    Returns the acknowledged writes of moving keys and a's rows of them."""
    moved_acked = {(eid, uid) for w in writers[:2] for eid, uid in w.acked}
    stayed_acked = {(eid, uid) for w in writers[2:] for eid, uid in w.acked}
    assert rows(b, f"SELECT id, user_id FROM events WHERE {IN_MOVE}") == moved_acked
    assert rows(b, f"SELECT id, user_id FROM events WHERE NOT ({IN_MOVE})") == set()
    assert rows(a, f"SELECT id, user_id FROM events WHERE NOT ({IN_MOVE})") == stayed_acked
    on_a = rows(a, f"SELECT id, user_id FROM events WHERE {IN_MOVE}")
    assert on_a <= moved_acked and len(on_a) < len(moved_acked)
    bumps = {}
    for _, uid in moved_acked:
        bumps[uid] = bumps.get(uid, 0) + 1
    assert rows(b, f"SELECT user_id, n FROM users WHERE {IN_MOVE}") == \
        {(uid, bumps.get(uid, 0)) for uid in moving}
    assert per_bucket(a, "users", "user_id") == per_bucket(b, "users", "user_id")
    return moved_acked, on_a


def start_move(mux, buckets=f"{MOVING[0]}-{MOVING[1]}", to="b"):
    # a move needs both primaries known, and a shard restarted by the test before (or the
    # fixture) may not have been confirmed again by the health checks yet
    wait_for(lambda: all(r["primary"] for r in mux.admin("SHOW SHARDS")), timeout=10,
             what="every shard's primary")
    mux.admin(f"MOVE BUCKETS users {buckets} TO {to}")
    notice = mux.admin_notices[-1]
    assert notice.startswith("move "), notice
    return int(notice.split()[1])


def replication_objects(servers):
    a, b = servers
    return (a.sql("SELECT count(*) FROM pg_publication", dbname="app"),
            a.sql("SELECT count(*) FROM pg_replication_slots"),
            b.sql("SELECT count(*) FROM pg_subscription", dbname="app"))


def per_bucket(server, table, column):
    """{bucket: (rows, sum of md5 of column)} for the moving buckets."""
    out = server.sql(f"SELECT {BUCKET}, count(*), sum(('x' || substr(md5({column}::text), 1, 8))"
                     f"::bit(32)::bigint) FROM {table} WHERE {IN_MOVE} GROUP BY 1", dbname="app")
    return {int(b): (int(n), int(s)) for b, n, s in (r.split("|") for r in out.split())}


class Writer(threading.Thread):
    """Numbered writes through pgmux: each a transaction that bumps users.n and adds an event.

    acked holds the events whose COMMIT succeeded; errors every error a client saw; longest the
    slowest transaction (a held unit pauses, it does not fail)."""

    def __init__(self, mux, wid, user_ids):
        super().__init__(daemon=True)
        self.mux, self.wid, self.user_ids = mux, wid, user_ids
        self.acked, self.errors, self.longest, self.times = [], [], 0.0, []
        self.stop = threading.Event()

    def run(self):
        seq = 0
        with self.mux.connect(dbname="app") as c:
            while not self.stop.is_set():
                seq += 1
                uid = self.user_ids[seq % len(self.user_ids)]
                eid = self.wid * 1_000_000 + seq
                t0 = time.monotonic()
                try:
                    with c.transaction():
                        c.execute("UPDATE users SET n = n + 1 WHERE user_id = %s", (uid,))
                        c.execute("INSERT INTO events (id, user_id, seq) VALUES (%s, %s, %s)",
                                  (eid, uid, seq))
                except psycopg.Error as e:
                    self.errors.append(f"{uid}: {e.sqlstate} {e}")
                    continue
                self.times.append(time.monotonic() - t0)
                self.longest = max(self.longest, self.times[-1])
                self.acked.append((eid, uid))


def stop_after_more(writers, more=10, timeout=30, what="writes after the switch"):
    """Wait until each writer has `more` acknowledged writes beyond those it has now, then stop
    them all: their acknowledged writes, {(event id, user id)}."""
    counts = [len(w.acked) for w in writers]
    wait_for(lambda: all(len(w.acked) > n + more for w, n in zip(writers, counts)),
             timeout=timeout, what=what)
    for w in writers:
        w.stop.set()
    for w in writers:
        w.join(10)
    return {(eid, uid) for w in writers for eid, uid in w.acked}


def load_users(mux, user_ids):
    with mux.connect(dbname="app") as c:
        for uid in user_ids:
            c.execute("INSERT INTO users (user_id, name) VALUES (%s, %s)", (uid, f"u{uid}"))


def rows(server, sql):
    return {tuple(int(x) for x in r.split("|")) for r in server.sql(sql, dbname="app").split()}


@pytest.mark.timeout(120)
def test_move_under_writes(sharded, clean):
    a, b = clean
    mux = sharded
    moving, staying = keys(a, 40, True), keys(a, 40, False)
    assert all(MOVING[0] <= bucket_of(a, k) <= MOVING[1] for k in moving)
    load_users(mux, moving + staying)
    writers = [Writer(mux, 1, moving[:20]), Writer(mux, 2, moving[20:]),
               Writer(mux, 3, staying[:20]), Writer(mux, 4, staying[20:])]
    for w in writers:
        w.start()
    wait_for(lambda: all(len(w.acked) > 20 for w in writers), timeout=20, what="writes")

    # each shard's notes take ids of their own range: nothing to warn about
    a.sql("ALTER SEQUENCE notes_id_seq MAXVALUE 999999999", dbname="app")
    b.sql("ALTER SEQUENCE notes_id_seq MINVALUE 1000000000 START 1000000000 RESTART", dbname="app")
    try:
        move_id = start_move(mux)
        row = wait_step(mux, move_id, ("done", "failed"))
    finally:
        a.sql("ALTER SEQUENCE notes_id_seq NO MAXVALUE", dbname="app")
        b.sql("ALTER SEQUENCE notes_id_seq MINVALUE 1 START 1 RESTART", dbname="app")
    assert row["step"] == "done", row
    assert row["error"] is None and row["warning"] is None, row
    # writes go on to the new shard after the switch
    counts = [len(w.acked) for w in writers]
    wait_for(lambda: all(len(w.acked) > n + 10 for w, n in zip(writers, counts)), timeout=20,
             what="writes after the switch")
    for w in writers:
        w.stop.set()
    for w in writers:
        w.join(10)
    # no client saw an error: the moving keys only paused
    assert [e for w in writers for e in w.errors] == []
    for label, ws in (("moving", writers[:2]), ("other", writers[2:])):
        t = sorted(x * 1000 for w in ws for x in w.times)
        print(f"{label} keys: {len(t)} transactions, ms p50 {t[len(t) // 2]:.1f} "
              f"p99 {t[len(t) * 99 // 100]:.1f} max {t[-1]:.1f}")
    assert map_version(mux) == 2
    assert mux.admin("SHOW SHARD FOR %d" % moving[0])[0]["shard"] == "b"

    # every acknowledged write of a moving key is on b, once; none of a key that stayed
    moved_acked, on_a = assert_moved(a, b, writers, moving)
    # reads of a moving key come from b now
    with mux.connect(dbname="app") as c:
        port, = c.execute("SELECT inet_server_port() FROM users WHERE user_id = %s",
                          (moving[0],)).fetchone()
        assert port == b.port

    # clean-up: a forgets the moved rows, replication objects are gone, b keeps its rows
    mux.admin(f"MOVE CLEANUP {move_id}")
    row = wait_step(mux, move_id, ("cleaned", "done"))
    assert row["step"] == "cleaned" and row["error"] is None, row
    assert int(row["rows"]) == len(on_a) + len(moving)
    assert a.sql(f"SELECT count(*) FROM users WHERE {IN_MOVE}", dbname="app") == "0"
    assert a.sql(f"SELECT count(*) FROM events WHERE {IN_MOVE}", dbname="app") == "0"
    assert rows(b, f"SELECT id, user_id FROM events WHERE {IN_MOVE}") == moved_acked
    assert replication_objects(clean) == ("0", "0", "0")


def test_move_refused(sharded, clean):
    mux = sharded
    a, b = clean
    # b already holds a row of a moving bucket: the check refuses, nothing is left behind
    uid = keys(a, 1, True)[0]
    b.sql(f"INSERT INTO users (user_id, name) VALUES ({uid}, 'stray')", dbname="app")
    move_id = start_move(mux)
    row = wait_step(mux, move_id, "failed", timeout=20)
    assert "already holds 1 rows" in row["error"], row
    # both shards' notes.id come from sequences starting at 1: said, not refused
    assert "public.notes_id_seq may give the same values" in row["warning"], row
    assert map_version(mux) == 1
    assert replication_objects(clean) == ("0", "0", "0")
    # requests that cannot be a move are refused at once
    for bad, what in (("8000-9000", "several shards"), ("9000", "on shard b already"),
                      ("5-1", "ends before it starts"), ("0-99999", "beyond")):
        with pytest.raises(Exception) as e:
            start_move(mux, buckets=bad)
        assert what in str(e.value), (bad, e.value)
    with pytest.raises(Exception, match="not in"):
        start_move(mux, to="zz")
    # a key the map overrides keeps its bucket out of moves: its rows go by the override
    subprocess.run([PGMUX_BIN, "--shard-map", "override", mux.map_path, str(uid), "a", "-o",
                    mux.map_path], check=True, capture_output=True)
    mux.admin("RELOAD")
    with pytest.raises(Exception, match=f"holds key {uid}, which the map overrides"):
        start_move(mux)
    # another bucket may go
    other = next(bucket_of(a, k) for k in keys(a, 5, True) if bucket_of(a, k) != bucket_of(a, uid))
    move_id = start_move(mux, buckets=str(other))
    mux.admin(f"MOVE ABORT {move_id}")
    assert wait_step(mux, move_id, "failed")["error"].endswith("aborted by MOVE ABORT")


def move_in_hold(mux, a, n=10):
    """n users of moving buckets, a transaction left open on the first (held_open), and a
    move of their buckets waiting in its hold for that transaction: (users, txn, move id)."""
    moving = keys(a, n, True)
    load_users(mux, moving)
    open_txn = held_open(mux, moving[0])
    move_id = start_move(mux)
    wait_step(mux, move_id, "hold", timeout=30)
    return moving, open_txn, move_id


def held_open(mux, uid):
    """A transaction on uid left open: the move's hold waits for it. It only reads (it has no
    transaction id), so the replication slot's creation on a need not wait for it."""
    c = mux.connect(dbname="app", autocommit=False)
    c.execute("SELECT n FROM users WHERE user_id = %s", (uid,))
    return c


@pytest.mark.timeout(90)
def test_abort_leaves_map_and_data(sharded, clean):
    mux = sharded
    a, b = clean
    moving, staying = keys(a, 10, True), keys(a, 10, False)
    load_users(mux, moving + staying)
    before = (a.sql("SELECT * FROM users ORDER BY 1", dbname="app"),
              b.sql("SELECT * FROM users ORDER BY 1", dbname="app"))
    open_txn = held_open(mux, moving[0])
    move_id = start_move(mux)
    row = wait_step(mux, move_id, "hold", timeout=30)
    assert int(row["rows"]) == len(moving)         # copied to b
    # a key of another bucket is not held while the move waits for the open transaction
    with mux.connect(dbname="app") as c:
        t0 = time.monotonic()
        c.execute("UPDATE users SET name = name WHERE user_id = %s", (staying[0],))
        assert time.monotonic() - t0 < 1.0
    # a unit on a moving key waits for the switch (no error, no answer yet)...
    done, errors = threading.Event(), []

    def write_moving():
        try:
            with mux.connect(dbname="app") as c:
                c.execute("UPDATE users SET n = n + 1 WHERE user_id = %s", (moving[1],))
        except psycopg.Error as e:
            errors.append(e)
        done.set()

    threading.Thread(target=write_moving, daemon=True).start()
    wait_for(lambda: move_row(mux, move_id)["held"] == "1", timeout=10, what="a held unit")
    assert not done.is_set()
    mux.admin(f"MOVE ABORT {move_id}")
    row = wait_step(mux, move_id, "failed", timeout=30)
    assert "aborted" in row["error"], row
    # ...and, the move aborted, runs where its key has always been
    assert done.wait(10) and errors == []
    assert a.sql(f"SELECT n FROM users WHERE user_id = {moving[1]}", dbname="app") == "1"
    a.sql(f"UPDATE users SET n = 0 WHERE user_id = {moving[1]}", dbname="app")
    open_txn.rollback()
    open_txn.close()
    assert map_version(mux) == 1
    assert replication_objects(clean) == ("0", "0", "0")
    assert (a.sql("SELECT * FROM users ORDER BY 1", dbname="app"),
            b.sql("SELECT * FROM users ORDER BY 1", dbname="app")) == before
    # the moving keys are served by a, as before
    with mux.connect(dbname="app") as c:
        port, = c.execute("SELECT inet_server_port() FROM users WHERE user_id = %s",
                          (moving[1],)).fetchone()
        assert port == a.port


@pytest.mark.timeout(120)
def test_target_lost_before_switch(sharded, clean):
    mux = sharded
    a, b = clean
    moving, open_txn, move_id = move_in_hold(mux, a)
    b.stop()
    try:
        mux.admin(f"MOVE ABORT {move_id}")
        row = wait_step(mux, move_id, "failed", timeout=60)
        assert "rollback" in row["error"], row   # b could not be reached to drop its part
        open_txn.commit()
        open_txn.close()
        assert map_version(mux) == 1
        assert a.sql("SELECT count(*) FROM pg_publication", dbname="app") == "0"
    finally:
        b.start()
    # run the rollback again once b is back: its subscription and copied rows go
    mux.admin(f"MOVE CLEANUP {move_id}")
    row = wait_step(mux, move_id, "failed", timeout=60)
    wait_for(lambda: b.sql("SELECT count(*) FROM pg_subscription", dbname="app") == "0",
             timeout=10, what="b's subscription dropped")
    assert b.sql("SELECT count(*) FROM users", dbname="app") == "0"
    assert a.sql(f"SELECT count(*) FROM users WHERE {IN_MOVE}", dbname="app") == str(len(moving))
    assert replication_objects(clean) == ("0", "0", "0")


def restart(mux):
    """pgmux killed (no chance to clean anything up) and started again with the same files."""
    mux.close_admin()
    mux.stop(sig=9)
    mux.start()


@pytest.mark.timeout(120)
def test_restart_resumes_from_state_file(sharded, clean):
    mux = sharded
    a, b = clean
    moving = keys(a, 10, True)
    load_users(mux, moving)
    # killed during the hold: the move is found at start and rolled back, the map unchanged
    open_txn = held_open(mux, moving[0])
    move_id = start_move(mux)
    wait_step(mux, move_id, "hold", timeout=30)
    with open(mux.map_path + ".moves") as f:
        assert f.read().split()[-1] == "hold"
    restart(mux)
    open_txn.close()
    row = wait_step(mux, 1, "failed", timeout=30)
    assert "pgmux restarted during step hold" in row["error"], row
    assert map_version(mux) == 1
    assert replication_objects(clean) == ("0", "0", "0")
    assert b.sql("SELECT count(*) FROM users", dbname="app") == "0"
    assert not os.path.exists(mux.map_path + ".moves")

    # killed after the switch: found done, and its clean-up reads the tables again
    move_id = start_move(mux)
    assert wait_step(mux, move_id, ("done", "failed"))["step"] == "done"
    restart(mux)
    row = wait_step(mux, 1, "done", timeout=10)
    assert row["buckets"] == f"{MOVING[0]}-{MOVING[1]}" and row["to"] == "b", row
    assert map_version(mux) == 2
    wait_for(lambda: all(r["primary"] for r in mux.admin("SHOW SHARDS")), timeout=10,
             what="primaries known")
    cleaned_up(mux, 1, clean, moving)
    assert not os.path.exists(mux.map_path + ".moves")


def cleaned_up(mux, move_id, servers, moving):
    """MOVE CLEANUP of a done move of the users of moving (no other row): the rows gone from
    a, kept on b, and no replication object left."""
    a, b = servers
    mux.admin(f"MOVE CLEANUP {move_id}")
    row = wait_step(mux, move_id, ("cleaned", "done"), timeout=60)
    assert row["step"] == "cleaned", row
    assert int(row["rows"]) == len(moving)
    assert a.sql("SELECT count(*) FROM users", dbname="app") == "0"
    assert b.sql("SELECT count(*) FROM users", dbname="app") == str(len(moving))
    assert replication_objects(servers) == ("0", "0", "0")


@pytest.mark.timeout(120)
def test_hold_timeout_aborts_the_move_not_the_clients(sharded, clean):
    mux = sharded
    a, b = clean
    moving, staying = keys(a, 10, True), keys(a, 10, False)
    load_users(mux, moving + staying)
    first = held_open(mux, moving[0])      # keeps the hold waiting for running units
    move_id = start_move(mux)
    wait_step(mux, move_id, "hold", timeout=30)
    # a transaction on a key that stays, begun during the hold: not waited for
    other = mux.connect(dbname="app", autocommit=False)
    other.execute("UPDATE users SET n = n + 1 WHERE user_id = %s", (staying[0],))
    b.stop()                               # b can no longer catch up: the hold will time out
    try:
        # WAL on a that b has not seen (else b, stopped, would have applied all there is)
        a.sql(f"UPDATE users SET name = name WHERE user_id = {staying[1]}", dbname="app")
        first.commit()                     # every unit the hold waited for has ended
        # the hold now waits for b; a moving key inside that transaction cannot be applied
        # to b any more: its transaction fails with 40001, to be run again
        wait_for(lambda: f"move {move_id}: no unit runs on the moving buckets" in mux.log(),
                 what="the hold to stop waiting for units")
        assert move_row(mux, move_id)["step"] == "hold"
        with pytest.raises(psycopg.errors.SerializationFailure):
            other.execute("UPDATE users SET n = n + 1 WHERE user_id = %s", (moving[1],))
        other.rollback()
        # a new unit on a moving key waits, and runs on a once the move gives up
        t0 = time.monotonic()
        with mux.connect(dbname="app") as c:
            c.execute("UPDATE users SET n = n + 1 WHERE user_id = %s", (moving[2],))
        waited = time.monotonic() - t0
        assert move_row(mux, move_id)["step"] in ("rollback", "failed")
        row = wait_step(mux, move_id, "failed", timeout=30)
        assert "the hold lasted more than move_hold_timeout (10 s)" in row["error"], row
        assert waited > 1, waited
        assert a.sql(f"SELECT n FROM users WHERE user_id = {moving[2]}", dbname="app") == "1"
        assert a.sql(f"SELECT n FROM users WHERE user_id = {staying[0]}", dbname="app") == "0"
        assert map_version(mux) == 1
    finally:
        b.start()
    mux.admin(f"MOVE CLEANUP {move_id}")
    wait_step(mux, move_id, "failed", timeout=30)
    wait_for(lambda: replication_objects(clean) == ("0", "0", "0"), timeout=10,
             what="replication objects dropped")
    assert b.sql("SELECT count(*) FROM users", dbname="app") == "0"


@pytest.mark.timeout(90)
def test_no_takeover_while_a_move_runs(sharded, clean):
    mux = sharded
    a, b = clean
    moving = keys(a, 5, True)
    load_users(mux, moving)
    open_txn = held_open(mux, moving[0])
    move_id = start_move(mux)
    wait_step(mux, move_id, "hold", timeout=30)
    # the hold and the switch cannot follow the sockets: the takeover is refused...
    new = subprocess.run([PGMUX_BIN, "--takeover", mux.config_path], capture_output=True,
                         text=True, timeout=30)
    assert new.returncode != 0
    assert "is moving buckets" in new.stderr + mux.log()
    # ...and the new process, which never held the sockets, left the move alone
    assert move_row(mux, move_id)["step"] == "hold"
    assert os.path.exists(mux.map_path + ".moves")
    open_txn.close()
    assert wait_step(mux, move_id, ("done", "failed"))["step"] == "done"


@pytest.mark.timeout(90)
def test_move_user(pgmux, clean, tmp_path):
    """move_user: the move's publication and subscription are made by that role, not by the
    health-check user (they stay from the copy until the clean-up)."""
    a, b = clean
    for s in clean:
        s.sql("DO $$BEGIN CREATE ROLE pgmux_mover SUPERUSER LOGIN; "
              "EXCEPTION WHEN duplicate_object THEN NULL; END$$")
    mux = start_sharded(pgmux, clean, tmp_path, move_user="pgmux_mover")
    moving = keys(a, 10, True)
    load_users(mux, moving)
    move_id = start_move(mux)
    assert wait_step(mux, move_id, ("done", "failed"), timeout=60)["step"] == "done"
    owners = (a.sql("SELECT pubowner::regrole FROM pg_publication", dbname="app"),
              b.sql("SELECT subowner::regrole FROM pg_subscription", dbname="app"))
    assert owners == ("pgmux_mover", "pgmux_mover"), owners
    mux.admin(f"MOVE CLEANUP {move_id}")
    assert wait_step(mux, move_id, ("cleaned", "done"), timeout=30)["step"] == "cleaned"


@pytest.mark.timeout(90)
def test_move_hold_timeout(pgmux, clean, tmp_path):
    """move_hold_timeout: a hold kept waiting by a running unit gives up after it, and the
    unit goes on, on the source."""
    a, b = clean
    mux = start_sharded(pgmux, clean, tmp_path, move_hold_timeout=1.5)
    moving = keys(a, 10, True)
    load_users(mux, moving)
    open_txn = held_open(mux, moving[0])
    move_id = start_move(mux)
    row = wait_step(mux, move_id, "failed", timeout=30)
    assert row["error"] == ("hold: the hold lasted more than move_hold_timeout (1.5 s): units "
                            "of work on the moving buckets still running"), row
    open_txn.execute("UPDATE users SET n = n + 1 WHERE user_id = %s", (moving[0],))
    open_txn.commit()
    assert a.sql(f"SELECT n FROM users WHERE user_id = {moving[0]}", dbname="app") == "1"
    assert map_version(mux) == 1
    wait_for(lambda: replication_objects(clean) == ("0", "0", "0"), timeout=10,
             what="replication objects dropped")
