"""A routed database written the natural way (cluster=, user=, password=, no health_check_*
keys) works: health checks log in with the database entry's credentials. When no member can
take connections, a client logging in hears why at once (the members' last health-check
errors) instead of waiting for query_wait_timeout.

The server here trusts nobody over TCP (not even postgres): every role needs its password.
"""
import os
import time

import pytest

import rawpg
from conftest import wait_for
from pgcluster import PgCluster

QUERY_WAIT = 60     # what a client would wait without a prompt answer


@pytest.fixture(scope="module")
def strict_pg():
    cluster = PgCluster().init().start()
    try:
        cluster.sql("CREATE ROLE app LOGIN PASSWORD 'app-secret'")
        cluster.sql("CREATE DATABASE app OWNER app")
        # from now on every TCP login needs its password
        with open(os.path.join(cluster.datadir, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        cluster.sql("SELECT pg_reload_conf()")
        yield cluster
    finally:
        cluster.destroy()


def routed(pgmux, strict_pg, password):
    return pgmux({"query_wait_timeout": QUERY_WAIT},
                 databases={"app": f"cluster=main dbname=app user=app password={password}"},
                 extra_sections=("\n[cluster.main]\n"
                                 f"hosts = 127.0.0.1:{strict_pg.port}\n"
                                 "health_check_interval = 0.2\nhealth_check_timeout = 2\n"))


def test_routed_database_written_naturally(pgmux, strict_pg):
    mux = routed(pgmux, strict_pg, "app-secret")
    t = time.monotonic()
    with mux.connect(dbname="app", connect_timeout=QUERY_WAIT + 5) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "app"
    print(f"first client in after {time.monotonic() - t:.2f} s")
    roles = {r["role"] for r in mux.admin("SHOW TOPOLOGY")}
    assert "primary" in roles
    assert "failed its health check" not in mux.log()


def test_no_usable_member_answers_at_once(pgmux, strict_pg):
    mux = routed(pgmux, strict_pg, "wrong-secret")
    c = mux.raw(timeout=QUERY_WAIT + 5)
    t = time.monotonic()
    c.startup("postgres", "app")
    err = c.error_or_close(QUERY_WAIT + 5)
    took = time.monotonic() - t
    print(f"client answered after {took:.2f} s: {err!r}")
    assert isinstance(err, rawpg.PgError), repr(err)
    assert err.sqlstate == "08006", err.message
    assert "no member of cluster main can take connections" in err.message
    assert "password authentication failed" in err.message
    # a generous bound against query_wait_timeout: the checks run every 0.2 s
    assert took < QUERY_WAIT / 4


def test_explicit_health_check_user_wins(pgmux, strict_pg):
    """health_check_user still decides where it is set (here a user with no password: the
    checks fail although the database entry's login would work)."""
    mux = pgmux(databases={"app": "cluster=main dbname=app user=app password=app-secret"},
                extra_sections=("\n[cluster.main]\n"
                                f"hosts = 127.0.0.1:{strict_pg.port}\n"
                                "health_check_interval = 0.2\nhealth_check_user = postgres\n"))
    wait_for(lambda: "failed its health check" in mux.log(), timeout=10,
             what="the check as postgres to fail")
    assert "no password supplied" in mux.log()
