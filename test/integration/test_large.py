"""Big data through pgmux: a ~200 MB result and a ~30 MB query stream through with bounded
memory, and COPY in both directions in transaction mode."""
import psycopg
import pytest

from pgcluster import SANITIZED

# What relaying may add to pgmux's resident memory: its buffers, never the data. Measured as
# growth from before the transfer, since a sanitizer build starts far larger (shadow memory);
# ASan also holds freed memory back in its quarantine (up to 256 MB), so its build gets more room:
# there the tests look for memory errors, not memory use.
RSS_GROWTH_LIMIT_KB = (64 if SANITIZED else 8) * 1024


@pytest.mark.timeout(120)
def test_large_result_streams_with_bounded_memory(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    # a slow reader: small receive buffer, and nothing read for the first second
    c = mux.raw(timeout=10, rcvbuf=64 * 1024).login("postgres", "app")
    before = mux.status("VmRSS")
    rows, nbytes, tag = c.drain_query(
        "select repeat('x', 1000) from generate_series(1, 200000)",
        timeout=100, pause_after_send=1.0)
    assert rows == 200000 and tag == "SELECT 200000"
    assert nbytes == 200000 * (2 + 4 + 1000)
    assert c.scalar("select 'after'") == "after"
    growth = mux.status("VmHWM") - before
    assert growth < RSS_GROWTH_LIMIT_KB, f"pgmux grew by {growth} kB while relaying 200 MB"


@pytest.mark.timeout(60)
def test_large_query_streams_with_bounded_memory(pgmux):
    mux = pgmux({"pool_mode": "transaction"})
    size = 30 * 1000 * 1000
    before = mux.status("VmRSS")
    with mux.connect() as conn:
        sql = "select length('" + "y" * size + "')"
        assert conn.execute(sql).fetchone()[0] == size
    growth = mux.status("VmHWM") - before
    assert growth < RSS_GROWTH_LIMIT_KB, f"pgmux grew by {growth} kB while relaying a 30 MB query"


def test_copy_in_and_out(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    direct.pg.sql("drop table if exists copy_t; create table copy_t (id int, t text)",
                  dbname="app")
    n = 20000
    with mux.connect() as conn:
        with conn.cursor().copy("COPY copy_t FROM STDIN") as cp:
            for i in range(n):
                cp.write_row((i, f"row {i}"))
        assert direct.pg.sql("select count(*), sum(id) from copy_t", dbname="app") == \
            f"{n}|{n * (n - 1) // 2}"
        out = []
        with conn.cursor().copy("COPY (select id, t from copy_t order by id) TO STDOUT") as cp:
            for row in cp.rows():
                out.append(row)
        assert len(out) == n
        assert out[0] == ("0", "row 0") and out[-1] == (str(n - 1), f"row {n - 1}")
        # the server went back to the pool in a clean state
        assert conn.execute("select 'ok'").fetchone()[0] == "ok"
    r = mux.psql("-c", "\\copy copy_t to stdout")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == n


def test_copy_error_keeps_session(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    direct.pg.sql("drop table if exists copy_e; create table copy_e (id int)", dbname="app")
    conn = mux.connect()
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        with conn.cursor().copy("COPY copy_e FROM STDIN") as cp:
            cp.write(b"1\n2\nnot a number\n4\n")
    assert conn.execute("select 'same session'").fetchone()[0] == "same session"
    # the only server is usable by someone else, outside any transaction
    with mux.connect() as other:
        assert other.execute("select count(*) from copy_e").fetchone()[0] == 0
    assert not direct.backends("app", "idle in transaction")
    # a client that gives up in the middle of COPY FROM STDIN
    with pytest.raises(psycopg.errors.QueryCanceled):
        with conn.cursor().copy("COPY copy_e FROM STDIN") as cp:
            cp.write(b"5\n")
            raise psycopg.errors.QueryCanceled("client gave up")
    assert conn.execute("select count(*) from copy_e").fetchone()[0] == 0
