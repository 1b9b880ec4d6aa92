"""Topology in the metrics endpoint: switchovers and failovers with the write pause they caused
(a real Patroni switchover moves pgmux_cluster_primary_changes_total by exactly one, as a
switchover, with a pause above 0 and below the time the switchover took), and /ready for a
database declared read_only, which needs no primary.
"""
import os
import sys
import time

import pytest

from conftest import db_entries, wait_for
from pgcluster import free_port
from test_metrics import http_get, scrape, value

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from patroni import PatroniCluster  # noqa: E402


def test_ready_names_read_only_database_without_primary(pgmux, pg):
    dead = free_port()
    cluster = (f"\n[cluster.nowhere]\nhosts = 127.0.0.1:{dead}\n"
               "health_check_interval = 0.2\n")
    port = free_port()
    mux = pgmux(settings={"metrics_listen": f"127.0.0.1:{port}"},
                databases=db_entries(pg, reports="cluster=nowhere dbname=app read_only=1"),
                extra_sections=cluster)
    status, body = http_get(port, "/ready")
    assert (status, body) == (200, "ready (database reports: read-only, no primary needed)\n")
    fams = scrape(port)
    assert value(fams, "pgmux_cluster_has_primary", cluster="nowhere") == 0
    # Before any change: both kinds at 0, an empty pause histogram, a last pause of 0.
    for kind in ("switchover", "failover"):
        assert value(fams, "pgmux_cluster_primary_changes_total", cluster="nowhere",
                     kind=kind) == 0
    assert value(fams, "pgmux_cluster_write_pause_seconds",
                 "pgmux_cluster_write_pause_seconds_count", cluster="nowhere") == 0
    assert value(fams, "pgmux_cluster_last_write_pause_seconds", cluster="nowhere") == 0

    # The same cluster also serving a database that writes: that one needs the primary.
    port = free_port()
    other = pgmux(settings={"metrics_listen": f"127.0.0.1:{port}"},
                  databases=db_entries(pg, reports="cluster=nowhere dbname=app read_only=1",
                                       routed="cluster=nowhere dbname=app"),
                  extra_sections=cluster)
    assert other.port != mux.port
    status, body = http_get(port, "/ready")
    assert status == 503 and body == "database routed: cluster nowhere has no confirmed primary\n"


@pytest.fixture(scope="module")
def patroni():
    pc = PatroniCluster(nodes=2).start(timeout=90)
    yield pc
    pc.stop()


def topology_primary(mux):
    rows = [r for r in mux.admin("SHOW TOPOLOGY") if r["role"] == "primary"]
    return rows[0]["member"] if len(rows) == 1 else None


def test_switchover_counted_with_write_pause(pgmux, patroni):
    port = free_port()
    section = ("\n[cluster.main]\n"
               f"patroni = {' '.join(patroni.rest_urls)}\n"
               "patroni_poll_interval = 0.2\n"
               "health_check_interval = 0.5\n"
               "health_check_timeout = 2\n"
               "primary_wait_timeout = 40\n")
    mux = pgmux(databases={"app": "cluster=main dbname=postgres"}, extra_sections=section,
                settings={"metrics_listen": f"127.0.0.1:{port}", "default_pool_size": 2,
                          "server_login_retry": 0.2})
    old = wait_for(lambda: topology_primary(mux), timeout=20, what="a confirmed primary")
    assert old == patroni.leader()
    before = scrape(port)
    changes = {k: value(before, "pgmux_cluster_primary_changes_total", cluster="main", kind=k)
               for k in ("switchover", "failover")}
    pauses_before = value(before, "pgmux_cluster_write_pause_seconds",
                          "pgmux_cluster_write_pause_seconds_count", cluster="main")

    started = time.monotonic()
    new = patroni.switchover()
    assert new != old
    wait_for(lambda: topology_primary(mux) == new, timeout=30,
             what=f"pgmux confirming {new} as primary")
    took = time.monotonic() - started

    def counted():
        fams = scrape(port)
        got = value(fams, "pgmux_cluster_primary_changes_total", cluster="main",
                    kind="switchover")
        return fams if got > changes["switchover"] else None

    # Told once the old primary is back as a replica (Patroni restarts it as one).
    after = wait_for(counted, timeout=60, interval=0.2,
                     what="pgmux_cluster_primary_changes_total{kind=switchover} to move")
    assert value(after, "pgmux_cluster_primary_changes_total", cluster="main",
                 kind="switchover") == changes["switchover"] + 1
    assert value(after, "pgmux_cluster_primary_changes_total", cluster="main",
                 kind="failover") == changes["failover"]
    assert value(after, "pgmux_cluster_write_pause_seconds",
                 "pgmux_cluster_write_pause_seconds_count", cluster="main") == pauses_before + 1
    pause = value(after, "pgmux_cluster_last_write_pause_seconds", cluster="main")
    print(f"switchover {old} -> {new}: took {took:.3f} s, pgmux's write pause {pause:.3f} s")
    assert 0 < pause < took, f"write pause {pause} s, switchover took {took:.3f} s"
    # The histogram holds that one pause: its sum, and the buckets at or above it.
    assert value(after, "pgmux_cluster_write_pause_seconds",
                 "pgmux_cluster_write_pause_seconds_sum", cluster="main") >= pause
    assert value(after, "pgmux_cluster_write_pause_seconds",
                 "pgmux_cluster_write_pause_seconds_bucket", cluster="main", le="+Inf") == \
        pauses_before + 1
    rows = [r for r in mux.admin("SHOW TOPOLOGY") if r["cluster"] == "main"]
    assert rows and all(int(r["switchovers"]) == changes["switchover"] + 1 for r in rows)
    assert all(abs(int(r["last_write_pause_ms"]) - int(pause * 1000)) <= 1 for r in rows)
    assert f"cluster main: switchover from {old} to {new}, writes paused" in mux.log()
    # Writes go on through pgmux, at the new primary.
    conn = mux.connect("app")
    assert conn.execute("/* pgmux:primary */ SELECT pg_is_in_recovery()").fetchone()[0] is False
