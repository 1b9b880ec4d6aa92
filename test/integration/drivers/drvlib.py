"""What the Python driver programs (pg3_client.py, pg2_client.py) share: the command line,
the scenario parameters and the JSON report. The node and Java programs follow the same
contract; test_drivers.py describes it."""
import json
import sys
import threading

CLIENTS = 6          # concurrent connections, more than the pool's servers
ROUNDS = 30          # parameterized queries per client in the "work" phase
DDL_ROUNDS = 10      # executions of the SELECT * statement per client in the "ddl" phase
SHARD_KEYS = 40      # keys each client inserts and reads back in the "sharded" phase
SHARD_UPDATES = 6    # of which the first few are updated, one transaction each
BIG = 4294967311     # a prime above 2**32: keys that need all eight bytes of a bigint


def args():
    """phase, host, port, dbname, table from the command line."""
    if len(sys.argv) != 6:
        sys.exit(f"usage: {sys.argv[0]} work|settings|ddl|sharded HOST PORT DBNAME TABLE")
    phase, host, port, dbname, table = sys.argv[1:]
    return phase, host, int(port), dbname, table


def sharded_key(i, n):
    """Client i's n-th key in the "sharded" phase: small, above 2**32 or negative in turn, so
    that drivers that size integer parameters by value send int2, int4 and int8 (node and JDBC
    compute the same)."""
    base = i * 1000 + n + 1
    return (base, base * BIG, -base)[n % 3]


def report(result):
    print(json.dumps(result, sort_keys=True))


def run_clients(n, fn):
    """Run fn(i) for i in 0..n-1, each in its own thread, all at once; returns the errors
    (one string per client that raised) and the results."""
    errors, results = [], [None] * n
    lock = threading.Lock()
    start = threading.Barrier(n)

    def run(i):
        try:
            start.wait(10)
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported to the test
            with lock:
                errors.append(f"client {i}: {describe(e)}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors, results


def describe(e):
    state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"{state}: {text}" if state else f"{type(e).__name__}: {text}"


def outcome(fn):
    """fn()'s value, or "error:SQLSTATE" when it raises a database error."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if state is None:
            raise
        return f"error:{state}"


def shapes(per_client):
    """The distinct (column count, value of column b) pairs that clients saw, as lists."""
    return sorted([list(x) for x in {x for s in per_client if s for x in s}],
                  key=lambda x: (x[0], x[1] is not None, x[1] or 0))
