"""The admin console: SHOW output against what is really connected, PAUSE/RESUME, KILL,
DISABLE/ENABLE, RECONNECT, SET, access control."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import psycopg
import pytest

import rawpg
from conftest import PASSWORDS, Background, assert_error, wait_for, write_userlist

SV_STATES = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")


def test_show_pools_clients_servers_match_reality(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 3})
    idle = [mux.connect() for _ in range(3)]
    for c in idle:
        c.execute("select 1")
    in_txn = mux.connect(autocommit=False)
    txn_pid = in_txn.execute("select pg_backend_pid()").fetchone()[0]   # holds its server
    others = [mux.connect("other") for _ in range(2)]
    for c in others:
        c.execute("select 1")

    pool = mux.pool("app")
    assert pool["cl_active"] == 4 and pool["cl_waiting"] == 0, pool
    assert pool["sv_active"] == 1, pool
    app_pids = {r[0] for r in direct.backends("app")}
    assert sum(pool[k] for k in SV_STATES) == len(app_pids), (pool, app_pids)
    assert mux.pool("other")["cl_active"] == 2

    clients = mux.admin("SHOW CLIENTS")
    assert len([c for c in clients if c["database"] == "app"]) == 4
    assert len([c for c in clients if c["database"] == "other"]) == 2
    # every client came over plain TCP to the listening port
    for c in clients:
        assert (c["local_addr"], int(c["local_port"]), c["tls"]) == ("127.0.0.1", mux.port, ""), c

    servers = [s for s in mux.admin("SHOW SERVERS") if s["database"] == "app"]
    assert {int(s["remote_pid"]) for s in servers} == app_pids
    active = [s for s in servers if s["state"] == "active"]
    assert [int(s["remote_pid"]) for s in active] == [txn_pid]
    for s in servers:
        # pgmux's own end of the connection: an ephemeral port, not the server's
        assert s["local_addr"] == "127.0.0.1" and int(s["local_port"]) not in (0, int(s["port"])), s
        assert s["tls"] == "", s
    local_ports = {int(r[0]) for r in direct.query(
        "select client_port from pg_stat_activity where datname = 'app' and client_port > 0")}
    assert {int(s["local_port"]) for s in servers} <= local_ports
    other_pids = {r[0] for r in direct.backends("other")}
    assert {int(s["remote_pid"]) for s in mux.admin("SHOW SERVERS")
            if s["database"] == "other"} == other_pids

    # the transaction ends, two clients leave: the numbers follow
    in_txn.commit()
    idle[0].close()
    idle[1].close()
    wait_for(lambda: (lambda p: p["cl_active"] == 2 and p["sv_active"] == 0)(mux.pool("app")),
             3, what="SHOW POOLS to count 2 clients and no active server")
    assert len([c for c in mux.admin("SHOW CLIENTS") if c["database"] == "app"]) == 2


def test_show_commands(pgmux, pg):
    mux = pgmux({"default_pool_size": 4})
    with mux.connect() as conn:
        for _ in range(5):
            conn.execute("select 1")
    assert mux.admin("SHOW HELP") is not None
    version = mux.admin("SHOW VERSION")
    assert len(version) == 1 and "pgmux" in str(list(version[0].values())[0]).lower()
    config = {r["key"]: r["value"] for r in mux.admin("SHOW CONFIG")}
    assert config["default_pool_size"] == "4"
    assert config["pool_mode"] == "transaction"
    dbs = {r["name"]: r for r in mux.admin("SHOW DATABASES")}
    assert {"app", "other", "postgres"} <= set(dbs)
    assert int(dbs["app"]["port"]) == pg.port and dbs["app"]["database"] == "app"
    assert int(dbs["app"]["pool_size"]) == 4
    stats = {r["database"]: r for r in mux.admin("SHOW STATS")}
    assert int(stats["app"]["total_xact_count"]) >= 5
    assert int(stats["app"]["total_query_count"]) >= 5
    for cmd in ("SHOW STATS_TOTALS", "SHOW STATS_AVERAGES", "SHOW LISTS", "SHOW USERS",
                "SHOW MEM", "SHOW POOLS", "SHOW CLIENTS", "SHOW SERVERS"):
        assert isinstance(mux.admin(cmd), list), cmd
    lists = {r["list"]: int(r["items"]) for r in mux.admin("SHOW LISTS")}
    assert lists.get("databases", 0) >= 3


def test_admin_with_psql_and_psycopg(pgmux):
    mux = pgmux()
    with psycopg.connect(mux.dsn(mux.admin_db), autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute("SHOW POOLS")
        assert "cl_waiting" in [d.name for d in cur.description]
        assert conn.execute("SHOW VERSION").fetchone()[0]
    r = mux.psql("-c", "SHOW POOLS", dbname=mux.admin_db)
    assert r.returncode == 0, r.stderr
    r = mux.psql("-c", "SHOW NO_SUCH_THING", dbname=mux.admin_db)
    assert r.returncode != 0 and "ERROR" in r.stderr


def test_admin_set_changes_config(pgmux):
    mux = pgmux({"default_pool_size": 4})
    mux.admin("SET default_pool_size = 2")
    config = {r["key"]: r["value"] for r in mux.admin("SHOW CONFIG")}
    assert config["default_pool_size"] == "2"
    with pytest.raises(rawpg.PgError):
        mux.admin("SET no_such_key = 1")
    # the console is still usable after an error
    assert mux.admin("SHOW VERSION")


def test_admin_set_auth_file_reads_it(pgmux):
    """SET auth_file reads the new file as RELOAD does; a file that cannot be read changes
    nothing."""
    mux = pgmux({"auth_type": "trust"}, start=False)
    write_userlist(mux, {"postgres": "x", "bob": PASSWORDS["bob"]})
    mux.start()
    mux.admin("SHOW VERSION")
    with pytest.raises(psycopg.OperationalError):
        mux.connect(user="carol", password="")
    path = os.path.join(mux.basedir, "userlist2.txt")
    with open(path, "w") as f:
        f.write(f'"postgres" "x"\n"carol" "{PASSWORDS["carol"]}"\n')
    mux.admin(f"SET auth_file = '{path}'")
    with mux.connect(user="carol", password="") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "carol"
    with pytest.raises(psycopg.OperationalError):
        mux.connect(user="bob", password="")
    with pytest.raises(rawpg.PgError):
        mux.admin(f"SET auth_file = '{mux.basedir}/missing.txt'")
    config = {r["key"]: r["value"] for r in mux.admin("SHOW CONFIG")}
    assert config["auth_file"] == path
    with mux.connect(user="carol", password="") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "carol"


def test_admin_set_pool_mode_reaches_existing_pools(pgmux):
    """A pool already in use follows SET pool_mode: its next unit of work keeps the server for
    the session; a bad value changes nothing."""
    mux = pgmux({"pool_mode": "transaction"})

    def pool():
        return next(r for r in mux.admin("SHOW POOLS") if r["database"] == "app")
    with mux.connect() as conn:
        conn.execute("select 1")
        assert pool()["pool_mode"] == "transaction"
        assert pool()["sv_active"] == "0"
        mux.admin("SET pool_mode = session")
        with pytest.raises(rawpg.PgError):
            mux.admin("SET pool_mode = sometimes")
        assert pool()["pool_mode"] == "session"
        conn.execute("select 1")
        assert pool()["sv_active"] == "1"


def test_admin_console_refuses_other_users(pgmux):
    mux = pgmux({"admin_users": "postgres"})
    c = mux.raw()
    with pytest.raises(rawpg.PgError) as ei:
        c.login("alice", mux.admin_db)
    assert_error(ei.value, "not_allowed")


def test_pause_resume(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2})
    a = mux.connect()
    holder = mux.connect(autocommit=False)
    holder.execute("select 1")
    # PAUSE waits for the running transaction to end
    pause = Background(mux.admin, "PAUSE")
    time.sleep(0.5)
    assert not pause.done(), "PAUSE returned while a transaction was still open"
    holder.commit()
    pause.result(5)
    # while paused, queries wait
    job = Background(lambda: a.execute("select 'after'").fetchone()[0])
    time.sleep(0.6)
    assert not job.done(), "a query ran while pgmux was paused"
    assert mux.pool("app")["cl_waiting"] == 1
    mux.admin("RESUME")
    assert job.result(3) == "after"


def test_pause_one_database(pgmux):
    mux = pgmux({"pool_mode": "transaction"})
    a, o = mux.connect("app"), mux.connect("other")
    mux.admin("PAUSE app")
    job = Background(lambda: a.execute("select 'app'").fetchone()[0])
    assert o.execute("select 'other'").fetchone()[0] == "other"
    time.sleep(0.4)
    assert not job.done()
    mux.admin("RESUME app")
    assert job.result(3) == "app"


def test_disable_enable(pgmux):
    mux = pgmux()
    connected = mux.connect()
    connected.execute("select 1")
    mux.admin("DISABLE app")
    c = mux.raw()
    c.startup("postgres", "app")
    err = c.error_or_close(3)
    assert isinstance(err, rawpg.PgError), repr(err)
    assert_error(err, "database_disabled")
    assert err.message == 'database "app" is disabled'        # PgBouncer's words
    assert mux.connect("other").execute("select 1").fetchone()[0] == 1
    mux.admin("ENABLE app")
    assert mux.connect("app").execute("select 1").fetchone()[0] == 1


def test_kill_database(pgmux, direct):
    mux = pgmux()
    a = mux.connect("app")
    o = mux.connect("other")
    a.execute("select 1")
    o.execute("select 1")
    mux.admin("KILL app")
    with pytest.raises(psycopg.OperationalError):
        a.execute("select 1")
    assert o.execute("select 2").fetchone()[0] == 2
    wait_for(lambda: not direct.backends("app"), 3, what="app's servers to be closed")
    mux.admin("RESUME app")
    assert mux.connect("app").execute("select 3").fetchone()[0] == 3


def test_reconnect_replaces_servers(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a = mux.connect()
    old = a.execute("select pg_backend_pid()").fetchone()[0]
    mux.admin("RECONNECT app")
    mux.admin("WAIT_CLOSE app")
    # pgmux has closed its connection; the backend process exits a moment later
    wait_for(lambda: old not in [r[0] for r in direct.backends("app")], 3,
             what="the old backend to exit")
    assert a.execute("select pg_backend_pid()").fetchone()[0] != old


def test_admin_shutdown(pgmux):
    mux = pgmux()
    mux.expect_exit = True
    try:
        mux.admin("SHUTDOWN")
    except rawpg.Closed:
        pass        # the console may be closed before the answer
    assert mux.wait_exit(5) is not None, "pgmux still runs 5 s after SHUTDOWN"


# Run as another OS user: connect to the console over the unix socket, print the outcome.
OTHER_UID_LOGIN = """
import sys, psycopg
try:
    psycopg.connect(host=sys.argv[1], port=sys.argv[2], dbname="pgmux", user="pgmux",
                    password="x", connect_timeout=5).close()
    print("LOGGED IN")
except psycopg.Error as e:
    print("REFUSED", e)
"""


def test_own_os_user_reaches_console_over_unix_socket(pgmux):
    """As PgBouncer: the OS user running pgmux logs in to the console over the unix socket as
    user pgmux (or pgbouncer) without a password, whatever auth_type says; another name, TCP
    and other OS users authenticate as usual."""
    sockdir = tempfile.mkdtemp(prefix="pgmux-sock-")
    os.chmod(sockdir, 0o755)        # reachable for the other OS user below
    try:
        mux = pgmux({"auth_type": "md5", "unix_socket_dir": sockdir, "admin_users": ""})
        for name in ("pgmux", "pgbouncer"):
            with psycopg.connect(host=sockdir, port=mux.port, dbname=name, user=name,
                                 autocommit=True, connect_timeout=5) as conn:
                assert conn.execute("SHOW VERSION").fetchone()[0].startswith("pgmux ")
                assert conn.execute("SHOW POOLS").fetchall() is not None
                conn.execute("PAUSE app")           # every command, not only SHOW
                conn.execute("RESUME app")
        for host, user in ((sockdir, "postgres"), ("127.0.0.1", "pgmux")):
            with pytest.raises(psycopg.OperationalError) as ei:
                psycopg.connect(host=host, port=mux.port, dbname="pgmux", user=user,
                                password="x", connect_timeout=5)
            assert "password authentication failed" in str(ei.value)
        if os.geteuid() != 0:
            pytest.skip("switching to another OS user needs root")
        r = subprocess.run(["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                            "--", sys.executable, "-c", OTHER_UID_LOGIN, sockdir, str(mux.port)],
                           capture_output=True, text=True, timeout=30, cwd="/")
        assert r.stdout.startswith("REFUSED") and "password authentication failed" in r.stdout, \
            r.stdout + r.stderr
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


def test_secrets_are_masked_for_stats_and_admin_users(pgmux, pg):
    """A password in the config never leaves pgmux: SHOW CONFIG shows it masked to the read-only
    stats users (and to admins), and a bad entry holding password= is not echoed by RELOAD's
    error or the log."""
    secret = "S3cretHealthPw"
    mux = pgmux({"stats_users": "watcher", "health_check_password": secret})
    with rawpg.RawPg("127.0.0.1", mux.port) as c:
        c.login("watcher", mux.admin_db)
        rows, _ = c.query("SHOW CONFIG")
    shown = {r[0]: r[1] for r in rows}
    assert shown["health_check_password"] == "********"
    assert secret not in repr(rows)
    admin_view = {r["key"]: r["value"] for r in mux.admin("SHOW CONFIG")}
    assert admin_view["health_check_password"] == "********"
    assert admin_view["auth_file"] != "********"       # only secrets are masked

    db_secret = "Hunter2DbSecret"
    good = open(mux.config_path).read()
    with open(mux.config_path, "w") as f:
        f.write(good.replace("[databases]", "[databases]\nbroken = host=127.0.0.1 =oops "
                             f"dbname=app password={db_secret}"))
    with pytest.raises(rawpg.PgError) as refused:
        mux.admin("RELOAD")
    assert "broken" in refused.value.message and db_secret not in refused.value.message
    assert db_secret not in mux.log()
    assert mux.alive()


def test_console_refuses_a_huge_command_on_its_header(pgmux):
    """A console command is a line: a read-only stats user cannot make pgmux hold a query of
    max_packet_size (it is refused on its header, before any of it is buffered)."""
    mux = pgmux({"stats_users": "watcher"})
    with rawpg.RawPg("127.0.0.1", mux.port, timeout=5) as c:
        c.login("watcher", mux.admin_db)
        c.send(b"Q" + (100 << 20).to_bytes(4, "big") + b"SHOW ")
        result = c.error_or_close(5)
    assert isinstance(result, rawpg.PgError) and result.sqlstate == "08P01", result
    assert mux.admin("SHOW VERSION")
