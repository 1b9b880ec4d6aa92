#!/usr/bin/env python3
"""The CPU cost of scraping pgmux's /metrics once a second with many pools (make bench-metrics).

N databases (default 1,000) on one throwaway PostgreSQL, each used once so that every pool and
every histogram is in the exposition; then pgmux's CPU time over the same wall time idle and
scraped once a second. The goal is a cost under 1 % of one core with 1,000 pools.
"""
import argparse
import os
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "test", "lib"))
from pgcluster import PgCluster, Pgmux, free_port  # noqa: E402

import psycopg  # noqa: E402


def cpu_seconds(pid):
    """User plus system CPU time of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        return r.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", type=int, default=1000)
    ap.add_argument("--window", type=int, default=20, help="seconds idle, then scraped")
    args = ap.parse_args()
    pg = PgCluster().init().start()
    mux = None
    try:
        pg.sql("CREATE DATABASE app")
        port = free_port()
        dbs = {f"d{i}": f"host=127.0.0.1 port={pg.port} dbname=app" for i in range(args.pools)}
        basedir = tempfile.mkdtemp(prefix="pgmux-bench-metrics-")
        # stderr to a file: a pipe nobody reads would stop pgmux once full
        mux = Pgmux(dbs, settings={"metrics_listen": f"127.0.0.1:{port}", "max_client_conn": 4000,
                                   "server_idle_timeout": 1, "pool_mode": "transaction",
                                   "log_connections": 0},
                    basedir=basedir, stderr_path=os.path.join(basedir, "stderr.log"))
        mux.start()
        for i in range(args.pools):
            with psycopg.connect(mux.dsn(f"d{i}"), autocommit=True) as c:
                c.execute("SELECT 1")
        size = len(get(port))
        start = time.time()
        for _ in range(20):
            get(port)
        per_scrape = (time.time() - start) / 20
        c0 = cpu_seconds(mux.proc.pid)
        time.sleep(args.window)
        c1 = cpu_seconds(mux.proc.pid)
        for _ in range(args.window):
            t = time.time()
            get(port)
            time.sleep(max(0, 1 - (time.time() - t)))
        c2 = cpu_seconds(mux.proc.pid)
        idle, scraping = (c1 - c0) / args.window, (c2 - c1) / args.window
        print(f"{args.pools} pools: exposition {size / 1e6:.2f} MB, {per_scrape * 1000:.1f} ms per "
              f"scrape; pgmux CPU idle {idle * 100:.2f} %, scraped once a second "
              f"{scraping * 100:.2f} %: scraping costs {(scraping - idle) * 100:.2f} % of one core "
              f"(goal < 1 %)")
    finally:
        if mux:
            mux.stop()
        pg.destroy()


if __name__ == "__main__":
    main()
