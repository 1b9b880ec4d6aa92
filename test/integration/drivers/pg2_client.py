"""psycopg2 through pgmux: parameters interpolated on the client, simple query protocol.
Usage: pg2_client.py work|settings|ddl|sharded HOST PORT DBNAME TABLE; prints one JSON report
(see test_drivers.py and test_sharded_drivers.py)."""
import random

import psycopg2

import drvlib
from drvlib import (CLIENTS, DDL_ROUNDS, ROUNDS, SHARD_KEYS, SHARD_UPDATES, outcome, report,
                    run_clients, sharded_key)


def connect():
    conn = psycopg2.connect(host=HOST, port=PORT, dbname=DBNAME, user="postgres",
                            connect_timeout=10)
    conn.autocommit = True
    return conn


def one(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def work():
    pids = set()

    def client(i):
        mismatches = 0
        conn = connect()
        try:
            for _ in range(ROUNDS):
                aid = random.randint(1, 100000)
                row = one(conn, "SELECT aid, bid, pg_backend_pid() FROM pgbench_accounts "
                                "WHERE aid = %s", (aid,))
                mismatches += row[:2] != (aid, 1)
                pids.add(row[2])
                mismatches += one(conn, "SELECT %s::int + %s::int", (aid, i))[0] != aid + i
            ins = f"INSERT INTO {TABLE} (client, n) VALUES (%s, %s)"
            with conn.cursor() as cur:
                cur.executemany(ins, [(i, n) for n in range(30)])
            # an explicit transaction: psycopg2 opens it on the first statement
            conn.autocommit = False
            with conn.cursor() as cur:
                for n in range(30, 35):
                    cur.execute(ins, (i, n))
                cur.execute(f"SELECT count(*) FROM {TABLE} WHERE client = %s", (i,))
                mismatches += cur.fetchone()[0] != 35
            conn.commit()
        finally:
            conn.close()
        return mismatches

    errors, results = run_clients(CLIENTS, client)
    report({"errors": errors, "mismatches": sum(r or 0 for r in results),
            "pids": sorted(pids), "rows_per_client": 35})


def settings():
    a, b = connect(), connect()
    with a.cursor() as cur:
        cur.execute("SET search_path TO drvpath, public")
        cur.execute("SET statement_timeout = '150ms'")

    def state(conn):
        return {
            "search_path": one(conn, "SHOW search_path")[0],
            "statement_timeout": one(conn, "SHOW statement_timeout")[0],
            "marker": outcome(lambda: one(conn, "SELECT v FROM marker")[0]),
        }

    rounds_a, rounds_b = [], []
    for _ in range(3):
        rounds_a.append(state(a))
        rounds_b.append(state(b))
    sleep_a = outcome(lambda: one(a, "SELECT pg_sleep(0.4)") and "ok")
    sleep_b = outcome(lambda: one(b, "SELECT pg_sleep(0.4)") and "ok")
    b.autocommit = False
    with b.cursor() as cur:
        cur.execute("SET LOCAL statement_timeout = '5s'")
        cur.execute("SHOW statement_timeout")
        local_inside = cur.fetchone()[0]
    b.commit()
    b.autocommit = True
    local_after = one(b, "SHOW statement_timeout")[0]
    a_again = state(a)
    with a.cursor() as cur:
        cur.execute("RESET statement_timeout")
    a_reset = one(a, "SHOW statement_timeout")[0]
    report({"a": rounds_a + [a_again], "b": rounds_b, "sleep_a": sleep_a, "sleep_b": sleep_b,
            "local_inside": local_inside, "local_after": local_after, "a_reset": a_reset})
    a.close()
    b.close()


def ddl():
    query = f"SELECT * FROM {TABLE} WHERE id = %s"

    def run(conn):
        shapes = set()
        with conn.cursor() as cur:
            for k in range(DDL_ROUNDS):
                cur.execute(query, (k % 10 + 1,))
                row = cur.fetchone()
                shapes.add((len(cur.description), row[2] if len(row) > 2 else None))
        return shapes

    before_conns = [connect() for _ in range(CLIENTS)]
    errors_before, before = run_clients(CLIENTS, lambda i: run(before_conns[i]))
    for conn in before_conns[1:]:
        conn.close()
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(f"ALTER TABLE {TABLE} ADD COLUMN b int DEFAULT 7")
    conn.close()

    def fresh(i):
        conn = connect()
        try:
            return run(conn)
        finally:
            conn.close()

    errors_after, after = run_clients(CLIENTS, fresh)
    old = before_conns[0]

    def cols(sql):
        with old.cursor() as cur:
            cur.execute(sql, (1,))
            return len(cur.description)

    new_stmt = outcome(lambda: cols(f"SELECT *, 1 AS one FROM {TABLE} WHERE id = %s"))
    old_stmt = outcome(lambda: cols(query))
    old.close()
    report({"errors_before": errors_before, "errors_after": errors_after,
            "before": drvlib.shapes(before), "after": drvlib.shapes(after),
            "new_stmt_cols": new_stmt, "old_stmt_cols": old_stmt})


def sharded():
    """Rows for many keys through a sharded database: the keys are literals in the SQL
    psycopg2 sends; each row read back by its key, a few updated in a transaction (psycopg2
    opens it with BEGIN on the first statement)."""
    ins = f"INSERT INTO {TABLE} (user_id, client, name) VALUES (%s, %s, %s)"
    sel = f"SELECT client, name FROM {TABLE} WHERE user_id = %s"
    upd = f"UPDATE {TABLE} SET name = name || '+' WHERE user_id = %s"

    def client(i):
        mismatches = 0
        keys = [sharded_key(i, n) for n in range(SHARD_KEYS)]
        conn = connect()
        try:
            with conn.cursor() as cur:
                for n, key in enumerate(keys):
                    cur.execute(ins, (key, i, f"c{i} n{n}"))
            for n, key in enumerate(keys):
                mismatches += one(conn, sel, (key,)) != (i, f"c{i} n{n}")
            conn.autocommit = False
            for n, key in enumerate(keys[:SHARD_UPDATES]):
                with conn.cursor() as cur:
                    cur.execute(upd, (key,))
                    cur.execute(sel, (key,))
                    mismatches += cur.fetchone() != (i, f"c{i} n{n}+")
                conn.commit()
        finally:
            conn.close()
        return mismatches

    errors, results = run_clients(CLIENTS, client)
    report({"errors": errors, "mismatches": sum(r or 0 for r in results)})


if __name__ == "__main__":
    phase, HOST, PORT, DBNAME, TABLE = drvlib.args()
    {"work": work, "settings": settings, "ddl": ddl, "sharded": sharded}[phase]()
