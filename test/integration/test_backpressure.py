"""Back-pressure on what pgmux writes itself: a client that sends without reading is stopped
(or refused) before pgmux's memory grows, whatever fills the queues: ReadyForQuery answered
without a server, named Binds rewritten for a server that stopped reading, admin replies,
prepared statements held for the client. Meanwhile other clients are served."""
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


def push(raw, chunk, total, stall=2.0):
    """Send chunk (whole messages) again and again up to total bytes, without reading. Stops
    early once pgmux took nothing for stall seconds (it stopped reading) or closed. Returns
    (bytes sent, whether it stalled)."""
    sock = raw.sock
    sock.settimeout(stall)
    view = memoryview(chunk * max(1, (256 * 1024) // len(chunk)))
    sent = off = 0
    while sent < total:
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
    sent, stalled = push(c, rawpg.message(b"S"), FLOOD)
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
        sent, stalled = push(c, named_bind("s1"), FLOOD)
        print(f"sent {sent} bytes of named Binds before pgmux stopped reading")
        check_memory(mux, before, "64 MiB of named Binds to a deaf server")
        assert stalled, "pgmux read 64 MiB of Binds meant for a server that stopped reading"
        assert_others_served(mux)
    finally:
        direct.query("select pg_terminate_backend(pid) from pg_stat_activity "
                     "where query = 'select pg_sleep(60)'")
