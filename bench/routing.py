#!/usr/bin/python3
"""What read/write routing costs pgmux and what it buys, measured with pgbench.

1. Cost. One PostgreSQL server behind one pgmux (transaction pooling, pool size 10) that serves
   two databases on that server: `plain` (host=, no routing) and `routed` (cluster= with that
   one server as its only member and read_from = primary). Both send every transaction to the
   same server, so only pgmux's routing work differs: classifying each unit of work, picking a
   member, keeping the route counters. pgbench -S and tpcb-like, 20 clients, run against each
   in interleaved rounds, the order alternating from round to round (plain routed, routed
   plain, plain routed ...).
2. Benefit. A primary with two streaming replicas; `plain` goes to the primary only, `routed`
   lists all three members with read_from = replicas. pgbench -S, 20 clients, interleaved;
   SHOW ROUTES before and after each routed run says where the reads went, and the CPU time
   of each PostgreSQL server says where the work went.
3. The classifier alone: test_classify --bench times it on a typical SELECT.

tps on two shared cores moves by tens of percent from run to run, so the two databases are
only compared within one run, by medians over rounds and by the ratio within each round. The
figure that noise moves much less is pgmux's CPU time per transaction, from /proc.

Usage: routing.py [--quick] [--out DIR] [--rounds N] [--duration S] [--classify PATH] [--keep]
"""
import argparse
import csv
import datetime
import io
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import procstat  # noqa: E402
from bench import log, raise_nofile, read_latencies  # noqa: E402
from report import _git, f_ms, f_num, f_tps, f_x3, table  # noqa: E402
from stats import Cell, ratio  # noqa: E402
from targets import DBNAME, PG_BIN, PGMUX_BIN, Backend, PgmuxTarget, env_for  # noqa: E402

from replication import ReplicaSet  # noqa: E402  (test/lib is on the path via targets)

POOL_SIZE = 10
CLIENTS = 20
JOBS = 2
HEALTH_CHECK_INTERVAL = 1
ORDER = ("plain", "routed")
CLASSIFY_BIN = os.path.join(ROOT, "build", "rel", "test", "test_classify")

MODES = {
    # measured rounds, seconds per run, warm-up seconds per database, pgbench scale,
    # runs of the classifier benchmark; --quick also counts no syscalls
    "full": dict(rounds=6, duration=5, warmup=2, scale=10, classify_runs=3),
    "quick": dict(rounds=4, duration=2, warmup=1, scale=10, classify_runs=1),
}


class Workload:
    def __init__(self, key, title, args):
        self.key = key
        self.title = title
        self.args = args

    def cmd(self, port, dbname, duration, log_prefix=None):
        return ([os.path.join(PG_BIN, "pgbench"), "-h", "127.0.0.1", "-p", str(port),
                 "-U", "postgres", "-n", "-T", str(duration), "-c", str(CLIENTS),
                 "-j", str(JOBS)] + self.args
                + (["-l", f"--log-prefix={log_prefix}"] if log_prefix else []) + [dbname])

    def shown(self, duration):
        return " ".join(["pgbench", "-h", "127.0.0.1", "-p", "$PGMUX_PORT", "-U", "postgres",
                         "-n", "-T", str(duration), "-c", str(CLIENTS), "-j", str(JOBS)]
                        + self.args + ["-l", "{plain|routed}"])


SELECT = Workload("S-c20", f"-S -c {CLIENTS}", ["-S"])
TPCB = Workload("tpcb-c20", f"tpcb-like -c {CLIENTS}", [])

ROUTE_COUNTERS = ("reads_replica", "reads_primary", "reads_fallback", "reads_refused", "writes")


# --- pgmux with a plain and a routed database ---------------------------------------------

class RoutingMux(PgmuxTarget):
    """One pgmux process serving `plain` (host=) and `routed` (cluster=main)."""

    name = "pgmux"
    label = "pgmux"

    def __init__(self, databases, cluster):
        super().__init__(None, "trust", POOL_SIZE)
        self.databases = databases
        self.cluster = cluster
        self.mux = None
        self.dir = None

    def start(self):
        from pgcluster import Pgmux
        if not os.access(PGMUX_BIN, os.X_OK):
            self.error = "./pgmux not built"
            return False
        section = "\n[cluster.main]\n" + "".join(f"{k} = {v}\n" for k, v in self.cluster.items())
        return self.launch(Pgmux(self.databases, port=self.port, extra_sections=section))

    def admin(self, command):
        """An admin console command through psql; a list of dicts of text values."""
        out = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "--csv", "-h",
                              "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "pgmux",
                              "-c", command], capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            raise RuntimeError(f"{command}: {out.stderr.strip()}")
        return list(csv.DictReader(io.StringIO(out.stdout)))

    def routes(self, dbname="routed", must=True):
        """dbname's SHOW ROUTES counters. Before its first client the database has no row
        (nothing routed yet): zeros then, unless must."""
        rows = self.admin("SHOW ROUTES")
        for row in rows:
            if row["database"] == dbname:
                return {k: int(row[k] or 0) for k in ROUTE_COUNTERS}
        if must:
            raise RuntimeError(f"SHOW ROUTES has no row for {dbname}: {rows}")
        return dict.fromkeys(ROUTE_COUNTERS, 0)

    def topology(self):
        return {int(r["port"]): r for r in self.admin("SHOW TOPOLOGY")}

    def wait_roles(self, expected, timeout=15.0):
        """Poll SHOW TOPOLOGY until each port in expected has its role and is healthy.

        Returns the seconds it took from the call."""
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < timeout:
            try:
                last = self.topology()
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                last = str(e)
            else:
                if all(p in last and last[p]["role"] == role and last[p]["healthy"] == "1"
                       for p, role in expected.items()):
                    return time.monotonic() - t0
            if not self.alive():
                break
            time.sleep(0.02)
        raise RuntimeError(f"pgmux did not confirm the roles {expected} within {timeout} s; "
                           f"SHOW TOPOLOGY: {last}\n{self.log_tail()}")

    def log_text(self):
        try:
            with open(self.mux.log_path, errors="replace") as f:
                return f.read()
        except (OSError, AttributeError):
            return ""



def postmaster_pid(cluster):
    try:
        with open(os.path.join(cluster.datadir, "postmaster.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


# --- one pgbench run ----------------------------------------------------------------------

def run_pgbench(mux, dbname, w, duration, workdir, measure, use_perf, grace=60):
    """One pgbench run. Returns (tps, ntx, hist, eff, error)."""
    prefix = os.path.join(workdir, f"lat-{w.key}-{dbname}")
    sampler = None
    if measure:
        procstat.reset_peak_rss(mux.pid)
        sampler = procstat.Sampler(mux.pid, workdir, use_perf).start()
    try:
        out = subprocess.run(w.cmd(mux.port, dbname, duration, prefix if measure else None),
                             capture_output=True, text=True, env=env_for("trust"),
                             timeout=duration + grace, cwd=workdir)
    except subprocess.TimeoutExpired:
        read_latencies(prefix)
        return None, 0, None, None, f"pgbench hung (killed {grace} s after its run time)"
    finally:
        eff = sampler.stop() if sampler else None  # also ends perf when we are interrupted
    hist = read_latencies(prefix)
    text = out.stdout + out.stderr
    m = re.search(r"^tps = ([\d.]+)", out.stdout, re.M)
    n = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    problem = None
    if out.returncode != 0 or not m or not n or re.search(r"aborted|Run was aborted", text):
        errs = [line for line in text.splitlines()
                if re.search(r"error|abort|fatal", line, re.I)]
        problem = (errs or text.strip().splitlines()[-1:] or ["no output"])[0].strip()
        problem = f"pgbench exit {out.returncode}: {problem[:300]}"
    elif failed and int(failed.group(1)) > 0:
        problem = f"{failed.group(1)} failed transactions"
    if problem:
        if not mux.alive():
            problem = f"pgmux exited ({mux.proc.returncode}); {problem}"
        return None, 0, None, None, problem
    return float(m.group(1)), int(n.group(1)), hist, eff, None


# --- the two measured parts ---------------------------------------------------------------

class Series(Cell):
    """A Cell (tps, latency, summed kernel figures) plus what routing.py adds per run."""

    def __init__(self, target, workload):
        super().__init__(target, workload)
        self.round_tps = {}        # round number -> tps, to pair the databases round by round
        self.cpu10k_runs = []      # pgmux CPU seconds per 10k transactions, each run
        self.routes = Counter()    # SHOW ROUTES deltas summed over the measured runs
        self.node_cpu = Counter()  # PostgreSQL server -> CPU seconds over the measured runs
        self.servers = {}          # member -> server connections after the last run


def round_order(num):
    """plain first in even rounds (the warm-up is round 0), routed first in odd ones.

    The second run of a round tends to come out faster than the first, so a fixed order
    would favour one database; alternating it (P R, R P, P R, ...) cancels that over an even
    number of rounds."""
    return ORDER if num % 2 == 0 else ORDER[::-1]


class Part:
    """Interleaved rounds of some workloads against `plain` and `routed` of one pgmux."""

    def __init__(self, h, key, mux, nodes):
        self.h = h
        self.key = key
        self.mux = mux
        self.nodes = nodes         # [(label, PgCluster)]: where the CPU of PostgreSQL is read
        self.cells = {}            # (workload key, database) -> Series
        self.problems = []         # pgbench errors, with pgmux's log tail
        self.confirm_s = None

    def run_workload(self, w):
        o = self.h.opts
        cells = {d: Series(d, w.key) for d in ORDER}
        for d in ORDER:
            self.cells[(w.key, d)] = cells[d]
        log(f"== {self.key}: {w.title}, warm-up {o.warmup} s, then {o.rounds} x {o.duration} s "
            "per database, interleaved")
        rounds = [(0, "warm-up", o.warmup, False)] + \
            [(i + 1, f"round {i + 1}", o.duration, True) for i in range(o.rounds)]
        pids = {label: postmaster_pid(c) for label, c in self.nodes}
        for num, label, duration, measure in rounds:
            line = []
            for d in round_order(num):
                c = cells[d]
                if c.error:
                    continue
                if not self.mux.alive():
                    c.error = f"pgmux is not running (exit {self.mux.proc.returncode})"
                    self.problems.append((f"{w.title}, {d}", c.error, self.mux.log_tail()))
                    continue
                r0 = self.mux.routes(must=False) if d == "routed" else None
                cpu0 = {k: procstat.cpu_seconds(p) for k, p in pids.items() if p}
                tps, ntx, hist, eff, err = run_pgbench(self.mux, d, w, duration, self.h.workdir,
                                                       measure, self.h.use_perf)
                cpu1 = {k: procstat.cpu_seconds(p) for k, p in pids.items() if p}
                if err:
                    c.error = err
                    line.append(f"{d} FAILED")
                    log(f"  {d}: {err}")
                    self.problems.append((f"{w.title}, {d}, {label}", err, self.mux.log_tail()))
                    continue
                r1 = self.mux.routes() if d == "routed" else None
                line.append(f"{d} {tps:,.0f}")
                if not measure:
                    continue
                c.add(tps, ntx, hist, eff)
                c.round_tps[num] = tps
                c.cpu10k_runs.append(eff["cpu_s"] / ntx * 10000)
                for k in cpu1:
                    c.node_cpu[k] += cpu1[k] - cpu0.get(k, cpu1[k])
                if r0 is not None:
                    c.routes.update({k: r1[k] - r0[k] for k in ROUTE_COUNTERS})
                    c.servers = {port: int(row["servers"] or 0)
                                 for port, row in self.mux.topology().items()}
            log(f"  {label}: " + ", ".join(line))

    def round_ratios(self, wkey):
        p, r = self.cells[(wkey, "plain")], self.cells[(wkey, "routed")]
        return [r.round_tps[i] / p.round_tps[i] for i in sorted(p.round_tps)
                if i in r.round_tps and p.round_tps[i]]


def cost_part(h):
    """Part 1: routing on vs off, everything on one server."""
    o = h.opts
    t0 = time.monotonic()
    h.backend = Backend(o.scale).start()
    port = h.backend.port
    h.versions["postgres"] = "PostgreSQL " + h.backend.cluster.sql("SHOW server_version")
    log(f"part 1: PostgreSQL on port {port}, pgbench -i -s {o.scale} loaded "
        f"({time.monotonic() - t0:.1f} s)")
    mux = RoutingMux(
        {"plain": f"host=127.0.0.1 port={port} dbname={DBNAME} pool_size={POOL_SIZE}",
         "routed": f"cluster=main dbname={DBNAME} pool_size={POOL_SIZE}"},
        {"hosts": f"127.0.0.1:{port}", "health_check_interval": HEALTH_CHECK_INTERVAL,
         "read_from": "primary"})
    return run_part(h, "cost", mux, {port: "primary"}, [("server", h.backend.cluster)],
                    [SELECT, TPCB], stop_after=lambda: h.backend.destroy())


def benefit_part(h):
    """Part 2: reads on two streaming replicas vs everything on the primary."""
    o = h.opts
    t0 = time.monotonic()
    # shared_buffers as on the single server of part 1 (ReplicaSet's default is 16MB)
    h.rs = ReplicaSet(replicas=2, settings=["shared_buffers = 64MB"]).start()
    rs = h.rs
    rs.primary.sql(f"CREATE DATABASE {DBNAME}")
    subprocess.run([os.path.join(PG_BIN, "pgbench"), "-i", "-q", "-s", str(o.scale),
                    "-h", "127.0.0.1", "-p", str(rs.primary.port), "-U", "postgres", DBNAME],
                   check=True, capture_output=True)
    rs.primary.sql("VACUUM ANALYZE", dbname=DBNAME)
    rs.primary.sql("CHECKPOINT")
    rs.wait_caught_up(timeout=120)
    log(f"part 2: primary on port {rs.primary.port}, replicas on "
        f"{', '.join(str(r.port) for r in rs.replicas)}, pgbench -i -s {o.scale} loaded and "
        f"replayed ({time.monotonic() - t0:.1f} s)")
    expected = {rs.primary.port: "primary"}
    expected.update({r.port: "replica" for r in rs.replicas})
    mux = RoutingMux(
        {"plain": f"host=127.0.0.1 port={rs.primary.port} dbname={DBNAME} "
                  f"pool_size={POOL_SIZE}",
         "routed": f"cluster=main dbname={DBNAME} pool_size={POOL_SIZE}"},
        {"hosts": " ".join(f"127.0.0.1:{n.port}" for n in rs.nodes),
         "health_check_interval": HEALTH_CHECK_INTERVAL, "read_from": "replicas"})
    nodes = [("primary", rs.primary)] + [(r.name, r) for r in rs.replicas]
    h.rs_ports = {n.port: label for label, n in nodes}
    return run_part(h, "benefit", mux, expected, nodes, [SELECT], stop_after=rs.stop)


def run_part(h, key, mux, expected, nodes, workloads, stop_after):
    part = Part(h, key, mux, nodes)
    h.parts[key] = part
    h.muxes.append(mux)
    try:
        if not mux.start():
            raise RuntimeError(mux.error)
        h.versions.setdefault("pgmux", mux.describe())
        h.configs[key] = h.mask(mux.config_text)
        part.confirm_s = mux.wait_roles(expected)
        log(f"  pgmux on port {mux.port}: roles confirmed {part.confirm_s:.2f} s after the "
            "first SHOW TOPOLOGY")
        for w in workloads:
            part.run_workload(w)
        part.log_lines = problem_lines(mux.log_text())
    finally:
        if part.problems or not mux.alive():
            part.log_tail = mux.log_tail()
        mux.destroy()
        h.muxes.remove(mux)
        stop_after()
    return part


def problem_lines(text):
    return [line for line in text.splitlines() if re.search(r"\b(FATAL|ERROR|WARNING)\b", line)]


# --- part 3: the classifier ---------------------------------------------------------------

def classify_part(h):
    """test_classify --bench: its own figure is wall time over its loop; the CPU time the
    process used (rusage), divided by the same iterations, also holds when other work takes
    the CPU away from it for a while."""
    path = h.opts.classify
    if not os.access(path, os.X_OK):
        h.classify = {"note": f"{os.path.relpath(path, ROOT)} not built (make unit builds it)"}
        log("classifier: " + h.classify["note"])
        return
    ns, cpu_ns, lines = [], [], []
    for _ in range(h.opts.classify_runs):
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run([path, "--bench"], capture_output=True, text=True, timeout=120)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        text = (out.stdout + out.stderr).strip()
        m = re.search(r"([\d.]+) ns/statement", text)
        it = re.search(r"(\d+) iterations", text)
        if out.returncode != 0 or not m or not it:
            h.classify = {"note": f"test_classify --bench exit {out.returncode}: {text[:300]}"}
            log("classifier: " + h.classify["note"])
            return
        ns.append(float(m.group(1)))
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        cpu_ns.append(cpu * 1e9 / int(it.group(1)))
        lines.append(text.splitlines()[-1])
    h.classify = {"ns": ns, "median": statistics.median(ns), "cpu_ns": cpu_ns,
                  "cpu_median": statistics.median(cpu_ns), "line": lines[-1]}
    log(f"classifier: {', '.join(f'{v:.1f}' for v in ns)} ns/statement, CPU time "
        f"{', '.join(f'{v:.1f}' for v in cpu_ns)} ns/statement ({lines[-1]})")


# --- the harness --------------------------------------------------------------------------

class Harness:
    def __init__(self, opts):
        self.opts = opts
        self.workdir = tempfile.mkdtemp(prefix="pgmux-bench-routing-")
        # perf costs about 0.6 s per run to attach and detach: --quick goes without
        self.perf_note = None
        if opts.mode == "quick":
            self.use_perf, self.perf_note = False, "no (--quick skips them)"
        else:
            self.use_perf = procstat.perf_available()
            if not self.use_perf:
                self.perf_note = "no (perf unavailable)"
        self.backend = None
        self.rs = None
        self.muxes = []
        self.parts = {}
        self.errors = {}      # part -> exception text, when a part could not run
        self.classify = {}
        self.rs_ports = {}    # part 2: port -> primary, replica0, replica1
        self.configs = {}
        self.versions = {}

    def mask(self, text):
        return re.sub(r"/tmp/[\w.-]+", "$DIR", text)

    def run(self):
        o = self.opts
        self.started = datetime.datetime.now()
        self.load = os.getloadavg()[0]
        t0 = time.monotonic()
        log(f"pgmux routing bench ({o.mode}): {o.rounds} x {o.duration} s per database, "
            f"pgbench scale {o.scale}, pool size {POOL_SIZE}, {CLIENTS} clients")
        # first, while nothing else runs
        classify_part(self)
        for key, fn in (("cost", cost_part), ("benefit", benefit_part)):
            try:
                fn(self)
            except Exception as e:  # noqa: BLE001 - reported, and the next part still runs
                self.errors[key] = f"{type(e).__name__}: {e}"
                log(f"part {key} could not run: {self.errors[key][:2000]}")
        self.elapsed = time.monotonic() - t0

    def cleanup(self):
        for mux in list(self.muxes):
            mux.destroy()
        self.muxes.clear()
        if self.backend:
            self.backend.destroy()
        if self.rs:
            self.rs.stop()
        if self.opts.keep:
            log(f"work files kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


# --- report -------------------------------------------------------------------------------

def f_range(values, fmt):
    if not values:
        return "-"
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def f_pct(part, whole):
    return "-" if not whole else f"{100 * part / whole:.0f}%"


def cost_tables(part):
    rows, summary = [], []
    for w in (SELECT, TPCB):
        p, r = part.cells.get((w.key, "plain")), part.cells.get((w.key, "routed"))
        if p is None or r is None:
            continue
        ratios = part.round_ratios(w.key)
        cpu_p, cpu_r = p.cpu_per_10k(), r.cpu_per_10k()
        extra_us = (cpu_r - cpu_p) * 100 if cpu_p is not None and cpu_r is not None else None
        rows.append([w.title, f_tps(p.median_tps()), f_tps(r.median_tps()),
                     f_x3(ratio(r.median_tps(), p.median_tps())),
                     f_range(ratios, lambda v: f"{v:.3f}"),
                     f_num(cpu_p, 3), f_num(cpu_r, 3), f_x3(ratio(cpu_r, cpu_p)),
                     "-" if extra_us is None else f"{extra_us:+.1f}"])
        summary.append((w, ratio(r.median_tps(), p.median_tps()), ratio(cpu_r, cpu_p), extra_us))
    ratio_tab = table(["workload", "plain tps", "routed tps", "routed/plain (medians)",
                       "routed/plain per round: median (min-max)", "plain CPU s / 10k tx",
                       "routed CPU s / 10k tx", "CPU routed/plain", "extra CPU us / tx"], rows)
    return ratio_tab, summary


def results_table(part, workloads):
    rows = []
    for w in workloads:
        for d in ORDER:
            c = part.cells.get((w.key, d))
            if c is None:
                continue
            if not c.ok:
                rows.append([w.title, d] + ["-"] * 8 + [c.status + (f": {c.error}"
                                                                    if c.error else "")])
                continue
            rows.append([w.title, d, f_tps(c.median_tps()), f_tps(min(c.tps)), f_tps(max(c.tps)),
                         f_ms(c.latency(0.50)), f_ms(c.latency(0.95)),
                         f_range(c.cpu10k_runs, lambda v: f"{v:.3f}"),
                         f_num(c.sys_all_per_tx()), f_num(c.peak_rss_kb / 1024, 1), len(c.tps)])
    return table(["workload", "database", "tps median", "tps min", "tps max", "p50 ms", "p95 ms",
                  "pgmux CPU s / 10k tx: median (min-max)", "pgmux syscalls / tx",
                  "peak RSS MB", "runs"], rows)


def routes_table(part, workloads):
    rows = []
    for w in workloads:
        c = part.cells.get((w.key, "routed"))
        if c is None or not c.ok:
            continue
        rows.append([w.title, f"{c.ntx:,}"] + [f"{c.routes[k]:,}" for k in ROUTE_COUNTERS])
    return table(["workload", "transactions (pgbench)"] + list(ROUTE_COUNTERS), rows)


def load_table(part, w):
    """Where the work went in part 2: PostgreSQL CPU by server, server connections by member."""
    rows = []
    for d in ORDER:
        c = part.cells.get((w.key, d))
        if c is None or not c.ok:
            continue
        total = sum(c.node_cpu.values())
        cells = []
        for label, _ in part.nodes:
            cells.append(f"{c.node_cpu[label]:.1f} s ({f_pct(c.node_cpu[label], total)})")
        rows.append([d, f_tps(c.median_tps())] + cells
                    + [f_num(total / c.ntx * 10000 if c.ntx else None, 3)])
    return table(["database", "tps median"]
                  + [f"{label} CPU" for label, _ in part.nodes]
                  + ["PostgreSQL CPU s / 10k tx"], rows)


def log_section(h):
    out = []
    for key in ("cost", "benefit"):
        part = h.parts.get(key)
        if part is None:
            continue
        lines = getattr(part, "log_lines", None)
        title = {"cost": "part 1", "benefit": "part 2"}[key]
        if part.problems:
            for where, err, tail in part.problems:
                out += [f"- {title}, {where}: {err}", "", "```", h.mask(tail).rstrip()[-3000:],
                        "```", ""]
        if lines is None:
            continue
        if lines:
            out += [f"- {title}: {len(lines)} FATAL/ERROR/WARNING lines in pgmux's log, the "
                    "first ones:", "", "```"] + [h.mask(x) for x in lines[:15]] + ["```", ""]
        else:
            out.append(f"- {title}: no FATAL, ERROR or WARNING line in pgmux's log")
    return out


def write_report(h):
    o = h.opts
    os.makedirs(o.out, exist_ok=True)
    stamp = h.started.strftime("%Y-%m-%d-%H%M")
    if o.mode != "full":
        stamp += "-" + o.mode
    path = os.path.join(o.out, f"routing-{stamp}.md")
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    cost, benefit = h.parts.get("cost"), h.parts.get("benefit")
    cl = h.classify

    lines = [
        f"# pgmux routing bench, {h.started.strftime('%Y-%m-%d %H:%M')} ({o.mode})",
        "",
        f"- commit: {commit}",
        f"- machine: {os.cpu_count()} CPUs, Linux {platform.release()}; pgbench, PostgreSQL "
        "and pgmux share these CPUs",
        f"- {h.versions.get('pgmux', 'pgmux')}; {h.versions.get('postgres', 'PostgreSQL')}",
        f"- pgbench scale {o.scale}, {CLIENTS} clients, -j {JOBS}; {o.rounds} measured rounds of "
        f"{o.duration} s per database after a {o.warmup} s warm-up, interleaved, the order "
        "alternating from round to round (plain routed, routed plain, ...) because the second "
        "run of a round tends to be faster; tps is the median over rounds, latency percentiles "
        "pool every measured transaction (pgbench -l)",
        f"- pgmux: pool_mode=transaction, pool_size={POOL_SIZE} per database (a routed "
        "database has a pool on each member it uses), auth trust, connection logging off, "
        f"health_check_interval={HEALTH_CHECK_INTERVAL}",
        "- pgmux CPU is utime+stime of the process from /proc over each measured run, divided "
        "by the transactions pgbench completed; syscalls by perf tracepoints: "
        + (h.perf_note or "yes (they slow pgmux's syscalls a little, for both databases "
                           "alike)"),
        f"- wall time {h.elapsed:.0f} s; 1-minute load average before the run "
        f"{h.load:.1f} (above about 1, other work was sharing the CPUs)",
        "",
    ]

    # summary
    srows = []
    if cost:
        _, summ = cost_tables(cost)
        for w, tr, cr, extra in summ:
            srows.append([f"routing cost, {w.title}: routed/plain tps", f_x3(tr)])
            srows.append([f"routing cost, {w.title}: pgmux CPU per tx, routed/plain",
                          f_x3(cr) + ("" if extra is None else f" ({extra:+.1f} us / tx)")])
    if benefit:
        p = benefit.cells.get((SELECT.key, "plain"))
        r = benefit.cells.get((SELECT.key, "routed"))
        if p and r and p.ok and r.ok:
            srows.append([f"reads on 2 replicas, {SELECT.title}: routed/plain tps",
                          f_x3(ratio(r.median_tps(), p.median_tps()))])
            reads = r.routes["reads_replica"] + r.routes["reads_primary"] + \
                r.routes["reads_fallback"]
            srows.append([f"reads on 2 replicas, {SELECT.title}: reads sent to replicas",
                          f_pct(r.routes["reads_replica"], reads)])
    if "median" in cl:
        srows.append(["classifier alone, 113-byte SELECT (test_classify --bench)",
                      f"{cl['median']:.1f} ns / statement; CPU time {cl['cpu_median']:.1f} ns"])
        p = cost.cells.get((SELECT.key, "plain")) if cost else None
        if p is not None and p.cpu_per_10k():
            us = p.cpu_per_10k() * 100
            srows.append([f"classifier CPU time against pgmux's CPU per {SELECT.title} "
                          f"transaction of plain ({us:.1f} us)",
                          f_pct(cl["cpu_median"] / 1000, us)])
    for key, err in h.errors.items():
        srows.append([f"part {key}", "did not run: " + err.splitlines()[0][:200]])
    lines += ["## Summary", "", table(["figure", "measured"], srows), ""]

    # part 1
    lines += ["## 1. Cost of routing: one server, read_from = primary", "",
              "`plain` (host=) and `routed` (cluster=main, hosts = that one server, read_from = "
              "primary) reach the same server through the same pgmux: every transaction of both "
              "ends up on it, and only pgmux's routing work differs. The per-round ratio pairs "
              "the two runs of each round, which are seconds apart.", "",
              "`-S` is one SELECT per transaction: the difference is classifying it and "
              "picking the member. tpcb-like runs BEGIN ... END, and a routed database answers "
              "a bare BEGIN itself and sends it along with the transaction's first statement "
              "(to know where the transaction goes), which saves one round trip to the server "
              "per transaction: there `routed` does less I/O than `plain`, not only more "
              "classifying.", ""]
    if cost:
        ratio_tab, _ = cost_tables(cost)
        lines += [ratio_tab, "", "### tps, latency and pgmux's cost", "",
                  results_table(cost, (SELECT, TPCB)), "",
                  "### Routing decisions of `routed` (SHOW ROUTES, summed over the measured "
                  "runs)", "", routes_table(cost, (SELECT, TPCB)), ""]
        if cost.confirm_s is not None:
            lines += [f"pgmux confirmed the server's role {cost.confirm_s:.2f} s after the "
                      "first SHOW TOPOLOGY.", ""]
    else:
        lines += ["Did not run: " + h.errors.get("cost", "?"), ""]

    # part 2
    lines += ["## 2. Reads on replicas: primary + 2 streaming replicas, read_from = replicas", "",
              "`plain` sends everything to the primary; `routed` lists the primary and both "
              "replicas. All three servers run on this machine's two cores, next to pgbench "
              "and pgmux, so the replicas add no CPU: what this shows is where the work goes, "
              "not how much more a real cluster with replicas on their own machines would serve.",
              ""]
    if benefit:
        lines += [results_table(benefit, (SELECT,)), "",
                  "### Where the load went", "",
                  "PostgreSQL CPU is utime+stime of each server's processes over the measured "
                  "runs (a share of the three); the route counters come from SHOW ROUTES "
                  "before and after each run of `routed`.", "",
                  load_table(benefit, SELECT), "",
                  routes_table(benefit, (SELECT,)), ""]
        r = benefit.cells.get((SELECT.key, "routed"))
        if r and r.servers and h.rs_ports:
            names = h.rs_ports
            order = list(names)
            ports = sorted(r.servers, key=lambda p: order.index(p) if p in order else len(order))
            lines += ["Server connections of `routed` per member after its last run (SHOW "
                      "TOPOLOGY): " + ", ".join(f"{names.get(p, p)} {r.servers[p]}"
                                                for p in ports) + ".", ""]
        if benefit.confirm_s is not None:
            lines += [f"pgmux confirmed the three roles {benefit.confirm_s:.2f} s after the "
                      "first SHOW TOPOLOGY.", ""]
    else:
        lines += ["Did not run: " + h.errors.get("benefit", "?"), ""]

    # part 3
    lines += ["## 3. The classifier alone", ""]
    if "median" in cl:
        lines += [f"`test_classify --bench`, {len(cl['ns'])} run(s): "
                  + ", ".join(f"{v:.1f}" for v in cl["ns"]) + " ns/statement as it prints it "
                  f"(wall time over its loop), median {cl['median']:.1f} ns; by the CPU time "
                  "the process used (rusage) over the same iterations: "
                  + ", ".join(f"{v:.1f}" for v in cl["cpu_ns"])
                  + f" ns, median {cl['cpu_median']:.1f} ns. They differ when other work "
                  "takes the CPU from it. It classifies one SELECT over and over (hot caches, "
                  "no I/O); its last line:", "", "```", cl["line"], "```", ""]
    else:
        lines += [cl.get("note", "not run"), ""]

    lines += ["## pgmux's log", ""] + log_section(h) + [""]

    lines += ["## Commands", "", "```",
              {"full": "make bench-routing          # bench/routing.py",
               "quick": "make bench-routing QUICK=1  # bench/routing.py --quick"}[o.mode],
              f"pgbench -i -s {o.scale} bench     # once per part, against the (primary) server"]
    for w in (SELECT, TPCB):
        lines.append(w.shown(o.duration))
    lines += ["test_classify --bench", "```", ""]
    for key, text in h.configs.items():
        lines += [f"pgmux config, part {'1' if key == 'cost' else '2'}:", "", "```ini",
                  text.rstrip(), "```", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path, "\n".join(lines)


# --- main ---------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_const", dest="mode", const="quick", default="full",
                   help="4 rounds of 2 s, one classifier run, no syscall counts (under 90 s)")
    p.add_argument("--out", default=os.path.join(HERE, "results"),
                   help="directory for the .md report (default bench/results)")
    p.add_argument("--rounds", type=int, help="measured rounds per workload")
    p.add_argument("--duration", type=int, help="seconds per measured run")
    p.add_argument("--classify", default=CLASSIFY_BIN,
                   help="the test_classify binary (default build/rel/test/test_classify)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    opts = p.parse_args(argv)
    m = MODES[opts.mode]
    opts.rounds = opts.rounds or m["rounds"]
    opts.duration = opts.duration or m["duration"]
    opts.warmup = m["warmup"]
    opts.scale = m["scale"]
    opts.classify_runs = m["classify_runs"]
    return opts


def main(argv=None):
    opts = parse_args(argv)
    raise_nofile()

    def terminate(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)

    h = Harness(opts)
    try:
        h.run()
    finally:
        h.cleanup()
    path, text = write_report(h)
    print()
    print(text)
    print(f"\nreport: {os.path.relpath(path)}")
    return 1 if h.errors else 0


if __name__ == "__main__":
    sys.exit(main())
