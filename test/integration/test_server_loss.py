"""Servers that go away: pg_terminate_backend and a restart of PostgreSQL."""
import os
import signal
import time

import psycopg
import pytest

from conftest import Background, assert_error, wait_for


def test_terminate_busy_server(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    a, b = mux.connect(), mux.connect()
    assert b.execute("select 1").fetchone()[0] == 1
    job = Background(lambda: a.execute("select pg_sleep(5)").fetchone())
    pid = wait_for(lambda: next((r[0] for r in direct.backends("app", "active")
                                 if "pg_sleep(5)" in r[2]), None), 5, what="a's query")
    assert direct.scalar("select pg_terminate_backend(%s)", (pid,)) is True
    err = job.exception(3)
    assert isinstance(err, psycopg.Error), f"a's query did not fail: {err!r}"
    assert_error(err, "server_lost", lost_state_ok=True)
    # other clients are fine
    assert b.execute("select 'b'").fetchone()[0] == "b"
    # and a itself goes on, on another server
    assert not a.closed, "pgmux closed the client whose server died"
    new_pid = a.execute("select pg_backend_pid()").fetchone()[0]
    assert new_pid != pid


def test_terminated_backend_error_keeps_every_field(pgmux, direct):
    """In transaction mode a terminated backend reaches the client as ERROR (its session with
    pgmux goes on), with every field PostgreSQL sent but the severity."""
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    a = mux.connect()
    # In a transaction: a request that is the first of its unit could be replayed elsewhere.
    a.execute("begin")
    job = Background(lambda: a.execute("select pg_sleep(5)").fetchone())
    pid = wait_for(lambda: next((r[0] for r in direct.backends("app", "active")
                                 if "pg_sleep(5)" in r[2]), None), 5, what="a's query")
    assert direct.scalar("select pg_terminate_backend(%s)", (pid,)) is True
    err = job.exception(3)
    assert isinstance(err, psycopg.errors.AdminShutdown), repr(err)
    assert err.diag.severity == "ERROR" and err.diag.severity_nonlocalized == "ERROR"
    assert err.diag.message_primary == "terminating connection due to administrator command"
    # the fields a rewrite would lose: where PostgreSQL raised it
    assert err.diag.source_function, "the routine field was dropped"
    assert err.diag.source_file and err.diag.source_line
    assert a.execute("select 'a goes on'").fetchone()[0] == "a goes on"


def test_terminate_idle_server(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = mux.connect(), mux.connect()
    pid = a.execute("select pg_backend_pid()").fetchone()[0]
    assert direct.scalar("select pg_terminate_backend(%s)", (pid,)) is True
    wait_for(lambda: pid not in [r[0] for r in direct.backends("app")], 3,
             what="the server to exit")
    # nobody notices: the next queries run on a new server
    new_a = a.execute("select pg_backend_pid()").fetchone()[0]
    new_b = b.execute("select pg_backend_pid()").fetchone()[0]
    assert new_a != pid and new_b == new_a


@pytest.mark.timeout(90)
def test_postgres_restart(pgmux, pg_restore, direct):
    pg = pg_restore
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 3,
                 "server_login_retry": 0.5})
    clients = [mux.connect() for _ in range(3)]
    for c in clients:
        assert c.execute("select 1").fetchone()[0] == 1
    busy = mux.connect()
    job = Background(lambda: busy.execute("select pg_sleep(20)").fetchone())
    wait_for(lambda: [r for r in direct.backends("app", "active") if "pg_sleep(20)" in r[2]],
             5, what="the busy query")

    pg.restart()

    # the query that was running is lost, with an error
    assert isinstance(job.exception(10), psycopg.Error)
    clients.append(busy)
    errors = 0
    for i, c in enumerate(clients):
        for attempt in (1, 2):
            try:
                assert c.execute("select 'back'").fetchone()[0] == "back"
                break
            except psycopg.OperationalError:
                errors += 1
                assert attempt == 1, f"client {i} still fails after the restart"
                if c.closed:
                    c = mux.connect()
        # once back, it stays back
        assert c.execute("select 2").fetchone()[0] == 2
    assert errors <= len(clients)
    # new clients work too
    with mux.connect() as fresh:
        assert fresh.execute("select 3").fetchone()[0] == 3


def test_request_with_prepared_statements_is_replayed_unnoticed(pgmux, direct):
    """A backend terminated while idle says so (FATAL 57P01) before the request pgmux just
    sent it is answered. That request, with the named prepared statements pgmux rewrote or
    prepared for it, runs again on another server and the client never knows. pgmux is stopped
    (SIGSTOP) while the backend is terminated and the request sent, so both arrive together."""
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    c = psycopg.connect(mux.dsn("app", "postgres"), autocommit=True, prepare_threshold=0)
    try:
        for i in range(3):
            assert c.execute("select %s::int", (i,), prepare=True).fetchone() == (i,)
        pid = c.execute("select pg_backend_pid()", prepare=True).fetchone()[0]
        for attempt in range(6):
            os.kill(mux.pid, signal.SIGSTOP)
            try:
                assert direct.scalar("select pg_terminate_backend(%s)", (pid,)) is True
                time.sleep(0.2)
                job = Background(lambda: c.execute("select %s::int, pg_backend_pid()",
                                                   (attempt,), prepare=True).fetchone())
                time.sleep(0.2)
            finally:
                os.kill(mux.pid, signal.SIGCONT)
            value, new_pid = job.result(10)
            assert value == attempt and new_pid != pid
            pid = new_pid
    finally:
        c.close()
    assert "replaying the request elsewhere" in mux.log(), \
        "the race this test is about never happened"
