"""Named prepared statements in transaction pooling answer as PostgreSQL itself would.

pgmux renames a client's statements to shared server-side names and prepares them lazily on
whichever server the client gets. These tests send the same exact messages (rawpg) to pgmux and
straight to PostgreSQL and compare the answers, and run drivers that track their statements:
- a named Parse the server rejects fails (it is not answered early unless its text is known to
  parse), and a known text is still prepared without waiting for a server;
- a Parse of a name the client holds is refused (42P05), never a silent replacement;
- SQL DEALLOCATE (simple Query and unnamed Parse, as psycopg 3 sends it) and DISCARD ALL act
  on the client's own names;
- a table dropped and re-created with the same columns does not give a false 0A000.
"""
import struct

import psycopg
import pytest

import rawpg
from conftest import Background, wait_for


# ---- raw protocol helpers ----------------------------------------------------------------------

def cstr(s):
    return s.encode() + b"\0"


def parse(name, sql, types=()):
    return rawpg.message(b"P", cstr(name) + cstr(sql) + struct.pack("!h", len(types)) +
                         b"".join(struct.pack("!I", t) for t in types))


def bind(portal, stmt, params=()):
    body = cstr(portal) + cstr(stmt) + struct.pack("!hh", 0, len(params))
    for p in params:
        body += struct.pack("!i", len(p)) + p.encode()
    return rawpg.message(b"B", body + struct.pack("!h", 0))


def describe(kind, name):
    return rawpg.message(b"D", kind + cstr(name))


def execute(portal=""):
    return rawpg.message(b"E", cstr(portal) + struct.pack("!i", 0))


def query(sql):
    return rawpg.message(b"Q", cstr(sql))


SYNC = rawpg.message(b"S")


def exchange(r, *msgs, ready=1):
    """Send msgs, read up to the ready-th ReadyForQuery; return the answers in short form:
    message type, with the SQLSTATE and message of an error, the tag of a CommandComplete, the
    status of a ReadyForQuery and the values of a DataRow."""
    r.send(b"".join(msgs))
    out = []
    while ready:
        mtype, payload = r.read_msg()
        if mtype == b"E":
            f = rawpg.parse_fields(payload)
            out.append(("E", f.get("C"), f.get("M")))
        elif mtype == b"C":
            out.append(("C", payload.rstrip(b"\0").decode()))
        elif mtype == b"Z":
            out.append(("Z", payload.decode()))
            ready -= 1
        elif mtype == b"D":
            out.append(("D", *rawpg.parse_row(payload)))
        elif mtype in (b"N", b"S"):
            continue
        else:
            out.append(mtype.decode())
    return out


def both(mux, pg):
    """A raw connection through pgmux and one straight to PostgreSQL, both logged in to app."""
    m = mux.raw()
    m.login("postgres", "app")
    d = rawpg.RawPg("127.0.0.1", pg.port)
    d.login("postgres", "app")
    return m, d


def same(m, d, *msgs, ready=1):
    """Both connections give the same answers to msgs; returns them."""
    want = exchange(d, *msgs, ready=ready)
    got = exchange(m, *msgs, ready=ready)
    assert got == want, f"through pgmux {got}, PostgreSQL {want}"
    return got


# ---- 5: a named Parse the server rejects -------------------------------------------------------

def test_named_parse_of_invalid_statement_fails_as_on_postgresql(pgmux, pg):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    m, d = both(mux, pg)
    try:
        for i in range(3):
            got = same(m, d, parse("s", f"SELECT $1::nonexistent_type_{i}"), SYNC)
            assert got[0][:2] == ("E", "42704"), got
            # the failed statement does not exist: its name is free
            got = same(m, d, bind("", "s", ["1"]), execute(), SYNC)
            assert got[0][:2] == ("E", "26000"), got
        assert same(m, d, parse("s", "SELECT $1::int + 1"), SYNC) == ["1", ("Z", "I")]
        assert same(m, d, bind("", "s", ["41"]), execute(), SYNC) == \
            ["2", ("D", "42"), ("C", "SELECT 1"), ("Z", "I")]
        # in a pipeline: the failed Parse skips the rest up to Sync, as on PostgreSQL
        got = same(m, d, parse("t", "SELECT nonexistent_column"), bind("", "t"), execute(),
                   SYNC, parse("t", "SELECT 2"), bind("", "t"), execute(), SYNC, ready=2)
        assert got[0][:2] == ("E", "42703") and got[-2:] == [("C", "SELECT 1"), ("Z", "I")]
    finally:
        m.close()
        d.close()


def test_parse_of_a_name_in_use_fails_as_on_postgresql(pgmux, pg):
    """A second Parse of a name the client holds is refused (42P05) and keeps the first
    statement, whether the text is new or already known to pgmux, with or without a server."""
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    m, d = both(mux, pg)
    try:
        assert same(m, d, parse("s", "SELECT 1"), SYNC) == ["1", ("Z", "I")]
        for text in ("SELECT 2", "SELECT 1"):
            got = same(m, d, parse("s", text), bind("", "s"), execute(), SYNC)
            assert got[0][:2] == ("E", "42P05"), got
        assert same(m, d, bind("", "s"), execute(), SYNC)[:2] == ["2", ("D", "1")]
        # inside a transaction, the error aborts it as on PostgreSQL
        got = same(m, d, query("BEGIN"), parse("s", "SELECT 3"), SYNC, query("COMMIT"), ready=3)
        assert ("E", "42P05", 'prepared statement "s" already exists') in got, got
    finally:
        m.close()
        d.close()


def test_pqprepare_of_invalid_sql_reports_the_error(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    conn = mux.connect()
    res = conn.pgconn.prepare(b"bad", b"SELECT FROM WHERE")
    assert res.status == psycopg.pq.ExecStatus.FATAL_ERROR
    assert res.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"42601"
    res = conn.pgconn.prepare(b"bad", b"SELECT $1::int * 2")
    assert res.status == psycopg.pq.ExecStatus.COMMAND_OK, res.error_message
    res = conn.pgconn.exec_prepared(b"bad", [b"21"])
    assert res.get_value(0, 0) == b"42"


def test_known_statement_is_prepared_without_waiting_for_a_server(pgmux):
    """The early answer stays for a text some server already parsed: a client that prepares
    while its own other connection holds the only server must not wait for it."""
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    first = mux.raw()
    first.login("postgres", "app")
    assert exchange(first, parse("k", "SELECT $1::int + 10"), SYNC) == ["1", ("Z", "I")]
    holder = mux.connect(autocommit=False)
    holder.execute("SELECT 1")                     # holds the only server, in a transaction
    r = mux.raw()
    r.login("postgres", "app")
    assert exchange(r, parse("mine", "SELECT $1::int + 10"), SYNC) == ["1", ("Z", "I")]
    # an unknown text needs a server: it waits for the holder
    waiter = Background(exchange, r, parse("new", "SELECT $1::int + 20"), SYNC)
    wait_for(lambda: mux.pool()["cl_waiting"] == 1, 10, what="the Parse to wait for a server")
    holder.commit()
    assert waiter.result(10) == ["1", ("Z", "I")]
    got = exchange(r, bind("", "mine", ["1"]), execute(), bind("", "new", ["1"]), execute(), SYNC)
    assert got == ["2", ("D", "11"), ("C", "SELECT 1"), "2", ("D", "21"), ("C", "SELECT 1"),
                   ("Z", "I")]


# ---- 6: DEALLOCATE and DISCARD ALL of renamed statements ---------------------------------------

def test_deallocate_by_simple_query_answers_as_postgresql(pgmux, pg):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    m, d = both(mux, pg)
    try:
        same(m, d, parse("s1", "SELECT 1"), parse("S2", "SELECT 2"), SYNC)
        assert same(m, d, query("DEALLOCATE s1")) == [("C", "DEALLOCATE"), ("Z", "I")]
        assert same(m, d, bind("", "s1"), execute(), SYNC)[0][:2] == ("E", "26000")
        assert same(m, d, query("deallocate s1;"))[0][:2] == ("E", "26000")
        assert same(m, d, query('DEALLOCATE PREPARE "S2"')) == [("C", "DEALLOCATE"), ("Z", "I")]
        same(m, d, parse("s3", "SELECT 3"), parse("s4", "SELECT 4"), SYNC)
        assert same(m, d, query("DEALLOCATE ALL")) == [("C", "DEALLOCATE ALL"), ("Z", "I")]
        assert same(m, d, bind("", "s4"), execute(), SYNC)[0][:2] == ("E", "26000")
        # inside a transaction: not undone by ROLLBACK; an unknown name aborts it
        same(m, d, parse("s5", "SELECT 5"), parse("s6", "SELECT 6"), SYNC)
        assert same(m, d, query("BEGIN")) == [("C", "BEGIN"), ("Z", "T")]
        assert same(m, d, query("DEALLOCATE s5")) == [("C", "DEALLOCATE"), ("Z", "T")]
        assert same(m, d, query("DEALLOCATE nosuch"))[-1] == ("Z", "E")
        assert same(m, d, query("DEALLOCATE s6"))[0][:2] == ("E", "25P02")
        assert same(m, d, query("ROLLBACK")) == [("C", "ROLLBACK"), ("Z", "I")]
        assert same(m, d, bind("", "s5"), execute(), SYNC)[0][:2] == ("E", "26000")
        assert same(m, d, bind("", "s6"), execute(), SYNC)[1:] == [("D", "6"), ("C", "SELECT 1"),
                                                                  ("Z", "I")]
        # pgmux's own server-side names are not the client's
        assert same(m, d, query("DEALLOCATE pgmux_1"))[0][:2] == ("E", "26000")
        assert same(m, d, bind("", "s6"), execute(), SYNC)[-1] == ("Z", "I")
        # pipelined behind other queries, in a transaction or not: answered in order
        same(m, d, parse("s7", "SELECT 7"), SYNC)
        for _ in range(5):
            assert same(m, d, query("SELECT pg_sleep(0.01)"), query("DEALLOCATE s7"),
                        query("DEALLOCATE s7"), query("BEGIN"), query("SELECT 1"),
                        query("DEALLOCATE s7"), query("ROLLBACK"), ready=7)[-1] == ("Z", "I")
            same(m, d, parse("s7", "SELECT 7"), SYNC)
    finally:
        m.close()
        d.close()


def test_deallocate_of_a_pinned_clients_sql_prepared_statement(pgmux, pg):
    """SQL PREPARE pins the client to its server, where its DEALLOCATE goes too."""
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    m, d = both(mux, pg)
    try:
        same(m, d, parse("p1", "SELECT 1"), SYNC)
        same(m, d, query("PREPARE sq AS SELECT 2"))
        assert same(m, d, query("EXECUTE sq"))[1:] == [("D", "2"), ("C", "SELECT 1"), ("Z", "I")]
        assert same(m, d, query("DEALLOCATE sq")) == [("C", "DEALLOCATE"), ("Z", "I")]
        assert same(m, d, query("EXECUTE sq"))[0][:2] == ("E", "26000")
        assert same(m, d, query("DEALLOCATE p1")) == [("C", "DEALLOCATE"), ("Z", "I")]
        same(m, d, query("PREPARE sq AS SELECT 3"), parse("p2", "SELECT 4"), SYNC, ready=2)
        assert same(m, d, query("DEALLOCATE ALL")) == [("C", "DEALLOCATE ALL"), ("Z", "I")]
        assert same(m, d, query("EXECUTE sq"))[0][:2] == ("E", "26000")
        assert same(m, d, bind("", "p2"), execute(), SYNC)[0][:2] == ("E", "26000")
        assert same(m, d, parse("p2", "SELECT 5"), bind("", "p2"), execute(), SYNC)[-3:] == \
            [("D", "5"), ("C", "SELECT 1"), ("Z", "I")]
    finally:
        m.close()
        d.close()


def test_deallocate_by_unnamed_parse_answers_as_postgresql(pgmux, pg):
    """psycopg 3 and libpq's PQexecParams send DEALLOCATE as Parse/Bind/Describe/Execute/Sync."""
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    m, d = both(mux, pg)

    def extended(sql):
        return (parse("", sql), bind("", ""), describe(b"P", ""), execute(), SYNC)

    try:
        same(m, d, parse("a", "SELECT 1"), parse("b", "SELECT 2"), parse("c", "SELECT 3"), SYNC)
        assert same(m, d, *extended("DEALLOCATE a")) == \
            ["1", "2", "n", ("C", "DEALLOCATE"), ("Z", "I")]
        got = same(m, d, *extended("DEALLOCATE a"))
        assert got[:2] == ["1", "2"] and got[3][:2] == ("E", "26000") and got[-1] == ("Z", "I")
        # an error skips the rest of the pipeline
        got = same(m, d, *extended("DEALLOCATE a")[:-1], bind("", "b"), execute(), SYNC)
        assert got[3][:2] == ("E", "26000") and len(got) == 5
        assert same(m, d, parse("", "DEALLOCATE b"), describe(b"S", ""), bind("", ""),
                    execute(), bind("", "c"), execute(), SYNC) == \
            ["1", "t", "n", "2", ("C", "DEALLOCATE"), "2", ("D", "3"), ("C", "SELECT 1"),
             ("Z", "I")]
        assert same(m, d, *extended("DEALLOCATE ALL")) == \
            ["1", "2", "n", ("C", "DEALLOCATE ALL"), ("Z", "I")]
        assert same(m, d, bind("", "c"), execute(), SYNC)[0][:2] == ("E", "26000")
        # in a transaction, a failed DEALLOCATE aborts it
        same(m, d, parse("e", "SELECT 5"), SYNC)
        same(m, d, query("BEGIN"))
        assert same(m, d, *extended("DEALLOCATE e"))[-1] == ("Z", "T")
        assert same(m, d, *extended("DEALLOCATE e"))[-1] == ("Z", "E")
        assert same(m, d, query("ROLLBACK")) == [("C", "ROLLBACK"), ("Z", "I")]
    finally:
        m.close()
        d.close()


def test_discard_all_forgets_the_clients_statements(pgmux, pg):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    m, d = both(mux, pg)
    try:
        same(m, d, parse("x", "SELECT 1"), SYNC)
        assert same(m, d, query("DISCARD ALL")) == [("C", "DISCARD ALL"), ("Z", "I")]
        assert same(m, d, bind("", "x"), execute(), SYNC)[0][:2] == ("E", "26000")
        assert same(m, d, parse("x", "SELECT 2"), bind("", "x"), execute(), SYNC) == \
            ["1", "2", ("D", "2"), ("C", "SELECT 1"), ("Z", "I")]
        assert same(m, d, parse("", "DISCARD ALL"), bind("", ""), execute(), SYNC) == \
            ["1", "2", ("C", "DISCARD ALL"), ("Z", "I")]
        assert same(m, d, bind("", "x"), execute(), SYNC)[0][:2] == ("E", "26000")
        # another client's statements on the same server still work
        other = psycopg.connect(mux.dsn("app"), autocommit=True, prepare_threshold=0)
        for i in range(3):
            assert other.execute("SELECT %s::int", (i,), prepare=True).fetchone() == (i,)
            same(m, d, query("DISCARD ALL"))
        other.close()
    finally:
        m.close()
        d.close()


@pytest.mark.parametrize("autocommit", [True, False])
def test_psycopg_evicts_its_auto_prepared_statements(pgmux, autocommit):
    """psycopg 3 keeps at most prepared_max statements and drops the oldest with DEALLOCATE."""
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    conns = [psycopg.connect(mux.dsn("app"), autocommit=autocommit, prepare_threshold=0)
             for _ in range(3)]
    try:
        for c in conns:
            c.prepared_max = 3
        for rnd in range(3):
            for i in range(12):
                for c in conns:
                    sql = f"SELECT %s::int + {i}"
                    assert c.execute(sql, (rnd,)).fetchone() == (rnd + i,)
                    if not autocommit:
                        c.commit()      # three transactions at once would need three servers
            for c in conns:
                with c.pipeline():
                    cur = [c.execute(f"SELECT %s::int * {i}", (2,)) for i in range(8)]
                assert [x.fetchone()[0] for x in cur] == [2 * i for i in range(8)]
                if not autocommit:
                    c.commit()
    finally:
        for c in conns:
            c.close()


# ---- 7: the result-shape check ----------------------------------------------------------------

def test_table_recreated_with_the_same_columns_is_no_plan_change(pgmux, pg):
    """PostgreSQL re-plans a statement whose table was dropped and created again with the same
    columns, and answers; so must pgmux when it prepares the statement on another server (the
    table's OID and the columns' numbers changed, their names and types did not)."""
    mux = pgmux(settings={"default_pool_size": 2})
    adm = psycopg.connect(pg.dsn("app"), autocommit=True)
    plain = psycopg.connect(pg.dsn("app"), autocommit=True, prepare_threshold=0)
    c = psycopg.connect(mux.dsn("app", "postgres"), autocommit=True, prepare_threshold=0)
    sql = "SELECT * FROM recreated WHERE id = %s"
    try:
        for rnd in range(3):
            adm.execute("DROP TABLE IF EXISTS recreated")
            adm.execute("CREATE TABLE recreated (id int, v text)")
            adm.execute("INSERT INTO recreated VALUES (1, 'a')")
            for conn in (plain, c):
                assert conn.execute(sql, (1,), prepare=True).fetchone() == (1, "a")
            # a column dropped before: other attribute numbers, same result columns
            adm.execute("DROP TABLE recreated")
            adm.execute("CREATE TABLE recreated (gone int, id int, v text)")
            adm.execute("ALTER TABLE recreated DROP COLUMN gone")
            adm.execute("INSERT INTO recreated VALUES (1, 'b')")
            mux.admin("RECONNECT app")             # the next Bind runs on a new copy
            for conn in (plain, c):
                assert conn.execute(sql, (1,), prepare=True).fetchone() == (1, "b")
    finally:
        for conn in (c, plain, adm):
            conn.close()
        with psycopg.connect(pg.dsn("app"), autocommit=True) as a:
            a.execute("DROP TABLE IF EXISTS recreated")
