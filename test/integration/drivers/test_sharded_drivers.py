"""The drivers through a sharded database: `app = shards=users` over two servers, the key
user_id, half the buckets on each.

Each driver program runs its `sharded` phase: 6 concurrent connections on a pool of 2 per shard
insert rows for 40 keys each (small, above 2**32 and negative, so that drivers sizing integers
by value send int2, int4 and int8), read every row back by its key, and update the first few in
a transaction each. The drivers cover the ways a key reaches pgmux:

- psycopg 3: server-side prepared statements (prepare_threshold=0) with binary parameters;
- psycopg2: keys as literals in the SQL, simple query protocol;
- JDBC: PreparedStatement.setLong, run past prepareThreshold (5, and 1) so that the driver
  switches to named server-side statements;
- node-postgres: named prepared inserts and updates, unnamed parameterized reads.

Nothing may fail, every read returns its row, and on each shard's server every row is on the
shard that SHOW SHARD FOR names for its key, every key exactly once.
"""
import importlib.util
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "lib"))

from drvlib import SHARD_KEYS, SHARD_UPDATES, sharded_key  # noqa: E402
from pgcluster import PGMUX_BIN, PgCluster  # noqa: E402
from test_drivers import (CLIENTS, INSTALL_HINT, JDBC_JAR, jdbc_classes,  # noqa: E402,F401
                          need, node_modules, run_driver)

POOL = 2
TABLE = "drv_sharded"
SHARDS = ("a", "b")


@pytest.fixture(scope="module")
def servers():
    """Two servers, each with a database app holding the sharded table."""
    made = []
    try:
        for _ in SHARDS:
            s = PgCluster().init().start()
            made.append(s)
            s.sql("CREATE DATABASE app")
            s.sql(f"CREATE TABLE {TABLE} (user_id bigint PRIMARY KEY, client int NOT NULL, "
                  "name text NOT NULL)", dbname="app")
        yield made
    finally:
        for s in made:
            s.destroy()


@pytest.fixture
def sharded_mux(pgmux, servers, tmp_path):
    for s in servers:
        s.sql(f"TRUNCATE {TABLE}", dbname="app")
    path = str(tmp_path / "users.map")
    subprocess.run([PGMUX_BIN, "--shard-map", "create", "a", "b", "-o", path], check=True,
                   capture_output=True)
    lines = []
    for name, s in zip(("one", "two"), servers):
        lines += ["", f"[cluster.{name}]", f"hosts = 127.0.0.1:{s.port}",
                  "health_check_interval = 0.2"]
    lines += ["", "[shards.users]", "key = user_id", f"map = {path}", "shard.a = cluster=one",
              "shard.b = cluster=two"]
    return pgmux({"pool_mode": "transaction", "default_pool_size": POOL, "max_client_conn": 200,
                  "ignore_startup_parameters": "extra_float_digits"},
                 databases={"app": "shards=users dbname=app"},
                 extra_sections="\n".join(lines) + "\n")


def expected_rows(updated):
    """{key: (client, name)} after a sharded phase that updated the keys in updated."""
    rows = {}
    for i in range(CLIENTS):
        for n in range(SHARD_KEYS):
            key = sharded_key(i, n)
            rows[key] = (i, f"c{i} n{n}" + ("+" if key in updated else ""))
    return rows


def check_sharded(mux, servers, name, r):
    """r: the program's report. Programs that report the keys they updated (psycopg 3) also
    report the transactions that failed, in txn_errors: there must be none."""
    assert r["errors"] == [], f"{name}: {r['errors']}"
    assert r["mismatches"] == 0, f"{name}: reads returned wrong rows: {r}"
    all_updates = {sharded_key(i, n) for i in range(CLIENTS) for n in range(SHARD_UPDATES)}
    updated = set(r.get("updated", all_updates))
    assert updated <= all_updates, f"{name}: updated keys it was not asked to: {r}"
    found = {}
    for shard, s in zip(SHARDS, servers):
        lines = s.sql(f"SELECT user_id, client, name FROM {TABLE}", dbname="app").splitlines()
        assert lines, f"{name}: shard {shard} got no row"
        for line in lines:
            uid, client, text = line.split("|", 2)
            where = mux.admin(f"SHOW SHARD FOR {uid}")[0]["shard"]
            assert where == shard, f"{name}: key {uid} is on shard {shard}, SHOW SHARD FOR " \
                                   f"says {where}"
            assert int(uid) not in found, f"{name}: key {uid} on both shards"
            found[int(uid)] = (int(client), text)
    assert found == expected_rows(updated), \
        f"{name}: the rows on the shards are not those written"
    # psycopg 3 sends BEGIN and ROLLBACK in the extended protocol: pgmux holds that BEGIN until
    # the first keyed statement, so every transaction runs on its key's shard.
    assert not r.get("txn_errors") and not r.get("stuck"), \
        f"{name}: transactions refused: {r.get('txn_errors', [])[:3]}, stuck: {r.get('stuck')}"
    assert updated == all_updates, f"{name}: {r}"


def test_psycopg3_binary_prepared(sharded_mux, servers):
    r = run_driver("pg3_client.py", [sys.executable, os.path.join(HERE, "pg3_client.py"),
                                     "sharded", "127.0.0.1", str(sharded_mux.port), "app", TABLE])
    check_sharded(sharded_mux, servers, "pg3", r)


def test_psycopg2_literals(sharded_mux, servers):
    if importlib.util.find_spec("psycopg2") is None:
        pytest.fail(f"python3-psycopg2 is not installed: {INSTALL_HINT}", pytrace=False)
    r = run_driver("pg2_client.py", [sys.executable, os.path.join(HERE, "pg2_client.py"),
                                     "sharded", "127.0.0.1", str(sharded_mux.port), "app", TABLE])
    check_sharded(sharded_mux, servers, "pg2", r)


@pytest.mark.parametrize("threshold", [5, 1])
def test_jdbc_prepared(sharded_mux, servers, jdbc_classes, threshold):
    r = run_driver("JdbcClient", [need("java"), "-cp", f"{JDBC_JAR}:{jdbc_classes}",
                                  "JdbcClient", "sharded", "127.0.0.1", str(sharded_mux.port),
                                  "app", TABLE, str(threshold)])
    check_sharded(sharded_mux, servers, f"jdbc{threshold}", r)


def test_node_postgres_parameterized(sharded_mux, servers, node_modules):
    r = run_driver("node_client.js", [need("node"), os.path.join(HERE, "node_client.js"),
                                      "sharded", "127.0.0.1", str(sharded_mux.port), "app",
                                      TABLE], env={"NODE_PATH": node_modules})
    check_sharded(sharded_mux, servers, "node", r)
