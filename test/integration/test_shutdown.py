"""Stopping pgmux: SIGINT lets running transactions finish, SIGTERM waits for clients to
leave, a second signal stops at once."""
import signal
import time

import psycopg

import rawpg


def refused(mux):
    """True if a new client cannot get in: refused, closed, or an error at login."""
    try:
        c = rawpg.RawPg("127.0.0.1", mux.port, timeout=3)
    except OSError:
        return True
    try:
        c.startup("postgres", "app")
        return not isinstance(c.error_or_close(3), rawpg.Ready)
    except (OSError, TimeoutError):
        return False
    finally:
        c.close()


def test_sigint_lets_transaction_commit(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction"})
    direct.pg.sql("drop table if exists shut_t; create table shut_t (x int)", dbname="app")
    writer = mux.connect(autocommit=False)
    writer.execute("insert into shut_t values (1)")
    idle = mux.connect()
    idle.execute("select 1")

    mux.signal(signal.SIGINT)
    time.sleep(0.3)
    assert mux.alive(), "pgmux exited with a transaction still open"
    assert refused(mux), "pgmux let a new client in after SIGINT"
    writer.execute("select pg_sleep(0.3)")
    writer.commit()
    assert direct.pg.sql("select count(*) from shut_t", dbname="app") == "1"
    code = mux.wait_exit(5)
    assert code is not None, "pgmux still runs 5 s after the last transaction ended"
    assert code == 0


def test_second_sigint_stops_at_once(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction"})
    direct.pg.sql("drop table if exists shut_t2; create table shut_t2 (x int)", dbname="app")
    writer = mux.connect(autocommit=False)
    writer.execute("insert into shut_t2 values (1)")
    mux.signal(signal.SIGINT)
    time.sleep(0.3)
    assert mux.alive()
    mux.signal(signal.SIGINT)
    assert mux.wait_exit(3) is not None, "pgmux did not exit on the second SIGINT"
    try:
        writer.commit()
        committed = True
    except psycopg.Error:
        committed = False
    assert not committed
    assert direct.pg.sql("select count(*) from shut_t2", dbname="app") == "0"


def test_sigterm_waits_for_clients(pgmux):
    mux = pgmux({"pool_mode": "transaction"})
    a = mux.connect()
    a.execute("select 1")
    mux.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert mux.alive(), "pgmux exited on SIGTERM with a client connected"
    assert refused(mux), "pgmux let a new client in after SIGTERM"
    # the connected client is still served
    assert a.execute("select 'served'").fetchone()[0] == "served"
    a.close()
    code = mux.wait_exit(5)
    assert code is not None, "pgmux still runs 5 s after its last client left"
    assert code == 0


def test_second_sigterm_stops_at_once(pgmux):
    mux = pgmux()
    a = mux.connect()
    a.execute("select 1")
    mux.signal(signal.SIGTERM)
    time.sleep(0.3)
    mux.signal(signal.SIGTERM)
    assert mux.wait_exit(3) is not None, "pgmux did not exit on the second SIGTERM"
