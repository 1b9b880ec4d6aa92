#!/usr/bin/python3
"""pgbench through PostgreSQL directly, PgBouncer and pgmux, interleaved.

One PostgreSQL 15 server is started and loaded once; PgBouncer and pgmux run in front of it
with the same settings. Each workload runs a warm-up round and then N rounds of
direct, PgBouncer, pgmux (A B C A B C ...): tps on two shared cores moves by tens of percent
from run to run, so targets are only compared within one interleaved run, by medians.

Alongside tps the kernel's view of each pooler process is recorded for every measured run
(CPU time, syscalls, peak RSS), and a separate step holds thousands of idle clients open to
measure memory per client. See bench/README.md for what each figure means.

Usage: bench.py [--quick | --tiny] [--out DIR] [--rounds N] [--duration S] [--keep]
"""
import argparse
import datetime
import glob
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import procstat  # noqa: E402
import report  # noqa: E402
from idle import IdleClients  # noqa: E402
from stats import Cell  # noqa: E402
from targets import DBNAME, TARGETS, Backend, env_for  # noqa: E402
from workloads import MODES, WORKLOADS, Workload, pgbench_cmd  # noqa: E402

ORDER = ("direct", "pgbouncer", "pgmux")
POOL_SIZE = 20


T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:5.0f}s] {msg}", flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def read_latencies(prefix):
    """Histogram of per-transaction latency (us) from pgbench's -l files; deletes them."""
    hist = Counter()
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            for line in f:
                fields = line.split(None, 3)
                if len(fields) >= 3 and fields[2].isdigit():
                    hist[int(fields[2])] += 1
        os.unlink(path)
    return hist


def run_pgbench(target, workload, duration, workdir, measure, use_perf, grace=60):
    """One pgbench run. Returns (tps, ntx, hist, eff, error).

    A run still going `grace` seconds after its time is killed and counts as a hang.
    """
    prefix = os.path.join(workdir, f"lat-{workload.key}-{target.name}")
    cmd = pgbench_cmd(target, workload, duration, prefix if measure else None)
    sampler = None
    if measure and target.pid:
        procstat.reset_peak_rss(target.pid)
        sampler = procstat.Sampler(target.pid, workdir, use_perf).start()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env_for(workload.auth),
                             timeout=duration + grace, cwd=workdir)
    except subprocess.TimeoutExpired:
        if sampler:
            sampler.stop()
        read_latencies(prefix)
        return None, 0, None, None, f"pgbench hung (killed {grace} s after its run time)"
    eff = sampler.stop() if sampler else None
    hist = read_latencies(prefix)
    text = out.stdout + out.stderr
    m = re.search(r"^tps = ([\d.]+)", out.stdout, re.M)
    n = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    aborted = re.search(r"aborted|Run was aborted", text)
    if out.returncode != 0 or not m or not n or aborted:
        errs = [line for line in text.splitlines()
                if "error" in line.lower() or "abort" in line.lower() or "fatal" in line.lower()]
        reason = errs[0] if errs else text.strip().splitlines()[-1:] or ["no output"]
        if isinstance(reason, list):
            reason = reason[0]
        if not target.alive():
            reason = f"{target.label} exited; pgbench: {reason}"
        return None, 0, None, None, f"pgbench exit {out.returncode}: {reason.strip()[:200]}"
    return float(m.group(1)), int(n.group(1)), hist, eff, None


class Harness:
    def __init__(self, opts):
        self.opts = opts
        self.workdir = tempfile.mkdtemp(prefix="pgmux-bench-")
        self.backend = None
        self.instances = {}   # (target name, auth) -> running target
        self.unavailable = {}  # target name -> reason it could not run at all
        self.configs = {}     # (target name, auth) -> config text (temp paths masked)
        self.use_perf = procstat.perf_available()
        self.cells = {}       # (workload key, target name) -> Cell
        self.idle = {}        # target name -> dict
        self.versions = {}

    def mask(self, text):
        return re.sub(r"/tmp/[\w.-]+", "$DIR", text)

    def instance(self, name, auth):
        """The running target `name` for `auth`, started on first use (None if it cannot run)."""
        if name in self.unavailable:
            return None
        key = (name, auth)
        inst = self.instances.get(key)
        if inst is not None and inst.alive():
            return inst
        if inst is not None:
            log(f"  {inst.label} ({auth}) is no longer running; starting a new one")
            inst.destroy()
        inst = TARGETS[name](self.backend, auth, POOL_SIZE)
        if not inst.start():
            if key not in self.instances:
                self.unavailable[name] = inst.error
            log(f"  {inst.label} unavailable: {inst.error}")
            self.instances.pop(key, None)
            return None
        self.instances[key] = inst
        self.versions.setdefault(name, inst.describe())
        if inst.config_text:
            self.configs[key] = self.mask(inst.config_text)
        return inst

    def stop_auth(self, auth):
        for key in [k for k in self.instances if k[1] == auth]:
            self.instances.pop(key).destroy()

    def run_workload(self, w):
        o = self.opts
        cells = {t: Cell(t, w.key) for t in ORDER}
        for t in ORDER:
            self.cells[(w.key, t)] = cells[t]
        log(f"== {w.title}: warm-up {o.warmup}s, then {o.rounds} x {o.duration}s "
            f"per target, interleaved")
        rounds = ([("warm-up", o.warmup, False)] if o.warmup > 0 else []) + \
                 [(f"round {i + 1}", o.duration, True) for i in range(o.rounds)]
        for label, duration, measure in rounds:
            line = []
            for t in ORDER:
                c = cells[t]
                if c.error or c.unavailable:
                    continue
                inst = self.instance(t, w.auth)
                if inst is None:
                    c.unavailable = self.unavailable.get(t, "could not start")
                    continue
                tps, ntx, hist, eff, err = run_pgbench(inst, w, duration, self.workdir,
                                                       measure, self.use_perf, o.grace)
                if err:
                    c.error = err
                    line.append(f"{t} FAILED")
                    log(f"  {t}: {err}")
                    continue
                if measure:
                    c.add(tps, ntx, hist, eff)
                line.append(f"{t} {tps:,.0f}")
            log(f"  {label}: " + ", ".join(line))
        if w.auth != "trust":
            self.stop_auth(w.auth)

    def run_idle(self, n):
        """Hold n idle logged-in clients on a fresh instance of each pooler; record memory."""
        log(f"== idle clients: {n} logged-in clients held open through each pooler")
        for t in ORDER:
            if t == "direct":
                self.idle[t] = {"note": "not run: PostgreSQL allows 300 connections here"}
                continue
            if t in self.unavailable:
                self.idle[t] = {"note": "unavailable: " + self.unavailable[t]}
                continue
            inst = TARGETS[t](self.backend, "trust", POOL_SIZE)
            if not inst.start():
                self.idle[t] = {"note": "failed to start: " + str(inst.error)}
                continue
            try:
                self.idle[t] = self.idle_one(inst, n)
            finally:
                inst.destroy()
            r = self.idle[t]
            if "note" in r:
                log(f"  {t}: {r['note']}")
            else:
                log(f"  {t}: {r['opened']}/{n} open in {r['open_s']:.1f}s, "
                    f"{r['kb_per_client']:.2f} KB per client, peak RSS {r['hwm_kb'] / 1024:.1f} MB")

    def idle_one(self, inst, n):
        first = IdleClients(inst.port, "postgres", DBNAME)
        if first.open(1) != 1:
            return {"note": "first login failed: " + "; ".join(first.errors[:1])}
        time.sleep(0.5)
        rss0 = procstat.status_kb(inst.pid, "VmRSS")
        cpu0 = procstat.cpu_seconds(inst.pid)
        procstat.reset_peak_rss(inst.pid)
        clients = IdleClients(inst.port, "postgres", DBNAME)
        opened = clients.open(n, timeout=min(10.0, self.opts.grace),
                              deadline=self.opts.grace)
        time.sleep(1.0)
        rss1 = procstat.status_kb(inst.pid, "VmRSS")
        cpu1 = procstat.cpu_seconds(inst.pid)
        held = clients.still_open()
        result = {
            "opened": opened, "held": held, "open_s": clients.open_seconds,
            "rss0_kb": rss0, "rss1_kb": rss1, "hwm_kb": procstat.status_kb(inst.pid, "VmHWM"),
            "kb_per_client": (rss1 - rss0) / max(opened, 1),
            "cpu_ms_per_login": (cpu1 - cpu0) * 1000 / max(opened, 1),
            "nofile": inst.nofile_limit(),
            "errors": Counter(clients.errors).most_common(3),
        }
        # The pooler still serves queries while it holds them all.
        if self.opts.mode == "full" and opened:
            w = Workload("S-c10-idle", "-S -c 10", ["-S"], 10)
            tps, _, _, _, err = run_pgbench(inst, w, 2, self.workdir, False, False,
                                            self.opts.grace)
            result["tps_while_held"] = tps
            result["tps_error"] = err
        clients.close()
        first.close()
        return result

    def run(self):
        o = self.opts
        self.started = datetime.datetime.now()
        t0 = time.monotonic()
        log(f"pgmux bench ({o.mode}): scale {o.scale}, pool size {POOL_SIZE}, "
            f"RLIMIT_NOFILE {o.nofile}, perf syscall counts "
            f"{'on' if self.use_perf else 'off (perf unavailable)'}")
        self.backend = Backend(o.scale).start()
        log(f"PostgreSQL on port {self.backend.port}, pgbench data loaded "
            f"({time.monotonic() - t0:.1f}s)")
        self.versions["direct"] = "PostgreSQL " + self.backend.cluster.sql("SHOW server_version")
        for t in ORDER:
            self.instance(t, "trust")
        for w in WORKLOADS:
            if w.key in o.workloads:
                self.run_workload(w)
        self.stop_auth("trust")
        if o.idle:
            self.run_idle(o.idle)
        self.elapsed = time.monotonic() - t0

    def cleanup(self):
        for inst in list(self.instances.values()):
            inst.destroy()
        self.instances.clear()
        if self.backend:
            self.backend.destroy()
        if self.opts.keep:
            log(f"work files kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", dest="mode", const="quick",
                   help="a subset of the workloads, 3 short rounds (under 2 minutes)")
    g.add_argument("--tiny", action="store_const", dest="mode", const="tiny",
                   help="one 2 s round of two workloads and 200 idle clients (harness test)")
    p.add_argument("--out", default=os.path.join(HERE, "results"),
                   help="directory for the .md report and .png charts (default bench/results)")
    p.add_argument("--rounds", type=int, help="measured rounds per workload")
    p.add_argument("--duration", type=int, help="seconds per measured run")
    p.add_argument("--idle", type=int, help="idle clients to hold open (0 to skip)")
    p.add_argument("--workloads", help="comma-separated workload keys: "
                   + ",".join(w.key for w in WORKLOADS))
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    p.set_defaults(mode="full")
    opts = p.parse_args(argv)
    m = MODES[opts.mode]
    opts.rounds = opts.rounds or m["rounds"]
    opts.duration = opts.duration or m["duration"]
    opts.warmup = m["warmup"]
    opts.idle = m["idle"] if opts.idle is None else opts.idle
    opts.scale = m["scale"]
    # How long a hung pooler may hold up the run: a pgbench run past its time, or the whole
    # opening of the idle clients.
    opts.grace = 10 if opts.mode == "tiny" else 60
    opts.workloads = opts.workloads.split(",") if opts.workloads else m["workloads"]
    unknown = set(opts.workloads) - {w.key for w in WORKLOADS}
    if unknown:
        p.error("unknown workloads: " + ", ".join(sorted(unknown)))
    return opts


def main(argv=None):
    opts = parse_args(argv)
    opts.nofile = raise_nofile()
    h = Harness(opts)
    ran = [w for w in WORKLOADS if w.key in opts.workloads]
    try:
        h.run()
        path = report.write(h, ran, opts)  # the charts' data files live in the work dir
    finally:
        h.cleanup()
    print()
    print(report.summary(h, ran))
    print(f"\nreport: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
