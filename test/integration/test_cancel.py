"""Query cancellation through pgmux reaches the right server, and only when it should."""
import os
import signal
import subprocess
import time

import psycopg
import pytest

import rawpg
from conftest import PG_BIN, Background, assert_error, wait_for


def running(direct, needle, n=1):
    return len([r for r in direct.backends("app", "active") if needle in r[2]]) >= n


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_cancel_running_query(pgmux, direct, mode):
    mux = pgmux({"pool_mode": mode, "default_pool_size": 2})
    a, b = mux.connect(), mux.connect()
    slow = Background(lambda: a.execute("select pg_sleep(30)").fetchone())
    other = Background(lambda: b.execute("select pg_sleep(1.5), 'b'").fetchone()[1])
    wait_for(lambda: running(direct, "pg_sleep(30)") and running(direct, "pg_sleep(1.5)"), 5,
             what="both queries running on PostgreSQL")
    t0 = time.monotonic()
    a.cancel()
    err = slow.exception(5)
    assert err is not None, "pg_sleep(30) was not cancelled"
    assert slow.finished - t0 < 1.0, f"cancel took {slow.finished - t0:.2f}s"
    assert isinstance(err, psycopg.errors.QueryCanceled), repr(err)
    assert_error(err, "canceled")
    # the other client's query on the same pool ran to its end
    assert other.result(5) == "b"
    assert other.elapsed() >= 1.4
    # and the cancelled client goes on
    assert a.execute("select 'again'").fetchone()[0] == "again"


def test_cancel_idle_client_does_nothing(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = mux.connect(), mux.connect()
    # a used the only server last, then released it; b is now running on that same server
    pid = a.execute("select pg_backend_pid()").fetchone()[0]
    job = Background(lambda: b.execute("select pg_sleep(1), pg_backend_pid()").fetchone()[1])
    wait_for(lambda: running(direct, "pg_sleep(1)"), 3, what="b's query to run")
    a.cancel()
    # a request with keys nobody owns must not cancel anything either
    rawpg.cancel_request("127.0.0.1", mux.port, 12345, 67890)
    assert job.result(5) == pid, "b ran on the server a had used"
    assert job.elapsed() >= 0.9, "b's query was cut short by a's cancel"
    # the idle client's cancel is not kept for later either
    assert a.execute("select pg_sleep(0.3), 'a'").fetchone()[1] == "a"
    assert b.execute("select 'b'").fetchone()[0] == "b"


def test_cancel_with_psql_sigint(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction"})
    p = subprocess.Popen([os.path.join(PG_BIN, "psql"), "-X", "-d", mux.dsn("app"), "-c",
                          "select pg_sleep(30)"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: running(direct, "pg_sleep(30)"), 5, what="psql's query to run")
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=5)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "canceling statement due to user request" in err, err
    assert took < 1.0, f"psql's cancel took {took:.2f}s"
    wait_for(lambda: not running(direct, "pg_sleep(30)"), 2, what="pg_sleep to stop")


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_cancel_then_close_leaves_nothing_to_the_next_client(pgmux, mode):
    # The server a cancel was sent for is reset like any other before the next client has it.
    mux = pgmux({"pool_mode": mode, "default_pool_size": 1})
    for i in range(50):
        a = mux.connect(autocommit=(mode == "session"))
        try:
            if mode == "session":
                a.execute("create temp table leaked_from_a (x int)")
            else:
                a.execute("select wat")  # a's transaction is now aborted
        except psycopg.Error:
            pass
        a.cancel()
        a.close()
        with mux.connect() as b:
            assert b.execute("select 1").fetchone()[0] == 1, f"iteration {i}"
            leaked = b.execute("select to_regclass('pg_temp.leaked_from_a')").fetchone()[0]
            assert leaked is None, f"iteration {i}: a's temp table is visible to b"


def test_late_cancel_never_hits_the_next_client(pgmux):
    # a's cancel is on its way while a gives its server up and b takes it: until PostgreSQL has
    # closed the cancel connection, b must not run there.
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    b = mux.connect()
    for i in range(30):
        a = mux.connect(autocommit=False)
        a.execute("select 1")  # a holds the only server, idle in transaction
        job = Background(lambda: b.execute("select pg_sleep(0.2), 'b'").fetchone()[1])
        a.cancel()
        a.rollback()
        a.close()
        err = job.exception(10)
        assert err is None, f"iteration {i}: a's cancel hit b's query: {err}"
        assert job.result(1) == "b"
