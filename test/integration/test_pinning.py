"""Session state in transaction mode: a client that creates state living on its server only
(temporary tables, LISTEN, session advisory locks, SQL PREPARE) keeps that server until it
disconnects, instead of losing the state or leaking it to another client; the server is then
cleaned (DISCARD ALL) before anyone else gets it."""
import pytest


def pid(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


@pytest.mark.parametrize("statement", [
    "create temp table pin_t as select 1 as x",
    "listen pin_channel",
    "select pg_advisory_lock(4242)",
    "prepare pin_q as select 1",
    # a long statement (several kB of columns) is read too
    "create temp table pin_t as select 1 as x, "
    + ", ".join(f"{i} as column_with_a_long_name_{i}" for i in range(150)),
])
def test_session_state_pins_the_server(pgmux, statement):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    a, b = mux.connect(), mux.connect()
    a.execute(statement)
    mine = pid(a)
    # B works alongside, on the other server, while A keeps its own
    for _ in range(5):
        assert pid(a) == mine
        assert pid(b) != mine
    pinned = [c for c in mux.admin("SHOW CLIENTS") if c["pinned"]]
    assert len(pinned) == 1 and pinned[0]["pinned"] != "", pinned
    if statement.startswith("create temp"):
        assert a.execute("select x from pin_t").fetchone()[0] == 1
    if statement.startswith("prepare"):
        assert a.execute("execute pin_q").fetchone()[0] == 1


def test_pinned_server_is_cleaned_for_the_next_client(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a = mux.connect()
    a.execute("create temp table pin_gone (x int)")
    a.execute("listen pin_gone")
    a.execute("select pg_advisory_lock(777)")
    server = pid(a)
    a.close()
    b = mux.connect()
    assert pid(b) == server, "a pool of one must reuse the same server"
    assert b.execute("select count(*) from pg_listening_channels()").fetchone()[0] == 0
    assert b.execute("select to_regclass('pg_temp.pin_gone') is null").fetchone()[0] is True
    assert b.execute("select pg_try_advisory_lock(777)").fetchone()[0] is True


def test_unpinned_clients_share_servers(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = mux.connect(), mux.connect()
    assert pid(a) == pid(b), "without session state both clients use the one server in turn"
