"""Servers that go away: pg_terminate_backend, a restart of PostgreSQL, and server logins that
fail (the waiting client hears the server's error; a server that comes back serves again)."""
import os
import signal
import time

import psycopg
import pytest

import rawpg
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


# ---------------------------------------------------------------------------------------------
# server logins that fail

FLAKY = "pgmux_flaky"


@pytest.fixture
def flaky_role(pg):
    """A role pgmux logs in as with password 'good'; a test changes it to make logins fail."""
    pg.sql(f"DROP ROLE IF EXISTS {FLAKY}; CREATE ROLE {FLAKY} LOGIN PASSWORD 'good'")
    yield FLAKY
    pg.sql(f"DROP ROLE IF EXISTS {FLAKY}")


def flaky_entries(pg):
    return {"app": f"host=127.0.0.1 port={pg.port} dbname=app user={FLAKY} password=good"}


def set_password(pg, password):
    pg.sql(f"ALTER ROLE {FLAKY} PASSWORD '{password}'")


@pytest.mark.timeout(90)
def test_waiting_client_gets_server_login_error(pgmux, pg, flaky_role):
    """A client waiting while every server login fails gets the server's SQLSTATE and message
    once server_login_retry has passed without a success, long before query_wait_timeout; its
    session goes on, and is served once logins work again."""
    mux = pgmux({"server_login_retry": 2, "query_wait_timeout": 40}, databases=flaky_entries(pg))
    c = mux.connect()
    assert c.execute("select current_user").fetchone()[0] == FLAKY
    set_password(pg, "changed")
    mux.admin("RECONNECT app")
    wait_for(lambda: mux.pool("app", FLAKY)["sv_idle"] == 0, 5, what="the idle server to close")
    started = time.monotonic()
    with pytest.raises(psycopg.Error) as e:
        c.execute("select 2")
    waited = time.monotonic() - started
    assert e.value.sqlstate == "28P01", e.value
    assert f'password authentication failed for user "{FLAKY}"' in str(e.value)
    # a first failure and one retry server_login_retry later: well before query_wait_timeout
    assert waited < 15, f"waited {waited:.1f} s for the server's error"
    # a new client logs in (the pool knows the server's parameters) and hears the same
    r = mux.raw(timeout=20)
    r.login("postgres", "app")
    with pytest.raises(rawpg.PgError) as e:
        r.query("select 3")
    assert e.value.sqlstate == "28P01", e.value
    # the server comes back: the next request is served, on the same client connection
    set_password(pg, "good")
    assert c.execute("select 4").fetchone()[0] == 4
    assert r.scalar("select 5") == "5"


def test_logging_in_client_waits_for_login_retry(pgmux, pg, flaky_role):
    """A client logging in while the pool's first server login fails is not turned away at
    once: a login that succeeds within server_login_retry lets it in."""
    set_password(pg, "changed")
    mux = pgmux({"server_login_retry": 3}, databases=flaky_entries(pg))
    job = Background(lambda: mux.connect(connect_timeout=20))
    wait_for(lambda: "password authentication failed" in mux.log(), 10,
             what="the first server login to fail")
    set_password(pg, "good")
    conn = job.result(20)
    assert conn.execute("select current_user").fetchone()[0] == FLAKY


def test_logging_in_client_gets_server_login_error(pgmux, pg, flaky_role):
    """Logins that keep failing: the client logging in gets the server's error, in bounded
    time."""
    set_password(pg, "changed")
    mux = pgmux({"server_login_retry": 1, "query_wait_timeout": 40}, databases=flaky_entries(pg))
    started = time.monotonic()
    r = mux.raw(timeout=30)
    with pytest.raises(rawpg.PgError) as e:
        r.login("postgres", "app")
    assert e.value.sqlstate == "28P01", e.value
    assert "password authentication failed" in e.value.fields["M"]
    assert time.monotonic() - started < 10
