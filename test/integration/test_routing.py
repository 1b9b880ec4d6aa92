"""Read/write routing through a cluster of one primary and two streaming replicas (hosts =).

Where a statement ran is observed on the server side: inet_server_port() names the node and
pg_is_in_recovery() its role.
"""
import os
import re
import sys
import threading
import time
import urllib.request

import psycopg
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import rawpg  # noqa: E402
from pgcluster import free_port  # noqa: E402
from replication import ReplicaSet  # noqa: E402

WHERE = "SELECT inet_server_port(), pg_is_in_recovery()"


@pytest.fixture(scope="module")
def rs():
    r = ReplicaSet(replicas=2).start()
    r.execute("CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, v text)")
    r.wait_caught_up()
    yield r
    r.stop()


@pytest.fixture
def rs_clean(rs):
    """Leave every replica replaying and running, whatever the test did."""
    yield rs
    for i, rep in enumerate(rs.replicas):
        if not rep.running:
            rs.start_replica(i)
        if rs.replay_paused(i):
            rs.resume_replay(i)
    if not rs.primary.running:
        rs.primary.start()
    rs.wait_streaming(timeout=30)


def cluster_section(rs, **keys):
    hosts = " ".join(f"127.0.0.1:{n.port}" for n in rs.nodes)
    lines = ["", "[cluster.main]", f"hosts = {hosts}", "health_check_interval = 0.2",
             "health_check_timeout = 2", "ban_time = 1"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def topology(mux):
    return {row["port"]: row for row in mux.admin("SHOW TOPOLOGY")}


def wait_roles(mux, rs, primary=True, replicas=2):
    """Until pgmux has confirmed the primary and seen the replicas healthy."""
    def ready():
        t = topology(mux)
        p = t.get(str(rs.primary.port))
        reps = [t.get(str(r.port)) for r in rs.replicas]
        ok_p = p is not None and p["role"] == "primary"
        n_reps = sum(1 for r in reps if r and r["role"] == "replica" and r["healthy"] == "1")
        return (ok_p or not primary) and n_reps >= replicas
    wait_for(ready, 15, "pgmux to learn the topology")


@pytest.fixture
def routed(pgmux, rs):
    def make(settings=None, start_wait=True, **cluster_keys):
        mux = pgmux(settings=settings,
                    databases={"app": "cluster=main dbname=postgres"},
                    extra_sections=cluster_section(rs, **cluster_keys))
        if start_wait:
            wait_roles(mux, rs)
        return mux
    return make


def ran_on(conn, sql=WHERE, params=None):
    return tuple(conn.execute(sql, params).fetchone()[:2])


def test_reads_go_to_replicas_writes_to_primary(routed, rs):
    mux = routed()
    c = mux.connect()
    replica_ports = {r.port for r in rs.replicas}
    seen = set()
    for _ in range(20):
        port, in_recovery = ran_on(c)
        assert in_recovery is True
        assert port in replica_ports
        seen.add(port)
    assert seen == replica_ports, "round_robin should use both replicas"
    port, = c.execute("INSERT INTO items (v) VALUES ('w') RETURNING inet_server_port()").fetchone()
    assert port == rs.primary.port
    # the classifier's write cases, observed on the server
    for sql in ("SELECT inet_server_port(), pg_is_in_recovery() FROM items FOR UPDATE LIMIT 1",
                "SELECT inet_server_port(), pg_is_in_recovery(), nextval('items_id_seq')",
                "WITH d AS (DELETE FROM items WHERE v = 'nothing' RETURNING 1) "
                "SELECT inet_server_port(), pg_is_in_recovery()"):
        assert ran_on(c, sql) == (rs.primary.port, False), sql
    routes = mux.admin("SHOW ROUTES")[0]
    assert int(routes["reads_replica"]) >= 20 and int(routes["writes"]) >= 4


def test_transactions_and_hints(routed, rs):
    mux = routed()
    c = mux.connect()
    with c.transaction():
        assert ran_on(c) == (rs.primary.port, False)
    c.execute("BEGIN READ ONLY")
    port, rec = ran_on(c)
    c.execute("COMMIT")
    assert rec is True and port != rs.primary.port
    # hints: a comment, and the session setting
    assert ran_on(c, "/* pgmux:primary */ " + WHERE) == (rs.primary.port, False)
    assert ran_on(c, "/* pgmux:replica */ SELECT inet_server_port(), pg_is_in_recovery(), "
                     "set_config('application_name', 'x', false)")[1] is True
    assert ran_on(c, "SELECT inet_server_port(), pg_is_in_recovery(), "
                     "set_config('application_name', 'x', false)")[1] is False
    c.execute("SET pgmux.route = primary")
    assert ran_on(c) == (rs.primary.port, False)
    c.execute("SET pgmux.route = auto")
    assert ran_on(c)[1] is True
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        c.execute("SET pgmux.route = sideways")
    assert ran_on(c)[1] is True
    # SET pgmux.route inside a transaction (the client holds a server) is still pgmux's
    c.execute("BEGIN")
    c.execute("INSERT INTO items (v) VALUES ('hinted later')")
    c.execute("SET pgmux.route = primary")
    c.execute("COMMIT")
    assert ran_on(c) == (rs.primary.port, False)
    c.execute("SET pgmux.route = auto")
    assert ran_on(c)[1] is True
    # a hinted transaction
    c.execute("BEGIN")
    assert ran_on(c, "/* pgmux:replica */ " + WHERE)[1] is True
    assert ran_on(c)[1] is True        # the transaction stays where it started
    c.execute("COMMIT")


def test_deferred_begin_holds_no_server(routed, rs):
    mux = routed()
    c = mux.connect()
    c.execute("BEGIN")
    assert mux.pool()["sv_active"] == 0, "a bare BEGIN must not take a server"
    c.execute("COMMIT")
    c.execute("BEGIN")
    c.execute("ROLLBACK")
    # a transaction that writes, then rolls back: nothing is left
    c.execute("BEGIN")
    c.execute("INSERT INTO items (v) VALUES ('rolled back')")
    c.execute("ROLLBACK")
    assert rs.scalar("SELECT count(*) FROM items WHERE v = 'rolled back'") == 0
    # psycopg's own transactions (BEGIN sent on its own first)
    tx = mux.connect(autocommit=False)
    tx.execute("INSERT INTO items (v) VALUES ('committed')")
    tx.commit()
    assert rs.scalar("SELECT count(*) FROM items WHERE v = 'committed'") >= 1
    # an error inside a deferred transaction aborts it like on a server
    c.execute("BEGIN")
    with pytest.raises(psycopg.errors.UndefinedTable):
        c.execute("SELECT * FROM no_such_table")
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        c.execute("SELECT 1")
    c.execute("ROLLBACK")
    assert ran_on(c)[1] is True


def test_extended_protocol_and_pgbench(routed, rs, pg):
    mux = routed()
    c = psycopg.connect(mux.dsn("app", "postgres"), autocommit=True, prepare_threshold=0)
    try:
        for _ in range(5):
            assert ran_on(c, "SELECT inet_server_port(), pg_is_in_recovery() WHERE %s = 1",
                          (1,))[1] is True
        port, = c.execute("INSERT INTO items (v) VALUES (%s) RETURNING inet_server_port()",
                          ("x",)).fetchone()
        assert port == rs.primary.port
    finally:
        c.close()
    init = mux.pgbench("-i", "-q", "-s", "1", dbname="app")
    assert init.returncode == 0, init.stderr
    rs.wait_caught_up(timeout=30)
    for mode in ("simple", "extended", "prepared"):
        r = mux.pgbench("-n", "-c", "8", "-j", "2", "-T", "2", "-M", mode, dbname="app")
        assert r.returncode == 0 and "failed" not in r.stderr, r.stdout + r.stderr
        r = mux.pgbench("-n", "-S", "-c", "8", "-j", "2", "-T", "2", "-M", mode, dbname="app")
        assert r.returncode == 0, r.stdout + r.stderr


def test_read_from_primary_and_fallback_error(routed, rs_clean):
    rs = rs_clean
    mux = routed(read_from="primary")
    c = mux.connect()
    assert ran_on(c) == (rs.primary.port, False)
    mux2 = routed(read_fallback="error")
    c2 = mux2.connect()
    assert ran_on(c2)[1] is True
    for i in range(2):
        rs.stop_replica(i)
    wait_for(lambda: all(r["role"] != "replica" for p, r in topology(mux2).items()
                         if int(p) != rs.primary.port), 10, "replicas to be seen down")
    with pytest.raises(psycopg.errors.CannotConnectNow):
        ran_on(c2)
    # the session goes on: writes still work
    port, = c2.execute("INSERT INTO items (v) VALUES ('y') RETURNING inet_server_port()").fetchone()
    assert port == rs.primary.port
    # and with read_fallback = primary (the first pgmux, read_from aside) reads go on too
    mux3 = routed(start_wait=False)
    wait_for(lambda: any(r["role"] == "primary" for r in topology(mux3).values()), 10)
    assert ran_on(mux3.connect()) == (rs.primary.port, False)
    assert int(mux3.admin("SHOW ROUTES")[0]["reads_fallback"]) >= 1


def test_lagging_replica_gets_no_reads(routed, rs_clean):
    rs = rs_clean
    mux = routed(max_replica_lag="64kB")
    c = mux.connect()
    rs.pause_replay(0)
    lagging = rs.replicas[0].port
    rs.execute("INSERT INTO items (v) SELECT repeat('x', 1000) FROM generate_series(1, 2000)")
    rs.wait_caught_up(which=[1])

    def seen():
        t = topology(mux)
        return (int(t[str(lagging)]["lag_bytes"] or 0) > 65536 and
                int(t[str(rs.replicas[1].port)]["lag_bytes"] or 0) < 65536)
    wait_for(seen, 10, "pgmux to see one replica lag and the other caught up")
    ports = {ran_on(c)[0] for _ in range(10)}
    assert ports == {rs.replicas[1].port}
    rs.resume_replay(0)
    rs.wait_caught_up(timeout=20)
    wait_for(lambda: int(topology(mux)[str(lagging)]["lag_bytes"] or 0) < 65536, 10)
    wait_for(lambda: lagging in {ran_on(c)[0] for _ in range(4)}, 10,
             "the caught-up replica to get reads again")


def test_stopped_replica_is_banned_and_readmitted(routed, rs_clean):
    rs = rs_clean
    mux = routed()
    c = mux.connect()
    down = rs.replicas[0].port
    rs.stop_replica(0)
    wait_for(lambda: topology(mux)[str(down)]["healthy"] == "0", 10, "the replica to fail")
    assert topology(mux)[str(down)]["role"] == "unknown"
    for _ in range(10):
        assert ran_on(c)[0] == rs.replicas[1].port
    rs.start_replica(0)
    wait_for(lambda: topology(mux)[str(down)]["role"] == "replica", 15, "re-admission")
    wait_for(lambda: down in {ran_on(c)[0] for _ in range(4)}, 10, "reads on the replica again")


def test_read_your_writes(routed, rs_clean):
    rs = rs_clean
    mux = routed(read_your_writes=1)
    c = mux.connect()
    for i in range(2):
        rs.pause_replay(i)
    c.execute("INSERT INTO items (v) VALUES ('ryw-1')")
    # replicas have not replayed it: the read must go to the primary and see the row
    assert c.execute("SELECT count(*) FROM items WHERE v = 'ryw-1'").fetchone()[0] == 1
    # later too, once the server went back to the pool and the read was routed on its own
    time.sleep(0.3)
    assert c.execute("SELECT count(*) FROM items WHERE v = 'ryw-1'").fetchone()[0] == 1
    assert int(mux.admin("SHOW ROUTES")[0]["reads_ryw"]) >= 1
    # a client that wrote nothing still reads from the (stale) replicas
    other = mux.connect()
    assert other.execute("SELECT count(*), pg_is_in_recovery() FROM items WHERE v = 'ryw-1'"
                         ).fetchone() == (0, True)
    for i in range(2):
        rs.resume_replay(i)
    rs.wait_caught_up(timeout=20)
    # once a replica has replayed past the write, reads go back to replicas
    wait_for(lambda: ran_on(c)[1] is True, 10, "reads back on replicas")


def test_no_primary_writes_wait_then_fail_reads_go_on(routed, rs_clean):
    rs = rs_clean
    mux = routed(primary_wait_timeout=2)
    idle = mux.connect()
    c = mux.connect()
    rs.primary.stop()
    wait_for(lambda: topology(mux)[str(rs.primary.port)]["role"] != "primary", 10)
    start = time.time()
    with pytest.raises(psycopg.errors.CannotConnectNow):
        c.execute("INSERT INTO items (v) VALUES ('no primary')")
    waited = time.time() - start
    assert 1.5 <= waited <= 6, waited
    assert ran_on(c)[1] is True, "reads go on at the replicas"
    # a write that starts waiting is served once the primary is back (a longer wait now)
    mux.extra_sections = cluster_section(rs, primary_wait_timeout=30)
    mux.write_config()
    mux.admin("RELOAD")
    result = {}

    def write():
        try:
            result["port"] = c.execute("INSERT INTO items (v) VALUES ('after') "
                                       "RETURNING inet_server_port()").fetchone()[0]
        except Exception as e:      # noqa: BLE001 - reported below
            result["error"] = e
    writer = threading.Thread(target=write)
    writer.start()
    wait_for(lambda: mux.pool()["cl_waiting"] == 1, 5, what="the write to wait for the primary")
    assert writer.is_alive() and not result, "the write should wait"
    rs.primary.start()
    writer.join(20)
    assert result.get("port") == rs.primary.port, result
    assert ran_on(idle)[1] is True, "an idle client never noticed"
    assert int(mux.admin("SHOW ROUTES")[0]["primary_wait_timeouts"]) >= 1


def test_session_mode_routes_at_connect(routed, rs):
    mux = routed(settings={"pool_mode": "session"})
    c = mux.connect()
    assert ran_on(c) == (rs.primary.port, False)
    r = psycopg.connect(mux.dsn("app", "postgres") + " options='-c pgmux.route=replica'",
                        autocommit=True)
    try:
        # the whole session on a replica; pgmux.route is pgmux's, the server never sees it
        assert ran_on(r)[1] is True
        assert ran_on(r, "/* a second statement */ " + WHERE)[1] is True
        with pytest.raises(psycopg.errors.UndefinedObject):
            r.execute("SHOW pgmux.route")
    finally:
        r.close()


def test_reload_changes_members_and_policy(routed, rs):
    mux = routed()
    c = mux.connect()
    # fewer members: only the primary and the first replica
    mux.extra_sections = ("\n[cluster.main]\n"
                          f"hosts = 127.0.0.1:{rs.primary.port} 127.0.0.1:{rs.replicas[0].port}\n"
                          "health_check_interval = 0.2\n")
    mux.write_config()
    mux.admin("RELOAD")
    assert {ran_on(c)[0] for _ in range(6)} == {rs.replicas[0].port}
    assert str(rs.replicas[1].port) not in topology(mux)
    # policy: everything to the primary
    mux.extra_sections = mux.extra_sections + "read_from = primary\n"
    mux.write_config()
    mux.admin("RELOAD")
    assert ran_on(c) == (rs.primary.port, False)
    # a config that names a missing cluster is refused whole; routing goes on
    mux.databases = {"app": "cluster=nope dbname=postgres"}
    mux.write_config()
    with pytest.raises(rawpg.PgError):
        mux.admin("RELOAD")
    assert ran_on(c) == (rs.primary.port, False)
    # so is one that moves a database in use off its cluster: that needs a restart
    mux.databases = {"app": f"host=127.0.0.1 port={rs.replicas[0].port} dbname=postgres"}
    mux.write_config()
    with pytest.raises(rawpg.PgError, match="needs a restart"):
        mux.admin("RELOAD")
    assert ran_on(c) == (rs.primary.port, False)


def test_admin_set_of_routing_keys_takes_effect_at_once(routed, rs_clean):
    """SET of a [pgmux] routing key reaches clusters that inherit it, as RELOAD would; a SET
    with a bad value changes nothing."""
    rs = rs_clean
    mux = routed()
    c = mux.connect()
    assert ran_on(c)[1] is True
    mux.admin("SET read_from = primary")
    assert ran_on(c) == (rs.primary.port, False)
    with pytest.raises(rawpg.PgError):
        mux.admin("SET read_from = sideways")
    assert ran_on(c) == (rs.primary.port, False)
    config = {r["key"]: r["value"] for r in mux.admin("SHOW CONFIG")}
    assert config["read_from"] == "primary"
    mux.admin("SET read_from = replicas")
    assert ran_on(c)[1] is True

    # max_replica_lag: a replica that falls behind the new limit gets no reads at once
    lagging = rs.replicas[0].port
    rs.pause_replay(0)
    rs.execute("INSERT INTO items (v) SELECT repeat('x', 1000) FROM generate_series(1, 2000)")
    rs.wait_caught_up(which=[1])
    other = str(rs.replicas[1].port)
    # pgmux's own view, from its last health checks: one replica behind, the other not
    wait_for(lambda: (lambda t: int(t[str(lagging)]["lag_bytes"] or 0) > 65536 and
                      int(t[other]["lag_bytes"] or 0) < 65536)(topology(mux)), 10,
             "pgmux to see one replica lag and the other caught up")
    wait_for(lambda: lagging in {ran_on(c)[0] for _ in range(4)}, 10,
             "the lagging replica to get reads under the default limit")
    mux.admin("SET max_replica_lag = '64kB'")
    assert {ran_on(c)[0] for _ in range(10)} == {rs.replicas[1].port}
    with pytest.raises(rawpg.PgError):
        mux.admin("SET max_replica_lag = 'lots'")
    assert {ran_on(c)[0] for _ in range(10)} == {rs.replicas[1].port}
    config = {r["key"]: r["value"] for r in mux.admin("SHOW CONFIG")}
    assert config["max_replica_lag"] == "64kB"
    rs.resume_replay(0)


def test_write_pipelined_behind_reads_goes_to_the_primary(routed, rs):
    """Only the first message of a unit is routed; writes the client already sent behind its
    reads must still reach the primary, never a replica (25006)."""
    mux = routed()
    # simple queries: a read and a write written together
    raw = mux.raw()
    raw.login("postgres", "app")
    raw.send(rawpg.message(b"Q", WHERE.encode() + b"\0") +
             rawpg.message(b"Q", b"INSERT INTO items (v) VALUES ('piped') "
                                 b"RETURNING inet_server_port(), false\0"))
    answers, ready = [], 0
    while ready < 2:
        mtype, payload = raw.read_msg(5)
        assert mtype != b"E", rawpg.PgError(rawpg.parse_fields(payload))
        if mtype == b"D":
            answers.append(rawpg.parse_row(payload))
        ready += mtype == b"Z"
    assert answers[0][1] == "t"
    assert answers[1] == [str(rs.primary.port), "f"]
    # extended protocol: a read and a write before one Sync, written together (a driver batch)
    def parse_bind_execute(sql):
        return (rawpg.message(b"P", b"\0" + sql.encode() + b"\0\0\0") +
                rawpg.message(b"B", b"\0\0\0\0\0\0\0\0") +
                rawpg.message(b"E", b"\0\0\0\0\0"))
    raw.send(parse_bind_execute(WHERE) +
             parse_bind_execute("INSERT INTO items (v) VALUES ('batch') "
                                "RETURNING inet_server_port(), false") +
             rawpg.message(b"S"))
    answers = []
    while True:
        mtype, payload = raw.read_msg(5)
        assert mtype != b"E", rawpg.PgError(rawpg.parse_fields(payload))
        if mtype == b"D":
            answers.append(rawpg.parse_row(payload))
        if mtype == b"Z":
            break
    # all of it arrives at once: the whole batch goes to the primary (were it cut in two by
    # the network, the read could run on a replica: the write must still reach the primary)
    assert len(answers) == 2 and answers[1] == [str(rs.primary.port), "f"], answers
    assert int(answers[0][0]) in [n.port for n in rs.nodes]
    c = psycopg.connect(mux.dsn("app", "postgres"), autocommit=True)
    try:
        # a psycopg pipeline, one Sync at the end: the write usually arrives after the read
        # went on to a replica (when both arrive together, the whole batch goes to the primary)
        for _ in range(3):
            with c.pipeline():
                r1 = c.execute(WHERE)
                r2 = c.execute("INSERT INTO items (v) VALUES ('p1') "
                               "RETURNING inet_server_port(), false")
            assert r1.fetchone()[0] in [n.port for n in rs.nodes]
            assert r2.fetchone() == (rs.primary.port, False)
        # a failing read in that segment: the write behind it is skipped, as on a server
        with pytest.raises(psycopg.errors.DivisionByZero):
            with c.pipeline():
                c.execute("SELECT 1 / (inet_server_port() - inet_server_port())")
                c.execute("INSERT INTO items (v) VALUES ('never') RETURNING 1")
        assert rs.scalar("SELECT count(*) FROM items WHERE v = 'never'") == 0
        # psycopg pipelines with a Sync after each statement
        with c.pipeline() as p:
            r1 = c.execute(WHERE)
            p.sync()
            r2 = c.execute("INSERT INTO items (v) VALUES ('p2') RETURNING inet_server_port(), false")
            p.sync()
            r3 = c.execute(WHERE)
        assert r1.fetchone()[1] is True
        assert r2.fetchone() == (rs.primary.port, False)
        assert r3.fetchone()[0] in (rs.primary.port,) + tuple(r.port for r in rs.replicas)
    finally:
        c.close()


def test_begin_that_a_standby_refuses_is_not_answered_by_pgmux(routed, rs):
    mux = routed()
    c = mux.connect()
    # SERIALIZABLE READ ONLY cannot run on a standby: it goes to the primary
    c.execute("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY")
    assert ran_on(c) == (rs.primary.port, False)
    c.execute("COMMIT")
    # a BEGIN with a typo is the server's to refuse, at once
    with pytest.raises(psycopg.errors.SyntaxError):
        c.execute("BEGIN ISOLATION LEVEL SERIALISABLE")
    port, = c.execute("INSERT INTO items (v) VALUES ('after typo') RETURNING inet_server_port()"
                      ).fetchone()
    assert port == rs.primary.port
    assert mux.pool()["cl_active"] >= 1
    # COMMIT AND CHAIN keeps an (empty) deferred transaction open
    c.execute("BEGIN")
    c.execute("COMMIT AND CHAIN")
    assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    assert ran_on(c) == (rs.primary.port, False)
    c.execute("COMMIT")


def test_members_given_by_host_name(pgmux, rs):
    """Members named by host name: health checks and server connections resolve them without
    blocking (c-ares), and routing works as with addresses."""
    hosts = " ".join(f"localhost:{n.port}" for n in rs.nodes)
    mux = pgmux(databases={"app": "cluster=main dbname=postgres"},
                extra_sections=f"\n[cluster.main]\nhosts = {hosts}\nhealth_check_interval = 0.2\n")
    wait_for(lambda: sorted(r["role"] for r in mux.admin("SHOW TOPOLOGY")) ==
             ["primary", "replica", "replica"], 10, "the topology by host names")
    c = mux.connect()
    assert ran_on(c)[1] is True
    port, = c.execute("INSERT INTO items (v) VALUES ('by name') RETURNING inet_server_port()"
                      ).fetchone()
    assert port == rs.primary.port


def test_weights_and_balancing_modes(routed, rs):
    r0, r1 = (f"127.0.0.1:{r.port}" for r in rs.replicas)
    # round_robin with weights 3:1
    mux = routed(weights=f"{r0}:3 {r1}:1")
    c = mux.connect()
    ports = [ran_on(c)[0] for _ in range(40)]
    assert ports.count(rs.replicas[0].port) == 30 and ports.count(rs.replicas[1].port) == 10
    # weight 0: no reads for that replica
    mux = routed(weights=f"{r0}:0")
    c = mux.connect()
    assert {ran_on(c)[0] for _ in range(10)} == {rs.replicas[1].port}
    # random: both get reads
    mux = routed(load_balance="random")
    c = mux.connect()
    assert {ran_on(c)[0] for _ in range(60)} == {r.port for r in rs.replicas}
    # least_connections: a replica busy with a long read gets the next ones elsewhere
    mux = routed(load_balance="least_connections")
    busy = mux.connect()
    job = threading.Thread(target=lambda: busy.execute("SELECT pg_sleep(1.5)"))
    job.start()

    def busy_replica():
        # the long read holds its server (active, not still logging in) on one replica
        if mux.pool()["sv_active"] != 1:
            return None
        return {int(r["port"]) for r in mux.admin("SHOW TOPOLOGY")
                if r["role"] == "replica" and r["servers"] == "1"}
    slow = wait_for(busy_replica, 5, what="one replica busy with the long read")
    c = mux.connect()
    ports = {ran_on(c)[0] for _ in range(10)}
    job.join()
    assert len(slow) == 1 and ports == {r.port for r in rs.replicas} - slow


def test_replay_staleness_limit(routed, rs_clean):
    rs = rs_clean
    mux = routed(max_replica_lag="0", max_replica_lag_time="1")
    c = mux.connect()
    stale = rs.replicas[0].port
    rs.pause_replay(0)
    rs.execute("INSERT INTO items (v) VALUES ('stale')")
    time.sleep(0.2)
    rs.execute("INSERT INTO items (v) VALUES ('staler')")
    wait_for(lambda: int(topology(mux)[str(stale)]["lag_ms"] or 0) > 1000, 10,
             "pgmux to see the replay fall behind")
    assert {ran_on(c)[0] for _ in range(10)} == {rs.replicas[1].port}


def test_read_only_database_sends_everything_to_replicas(pgmux, rs):
    """read_only: even a write goes to a replica, which refuses it (25006)."""
    port = free_port()
    mux = pgmux(settings={"metrics_listen": f"127.0.0.1:{port}"},
                databases={"reports": "cluster=main dbname=postgres read_only=1"},
                extra_sections=cluster_section(rs))
    wait_roles(mux, rs)
    replica_ports = {r.port for r in rs.replicas}
    with mux.connect(dbname="reports") as c:
        for _ in range(4):
            assert ran_on(c)[0] in replica_ports
        # an unknown function would go to the primary elsewhere: here a replica runs it
        assert ran_on(c, "SELECT inet_server_port(), pg_is_in_recovery(), "
                         "now() IS NOT NULL")[0] in replica_ports
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("INSERT INTO items (v) VALUES ('not here')")
        with c.transaction():
            assert ran_on(c)[0] in replica_ports
    # the console says what the client does: a write of this database goes to a replica
    route = mux.admin("SHOW ROUTE IN reports FOR INSERT INTO items (v) VALUES ('x')")[0]
    assert route["role"] == "replica", route
    assert int(route["member"].rsplit(":", 1)[1]) in replica_ports, route
    # the query times of a routed database are told by the role that ran them
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    count = re.search(r'^pgmux_query_duration_seconds_count\{database="reports",user="postgres",'
                      r'role="replica"\} (\d+)$', text, re.M)
    assert count and int(count.group(1)) >= 5, text
    assert not re.search(r'^pgmux_query_duration_seconds_count\{database="reports",'
                         r'user="postgres",role="primary"\}', text, re.M)
