"""psycopg 3 through pgmux: every statement prepared (prepare_threshold=0), pipelines and
executemany; in the sharded phase, parameters sent in binary. Usage: pg3_client.py
work|settings|ddl|sharded HOST PORT DBNAME TABLE; prints one JSON report (see test_drivers.py
and test_sharded_drivers.py)."""
import random

import psycopg

import drvlib
from drvlib import (CLIENTS, DDL_ROUNDS, ROUNDS, SHARD_KEYS, SHARD_UPDATES, outcome, report,
                    run_clients, sharded_key)


def connect():
    return psycopg.connect(host=HOST, port=PORT, dbname=DBNAME, user="postgres",
                           autocommit=True, prepare_threshold=0, connect_timeout=10)


def work():
    pids = set()

    def client(i):
        mismatches = 0
        with connect() as conn:
            for _ in range(ROUNDS):
                aid = random.randint(1, 100000)
                row = conn.execute("SELECT aid, bid, pg_backend_pid() FROM pgbench_accounts "
                                   "WHERE aid = %s", (aid,)).fetchone()
                mismatches += row[:2] != (aid, 1)
                pids.add(row[2])
                total = conn.execute("SELECT %s::int + %s::int", (aid, i)).fetchone()[0]
                mismatches += total != aid + i
            ins = f"INSERT INTO {TABLE} (client, n) VALUES (%s, %s)"
            # 20 statements in flight in one pipeline, then a count read in the same pipeline
            with conn.pipeline():
                for n in range(20):
                    conn.execute(ins, (i, n))
                cur = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE client = %s", (i,))
            mismatches += cur.fetchone()[0] != 20
            with conn.cursor() as cur:
                cur.executemany(ins, [(i, n) for n in range(20, 30)])
            with conn.transaction():
                for n in range(30, 35):
                    conn.execute(ins, (i, n))
                seen = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE client = %s",
                                    (i,)).fetchone()[0]
                mismatches += seen != 35
        return mismatches

    errors, results = run_clients(CLIENTS, client)
    report({"errors": errors, "mismatches": sum(r or 0 for r in results),
            "pids": sorted(pids), "rows_per_client": 35})


def settings():
    a, b = connect(), connect()
    a.execute("SET search_path TO drvpath, public")
    a.execute("SET statement_timeout = '150ms'")

    def state(conn):
        return {
            "search_path": conn.execute("SHOW search_path").fetchone()[0],
            "statement_timeout": conn.execute("SHOW statement_timeout").fetchone()[0],
            "marker": outcome(lambda: conn.execute("SELECT v FROM marker").fetchone()[0]),
        }

    rounds_a, rounds_b = [], []
    for _ in range(3):
        rounds_a.append(state(a))
        rounds_b.append(state(b))
    sleep_a = outcome(lambda: a.execute("SELECT pg_sleep(0.4)") and "ok")
    sleep_b = outcome(lambda: b.execute("SELECT pg_sleep(0.4)") and "ok")
    with b.transaction():
        b.execute("SET LOCAL statement_timeout = '5s'")
        local_inside = b.execute("SHOW statement_timeout").fetchone()[0]
    local_after = b.execute("SHOW statement_timeout").fetchone()[0]
    a_again = state(a)
    a.execute("RESET statement_timeout")
    a_reset = a.execute("SHOW statement_timeout").fetchone()[0]
    report({"a": rounds_a + [a_again], "b": rounds_b, "sleep_a": sleep_a, "sleep_b": sleep_b,
            "local_inside": local_inside, "local_after": local_after, "a_reset": a_reset})
    a.close()
    b.close()


def ddl():
    query = f"SELECT * FROM {TABLE} WHERE id = %s"

    def run(conn):
        shapes = set()
        for k in range(DDL_ROUNDS):
            cur = conn.execute(query, (k % 10 + 1,))
            row = cur.fetchone()
            shapes.add((len(cur.description), row[2] if len(row) > 2 else None))
        return shapes

    before_conns = [connect() for _ in range(CLIENTS)]
    errors_before, before = run_clients(CLIENTS, lambda i: run(before_conns[i]))
    for conn in before_conns[1:]:
        conn.close()
    with connect() as conn:
        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN b int DEFAULT 7")

    def fresh(i):
        with connect() as conn:
            return run(conn)

    errors_after, after = run_clients(CLIENTS, fresh)
    old = before_conns[0]
    new_stmt = outcome(lambda: len(old.execute(f"SELECT *, 1 AS one FROM {TABLE} WHERE id = %s",
                                               (1,)).description))
    old_stmt = outcome(lambda: len(old.execute(query, (1,)).description))
    old.close()
    report({"errors_before": errors_before, "errors_after": errors_after,
            "before": drvlib.shapes(before), "after": drvlib.shapes(after),
            "new_stmt_cols": new_stmt, "old_stmt_cols": old_stmt})


def sharded():
    """Rows for many keys through a sharded database: server-side prepared statements with
    binary parameters (%b), each row read back by its key, a few updated in a transaction
    (conn.transaction(): psycopg 3 sends its BEGIN with the extended protocol). A failed
    transaction is reported apart, in txn_errors, with the keys that were updated; when
    psycopg's own ROLLBACK (extended protocol too) leaves the connection in a failed
    transaction, the program counts it in stuck and ends it with a simple-query ROLLBACK."""
    ins = f"INSERT INTO {TABLE} (user_id, client, name) VALUES (%b, %b, %b)"
    sel = f"SELECT client, name FROM {TABLE} WHERE user_id = %b"
    upd = f"UPDATE {TABLE} SET name = name || '+' WHERE user_id = %b"
    updated, txn_errors, stuck = [], [], []

    def client(i):
        mismatches = 0
        keys = [sharded_key(i, n) for n in range(SHARD_KEYS)]
        with connect() as conn:
            for n, key in enumerate(keys):
                conn.execute(ins, (key, i, f"c{i} n{n}"))
            for n, key in enumerate(keys):
                row = conn.execute(sel, (key,), binary=True).fetchone()
                mismatches += row != (i, f"c{i} n{n}")
            for n, key in enumerate(keys[:SHARD_UPDATES]):
                try:
                    with conn.transaction():
                        conn.execute(upd, (key,))
                        row = conn.execute(sel, (key,), binary=True).fetchone()
                except psycopg.Error as e:
                    txn_errors.append(f"client {i} key {key}: {drvlib.describe(e)}")
                    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                        stuck.append(key)
                        conn.pgconn.exec_(b"ROLLBACK")
                    continue
                updated.append(key)
                mismatches += row != (i, f"c{i} n{n}+")
        return mismatches

    errors, results = run_clients(CLIENTS, client)
    report({"errors": errors, "mismatches": sum(r or 0 for r in results),
            "txn_errors": txn_errors, "updated": sorted(updated), "stuck": len(stuck)})


if __name__ == "__main__":
    phase, HOST, PORT, DBNAME, TABLE = drvlib.args()
    {"work": work, "settings": settings, "ddl": ddl, "sharded": sharded}[phase]()
