"""Pool modes: session, transaction and statement, with psql and psycopg."""
import psycopg
import pytest

import rawpg

from conftest import Background, assert_error, db_entries, wait_for

MODES = ["session", "transaction", "statement"]


@pytest.mark.parametrize("mode", MODES)
def test_psql_each_mode(pgmux, mode):
    mux = pgmux({"pool_mode": mode})
    r = mux.psql("-c", "select 40 + 2", "-c", "select current_database(), current_user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["42", "app|postgres"]
    # a script of several statements, each one its own transaction
    r = mux.psql(input="select 1;\nselect count(*) from pgbench_branches;\nselect 'done';\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "1", "done"]


@pytest.mark.parametrize("mode", MODES)
def test_psycopg_each_mode(pgmux, mode):
    mux = pgmux({"pool_mode": mode})
    with mux.connect() as conn:
        assert conn.execute("select 1 + 1").fetchone()[0] == 2
        # parameters make psycopg use the extended protocol (Parse/Bind/Execute/Sync)
        assert conn.execute("select %s::int * 3", (7,)).fetchone()[0] == 21
        assert conn.execute("select count(*) from pgbench_accounts").fetchone()[0] == 100000
        rows = conn.execute("select g, repeat('y', g) from generate_series(1, 50) g").fetchall()
        assert len(rows) == 50 and rows[-1] == (50, "y" * 50)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_transaction_block_each_mode(pgmux, direct, mode):
    mux = pgmux({"pool_mode": mode})
    table = f"txblock_{mode}"
    direct.pg.sql(f"drop table if exists {table}; create table {table} (x int)", dbname="app")
    with mux.connect(autocommit=False) as conn:
        conn.execute(f"insert into {table} values (1)")
        conn.execute(f"insert into {table} values (2)")
        conn.rollback()
        conn.execute(f"insert into {table} values (3)")
        conn.execute(f"insert into {table} values (4)")
        conn.commit()
    assert direct.pg.sql(f"select string_agg(x::text, ',' order by x) from {table}",
                         dbname="app") == "3,4"
    r = mux.psql(input=f"begin;\ninsert into {table} values (5);\ncommit;\n")
    assert r.returncode == 0, r.stderr
    assert direct.pg.sql(f"select count(*) from {table} where x = 5", dbname="app") == "1"


def test_transaction_mode_shares_one_server(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = mux.connect(), mux.connect()
    pid_a = a.execute("select pg_backend_pid()").fetchone()[0]
    pid_b = b.execute("select pg_backend_pid()").fetchone()[0]
    assert pid_a == pid_b, "two idle clients on a pool of 1 must use the same server"
    assert [r[0] for r in direct.backends("app")] == [pid_a]


def test_session_mode_one_server_per_client(pgmux, direct):
    mux = pgmux({"pool_mode": "session", "default_pool_size": 3})
    conns = [mux.connect() for _ in range(3)]
    pids = {c.execute("select pg_backend_pid()").fetchone()[0] for c in conns}
    assert len(pids) == 3, "session mode gives every client its own server"
    assert {r[0] for r in direct.backends("app")} == pids


def test_session_mode_keeps_state_and_resets_on_disconnect(pgmux, direct):
    mux = pgmux({"pool_mode": "session", "default_pool_size": 1,
                 "server_reset_query": "DISCARD ALL"})
    default_work_mem = direct.scalar("show work_mem")
    with mux.connect() as conn:
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]
        conn.execute("set work_mem = '7MB'")
        conn.execute("create temp table sess_tmp (x int)")
        conn.execute("insert into sess_tmp values (1), (2)")
        conn.execute("prepare sess_stmt as select 99")
        # session state survives across statements and transactions
        assert conn.execute("show work_mem").fetchone()[0] == "7MB"
        assert conn.execute("select count(*) from sess_tmp").fetchone()[0] == 2
        assert conn.execute("execute sess_stmt").fetchone()[0] == 99
        assert conn.execute("select pg_backend_pid()").fetchone()[0] == pid
    with mux.connect() as conn:
        # same server (pool of 1), but reset: no temp table, default settings, no statement
        assert conn.execute("select pg_backend_pid()").fetchone()[0] == pid
        assert conn.execute("show work_mem").fetchone()[0] == default_work_mem
        assert conn.execute("select to_regclass('pg_temp.sess_tmp')").fetchone()[0] is None
        assert conn.execute("select count(*) from pg_prepared_statements").fetchone()[0] == 0


def test_statement_mode_shares_server_between_statements(pgmux, direct):
    mux = pgmux({"pool_mode": "statement", "default_pool_size": 1})
    direct.pg.sql("drop table if exists stmt_t; create table stmt_t (x int)", dbname="app")
    a, b = mux.connect(), mux.connect()
    pid_a = a.execute("select pg_backend_pid()").fetchone()[0]
    assert b.execute("select pg_backend_pid()").fetchone()[0] == pid_a
    # several statements in one simple Query are one implicit transaction: allowed
    a.execute("insert into stmt_t values (1); insert into stmt_t values (2)")
    # so is an explicit block that ends inside the same Query
    b.execute("begin; insert into stmt_t values (3); commit")
    assert direct.pg.sql("select count(*) from stmt_t", dbname="app") == "3"


def test_statement_mode_rejects_transaction_block(pgmux, direct):
    mux = pgmux({"pool_mode": "statement", "default_pool_size": 1})
    direct.pg.sql("drop table if exists stmt_block; create table stmt_block (x int)",
                  dbname="app")
    c = mux.raw().login("postgres", "app")
    with pytest.raises(rawpg.PgError) as ei:
        c.query("begin; insert into stmt_block values (1)")
        c.query("insert into stmt_block values (2)")
        c.query("commit")
    assert_error(ei.value, "statement_mode_transaction")
    # the open transaction was rolled back on the server and left nothing idle in transaction
    wait_for(lambda: not direct.backends("app", "idle in transaction"), 3,
             what="no server idle in transaction")
    assert direct.pg.sql("select count(*) from stmt_block", dbname="app") == "0"
    # and the pool still serves others
    with mux.connect() as other:
        assert other.execute("select 5").fetchone()[0] == 5


def test_statement_mode_rejects_psycopg_implicit_transaction(pgmux):
    mux = pgmux({"pool_mode": "statement"})
    conn = mux.connect(autocommit=False)   # psycopg sends BEGIN before the first statement
    with pytest.raises(psycopg.Error) as ei:
        conn.execute("select 1")
        conn.execute("select 2")
        conn.commit()
    assert_error(ei.value, "statement_mode_transaction", lost_state_ok=True)


def test_pool_mode_per_database_and_per_user(pgmux, pg):
    dbs = db_entries(pg,
                     app_stmt=f"host=127.0.0.1 port={pg.port} dbname=app pool_mode=statement",
                     app_bob=f"host=127.0.0.1 port={pg.port} dbname=app user=bob "
                             "password=bob-secret")
    mux = pgmux({"pool_mode": "transaction"}, databases=dbs,
                users={"bob": "pool_mode=statement"})
    # app is transaction mode: an explicit block works
    with mux.connect() as conn:
        conn.execute("begin")
        assert conn.execute("select 1").fetchone()[0] == 1
        conn.execute("commit")
    # app_stmt is statement mode by its [databases] entry
    conn = mux.connect("app_stmt")
    with pytest.raises(psycopg.Error) as ei:
        conn.execute("begin")
        conn.execute("select 1")
    assert_error(ei.value, "statement_mode_transaction", lost_state_ok=True)
    # bob is statement mode by his [users] entry
    conn = mux.connect("app_bob", user="bob")
    with pytest.raises(psycopg.Error) as ei:
        conn.execute("begin")
        conn.execute("select 1")
    assert_error(ei.value, "statement_mode_transaction", lost_state_ok=True)


def test_pipeline_in_transaction_mode(pgmux):
    """Many extended-protocol queries in flight at once (psycopg pipeline mode) on a pool of
    one, while another client runs its own: every answer goes to the client that asked."""
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = mux.connect(), mux.connect()

    def other():
        return [b.execute("select %s::int * 2", (i,)).fetchone()[0] for i in range(30)]
    job = Background(other)
    for _ in range(5):
        with a.pipeline():
            curs = [a.cursor().execute("select %s::int, %s::text", (i, f"v{i}"))
                    for i in range(40)]
        assert [c.fetchone() for c in curs] == [(i, f"v{i}") for i in range(40)]
    assert job.result(10) == [i * 2 for i in range(30)]
    # an error in the middle of a pipeline leaves the session usable
    with pytest.raises(psycopg.errors.DivisionByZero):
        with a.pipeline():
            a.execute("select 1")
            a.execute("select 1 / 0")
            a.execute("select 2")
    assert a.execute("select 'fine'").fetchone()[0] == "fine"


@pytest.mark.parametrize("fast_close", [0, 1])
def test_server_fast_close(pgmux, direct, fast_close):
    """Session mode, after RECONNECT: with server_fast_close a client's server is closed, and
    the client with it, when its transaction ends (or at once when it is between transactions);
    without it both live on until the client leaves, as in PgBouncer."""
    mux = pgmux({"pool_mode": "session", "default_pool_size": 3,
                 "server_fast_close": fast_close})
    busy, idle = mux.raw().login("postgres", "app"), mux.raw().login("postgres", "app")
    busy_pid = int(busy.scalar("select pg_backend_pid()"))
    idle_pid = int(idle.scalar("select pg_backend_pid()"))
    busy.query("begin")
    busy.query("select 1")
    mux.admin("RECONNECT app")
    pids = lambda: {r[0] for r in direct.backends("app")}   # noqa: E731
    if not fast_close:
        busy.query("commit")
        assert int(busy.scalar("select pg_backend_pid()")) == busy_pid
        assert int(idle.scalar("select pg_backend_pid()")) == idle_pid
        return
    # between transactions: closed by the next sweep, with a reason
    err = idle.error_or_close(3)
    assert isinstance(err, rawpg.PgError), repr(err)
    assert_error(err, "server_lost")
    assert "server_fast_close" in err.message
    wait_for(lambda: idle_pid not in pids(), 3, what="the idle client's server to close")
    # inside a transaction: left alone until it ends, then closed with its client
    assert busy.scalar("select 2") == "2" and busy_pid in pids()
    busy.query("commit")
    err = busy.error_or_close(3)
    assert isinstance(err, rawpg.PgError), repr(err)
    assert "server_fast_close" in err.message
    wait_for(lambda: busy_pid not in pids(), 3, what="the busy client's server to close")
    # new clients get new servers
    assert mux.connect().execute("select 1").fetchone()[0] == 1


def test_host_list_round_robin(pgmux, pg):
    # host=a,b as in PgBouncer: new server connections take turns (here TCP and the socket)
    dbs = {"app": f"host='127.0.0.1, {pg.sockdir}' port={pg.port} dbname=app"}
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 4}, databases=dbs)
    clients = [mux.connect(autocommit=False) for _ in range(4)]
    # each holds a server in its transaction: four server connections
    seen = sorted(str(c.execute("select inet_server_addr()").fetchone()[0]) for c in clients)
    assert seen == ["127.0.0.1", "127.0.0.1", "None", "None"], seen
    for c in clients:
        c.close()


def test_host_list_load_balance_disable(pgmux, pg):
    # nothing listens on the first host: after its failure the second serves, and keeps serving
    dbs = {"app": f"host=127.0.0.9,127.0.0.1 port={pg.port} dbname=app load_balance_hosts=disable"}
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 3, "server_login_retry": 0.1},
                databases=dbs)
    clients = [mux.connect(autocommit=False) for _ in range(3)]
    for c in clients:
        assert str(c.execute("select inet_server_addr()").fetchone()[0]) == "127.0.0.1"
    for c in clients:
        c.close()
    failed = [line for line in mux.log().splitlines() if "closing: connect failed" in line]
    assert len(failed) == 1, f"the failed host was tried again: {failed}"
