"""Network faults between pgmux and PostgreSQL, made by a proxy (test/lib/faultproxy.py) that
the database `app` goes through while `other` is reached directly: latency, a reset, a
half-close, a black hole (during a query and during a server login), a server that stops
reading, and a primary that vanishes in the middle of a transaction.

What the client must see in each case: an ErrorResponse with a SQLSTATE within the configured
timeout, never a hang; the other clients and the admin console carry on; the pool serves again
once the path is back; memory stays bounded; and no write the client saw committed is lost.

With no timeout configured a black-holed query waits as long as TCP does (keepalive with the
OS's timings: hours): a cancel cannot reach the server either, so the client must give up by
itself; pgmux then closes that server and serves the pool's other clients.
"""
import socket
import time

import pytest

import rawpg
from conftest import Background, assert_error, db_entries, wait_for
from faultproxy import FaultProxy
from pgcluster import SANITIZED

MODES = ("session", "transaction")

# Peak memory allowed while a server stops reading during a large upload. A sanitizer build
# starts far larger (shadow memory) and keeps freed memory in its quarantine: there the bar is
# on growth, as in test_large.py.
VMHWM_LIMIT_KB = 40 * 1024
ASAN_GROWTH_LIMIT_KB = 64 * 1024


@pytest.fixture
def proxy(pg, direct):
    """A fault proxy in front of the session's PostgreSQL, stopped (every connection reset) at
    teardown, after which no backend the test left sleeping stays behind."""
    p = FaultProxy("127.0.0.1", pg.port).start()
    yield p
    p.stop()
    direct.query("select pg_terminate_backend(pid) from pg_stat_activity "
                 "where query like 'select pg_sleep(%' and pid <> pg_backend_pid()")


def faulty(pgmux, pg, proxy, settings):
    """A pgmux whose database app goes through the proxy."""
    return pgmux(settings, databases=db_entries(
        pg, app=f"host=127.0.0.1 port={proxy.port} dbname=app"))


def sleeping_backend(direct, marker):
    """The pid of the app backend running the query that contains marker, or None."""
    return next((r[0] for r in direct.backends("app", "active") if marker in r[2]), None)


def start_sleep(c, direct, seconds):
    """Send pg_sleep(seconds) on the raw client c and wait until PostgreSQL runs it."""
    sql = f"select pg_sleep({seconds})"
    c.send_msg(b"Q", sql.encode() + b"\0")
    wait_for(lambda: sleeping_backend(direct, sql), 10, what=f"{sql} to run on the server")


def timed_admin(mux, command):
    """Run an admin command; return (rows, seconds it took)."""
    t0 = time.monotonic()
    rows = mux.admin(command, timeout=5)
    return rows, time.monotonic() - t0


# ---------------------------------------------------------------------------------------------
# latency


@pytest.mark.parametrize("mode", MODES)
def test_latency_does_not_time_out(pgmux, pg, proxy, mode):
    """200 ms each way: the server login (several round trips), queries and a transaction all
    succeed, with every timeout set to a few seconds, none of them fires."""
    mux = faulty(pgmux, pg, proxy, {"pool_mode": mode, "server_connect_timeout": 3,
                                    "query_timeout": 3, "query_wait_timeout": 5,
                                    "idle_transaction_timeout": 3})
    proxy.latency(0.2)
    with mux.connect(autocommit=False) as conn:
        t0 = time.monotonic()
        assert conn.execute("select 1").fetchone()[0] == 1
        first = time.monotonic() - t0
        conn.execute("select pg_sleep(0.5)")
        assert conn.execute("select count(*) from pgbench_branches").fetchone()[0] == 1
        conn.commit()
        t0 = time.monotonic()
        assert conn.execute("select 2").fetchone()[0] == 2
        conn.commit()
        later = time.monotonic() - t0
    print(f"first query (with the server login) {first:.2f} s, a later one {later:.2f} s")
    # the latency was really there: one round trip at least
    assert later >= 0.4
    assert "timeout" not in mux.log()


# ---------------------------------------------------------------------------------------------
# reset and half-close during a query


@pytest.mark.parametrize("fault", ("reset", "half_close"))
@pytest.mark.parametrize("mode", MODES)
def test_connection_cut_mid_query(pgmux, pg, proxy, direct, mode, fault):
    """The server connection is cut while a query runs: the client hears 08006 at once, a
    client of another database carries on meanwhile, and once the path is back the pool
    serves again."""
    mux = faulty(pgmux, pg, proxy, {"pool_mode": mode, "server_login_retry": 0.5})
    bystander = mux.connect("other")
    c = mux.raw(timeout=10).login("postgres", "app")
    start_sleep(c, direct, 30)
    t0 = time.monotonic()
    getattr(proxy, fault)()
    err = c.error_or_close(5)
    waited = time.monotonic() - t0
    print(f"{fault}: error after {waited:.3f} s: {err!r}")
    assert isinstance(err, rawpg.PgError), f"expected an ErrorResponse, got {err!r}"
    assert_error(err, "server_lost")
    assert waited < 1.0
    assert bystander.execute("select 'other'").fetchone()[0] == "other"
    proxy.pass_through()
    if mode == "transaction":
        # the client's session goes on, on a new server
        ready = c.error_or_close(5)
        assert isinstance(ready, rawpg.Ready) and ready.status == b"I", repr(ready)
        assert c.scalar("select 'again'") == "again"
    else:
        assert c.is_closed(2), "a session client keeps a session whose server is gone"
    with mux.connect() as fresh:
        assert fresh.execute("select 'fresh'").fetchone()[0] == "fresh"


# ---------------------------------------------------------------------------------------------
# black hole during a query


@pytest.mark.parametrize("mode", MODES)
def test_black_hole_mid_query_hits_query_timeout(pgmux, pg, proxy, direct, mode):
    """The path to the server goes silent while a query runs: query_timeout answers the client
    with 57014 in time (its cancel cannot get through, so that server is never reused); the
    admin console and a client of another database carry on; once the path is back the pool
    serves again."""
    mux = faulty(pgmux, pg, proxy, {"pool_mode": mode, "query_timeout": 1,
                                    "server_connect_timeout": 2})
    bystander = mux.connect("other")
    c = mux.raw(timeout=10).login("postgres", "app")
    start_sleep(c, direct, 30)
    proxy.drop()
    t0 = time.monotonic()
    _, took = timed_admin(mux, "SHOW SERVERS")
    assert took < 1.0, f"SHOW SERVERS took {took:.2f} s during the black hole"
    assert bystander.execute("select 'other'").fetchone()[0] == "other"
    err = c.error_or_close(5)
    waited = time.monotonic() - t0
    print(f"query_timeout=1: error after {waited:.2f} s: {err!r}; SHOW SERVERS {took:.3f} s")
    assert isinstance(err, rawpg.PgError), f"expected an ErrorResponse, got {err!r}"
    assert_error(err, "query_timeout")
    assert waited < 3.0
    proxy.pass_through()
    with mux.connect() as fresh:
        assert fresh.execute("select 'fresh'").fetchone()[0] == "fresh"


def test_black_hole_mid_query_without_timeout(pgmux, pg, proxy, direct):
    """With no query_timeout a black-holed query waits as long as the client does: the cancel
    pgmux forwards goes into the same black hole and is given up after server_connect_timeout.
    Meanwhile the admin console and a client of another database are served; once the client
    leaves, pgmux closes that server and the pool serves new clients when the path is back."""
    mux = faulty(pgmux, pg, proxy, {"pool_mode": "transaction", "server_connect_timeout": 1})
    bystander = mux.connect("other")
    c = mux.raw(timeout=10).login("postgres", "app")
    start_sleep(c, direct, 30)
    proxy.drop()
    rawpg.cancel_request("127.0.0.1", mux.port, *c.backend_key)
    wait_for(lambda: "cancel request not confirmed by the server" in mux.log(), 5,
             what="pgmux to give up the cancel")
    _, took = timed_admin(mux, "SHOW SERVERS")
    assert took < 1.0, f"SHOW SERVERS took {took:.2f} s during the black hole"
    assert bystander.execute("select 'other'").fetchone()[0] == "other"
    # the query still waits for its server, and nothing has been sent to the client
    pool = mux.pool("app")
    assert (pool["cl_active"], pool["sv_active"]) == (1, 1), pool
    c.sock.settimeout(0)
    with pytest.raises(BlockingIOError):
        c.sock.recv(1, socket.MSG_PEEK)
    c.close()
    wait_for(lambda: mux.pool("app")["sv_active"] == 0, 5, what="the server to be let go")
    assert mux.pool("app")["sv_idle"] == 0, "a server with a query running went back to the pool"
    proxy.pass_through()
    with mux.connect() as fresh:
        assert fresh.execute("select 'fresh'").fetchone()[0] == "fresh"


# ---------------------------------------------------------------------------------------------
# black hole during a server login


@pytest.mark.parametrize("mode", MODES)
def test_black_hole_during_server_login(pgmux, pg, proxy, mode):
    """The server accepts connections and never answers: each login attempt is given up after
    server_connect_timeout and retried after server_login_retry; the client waiting to log in
    gets an error with a SQLSTATE before query_wait_timeout; SHOW SERVERS answers meanwhile;
    the pool serves once the path is back."""
    mux = faulty(pgmux, pg, proxy, {"pool_mode": mode, "server_connect_timeout": 1,
                                    "server_login_retry": 1, "query_wait_timeout": 6})
    proxy.drop()
    c = mux.raw(timeout=15)
    job = Background(c.login, "postgres", "app")
    wait_for(lambda: proxy.accepted >= 1, 5, what="pgmux to connect to the server")
    rows, took = timed_admin(mux, "SHOW SERVERS")
    print(f"SHOW SERVERS during the login: {took:.3f} s, {rows}")
    assert took < 1.0
    err = job.exception(15)
    waited = job.elapsed()
    print(f"client login failed after {waited:.2f} s: {err!r}; {proxy.accepted} attempts")
    assert isinstance(err, rawpg.PgError), f"expected an ErrorResponse, got {err!r}"
    assert err.sqlstate in ("08006", "08P01"), err
    assert waited < 6 + 1.5, "the client waited past query_wait_timeout"
    assert "server connect timeout" in mux.log()
    proxy.pass_through()
    r = wait_for(lambda: try_login(mux), 10, interval=0.2, what="a login once the path is back")
    assert r.scalar("select 'back'") == "back"


def test_black_hole_during_server_login_of_logged_in_client(pgmux, pg, proxy):
    """Transaction mode: a logged-in client whose next query needs a new server while the
    server never answers gets an ERROR with a SQLSTATE once the login retry is spent, and its
    session goes on: once the path is back its next query is served."""
    mux = faulty(pgmux, pg, proxy, {"server_connect_timeout": 1, "server_login_retry": 1,
                                    "query_wait_timeout": 6})
    c = mux.raw(timeout=10).login("postgres", "app")
    assert c.scalar("select 1") == "1"
    proxy.drop()
    mux.admin("RECONNECT app")
    wait_for(lambda: mux.pool("app")["sv_idle"] == 0, 5, what="the idle server to close")
    t0 = time.monotonic()
    c.send_msg(b"Q", b"select 2\0")
    err = c.error_or_close(10)
    waited = time.monotonic() - t0
    print(f"query failed after {waited:.2f} s: {err!r}; {proxy.accepted} connections")
    assert isinstance(err, rawpg.PgError), f"expected an ErrorResponse, got {err!r}"
    assert err.sqlstate in ("08006", "08P01"), err
    assert waited < 6 + 1.5, "the client waited past query_wait_timeout"
    assert err.fields.get("S") == "ERROR", "the client's session did not survive"
    assert isinstance(c.error_or_close(5), rawpg.Ready)
    proxy.pass_through()
    assert wait_for(lambda: try_scalar(c, "select 3"), 10, interval=0.2,
                    what="the query to be served") == "3"


def try_scalar(c, sql):
    try:
        return c.scalar(sql)
    except rawpg.PgError:
        return None


def try_login(mux):
    try:
        return mux.raw(timeout=5).login("postgres", "app")
    except (rawpg.PgError, rawpg.Closed):
        return None


# ---------------------------------------------------------------------------------------------
# a primary that vanishes in the middle of a transaction


@pytest.mark.parametrize("mode", MODES)
def test_primary_vanishes_mid_transaction(pgmux, pg, proxy, direct, mode):
    """Transactions of two inserts commit one after another; the server vanishes while one is
    open and idle, and is back before the client goes on. The client's next statement gets an
    error with a SQLSTATE and is not run: pgmux must not send the rest of that transaction to a
    new server outside any transaction. Every transaction the client saw committed is there
    afterwards, whole, and nothing of the open one."""
    pg.sql("drop table if exists fault_acks; create table fault_acks (id int primary key)",
           dbname="app")
    mux = faulty(pgmux, pg, proxy, {"pool_mode": mode, "server_login_retry": 0.5})
    c = mux.raw(timeout=10).login("postgres", "app")
    acked = []
    for i in range(20):
        c.query("begin")
        c.query(f"insert into fault_acks values ({i}), ({-i - 1})")
        _, tags = c.query("commit")
        assert tags == ["COMMIT"]
        acked.append(i)
    c.query("begin")
    c.query("insert into fault_acks values (1000), (-1001)")
    proxy.reset()
    # pgmux has seen the loss, and a server is there again, before the client goes on
    wait_for(lambda: mux.pool("app")["sv_active"] == 0, 5, what="pgmux to drop the server")
    proxy.pass_through()
    c.send_msg(b"Q", b"insert into fault_acks values (1001), (-1002)\0")
    err = c.error_or_close(5)
    print(f"after the reset: {err!r}")
    assert isinstance(err, rawpg.PgError), f"expected an ErrorResponse, got {err!r}"
    assert_error(err, "server_lost")
    ids = {int(x) for x in pg.sql("select id from fault_acks", dbname="app").split()}
    missing = [i for i in acked if i not in ids or -i - 1 not in ids]
    assert not missing, f"acknowledged transactions lost: {missing}"
    wait_for(lambda: pg.sql("select count(*) from fault_acks where id >= 1000 or id <= -1001",
                            dbname="app") == "0", 5,
             what="nothing of the transaction that was open to be there")


@pytest.mark.parametrize("mode", MODES)
def test_request_after_a_fatal_heard_while_idle_gets_an_error(pgmux, pg, proxy, direct, mode):
    """A backend stopped while its client is idle in a transaction says FATAL, which reaches
    the client while it waits for nothing: libpq takes it for a notice. The client's next
    request (a COMMIT) reaches pgmux before the end of the server's connection does. That
    request must be answered with an error of its own, never with a bare ReadyForQuery: a
    COMMIT answered so looks like one that succeeded, and psycopg finds no result at all."""
    mux = faulty(pgmux, pg, proxy, {"pool_mode": mode})
    proxy.delay_server_eof(1.0)
    c = mux.raw(timeout=10).login("postgres", "app")
    c.query("begin")
    pid = int(c.scalar("select pg_backend_pid()"))
    assert direct.scalar("select pg_terminate_backend(%s)", (pid,)) is True
    fatal = c.error_or_close(5)
    assert isinstance(fatal, rawpg.PgError) and fatal.sqlstate == "57P01", repr(fatal)
    c.send_msg(b"Q", b"commit\0")
    err = c.error_or_close(5)
    print(f"the COMMIT after the FATAL: {err!r}")
    assert isinstance(err, (rawpg.PgError, rawpg.Closed)), \
        f"the COMMIT got no error: {err!r}"
    if isinstance(err, rawpg.PgError):
        assert_error(err, "server_lost")
    if mode == "transaction" and isinstance(err, rawpg.PgError):
        # the client's session goes on, on another server
        assert c.error_or_close(5).__class__ is rawpg.Ready
        assert c.scalar("select 'on'") == "on"


# ---------------------------------------------------------------------------------------------
# a server that stops reading during a large upload

UPLOAD = 64 * 1024 * 1024


def upload(sock, kind, total=UPLOAD):
    """Send `total` bytes of COPY data (kind "copy", the COPY already started) or one Query of
    that size (kind "query") on sock; return how much went out before the peer closed.
    upload.progress counts the bytes sent so far."""
    chunk = b"x" * 65535 + b"\n"
    if kind == "query":
        body = b"select length('" + b"y" * (total - 32) + b"')\0"
        data = [rawpg.message(b"Q", body)]
    else:
        data = (rawpg.message(b"d", chunk) for _ in range(total // len(chunk)))
    sent = 0
    try:
        for piece in data:
            view = memoryview(piece)
            while view:
                n = sock.send(view[:1 << 20])
                view = view[n:]
                sent += n
                upload.progress = sent
    except OSError:
        pass
    return sent


@pytest.mark.timeout(90)
@pytest.mark.parametrize("end", ("query_timeout", "reset"))
@pytest.mark.parametrize("kind", ("copy", "query"))
def test_server_stops_reading_during_upload(pgmux, pg, proxy, kind, end):
    """The server stops reading while a client sends 64 MiB (COPY data, or one Query): pgmux
    stops reading the client instead of holding the data, and the client gets an error with a
    SQLSTATE once query_timeout fires or the connection is reset."""
    settings = {"pool_mode": "transaction", "server_connect_timeout": 1}
    if end == "query_timeout":
        settings["query_timeout"] = 2
    mux = faulty(pgmux, pg, proxy, settings)
    pg.sql("drop table if exists fault_copy; create table fault_copy (t text)", dbname="app")
    c = mux.raw(timeout=10).login("postgres", "app")
    if kind == "copy":
        c.send_msg(b"Q", b"copy fault_copy from stdin\0")
        mtype, _ = c.read_msg()
        assert mtype == b"G", mtype
    before = mux.status("VmRSS")
    proxy.stall()
    upload.progress = 0
    # Its own socket object for the sending thread; with a timeout too, as the two objects
    # share the descriptor's O_NONBLOCK flag.
    sender = c.sock.dup()
    sender.settimeout(30)
    job = Background(upload, sender, kind)
    t0 = time.monotonic()
    if end == "reset":
        # well on the way, and far more than the proxy and the kernel buffers hold together
        wait_for(lambda: upload.progress >= 4 * 1024 * 1024, 10, what="4 MiB to go out")
        proxy.reset()
    err = c.error_or_close(10)
    waited = time.monotonic() - t0
    sent = job.result(10)
    sender.close()
    peak = mux.status("VmHWM")
    print(f"{kind}, {end}: {err!r} after {waited:.2f} s; {sent >> 10} KiB of "
          f"{UPLOAD >> 10} sent; VmRSS before {before} kB, VmHWM {peak} kB")
    assert isinstance(err, rawpg.PgError), f"expected an ErrorResponse, got {err!r}"
    assert_error(err, "query_timeout" if end == "query_timeout" else "server_lost")
    assert sent < UPLOAD, "the whole upload went out while the server read nothing"
    if SANITIZED:
        assert peak - before < ASAN_GROWTH_LIMIT_KB, f"pgmux grew by {peak - before} kB"
    else:
        assert peak < VMHWM_LIMIT_KB, f"pgmux peaked at {peak} kB"
    # the pool serves again once the server reads again
    proxy.pass_through()
    if err.fields.get("S") == "ERROR":
        # the client's session goes on: the rest of its message was not taken for a new one
        ready = c.error_or_close(5)
        assert isinstance(ready, rawpg.Ready), repr(ready)
        assert c.scalar("select 'same client'") == "same client"
    with mux.connect() as fresh:
        assert fresh.execute("select 'fresh'").fetchone()[0] == "fresh"
