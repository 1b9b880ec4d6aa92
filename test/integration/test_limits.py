"""Pool size, waiting clients, query_wait_timeout and max_client_conn."""
import threading
import time

import psycopg
import pytest

import rawpg
from conftest import Background, Sampler, assert_error, wait_for, write_userlist


def sleep_txn(mux, seconds):
    with mux.connect(autocommit=False) as conn:
        conn.execute("select 1")
        conn.execute(f"select pg_sleep({seconds})")
        conn.commit()
        return conn.execute("select 'ok'").fetchone()[0]


def test_pool_of_two_under_ten_transactions(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2, "reserve_pool_size": 0})
    with Sampler(direct, "app") as s:
        jobs = [Background(sleep_txn, mux, 0.6) for _ in range(10)]
        # while they run: 2 clients hold the 2 servers, the other 8 wait
        pool = wait_for(lambda: (lambda p: p if p and p["cl_waiting"] == 8 and p["sv_active"] == 2
                                 else None)(mux.pool("app")), 5, interval=0.01,
                        what="8 clients waiting and 2 servers active in SHOW POOLS")
        assert pool["cl_active"] + pool["cl_waiting"] == 10, pool
        servers = direct.backends("app")
        assert len(servers) == 2, servers
        results = [j.result(20) for j in jobs]
    assert results == ["ok"] * 10
    assert s.max_total == 2, f"saw {s.max_total} server connections for a pool of 2"
    # 10 transactions of 0.6 s through 2 servers take 5 rounds
    assert max(j.elapsed() for j in jobs) >= 2.9


def test_query_wait_timeout(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0,
                 "query_wait_timeout": 1})
    holder = mux.connect()
    busy = Background(lambda: holder.execute("select pg_sleep(2.5), 'held'").fetchone()[1])
    wait_for(lambda: (mux.pool("app") or {}).get("sv_active") == 1, 3, what="server busy")
    waiter = mux.connect()
    t0 = time.monotonic()
    with pytest.raises(psycopg.Error) as ei:
        waiter.execute("select 1")
    waited = time.monotonic() - t0
    assert_error(ei.value, "query_wait_timeout", lost_state_ok=True)
    assert 0.8 <= waited <= 2.2, f"query_wait_timeout=1 fired after {waited:.2f}s"
    # the client holding the server is not affected
    assert busy.result(10) == "held"


def test_query_wait_timeout_sqlstate(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0,
                 "query_wait_timeout": 1})
    holder = mux.connect()
    busy = Background(lambda: holder.execute("select pg_sleep(2)").fetchone())
    wait_for(lambda: (mux.pool("app") or {}).get("sv_active") == 1, 3, what="server busy")
    c = mux.raw(timeout=5).login("postgres", "app")
    c.send_msg(b"Q", b"select 1\0")
    err = c.error_or_close(4)
    assert isinstance(err, rawpg.PgError), f"expected an ErrorResponse, got {err!r}"
    assert_error(err, "query_wait_timeout")
    busy.result(10)


def test_max_client_conn(pgmux):
    mux = pgmux({"max_client_conn": 3})
    conns = [mux.connect() for _ in range(3)]
    for c in conns:
        assert c.execute("select 1").fetchone()[0] == 1
    extra = mux.raw()
    extra.startup("postgres", "app")
    err = extra.error_or_close(5)
    assert isinstance(err, rawpg.PgError), f"expected 53300, got {err!r}"
    assert_error(err, "max_client_conn")
    with pytest.raises(psycopg.OperationalError):
        mux.connect()
    # the connected clients keep working, and a freed slot can be taken again
    assert conns[0].execute("select 2").fetchone()[0] == 2
    conns[1].close()

    def slot_free():
        try:
            return mux.connect()
        except psycopg.OperationalError:
            return None
    again = wait_for(slot_free, 3, interval=0.1, what="a free client slot")
    assert again.execute("select 3").fetchone()[0] == 3


@pytest.mark.parametrize("setting", ["max_db_connections", "max_user_connections"])
def test_connection_caps(pgmux, direct, setting):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 5, "reserve_pool_size": 0,
                 setting: 2})
    with Sampler(direct, "app") as s:
        jobs = [Background(lambda: mux.connect().execute("select pg_sleep(0.5)").fetchone())
                for _ in range(4)]
        for j in jobs:
            j.result(10)
    assert s.max_total == 2, f"{setting}=2 but {s.max_total} server connections"


def test_min_pool_size(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 5, "min_pool_size": 3})
    with mux.connect() as conn:
        conn.execute("select 1")
        wait_for(lambda: len(direct.backends("app")) == 3, 4, interval=0.1,
                 what="min_pool_size=3 servers to be opened")


SHARED_ROLES = [f"pgmux_share{i}" for i in range(5)]


@pytest.fixture
def five_roles(pg):
    """Five roles that log in with trust over the server's unix socket; dropped afterwards."""
    for role in SHARED_ROLES:
        pg.sql(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN")
    yield SHARED_ROLES
    for role in SHARED_ROLES:
        pg.sql(f"DROP ROLE IF EXISTS {role}")


class ServerCount:
    """Samples pgmux's own count of server connections (SHOW SERVERS) in a thread; keeps the
    maximum. PostgreSQL's pg_stat_activity also lists backends pgmux has already closed and that
    have not exited yet, which a test that makes pgmux close servers must not count."""

    def __init__(self, mux, interval=0.02):
        self.mux = mux
        self.interval = interval
        self.max_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.max_total = max(self.max_total, len(self.mux.admin("SHOW SERVERS")))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("setting", ["max_db_connections", "max_user_connections"])
def test_shared_limit_closes_idle_servers_of_other_pools(pgmux, pg, direct, five_roles, setting):
    """Pools blocked only by a limit they share with other pools take the place of those pools'
    servers idle longest: 10 clients of 5 users through 4 connections all get served."""
    entries = {"app": f"host={pg.sockdir} port={pg.port} dbname=app"}
    if setting == "max_db_connections":
        settings = {"max_db_connections": 4}
    else:
        # one user, five databases (aliases of app): the user-wide limit is the shared one
        entries = {f"app{i}": f"host={pg.sockdir} port={pg.port} dbname=app user={five_roles[0]}"
                   for i in range(5)}
        settings = {"max_user_connections": 4}
    mux = pgmux(dict(settings, default_pool_size=5, reserve_pool_size=0, query_wait_timeout=15),
                databases=entries, start=False)
    # trust admits only users the auth_file lists
    write_userlist(mux, {user: "" for user in ("postgres",) + tuple(five_roles)})
    mux.start()
    if setting == "max_db_connections":
        targets = [("app", role) for role in five_roles]
    else:
        targets = [(db, "postgres") for db in entries]

    def work(dbname, user):
        with mux.connect(dbname=dbname, user=user) as conn:
            conn.execute("select pg_sleep(0.1)")
            return conn.execute("select 'ok'").fetchone()[0]

    with ServerCount(mux) as s:
        jobs = [Background(work, *targets[i % 5]) for i in range(10)]
        results = [j.result(14) for j in jobs]
    assert results == ["ok"] * 10
    assert 1 <= s.max_total <= 4, f"{setting}=4 but {s.max_total} server connections"
    # nobody waited anywhere near query_wait_timeout
    assert max(j.elapsed() for j in jobs) < 10
