"""The driver matrix's work phase through a routed database (cluster= with a primary and two
streaming replicas): JDBC (prepareThreshold 5 and 1), node-postgres, psycopg 3 and 2 run their
reads, prepared statements, batch inserts, transactions and metadata calls while pgmux sends
reads to the replicas and everything else to the primary. Nothing may fail (no 25006), every
row each client inserted is on the primary, and the replicas did serve reads.
"""
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "lib"))

from replication import ReplicaSet  # noqa: E402
from test_drivers import (CLIENTS, JDBC_JAR, PG_BIN, jdbc_classes, need,  # noqa: E402,F401
                          node_modules, run_driver)

POOL = 2
TABLE = "drv_routed_work"


@pytest.fixture(scope="module")
def cluster():
    rs = ReplicaSet(replicas=2).start()
    try:
        rs.execute("CREATE DATABASE app")
        subprocess.run([os.path.join(PG_BIN, "pgbench"), "-i", "-q", "-s", "1", "-h",
                        "127.0.0.1", "-p", str(rs.primary.port), "-U", "postgres", "app"],
                       check=True, capture_output=True)
        rs.wait_caught_up(timeout=30)
        yield rs
    finally:
        rs.stop()


@pytest.fixture
def routed_mux(pgmux, cluster):
    cluster.execute(f"DROP TABLE IF EXISTS {TABLE}; "
                    f"CREATE TABLE {TABLE} (client int NOT NULL, n int NOT NULL)", dbname="app")
    cluster.wait_caught_up(timeout=30)
    hosts = " ".join(f"127.0.0.1:{n.port}" for n in cluster.nodes)
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": POOL, "max_client_conn": 200,
                 "ignore_startup_parameters": "extra_float_digits"},
                databases={"app": "cluster=main dbname=app"},
                extra_sections=f"\n[cluster.main]\nhosts = {hosts}\nhealth_check_interval = 0.2\n")
    for _ in range(100):
        roles = sorted(r["role"] for r in mux.admin("SHOW TOPOLOGY"))
        if roles == ["primary", "replica", "replica"]:
            return mux
        time.sleep(0.1)
    pytest.fail("pgmux did not confirm the topology")


def check_routed(mux, cluster, name, r):
    assert r["errors"] == [], f"{name}: {r['errors']}"
    assert r["mismatches"] == 0, f"{name}: queries returned wrong values: {r}"
    rows = cluster.execute(f"SELECT client, count(*) FROM {TABLE} GROUP BY client "
                           "ORDER BY client", dbname="app")
    assert rows == [(i, r["rows_per_client"]) for i in range(CLIENTS)], \
        f"{name}: rows inserted per client"
    routes = mux.admin("SHOW ROUTES")[0]
    assert int(routes["reads_replica"]) > 0 and int(routes["writes"]) > 0, routes


@pytest.mark.parametrize("threshold", [5, 1])
def test_jdbc_routed(routed_mux, cluster, jdbc_classes, threshold):
    r = run_driver("JdbcClient", [need("java"), "-cp", f"{JDBC_JAR}:{jdbc_classes}",
                                  "JdbcClient", "work", "127.0.0.1", str(routed_mux.port), "app",
                                  TABLE, str(threshold)])
    check_routed(routed_mux, cluster, f"jdbc{threshold}", r)
    assert r["batched"] == CLIENTS * 30


def test_node_postgres_routed(routed_mux, cluster, node_modules):
    r = run_driver("node_client.js", [need("node"), os.path.join(HERE, "node_client.js"), "work",
                                      "127.0.0.1", str(routed_mux.port), "app", TABLE],
                   env={"NODE_PATH": node_modules})
    check_routed(routed_mux, cluster, "node", r)


@pytest.mark.parametrize("program", ["pg3_client.py", "pg2_client.py"])
def test_psycopg_routed(routed_mux, cluster, program):
    r = run_driver(program, [sys.executable, os.path.join(HERE, program), "work", "127.0.0.1",
                             str(routed_mux.port), "app", TABLE])
    check_routed(routed_mux, cluster, program.split("_")[0], r)
