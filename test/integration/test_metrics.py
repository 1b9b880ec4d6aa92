"""The metrics endpoint (metrics_listen): GET /metrics in the Prometheus text format, /health and
/ready; values that move with traffic; a hostile scraper (slowloris, a 1 MB header) that stops
neither scrapes nor clients and leaves memory bounded; scrapes during a shutdown; Debian's
Prometheus server scraping pgmux; Debian's prometheus-pgbouncer-exporter reading the admin
console; and the CPU cost of scraping once a second with 1,000 pools.
"""
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import db_entries, wait_for
from pgcluster import free_port

SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})?'
    r' (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse_prom(text):
    """A small parser of the Prometheus text format (0.0.4), strict enough to fail on what
    Prometheus refuses: returns {family: {"type", "help", "samples": [(name, labels, value)]}}.
    Every sample must follow its family's TYPE line, families appear once, values are floats,
    histograms have monotone buckets ending in +Inf equal to _count."""
    families, current = {}, None
    assert text.endswith("\n"), "exposition must end with a newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in families, f"family {name} appears twice"
            families[name] = {"help": line.split(" ", 3)[3], "type": None, "samples": []}
            current = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert name == current and typ in ("gauge", "counter", "histogram", "untyped")
            families[name]["type"] = typ
            continue
        assert line and not line.startswith("#"), f"unexpected line {line!r}"
        m = SAMPLE_RE.match(line)
        assert m, f"malformed sample line {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        base = current
        if families[base]["type"] == "histogram":
            assert name in (base + "_bucket", base + "_sum", base + "_count"), line
        else:
            assert name == base, f"sample {name} outside its family ({base})"
        v = float(value)
        assert not math.isnan(v)
        families[base]["samples"].append((name, dict(LABEL_RE.findall(labels)), v))
    for name, fam in families.items():
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def check_histogram(name, samples):
    series = {}
    for sname, labels, v in samples:
        key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        series.setdefault(key, {"buckets": []})
        if sname.endswith("_bucket"):
            series[key]["buckets"].append((labels["le"], v))
        else:
            series[key][sname[len(name) + 1:]] = v
    for key, s in series.items():
        les = [float(le) for le, _ in s["buckets"]]
        counts = [c for _, c in s["buckets"]]
        assert les == sorted(les) and les[-1] == math.inf, f"{name}{key}: bad le order"
        assert counts == sorted(counts), f"{name}{key}: buckets not cumulative"
        assert counts[-1] == s["count"], f"{name}{key}: +Inf bucket != _count"
        assert s["sum"] >= 0


def value(fams, family, sample=None, **labels):
    """The value of the one sample of family (or its sample name) with these labels; 0 if none."""
    found = [v for n, ls, v in fams.get(family, {"samples": []})["samples"]
             if n == (sample or family) and all(ls.get(k) == x for k, x in labels.items())]
    assert len(found) <= 1, f"{family} {labels}: {len(found)} samples"
    return found[0] if found else 0.0


def http_get(port, path, timeout=5.0):
    """(status, body) of GET path on the metrics endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port, timeout=5.0):
    status, body = http_get(port, "/metrics", timeout)
    assert status == 200
    return parse_prom(body)


@pytest.fixture
def metrics_mux(pgmux):
    def make(settings=None, **kw):
        port = free_port()
        conf = {"metrics_listen": f"127.0.0.1:{port}"}
        conf.update(settings or {})
        mux = pgmux(settings=conf, **kw)
        mux.metrics_port = port
        return mux
    return make


def test_metrics_parse_and_move_with_traffic(metrics_mux):
    mux = metrics_mux()
    before = scrape(mux.metrics_port)
    assert value(before, "pgbouncer_up") == 1
    assert value(before, "pgbouncer_databases_pool_size", name="app") == 5
    conn = mux.connect()
    for i in range(30):
        assert conn.execute("SELECT %s::int", (i,)).fetchone()[0] == i
    with conn.transaction():
        conn.execute("SELECT pg_sleep(0.03)")
        conn.execute("SELECT 1")
    r = mux.pgbench("-n", "-S", "-t", "50", "-c", "2")
    assert r.returncode == 0, r.stderr
    after = scrape(mux.metrics_port)
    q0 = value(before, "pgbouncer_stats_queries_pooled_total", database="app")
    q1 = value(after, "pgbouncer_stats_queries_pooled_total", database="app")
    assert q1 - q0 >= 30 + 2 + 100
    x1 = value(after, "pgbouncer_stats_sql_transactions_pooled_total", database="app")
    assert x1 >= 30 + 1 + 100
    # The histograms count the same units as the totals.
    assert value(after, "pgmux_query_duration_seconds", "pgmux_query_duration_seconds_count",
                 database="app", user="postgres") == q1
    assert value(after, "pgmux_transaction_duration_seconds",
                 "pgmux_transaction_duration_seconds_count", database="app") == x1
    # The transaction with a 30 ms sleep is above the 25 ms bound, the rest mostly below.
    above = x1 - value(after, "pgmux_transaction_duration_seconds",
                       "pgmux_transaction_duration_seconds_bucket", database="app", le="0.025")
    assert above >= 1
    assert value(after, "pgmux_server_login_seconds", "pgmux_server_login_seconds_count",
                 database="app") >= 1
    assert value(after, "pgmux_server_connect_seconds", "pgmux_server_connect_seconds_count",
                 database="app") >= 1
    assert value(after, "pgmux_client_wait_seconds", "pgmux_client_wait_seconds_count",
                 database="app") == value(after, "pgmux_server_assignments_total", database="app")
    assert value(after, "pgbouncer_pools_client_active_connections", database="app",
                 user="postgres") >= 1
    assert value(after, "pgbouncer_stats_received_bytes_total", database="app") > \
        value(before, "pgbouncer_stats_received_bytes_total", database="app")
    # SHOW LATENCY reads the same histograms.
    rows = {r["database"]: r for r in mux.admin("SHOW LATENCY")}
    assert int(rows["app"]["query_count"]) == q1
    assert 0 <= float(rows["app"]["query_p50_us"]) <= float(rows["app"]["query_p99_us"])
    assert float(rows["app"]["xact_p99_us"]) > 0


def test_reload_counted(metrics_mux):
    mux = metrics_mux()
    mux.admin("RELOAD")
    fams = scrape(mux.metrics_port)
    assert value(fams, "pgmux_reloads_total", result="ok") == 1
    assert value(fams, "pgmux_reloads_total", result="failed") == 0


def test_health_ready_and_errors(metrics_mux, pg):
    dead = free_port()
    mux = metrics_mux(databases=db_entries(pg, routed="cluster=nowhere dbname=app"),
                      extra_sections=f"\n[cluster.nowhere]\nhosts = 127.0.0.1:{dead}\n"
                                     "health_check_interval = 0.2\n")
    assert http_get(mux.metrics_port, "/health") == (200, "ok\n")
    status, body = http_get(mux.metrics_port, "/ready")
    assert status == 503 and "nowhere" in body and "primary" in body
    assert http_get(mux.metrics_port, "/nope")[0] == 404
    assert http_get(mux.metrics_port, "/metrics?x=1")[0] == 200
    fams = scrape(mux.metrics_port)
    assert value(fams, "pgmux_cluster_has_primary", cluster="nowhere") == 0
    assert value(fams, "pgmux_cluster_member_role", cluster="nowhere",
                 member=f"127.0.0.1:{dead}", role="unknown") == 1
    # Methods other than GET and HEAD, and garbage.
    req = urllib.request.Request(f"http://127.0.0.1:{mux.metrics_port}/metrics", data=b"x",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code in (400, 405)
    with socket.create_connection(("127.0.0.1", mux.metrics_port), timeout=5) as s:
        s.sendall(b"HELLO\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    # HEAD, and two pipelined requests on one keep-alive connection.
    with socket.create_connection(("127.0.0.1", mux.metrics_port), timeout=5) as s:
        s.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 2 and data.endswith(b"ok\n")


def test_ready_when_routed_cluster_has_primary(metrics_mux, pg):
    mux = metrics_mux(databases=db_entries(pg, routed="cluster=one dbname=app"),
                      extra_sections=f"\n[cluster.one]\nhosts = 127.0.0.1:{pg.port}\n"
                                     "health_check_interval = 0.2\n")
    wait_for(lambda: http_get(mux.metrics_port, "/ready")[0] == 200, timeout=10,
             what="/ready once the cluster's primary is confirmed")
    conn = mux.connect("routed")
    conn.execute("SELECT 1")
    fams = scrape(mux.metrics_port)
    assert value(fams, "pgmux_cluster_has_primary", cluster="one") == 1
    assert value(fams, "pgmux_cluster_member_role", cluster="one",
                 member=f"127.0.0.1:{pg.port}", role="primary") == 1
    decided = sum(v for n, ls, v in fams["pgmux_route_decisions_total"]["samples"]
                  if ls["database"] == "routed")
    assert decided >= 1
    # a routed database's query and transaction times are split by the role that ran them
    # (here the primary: reads fall back to it), with no role-less series beside them
    for fam in ("pgmux_query_duration_seconds", "pgmux_transaction_duration_seconds"):
        samples = [ls for n, ls, v in fams[fam]["samples"]
                   if ls.get("database") == "routed" and n == fam + "_count"]
        assert samples and all(ls.get("role") == "primary" for ls in samples), samples
        assert value(fams, fam, fam + "_count", database="routed", role="primary") >= 1


def test_large_header_refused_and_serving_goes_on(metrics_mux):
    mux = metrics_mux()
    with socket.create_connection(("127.0.0.1", mux.metrics_port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: ")
        sent, answer = 0, b""
        try:
            while sent < 1024 * 1024:
                s.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            pass  # closed on us after the answer: expected
        try:
            answer = s.recv(200)
        except OSError:
            pass
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer
    assert scrape(mux.metrics_port)["pgbouncer_up"]
    assert http_get(mux.metrics_port, "/health")[0] == 200


@pytest.mark.timeout(90)
def test_slowloris_does_not_stop_scrapes_or_clients(metrics_mux):
    mux = metrics_mux()
    conn = mux.connect()
    scrape(mux.metrics_port)
    rss0 = mux.status("VmRSS")
    stop = threading.Event()
    socks = []

    def dribble():
        for _ in range(100):
            try:
                s = socket.create_connection(("127.0.0.1", mux.metrics_port), timeout=5)
                s.setblocking(False)
                socks.append(s)
            except OSError:
                pass
        i = 0
        while not stop.is_set():
            for s in list(socks):
                try:
                    s.send(b"GET /metrics HTTP/1.1\r\nX: "[i % 10:i % 10 + 1] or b"a")
                except OSError:
                    socks.remove(s)
                    s.close()
                    try:  # a slowloris reconnects when dropped
                        n = socket.create_connection(("127.0.0.1", mux.metrics_port), timeout=5)
                        n.setblocking(False)
                        socks.append(n)
                    except OSError:
                        pass
            i += 1
            stop.wait(1.0)

    t = threading.Thread(target=dribble, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(socks) >= 100, timeout=20, what="the slowloris connections open")
        worst = 0.0
        for i in range(20):
            start = time.time()
            fams = scrape(mux.metrics_port, timeout=3)
            worst = max(worst, time.time() - start)
            assert fams["pgbouncer_up"]
            assert conn.execute("SELECT %s::int", (i,)).fetchone()[0] == i
            time.sleep(0.4)
        fams = scrape(mux.metrics_port)
        assert value(fams, "pgmux_metrics_connections") <= 16

        def dropped():
            f = scrape(mux.metrics_port)
            return value(f, "pgmux_metrics_evicted_total") + \
                value(f, "pgmux_metrics_timeouts_total") >= 80
        wait_for(dropped, timeout=30, what="80 slow connections evicted or timed out")
        rss1 = mux.status("VmRSS")
        assert rss1 - rss0 < 8 * 1024, f"VmRSS grew from {rss0} kB to {rss1} kB"
        print(f"slowloris: worst scrape {worst * 1000:.0f} ms, VmRSS {rss0} -> {rss1} kB")
    finally:
        stop.set()
        t.join(5)
        for s in socks:
            s.close()


def test_scrapes_during_shutdown(metrics_mux):
    mux = metrics_mux()
    conn = mux.connect()
    conn.execute("SELECT 1")
    mux.signal(signal.SIGTERM)
    wait_for(lambda: value(scrape(mux.metrics_port), "pgmux_shutting_down") == 1, timeout=10,
             what="the shutdown seen in /metrics")
    for _ in range(5):
        fams = scrape(mux.metrics_port)
        assert value(fams, "pgmux_shutting_down") == 1
        assert value(fams, "pgbouncer_pools_client_active_connections", database="app",
                     user="postgres") == 1
        time.sleep(0.1)
    status, body = http_get(mux.metrics_port, "/ready")
    assert status == 503 and "shutting down" in body
    assert http_get(mux.metrics_port, "/health")[0] == 200
    conn.close()
    assert mux.wait_exit(10) == 0


PROMETHEUS = "/usr/bin/prometheus"
EXPORTER = "/usr/bin/prometheus-pgbouncer-exporter"


def prom_query(port, q):
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(q)}"
    with urllib.request.urlopen(url, timeout=5) as r:
        data = json.load(r)
    assert data["status"] == "success"
    return data["data"]["result"]


@pytest.mark.timeout(90)
@pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="Debian's prometheus not installed")
def test_prometheus_server_scrapes_pgmux(metrics_mux, tmp_path):
    mux = metrics_mux()
    conn = mux.connect()
    for i in range(10):
        conn.execute("SELECT 1")
    web = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                   "scrape_configs:\n  - job_name: pgmux\n    static_configs:\n"
                   f"      - targets: ['127.0.0.1:{mux.metrics_port}']\n")
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{web}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        def scraped():
            try:
                res = prom_query(web, 'up{job="pgmux"}')
            except (OSError, AssertionError):
                return False
            return bool(res) and res[0]["value"][1] == "1"
        wait_for(scraped, timeout=30, interval=0.5, what="prometheus scraping pgmux")
        res = prom_query(web, 'pgbouncer_stats_queries_pooled_total{database="app"}')
        assert res and float(res[0]["value"][1]) >= 10
        res = prom_query(web, 'pgmux_query_duration_seconds_bucket{database="app",le="+Inf"}')
        assert res and float(res[0]["value"][1]) >= 10
        res = prom_query(web, 'histogram_quantile(0.99, pgmux_query_duration_seconds_bucket'
                              '{database="app"})')
        assert res and 0 < float(res[0]["value"][1]) < 1
        res = prom_query(web, 'pgbouncer_pools_client_active_connections')
        assert {r["metric"]["database"] for r in res} >= {"app"}
        # The scrape itself raised no warnings (Prometheus rejects malformed expositions).
        targets = json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{web}/api/v1/targets", timeout=5))["data"]["activeTargets"]
        assert targets[0]["health"] == "up" and not targets[0]["lastError"]
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.exists(EXPORTER),
                    reason="Debian's prometheus-pgbouncer-exporter not installed")
def test_debian_pgbouncer_exporter_reads_console(pgmux):
    mux = pgmux()
    conn = mux.connect()
    conn.execute("SELECT 1")
    port = free_port()
    proc = subprocess.Popen([EXPORTER, "--pgbouncer-port", str(mux.port), "--pgbouncer-user",
                             "postgres", "--pgbouncer-host", "127.0.0.1", "--port", str(port),
                             "--host", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def up():
            try:
                return http_get(port, "/metrics", timeout=10)
            except OSError:
                return None
        wait_for(lambda: up() is not None or proc.poll() is not None, timeout=20,
                 what="the exporter listening")
        # Debian's exporter 1.7 reads SHOW STATS' total_requests, PgBouncer's name before 1.8
        # for total_query_count: pgmux prints both.
        if proc.poll() is not None:
            pytest.fail("the exporter exited:\n" + proc.stdout.read()[-3000:])
        status, body = up()
        assert status == 200, body
        fams = parse_prom(body)
        assert value(fams, "pgbouncer_active_clients", database="app", user="postgres") >= 1
        assert value(fams, "pgbouncer_pool_size", database="app") == 5
        assert "pgbouncer_requests_total" in fams and "pgbouncer_pools" in fams
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
        print(out[-3000:])


@pytest.mark.timeout(120)
def test_exposition_with_many_pools(metrics_mux, pg):
    """Every pool and every database's histograms are in one scrape (the CPU cost of scraping
    with 1,000 pools is measured by `make bench-metrics`, not here)."""
    n = 200
    dbs = {f"d{i}": f"host=127.0.0.1 port={pg.port} dbname=app" for i in range(n)}
    mux = metrics_mux(settings={"max_client_conn": 2000}, databases=dbs)
    for i in range(n):
        with mux.connect(f"d{i}") as c:
            c.execute("SELECT 1")
    fams = scrape(mux.metrics_port)
    assert value(fams, "pgbouncer_pools") == n
    for i in (0, n // 2, n - 1):
        assert value(fams, "pgmux_query_duration_seconds", "pgmux_query_duration_seconds_count",
                     database=f"d{i}") >= 1
