"""The rest of PgBouncer's console and signals: the log file reopened for logrotate (SIGUSR2,
SIGHUP), KILL_CLIENT, SHUTDOWN WAIT_FOR_CLIENTS / WAIT_FOR_SERVERS, SHOW STATE, SHOW DNS_HOSTS,
SHOW DNS_ZONES, SHOW SOCKETS and SHOW ACTIVE_SOCKETS."""
import os
import signal

import psycopg
import pytest

import rawpg
from conftest import wait_for


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def logins(text, database):
    """The "login ok" lines of clients of database in a log text."""
    return [line for line in text.splitlines()
            if "login ok" in line and f" {database}/postgres@" in line]


@pytest.mark.parametrize("sig", [signal.SIGUSR2, signal.SIGHUP])
def test_log_reopened_after_rename(pgmux, sig):
    mux = pgmux()
    mux.connect("app").execute("select 1")
    wait_for(lambda: logins(read(mux.log_path), "app"), what="the first login in the log")

    rotated = mux.log_path + ".1"
    os.rename(mux.log_path, rotated)
    mux.signal(sig)
    wait_for(lambda: "log file" in read(mux.log_path) and "reopened" in read(mux.log_path),
             what="the reopened log file")
    mux.connect("other").execute("select 1")
    wait_for(lambda: logins(read(mux.log_path), "other"), what="the second login in the new log")

    old, new = read(rotated), read(mux.log_path)
    assert logins(old, "app") and not logins(old, "other"), old
    assert not logins(new, "app"), new
    assert mux.alive()


def client_ptr(mux, app_name):
    rows = [r for r in mux.admin("SHOW CLIENTS") if r["application_name"] == app_name]
    assert len(rows) == 1, rows
    return rows[0]["ptr"]


def test_kill_client_closes_that_client_only(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction"})
    victim = mux.raw().login("postgres", "app", application_name="victim")
    victim.query("begin; select 1")       # holds a server in its transaction
    other = mux.connect(application_name="bystander")
    other.execute("select 1")
    assert mux.pool("app")["sv_active"] == 1

    mux.admin("KILL_CLIENT " + client_ptr(mux, "victim"))
    got = victim.error_or_close(5)
    assert isinstance(got, rawpg.PgError) and got.sqlstate == "57P01", got
    assert victim.is_closed(3)
    wait_for(lambda: not [r for r in mux.admin("SHOW CLIENTS")
                          if r["application_name"] == "victim"], what="the client gone")
    # its server does not stay held by a transaction nobody can end
    wait_for(lambda: mux.pool("app")["sv_active"] == 0, what="the victim's server released")
    assert other.execute("select 'still here'").fetchone()[0] == "still here"
    assert client_ptr(mux, "bystander")


def test_kill_client_unknown_id(pgmux):
    mux = pgmux()
    mux.connect(application_name="bystander").execute("select 1")
    with pytest.raises(rawpg.PgError) as e:
        mux.admin("KILL_CLIENT 0x1")
    assert e.value.sqlstate == "42704"
    with pytest.raises(rawpg.PgError) as e:
        mux.admin("KILL_CLIENT")
    assert e.value.sqlstate == "42601"
    assert client_ptr(mux, "bystander")


def refused(mux):
    """True if a new client cannot log in."""
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


def admin_shutdown(mux, command):
    mux.expect_exit = True
    try:
        mux.admin(command)
    except rawpg.Closed:
        pass        # the console may be closed before the answer is read


def test_shutdown_wait_for_clients(pgmux):
    mux = pgmux({"pool_mode": "transaction"})
    a = mux.connect(autocommit=False)
    a.execute("select 1")
    a.commit()
    admin_shutdown(mux, "SHUTDOWN WAIT_FOR_CLIENTS")
    wait_for(lambda: refused(mux), what="new clients refused")
    # an idle client outside a transaction is kept and still served
    assert a.execute("select 'served'").fetchone()[0] == "served"
    a.commit()
    assert mux.alive(), "pgmux exited with a client connected"
    a.close()
    assert mux.wait_exit(5) == 0, "pgmux did not exit 5 s after its last client left"


def test_shutdown_wait_for_servers(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction"})
    direct.pg.sql("drop table if exists shut_adm; create table shut_adm (x int)", dbname="app")
    writer = mux.connect(autocommit=False)
    writer.execute("insert into shut_adm values (1)")
    idle = mux.connect()
    idle.execute("select 1")
    admin_shutdown(mux, "SHUTDOWN WAIT_FOR_SERVERS")
    wait_for(lambda: refused(mux), what="new clients refused")
    # the idle client is closed at once; the transaction may finish
    with pytest.raises(psycopg.OperationalError):
        idle.execute("select 1")
    assert mux.alive(), "pgmux exited with a transaction still open"
    writer.commit()
    assert direct.pg.sql("select count(*) from shut_adm", dbname="app") == "1"
    assert mux.wait_exit(5) == 0, "pgmux did not exit 5 s after the last transaction ended"


def test_show_state_follows_pause(pgmux):
    mux = pgmux()
    assert mux.admin("SHOW STATE") == [{"active": "yes", "paused": "no", "suspended": "no"}]
    mux.admin("PAUSE")
    assert mux.admin("SHOW STATE") == [{"active": "no", "paused": "yes", "suspended": "no"}]
    mux.admin("RESUME")
    assert mux.admin("SHOW STATE") == [{"active": "yes", "paused": "no", "suspended": "no"}]


def test_show_dns_hosts_lists_the_cache(pgmux, pg):
    mux = pgmux(databases={"app": f"host=127.0.0.1 port={pg.port} dbname=app",
                           "named": f"host=localhost port={pg.port} dbname=app"})
    mux.connect("app").execute("select 1")
    assert mux.admin("SHOW DNS_HOSTS") == []      # an address is never looked up
    mux.connect("named").execute("select 1")
    rows = mux.admin("SHOW DNS_HOSTS")
    assert [r["hostname"] for r in rows] == ["localhost"], rows
    assert rows[0]["addrs"] in ("127.0.0.1", "::1"), rows
    assert 0 <= int(rows[0]["ttl"]) <= 15, rows      # dns_max_ttl's default caps it
    assert mux.admin("SHOW DNS_ZONES") == []
