"""Timeouts: idle_transaction_timeout, query_timeout, client_idle_timeout, and the server-side
ones (server_idle_timeout, server_lifetime) observed on PostgreSQL."""
import time

import rawpg
from conftest import assert_error, wait_for


def test_idle_transaction_timeout(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "idle_transaction_timeout": 1})
    direct.pg.sql("drop table if exists itt; create table itt (x int)", dbname="app")
    c = mux.raw(timeout=5).login("postgres", "app")
    c.query("begin")
    c.query("insert into itt values (1)")
    assert c.txn_status == b"T"
    assert len(direct.backends("app", "idle in transaction")) == 1
    t0 = time.monotonic()
    err = c.error_or_close(5)
    waited = time.monotonic() - t0
    assert isinstance(err, rawpg.PgError), f"expected an ErrorResponse, got {err!r}"
    assert_error(err, "idle_transaction_timeout")
    assert 0.8 <= waited <= 2.5, f"idle_transaction_timeout=1 fired after {waited:.2f}s"
    # the server side transaction is gone and its insert rolled back
    wait_for(lambda: not direct.backends("app", "idle in transaction"), 3,
             what="no server idle in transaction")
    assert direct.pg.sql("select count(*) from itt", dbname="app") == "0"
    # a transaction that keeps talking is not affected
    with mux.connect(autocommit=False) as conn:
        for _ in range(3):
            conn.execute("select pg_sleep(0.5)")
        conn.execute("insert into itt values (2)")
        conn.commit()
    assert direct.pg.sql("select count(*) from itt", dbname="app") == "1"


def test_query_timeout(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "query_timeout": 1})
    c = mux.raw(timeout=5).login("postgres", "app")
    c.send_msg(b"Q", b"select pg_sleep(10)\0")
    t0 = time.monotonic()
    err = c.error_or_close(5)
    waited = time.monotonic() - t0
    assert isinstance(err, rawpg.PgError), f"expected an ErrorResponse, got {err!r}"
    assert_error(err, "query_timeout")
    assert 0.8 <= waited <= 2.5, f"query_timeout=1 fired after {waited:.2f}s"
    # the query no longer runs on PostgreSQL
    wait_for(lambda: not [r for r in direct.backends("app", "active") if "pg_sleep" in r[2]],
             2, what="pg_sleep(10) to stop on the server")
    # short queries are fine
    with mux.connect() as conn:
        assert conn.execute("select pg_sleep(0.3), 7").fetchone()[1] == 7


def test_client_idle_timeout(pgmux):
    mux = pgmux({"client_idle_timeout": 1})
    c = mux.raw(timeout=5).login("postgres", "app")
    assert c.scalar("select 1") == "1"
    t0 = time.monotonic()
    assert c.is_closed(4), "an idle client must be disconnected after client_idle_timeout"
    waited = time.monotonic() - t0
    assert 0.8 <= waited <= 3.0, f"client_idle_timeout=1 closed the client after {waited:.2f}s"
    # a busy client is not idle
    with mux.connect() as conn:
        for _ in range(4):
            conn.execute("select pg_sleep(0.4)")


def test_server_idle_timeout(pgmux, direct):
    mux = pgmux({"server_idle_timeout": 1})
    with mux.connect() as conn:
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]
        assert [r[0] for r in direct.backends("app")] == [pid]
        wait_for(lambda: not direct.backends("app"), 4, interval=0.1,
                 what="the idle server connection to be closed")
        # the client did not notice
        assert conn.execute("select 1").fetchone()[0] == 1


def test_server_lifetime(pgmux):
    mux = pgmux({"server_lifetime": 1, "default_pool_size": 1})
    with mux.connect() as conn:
        first = conn.execute("select pg_backend_pid()").fetchone()[0]

        def replaced():
            return conn.execute("select pg_backend_pid()").fetchone()[0] != first
        wait_for(replaced, 4, interval=0.2, what="a server older than server_lifetime to go")
