"""pgbench through transaction pooling: 100 clients on a pool of 5 (simple and prepared)."""
import re

import pytest

from conftest import Sampler

CLIENTS = 100
POOL = 5


def pgbench(mux, *args):
    r = mux.pgbench("-n", "-c", str(CLIENTS), "-j", "2", *args)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    assert m, out
    failed = re.search(r"number of failed transactions: (\d+)", out)
    return int(m.group(1)), int(m.group(2)), int(failed.group(1)) if failed else 0, out


@pytest.mark.timeout(120)
def test_pgbench_select_only(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": POOL,
                 "max_client_conn": 300})
    with Sampler(direct, "app") as s:
        done, planned, failed, out = pgbench(mux, "-S", "-t", "50")
    assert (done, planned, failed) == (CLIENTS * 50, CLIENTS * 50, 0), out
    assert s.samples > 0
    assert 1 <= s.max_total <= POOL, f"{s.max_total} server connections for a pool of {POOL}"


@pytest.mark.timeout(120)
def test_pgbench_tpcb_like(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": POOL,
                 "max_client_conn": 300})
    before = direct.pg.sql("select count(*) from pgbench_history", dbname="app")
    with Sampler(direct, "app") as s:
        done, planned, failed, out = pgbench(mux, "-t", "10")
    assert (done, planned, failed) == (CLIENTS * 10, CLIENTS * 10, 0), out
    after = direct.pg.sql("select count(*) from pgbench_history", dbname="app")
    assert int(after) - int(before) == done, "one history row per reported transaction"
    # every transaction applied whole: the four balances agree
    sums = direct.pg.sql("select (select sum(abalance) from pgbench_accounts), "
                         "(select sum(bbalance) from pgbench_branches), "
                         "(select sum(tbalance) from pgbench_tellers), "
                         "(select sum(delta) from pgbench_history)", dbname="app")
    assert len(set(sums.split("|"))) == 1, f"balances disagree: {sums}"
    assert 1 <= s.max_total <= POOL, f"{s.max_total} server connections for a pool of {POOL}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("script", ["-S", "-N"])
def test_pgbench_prepared(pgmux, direct, script):
    """-M prepared: each connection prepares every statement once, synchronously, while its
    thread's other connections may hold every server in a transaction. A text some server
    already parsed is answered without a server, so no thread waits on itself."""
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": POOL,
                 "max_client_conn": 300})
    with Sampler(direct, "app") as s:
        done, planned, failed, out = pgbench(mux, "-M", "prepared", script, "-t", "20")
    assert (done, planned, failed) == (CLIENTS * 20, CLIENTS * 20, 0), out
    assert 1 <= s.max_total <= POOL, f"{s.max_total} server connections for a pool of {POOL}"
