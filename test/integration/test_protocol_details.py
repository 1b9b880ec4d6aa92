"""Protocol corners relayed unchanged in transaction mode: empty queries, multi-statement
simple queries, notices, notifications to a listening (pinned) client, ParameterStatus in the
middle of a session, and an error inside a pipeline skipping to Sync."""
import time

import psycopg
import pytest


def test_empty_and_multi_statement_queries(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    c = mux.raw().login("postgres", "app")
    assert c.query("") == ([], [])        # EmptyQueryResponse, then ReadyForQuery
    rows, tags = c.query("select 1; select 2, 3")
    assert rows == [["1"], ["2", "3"]] and tags == ["SELECT 1", "SELECT 1"], (rows, tags)
    assert c.scalar("select 4") == "4"


def test_notice_and_notification(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    notices = []
    listener = mux.connect()
    listener.add_notice_handler(lambda d: notices.append(d.message_primary))
    listener.execute("do $$ begin raise notice 'hello from the server'; end $$")
    assert notices == ["hello from the server"]
    listener.execute("listen pgmux_news")          # pins the listener to its server
    got = []
    listener.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
    other = mux.connect()
    other.execute("notify pgmux_news, 'fresh'")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        listener.execute("select 1")      # reading the answer also reads the notification
        time.sleep(0.05)
    assert got == [("pgmux_news", "fresh")]


def test_parameter_status_mid_session(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a = mux.connect()
    a.execute("set timezone to 'Asia/Tokyo'")
    assert a.info.parameter_status("TimeZone") == "Asia/Tokyo"
    b = mux.connect()
    assert b.execute("show timezone").fetchone()[0] != "Asia/Tokyo"
    assert a.execute("show timezone").fetchone()[0] == "Asia/Tokyo"


def test_error_inside_pipeline_skips_to_sync(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    conn = psycopg.connect(mux.dsn("app"), autocommit=True, prepare_threshold=0)
    try:
        with conn.pipeline():
            conn.execute("select %s::int", (1,))
            conn.execute("select 1/%s::int", (0,))
            conn.execute("select %s::int", (3,))
    except psycopg.errors.DivisionByZero:
        pass
    else:
        raise AssertionError("the division by zero must surface")
    assert conn.execute("select %s::int + 1", (41,)).fetchone()[0] == 42


def result_after_ddl(conn, adm, table):
    """Prepare a statement on conn, change the table's columns, run the statement again."""
    sql = f"SELECT * FROM {table} WHERE id = %s"
    assert len(conn.execute(sql, (1,), prepare=True).fetchone()) == 2
    adm.execute(f"ALTER TABLE {table} ADD COLUMN extra int DEFAULT 7")
    try:
        return len(conn.execute(sql, (1,), prepare=True).fetchone())
    except psycopg.Error as e:
        return e.sqlstate


def test_statement_prepared_before_ddl_fails_as_on_postgresql(pgmux, pg):
    """PostgreSQL refuses a prepared statement whose result columns changed (0A000). Through
    pgmux the client gets the same, even when its statement is prepared again on another
    server connection, which would otherwise answer with the new columns."""
    mux = pgmux(settings={"default_pool_size": 2})
    adm = psycopg.connect(pg.dsn("app"), autocommit=True)
    plain = psycopg.connect(pg.dsn("app"), autocommit=True, prepare_threshold=0)
    c = psycopg.connect(mux.dsn("app", "postgres"), autocommit=True, prepare_threshold=0)
    try:
        for table in ("ddl_direct", "ddl_mux"):
            adm.execute(f"DROP TABLE IF EXISTS {table}")
            adm.execute(f"CREATE TABLE {table} (id int, v text)")
            adm.execute(f"INSERT INTO {table} VALUES (1, 'a')")
        assert result_after_ddl(plain, adm, "ddl_direct") == "0A000"
        sql = "SELECT * FROM ddl_mux WHERE id = %s"
        assert len(c.execute(sql, (1,), prepare=True).fetchone()) == 2
        # the server that has the old copy goes away: the next Bind gets a fresh copy
        mux.admin("RECONNECT app")
        adm.execute("ALTER TABLE ddl_mux ADD COLUMN extra int DEFAULT 7")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="cached plan"):
            c.execute(sql, (1,), prepare=True)
        # the session goes on, and a statement prepared now sees the new columns
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert len(c.execute("SELECT *, 1 FROM ddl_mux WHERE id = %s", (1,),
                             prepare=True).fetchone()) == 4
    finally:
        for conn in (c, plain, adm):
            conn.close()
