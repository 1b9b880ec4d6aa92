"""The driver matrix: real client programs through pgmux in transaction mode, with fewer
servers than clients.

Each driver program in this directory (node_client.js: node-postgres; JdbcClient.java:
PostgreSQL JDBC; pg3_client.py: psycopg 3; pg2_client.py: psycopg2) takes
`PHASE HOST PORT DBNAME TABLE` (JDBC also its prepareThreshold), runs one phase and prints one
JSON report on stdout; the assertions live here. A phase that cannot finish (a failed login,
an error where none is expected outside a client thread) makes the program exit non-zero.

- work: 6 concurrent connections on a pool of 2 run parameterized queries over and over (named
  prepared statements where the driver has them), inserts (JDBC as one batch, psycopg 3 in a
  pipeline and with executemany), a transaction that counts its own inserts, and for JDBC
  DatabaseMetaData.getTables/getColumns. Report: errors, mismatches (wrong values returned),
  the server pids seen (pg_backend_pid()), and JDBC's batch counts and metadata.
- settings: two connections on a pool of 1 (database `solo`). A sets search_path and
  statement_timeout outside a transaction; both then read their settings in turn. A must keep
  its own, B must see the defaults; SET LOCAL stays inside B's transaction; RESET works.
- ddl: 6 connections run `SELECT * FROM t WHERE id = $1` (2 columns); one connection then
  adds a column; 6 new connections prepare the same query and must get 3 columns without
  error; the old connection prepares a new statement (4 columns) and re-runs its old one,
  which must give the old shape or the 0A000 error PostgreSQL itself gives (JDBC has cached
  the old columns: rows of the new shape would break it).

JDBC also logs in to a pgmux with default settings (test_jdbc_default_config); the matrix
itself runs it with ignore_startup_parameters = extra_float_digits. pgbench runs -M simple,
extended and prepared, tpcb-like and select-only, 50 clients on a pool of 5, in a database of
its own: every transaction done, none failed, one pgbench_history row per tpcb-like one.

Programs for node and Java are built under build/ when missing: node-postgres is installed
from the npm registry into build/npm, the JDBC program is compiled into build/drivers.
Missing runtimes fail the tests: packaging/install-deps.sh installs them.
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import psycopg
import pytest

from conftest import Sampler, db_entries
from pgcluster import PG_BIN, ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(ROOT, "build")
NPM_PREFIX = os.path.join(BUILD, "npm")
JAVA_OUT = os.path.join(BUILD, "drivers", "java")
JDBC_JAR = "/usr/share/java/postgresql.jar"

CLIENTS = 6          # must match the programs
POOL = 2
PHASES = ["work", "settings", "ddl"]
INSTALL_HINT = "run packaging/install-deps.sh as root"


def need(binary):
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: {INSTALL_HINT}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def node_modules():
    """node_modules holding node-postgres 8, installed from the npm registry when missing."""
    need("node")
    modules = os.path.join(NPM_PREFIX, "node_modules")
    if not os.path.exists(os.path.join(modules, "pg", "package.json")):
        os.makedirs(NPM_PREFIX, exist_ok=True)
        r = subprocess.run([need("npm"), "install", "--prefix", NPM_PREFIX, "--no-audit",
                            "--no-fund", "--no-save", "--silent", "pg@8"],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.fail(f"npm install pg@8 failed:\n{r.stdout}{r.stderr}", pytrace=False)
    return modules


@pytest.fixture(scope="session")
def jdbc_classes():
    """Directory holding the compiled JdbcClient (rebuilt when the source is newer)."""
    need("java")
    if not os.path.exists(JDBC_JAR):
        pytest.fail(f"{JDBC_JAR} is missing (libpostgresql-jdbc-java): {INSTALL_HINT}",
                    pytrace=False)
    src = os.path.join(HERE, "JdbcClient.java")
    cls = os.path.join(JAVA_OUT, "JdbcClient.class")
    if not os.path.exists(cls) or os.path.getmtime(cls) < os.path.getmtime(src):
        os.makedirs(JAVA_OUT, exist_ok=True)
        r = subprocess.run([need("javac"), "-cp", JDBC_JAR, "-d", JAVA_OUT, src],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            pytest.fail(f"javac failed:\n{r.stdout}{r.stderr}", pytrace=False)
    return JAVA_OUT


@pytest.fixture(scope="session")
def drv_schema(pg):
    """Schema drvpath with a table `marker` that only a client whose search_path holds drvpath
    can find without qualifying it."""
    pg.sql("CREATE SCHEMA IF NOT EXISTS drvpath; "
           "CREATE TABLE IF NOT EXISTS drvpath.marker (v text); "
           "DELETE FROM drvpath.marker; INSERT INTO drvpath.marker VALUES ('schema')",
           dbname="app")


def start_mux(pgmux, pg, **settings):
    solo = f"host=127.0.0.1 port={pg.port} dbname=app pool_size=1"
    return pgmux({"pool_mode": "transaction", "default_pool_size": POOL,
                  "max_client_conn": 200, **settings}, databases=db_entries(pg, solo=solo))


def run_driver(program, cmd, env=None, timeout=60):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})), cwd=HERE)
    assert r.returncode == 0, \
        f"{program} exited with {r.returncode}:\n{r.stderr[-3000:]}{r.stdout[-2000:]}"
    lines = r.stdout.strip().splitlines()
    assert lines, f"no report on stdout; stderr:\n{r.stderr[-3000:]}"
    return json.loads(lines[-1])


def app_query(pg, sql):
    """Rows of sql run directly on the server in database app."""
    with psycopg.connect(pg.dsn("app"), autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def prepare_tables(pg, name):
    work, ddl = f"drv_{name}_work", f"drv_{name}_ddl"
    pg.sql(f"DROP TABLE IF EXISTS {work}, {ddl}; "
           f"CREATE TABLE {work} (client int NOT NULL, n int NOT NULL); "
           f"CREATE TABLE {ddl} (id int PRIMARY KEY, a text NOT NULL); "
           f"INSERT INTO {ddl} SELECT g, 'row ' || g FROM generate_series(1, 10) g",
           dbname="app")
    return work, ddl


def check(phase, mux, direct, name, run, extra=None, old_stmt=True):
    """Run one phase of one driver (run(dbname, table) -> report) and check its report."""
    work_table, ddl_table = prepare_tables(direct.pg, name)
    if phase == "work":
        with Sampler(direct, "app") as s:
            r = run("app", work_table)
        assert r["errors"] == [], f"{name}: {r['errors']}"
        assert r["mismatches"] == 0, f"{name}: queries returned wrong values: {r}"
        per_client = app_query(direct.pg, f"SELECT client, count(*) FROM {work_table} "
                                  "GROUP BY client ORDER BY client")
        assert per_client == [(i, r["rows_per_client"]) for i in range(CLIENTS)], \
            f"{name}: rows inserted per client"
        assert 1 <= len(r["pids"]) <= POOL, \
            f"{name}: clients saw {len(r['pids'])} server pids on a pool of {POOL}"
        assert s.max_total <= POOL, f"{s.max_total} server connections for a pool of {POOL}"
        if extra:
            extra(r)
    elif phase == "settings":
        r = run("solo", work_table)
        mine = {"search_path": "drvpath, public", "statement_timeout": "150ms",
                "marker": "schema"}
        default = {"search_path": '"$user", public', "statement_timeout": "0",
                   "marker": "error:42P01"}
        assert r["a"] == [mine] * len(r["a"]), f"{name}: A lost its settings: {r['a']}"
        assert r["b"] == [default] * len(r["b"]), f"{name}: A's settings leaked to B: {r['b']}"
        assert r["sleep_a"] == "error:57014", f"{name}: A's statement_timeout: {r}"
        assert r["sleep_b"] == "ok", f"{name}: B got A's statement_timeout: {r}"
        assert (r["local_inside"], r["local_after"]) == ("5s", "0"), \
            f"{name}: SET LOCAL must end with B's transaction: {r}"
        assert r["a_reset"] == "0", f"{name}: RESET: {r}"
    else:
        r = run("app", ddl_table)
        assert r["errors_before"] == [], f"{name}: before ALTER TABLE: {r['errors_before']}"
        assert r["before"] == [[2, None]], f"{name}: {r}"
        assert r["errors_after"] == [], \
            f"{name}: new connections after ALTER TABLE: {r['errors_after']}"
        assert r["after"] == [[3, 7]], f"{name}: new connections must see column b: {r}"
        assert r["new_stmt_cols"] == 4, \
            f"{name}: a statement prepared after ALTER TABLE on an old connection: {r}"
        if old_stmt:
            check_old_statement(name, r)
    return r


def check_old_statement(name, r):
    """A statement prepared before ALTER TABLE answers as PostgreSQL would: the old shape or
    0A000 (cached plan must not change result type)."""
    assert r["old_stmt_cols"] in (3, "error:0A000"), \
        f"{name}: a statement prepared before ALTER TABLE: {r}"


# ---------------------------------------------------------------------------------------------
# drivers


@pytest.mark.parametrize("phase", PHASES)
def test_node_postgres(pgmux, pg, direct, drv_schema, node_modules, phase):
    mux = start_mux(pgmux, pg)
    node = need("node")

    def run(dbname, table):
        where = ["127.0.0.1", str(mux.port), dbname, table]
        return run_driver("node_client.js", [node, os.path.join(HERE, "node_client.js"),
                                             phase, *where], env={"NODE_PATH": node_modules})

    check(phase, mux, direct, "node", run)


JDBC_TABLES = ["pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers"]
JDBC_COLUMNS = ["1:aid:int4", "2:bid:int4", "3:abalance:int4", "4:filler:bpchar"]


def test_jdbc_default_config(pgmux, pg, jdbc_classes):
    """PostgreSQL JDBC logs in to a pgmux with no special settings (it sends startup
    parameters such as extra_float_digits=3) and runs a prepared query."""
    mux = start_mux(pgmux, pg)
    r = subprocess.run([need("java"), "-cp", f"{JDBC_JAR}:{jdbc_classes}", "JdbcClient",
                        "login", "127.0.0.1", str(mux.port), "app", "-", "5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"answer": 42}


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("threshold", [5, 1])
def test_jdbc(pgmux, pg, direct, drv_schema, jdbc_classes, threshold, phase):
    # the matrix itself does not depend on how pgmux treats JDBC's startup parameters:
    # test_jdbc_default_config covers that
    mux = start_mux(pgmux, pg, ignore_startup_parameters="extra_float_digits")
    java = need("java")

    def run(dbname, table):
        where = ["127.0.0.1", str(mux.port), dbname, table]
        return run_driver("JdbcClient", [java, "-cp", f"{JDBC_JAR}:{jdbc_classes}",
                                         "JdbcClient", phase, *where, str(threshold)])

    def metadata(r):
        assert r["batched"] == CLIENTS * 30, f"executeBatch update counts: {r}"
        assert r["tables"] == JDBC_TABLES, f"DatabaseMetaData.getTables: {r['tables']}"
        assert r["columns"] == JDBC_COLUMNS, f"DatabaseMetaData.getColumns: {r['columns']}"

    check(phase, mux, direct, f"jdbc{threshold}", run, extra=metadata, old_stmt=False)


@pytest.mark.parametrize("threshold", [5, 1])
def test_jdbc_statement_prepared_before_ddl(pgmux, pg, direct, drv_schema, jdbc_classes, threshold):
    mux = start_mux(pgmux, pg, ignore_startup_parameters="extra_float_digits")
    java = need("java")
    _, ddl_table = prepare_tables(direct.pg, f"jdbc{threshold}old")
    r = run_driver("JdbcClient", [java, "-cp", f"{JDBC_JAR}:{jdbc_classes}", "JdbcClient", "ddl",
                                  "127.0.0.1", str(mux.port), "app", ddl_table, str(threshold)])
    check_old_statement(f"jdbc{threshold}", r)


@pytest.mark.parametrize("phase", PHASES)
def test_psycopg3(pgmux, pg, direct, drv_schema, phase):
    mux = start_mux(pgmux, pg)

    def run(dbname, table):
        where = ["127.0.0.1", str(mux.port), dbname, table]
        return run_driver("pg3_client.py", [sys.executable, os.path.join(HERE, "pg3_client.py"),
                                            phase, *where])

    check(phase, mux, direct, "pg3", run)


@pytest.mark.parametrize("phase", PHASES)
def test_psycopg2(pgmux, pg, direct, drv_schema, phase):
    mux = start_mux(pgmux, pg)
    if importlib.util.find_spec("psycopg2") is None:
        pytest.fail(f"python3-psycopg2 is not installed: {INSTALL_HINT}", pytrace=False)

    def run(dbname, table):
        where = ["127.0.0.1", str(mux.port), dbname, table]
        return run_driver("pg2_client.py", [sys.executable, os.path.join(HERE, "pg2_client.py"),
                                            phase, *where])

    check(phase, mux, direct, "pg2", run)


# ---------------------------------------------------------------------------------------------
# pgbench: 50 clients on a pool of 5, every query mode


BENCH_DB = "drvbench"
BENCH_CLIENTS = 50
BENCH_POOL = 5
BENCH_TX = 20        # per client
BENCH_TIMEOUT = 40   # seconds; each run takes about one


@pytest.fixture(scope="session")
def bench_db(pg):
    """A database of its own with pgbench tables at scale 1."""
    pg.sql(f"DROP DATABASE IF EXISTS {BENCH_DB}")
    pg.sql(f"CREATE DATABASE {BENCH_DB}")
    subprocess.run([os.path.join(PG_BIN, "pgbench"), "-i", "-q", "-s", "1",
                    "-d", pg.dsn(BENCH_DB)], check=True, capture_output=True)
    return BENCH_DB


def stuck_backends(pg):
    rows = pg.sql("SELECT pid, state, wait_event_type, wait_event, backend_xid IS NOT NULL, "
                  f"left(query, 60) FROM pg_stat_activity WHERE datname = '{BENCH_DB}' "
                  "ORDER BY pid")
    return rows


def client_states(mux):
    """How many of pgmux's clients are in each state (SHOW CLIENTS)."""
    counts = {}
    for row in mux.admin("SHOW CLIENTS"):
        if row.get("database") == BENCH_DB:
            key = " ".join(f"{k}={row[k]}" for k in ("state", "pinned", "pin_reason")
                           if k in row)
            counts[key] = counts.get(key, 0) + 1
    return counts


def history_rows(pg):
    return int(pg.sql("SELECT count(*) FROM pgbench_history", dbname=BENCH_DB))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("script", ["tpcb-like", "select-only"])
@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_modes(pgmux, pg, direct, bench_db, mode, script):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": BENCH_POOL,
                 "max_client_conn": 200},
                databases=db_entries(pg, **{BENCH_DB: f"host=127.0.0.1 port={pg.port} "
                                                      f"dbname={BENCH_DB}"}))
    before = history_rows(pg)
    with Sampler(direct, BENCH_DB) as s:
        try:
            r = mux.pgbench("-n", "-c", str(BENCH_CLIENTS), "-j", "2", "-M", mode,
                            "-b", script, "-t", str(BENCH_TX), dbname=BENCH_DB,
                            timeout=BENCH_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"pgbench -M {mode} -b {script} still ran after {BENCH_TIMEOUT}s\n"
                        f"server backends:\n{stuck_backends(pg)}\n"
                        f"SHOW POOLS: {mux.pool(BENCH_DB)}\n"
                        f"SHOW CLIENTS: {client_states(mux)}\n"
                        f"pgbench output:\n{(e.stdout or b'').decode()[-2000:]}"
                        f"{(e.stderr or b'').decode()[-3000:]}", pytrace=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"pgbench -M {mode} -b {script}:\n{out[-3000:]}"
    done = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert done and failed, out
    planned = BENCH_CLIENTS * BENCH_TX
    assert (int(done.group(1)), int(done.group(2))) == (planned, planned), out
    assert int(failed.group(1)) == 0, out
    added = history_rows(pg) - before
    if script == "tpcb-like":
        assert added == planned, f"{added} pgbench_history rows for {planned} transactions"
    else:
        assert added == 0, f"select-only wrote {added} pgbench_history rows"
    assert 1 <= s.max_total <= BENCH_POOL, \
        f"{s.max_total} server connections for a pool of {BENCH_POOL}"
