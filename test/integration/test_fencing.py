"""Fencing: a primary pgmux still takes for the primary, found to be a standby when a new server
connection logs in (in_hot_standby, PostgreSQL 14+), takes no write. The connection is closed,
the topology hears of the demotion at once (long before its next scheduled check), writes wait
for a primary and reads are served by the standby.

The demotion is real: the cluster's one server is stopped and started again as a standby (a
standby.signal file), on the same port, faster than pgmux's health checks look.
"""
import os
import shutil
import subprocess
import sys

import psycopg
import pytest

from conftest import wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from pgcluster import PG_BIN, PgCluster, as_pg_user  # noqa: E402


@pytest.fixture
def node():
    n = PgCluster().init().start()
    yield n
    n.destroy()


def role_of(mux, node):
    for row in mux.admin("SHOW TOPOLOGY"):
        if row["port"] == str(node.port):
            return row["role"]
    return None


def demote(node):
    """Stop the server and start it again as a standby of nobody: read-only, in recovery."""
    node.stop()
    signal_file = os.path.join(node.datadir, "standby.signal")
    open(signal_file, "w").close()
    if os.geteuid() == 0:
        shutil.chown(signal_file, "postgres", "postgres")
    node.start()


def promote(node):
    subprocess.run(as_pg_user([os.path.join(PG_BIN, "pg_ctl"), "-D", node.datadir, "-w",
                               "promote"]), check=True, stdout=subprocess.DEVNULL, cwd="/")


def test_demoted_primary_is_fenced_at_login(pgmux, node):
    section = (f"\n[cluster.solo]\nhosts = 127.0.0.1:{node.port}\n"
               # no scheduled check comes during the test: only the fencing can tell
               "health_check_interval = 600\nprimary_wait_timeout = 2\n")
    mux = pgmux(databases={"app": "cluster=solo dbname=postgres"}, extra_sections=section,
                settings={"server_login_retry": 0.2})
    wait_for(lambda: role_of(mux, node) == "primary", 10, what="the primary confirmed")
    with mux.connect() as c:
        c.execute("CREATE TABLE fenced (i int)")

    demote(node)
    assert role_of(mux, node) == "primary"  # pgmux has not looked yet

    with mux.connect() as c:
        # A write: on the standby it would fail with 25006; fenced, it waits for a primary.
        with pytest.raises(psycopg.Error) as err:
            c.execute("INSERT INTO fenced VALUES (1)")
        assert err.value.sqlstate == "57P03", err.value
    assert "says it is a standby: fencing it" in mux.stderr() + mux.log()
    wait_for(lambda: role_of(mux, node) == "replica", 5, what="the topology to hear it")
    with mux.connect() as c:
        assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True

    # Promoted again and checked often again (a reload): writes go there.
    promote(node)
    mux.extra_sections = section.replace("health_check_interval = 600", "health_check_interval = 0.2")
    mux.write_config()
    mux.admin("RELOAD")
    with mux.connect() as c:
        wait_for(lambda: role_of(mux, node) == "primary", 15, what="the primary again")
        c.execute("INSERT INTO fenced VALUES (2)")
        assert c.execute("SELECT count(*) FROM fenced").fetchone()[0] == 1
