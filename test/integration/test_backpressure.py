"""Back-pressure on what pgmux writes itself: a client that sends without reading is stopped
(or refused) before pgmux's memory grows, whatever fills the queues: ReadyForQuery answered
without a server, named Binds rewritten for a server that stopped reading, admin replies,
prepared statements held for the client. Meanwhile other clients are served."""
import os
import socket
import struct
import time

import pytest

import rawpg
from conftest import Background, wait_for
from pgcluster import SANITIZED

# What one misbehaving client may add to pgmux's peak memory. A sanitizer build starts far
# larger and keeps freed memory in its quarantine, so it gets more room (see test_large.py).
HWM_GROWTH_LIMIT_KB = (64 if SANITIZED else 24) * 1024
HWM_LIMIT_KB = 40 * 1024

FLOOD = 64 * 1024 * 1024


@pytest.fixture(autouse=True)
def small_quarantine(monkeypatch):
    """These tests make pgmux allocate and free per message, millions of times: ASan's
    quarantine (256 MB) would hold the freed memory back and hide what is really kept. A smaller
    one still catches use after free of recent blocks."""
    if SANITIZED:
        prev = os.environ.get("ASAN_OPTIONS", "")
        monkeypatch.setenv("ASAN_OPTIONS", (prev + ":" if prev else "") +
                           "quarantine_size_mb=16:thread_local_quarantine_size_kb=256")


def push(raw, chunk, total, stall=2.0, mux=None):
    """Send chunk (whole messages) again and again up to total bytes, without reading. Stops
    early once pgmux took nothing for stall seconds (it stopped reading) or closed, or when
    mux is given and its peak memory grew past the limit (no point in going on). Returns
    (bytes sent, whether it stalled)."""
    sock = raw.sock
    sock.settimeout(stall)
    view = memoryview(chunk * max(1, (256 * 1024) // len(chunk)))
    sent = off = 0
    start = mux.status("VmRSS") if mux else 0
    checked = 0
    while sent < total:
        if mux and sent - checked >= 1024 * 1024:
            checked = sent
            if mux.status("VmHWM") - start > HWM_GROWTH_LIMIT_KB:
                return sent, False
        try:
            n = sock.send(view[off:])
        except socket.timeout:
            return sent, True
        except (BrokenPipeError, ConnectionResetError):
            return sent, False
        sent += n
        off = (off + n) % len(view)
    return sent, False


def check_memory(mux, before, what):
    hwm = mux.status("VmHWM")
    print(f"{what}: VmHWM {hwm} kB, growth {hwm - before} kB")
    assert hwm - before < HWM_GROWTH_LIMIT_KB, f"pgmux grew by {hwm - before} kB: {what}"
    if not SANITIZED:
        assert hwm < HWM_LIMIT_KB, f"pgmux peaked at {hwm} kB: {what}"


def assert_others_served(mux):
    start = time.monotonic()
    with mux.connect() as other:
        assert other.execute("select 'still served'").fetchone()[0] == "still served"
    took = time.monotonic() - start
    print(f"another client's query took {took * 1000:.0f} ms")
    assert took < 1.0


def named_parse(name, sql):
    return rawpg.message(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + b"\0\0")


def named_bind(name):
    # unnamed portal, no parameter formats, no parameters, no result formats
    return rawpg.message(b"B", b"\0" + name.encode() + b"\0" + b"\0\0" + b"\0\0" + b"\0\0")


@pytest.mark.timeout(120)
def test_syncs_without_server_are_throttled(pgmux):
    mux = pgmux({"pool_mode": "transaction"})
    c = mux.raw(timeout=10, rcvbuf=64 * 1024).login("postgres", "app")
    before = mux.status("VmRSS")
    sent, stalled = push(c, rawpg.message(b"S"), FLOOD, mux=mux)
    print(f"sent {sent} bytes of Sync before pgmux stopped reading")
    check_memory(mux, before, "64 MiB of Sync, no answer read")
    assert stalled, "pgmux read 64 MiB of Sync from a client that never read an answer"
    assert_others_served(mux)
    # the answers are all there once the client reads
    got = 0
    while got < 1000:
        mtype, _ = c.read_msg()
        assert mtype == b"Z"
        got += 1


@pytest.mark.timeout(120)
def test_named_binds_to_a_server_that_stopped_reading(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    c = mux.raw(timeout=10, rcvbuf=64 * 1024).login("postgres", "app")
    c.send(named_parse("s1", "select 1") + rawpg.message(b"S"))
    assert c.read_msg()[0] == b"1" and c.read_msg()[0] == b"Z"
    before = mux.status("VmRSS")
    # the server runs this and reads nothing meanwhile; the client keeps its server
    c.send_msg(b"Q", b"select pg_sleep(60)\0")
    wait_for(lambda: direct.query("select 1 from pg_stat_activity where query = "
                                  "'select pg_sleep(60)' and state = 'active'"),
             what="the server to sleep")
    try:
        sent, stalled = push(c, named_bind("s1"), FLOOD, mux=mux)
        print(f"sent {sent} bytes of named Binds before pgmux stopped reading")
        check_memory(mux, before, "64 MiB of named Binds to a deaf server")
        assert stalled, "pgmux read 64 MiB of Binds meant for a server that stopped reading"
        assert_others_served(mux)
    finally:
        direct.query("select pg_terminate_backend(pid) from pg_stat_activity "
                     "where query = 'select pg_sleep(60)'")


def read_until_ready(c, counts, errors):
    """Read one reply up to its ReadyForQuery; count message types, keep ErrorResponses."""
    while True:
        mtype, payload = c.read_msg()
        counts[mtype] = counts.get(mtype, 0) + 1
        if mtype == b"E":
            errors.append(rawpg.PgError(rawpg.parse_fields(payload)))
        if mtype == b"Z":
            return


@pytest.mark.timeout(180)
def test_many_large_named_parses_stay_bounded(pgmux):
    mux = pgmux({"pool_mode": "transaction"})
    c = mux.raw(timeout=30).login("postgres", "app")
    before = mux.status("VmRSS")
    n, size = 10000, 32 * 1024

    def send_all():
        for i in range(n):
            sql = f"select '{'x' * size}' as v{i}"
            c.send(named_parse(f"s{i}", sql) + rawpg.message(b"S"))

    sender = Background(send_all)
    counts, errors = {}, []
    for _ in range(n):
        read_until_ready(c, counts, errors)
    sender.result()
    print(f"{counts.get(b'1', 0)} Parses accepted, {len(errors)} refused")
    check_memory(mux, before, f"{n} named Parses of {size} bytes")
    assert 0 < counts.get(b"1", 0) <= 8 * 1024 * 1024 // size
    assert len(errors) == n - counts[b"1"]
    assert {(e.sqlstate, "max_client_prepared_bytes" in e.message) for e in errors} == \
        {("53400", True)}, errors[0].message
    # the statements the client holds still work, and it goes on
    c.send(named_bind("s0") + rawpg.message(b"E", b"\0\0\0\0\0") + rawpg.message(b"S"))
    counts, errors = {}, []
    read_until_ready(c, counts, errors)
    assert not errors and counts.get(b"D") == 1
    assert_others_served(mux)


def test_prepared_statement_limits_name_the_setting(pgmux):
    mux = pgmux({"pool_mode": "transaction", "max_client_prepared_statements": 3,
                 "max_total_prepared_statements": 5})
    a = mux.raw().login("postgres", "app")

    def parse(c, name, sql):
        counts, errors = {}, []
        c.send(named_parse(name, sql) + rawpg.message(b"S"))
        read_until_ready(c, counts, errors)
        return errors[0] if errors else None

    for i in range(3):
        assert parse(a, f"s{i}", f"select {i}") is None
    err = parse(a, "s3", "select 3")
    assert err.sqlstate == "53400" and "max_client_prepared_statements (3)" in err.message
    # a name in use is refused as such (as on PostgreSQL), not as over a limit
    assert parse(a, "s0", "select 0").sqlstate == "42P05"
    # a closed one makes room
    a.send(rawpg.message(b"C", b"Ss1\0") + rawpg.message(b"S"))
    read_until_ready(a, {}, [])
    assert parse(a, "s3", "select 3") is None
    # distinct statements for all clients together: 3 held by a, 2 more fit
    b = mux.raw().login("postgres", "app")
    assert parse(b, "t0", "select 10") is None
    assert parse(b, "t1", "select 11") is None
    err = parse(b, "t2", "select 12")
    assert err.sqlstate == "53400" and "max_total_prepared_statements (5)" in err.message
    # one already shared costs nothing
    assert parse(b, "t2", "select 0") is None


@pytest.mark.timeout(120)
def test_stats_user_pipelining_show_clients_is_throttled(pgmux):
    mux = pgmux({"pool_mode": "transaction", "stats_users": "alice"})
    idle = [mux.connect() for _ in range(20)]
    admin = mux.raw(timeout=10, rcvbuf=64 * 1024).login("alice", mux.admin_db)
    before = mux.status("VmRSS")
    query = rawpg.message(b"Q", b"SHOW CLIENTS\0")
    sent, stalled = push(admin, query, 64 * 1024 * 1024, mux=mux)
    print(f"sent {sent} bytes of SHOW CLIENTS ({sent // len(query)} queries) before pgmux "
          "stopped reading")
    check_memory(mux, before, "SHOW CLIENTS pipelined without reading")
    assert stalled, "pgmux answered SHOW CLIENTS without end to a client that read nothing"
    assert_others_served(mux)
    # the console still answers its own client once it reads
    mtype, _ = admin.read_msg()
    assert mtype == b"T"
    assert len(idle) == 20


@pytest.mark.timeout(120)
def test_encryption_requests_before_login_are_throttled(pgmux):
    """Each GSSENCRequest gets a one-byte 'N' and the startup phase starts over: a client that
    never reads is stopped (or refused), not answered without end."""
    mux = pgmux({"pool_mode": "transaction"})
    c = mux.raw(timeout=10, rcvbuf=64 * 1024)
    before = mux.status("VmRSS")
    gssenc = struct.pack("!ii", 8, 80877104)
    sent, stalled = push(c, gssenc, FLOOD, mux=mux)
    print(f"sent {sent} bytes of GSSENCRequest before pgmux stopped reading or closed")
    check_memory(mux, before, "64 MiB of GSSENCRequest, no answer read")
    assert stalled or sent < FLOOD, "pgmux read 64 MiB of GSSENCRequest from a silent client"
    assert_others_served(mux)
