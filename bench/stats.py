"""Summaries of repeated runs: tps spread, latency percentiles, per-transaction costs.

Latencies are kept as a histogram (microseconds -> count) so that a million transactions cost
a few thousand dict entries, and percentiles are read off the sorted histogram.
"""
import statistics
from collections import Counter


def percentile(hist, q):
    """The smallest latency with at least q of the transactions at or below it."""
    total = sum(hist.values())
    if total == 0:
        return None
    need = q * total
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= need:
            return value
    return max(hist)


def cdf_points(hist, max_points=400):
    """(latency_us, fraction) pairs for a CDF plot, thinned to about max_points."""
    total = sum(hist.values())
    if total == 0:
        return []
    points, seen = [], 0
    step = max(1, len(hist) // max_points)
    keys = sorted(hist)
    for i, value in enumerate(keys):
        seen += hist[value]
        if i % step == 0 or i == len(keys) - 1:
            points.append((value, seen / total))
    return points


class Cell:
    """Everything measured for one target in one workload."""

    def __init__(self, target, workload):
        self.target = target
        self.workload = workload
        self.tps = []
        self.hist = Counter()
        self.error = None        # why the target failed this workload, if it did
        self.unavailable = None  # why the target was not run at all
        self.ntx = 0
        self.cpu_s = 0.0
        self.syscr = 0
        self.syscw = 0
        self.sys_all = 0
        self.sys_io = 0
        self.perf_runs = 0
        self.runs = 0
        self.peak_rss_kb = 0

    def add(self, tps, ntx, hist, eff):
        self.tps.append(tps)
        self.hist.update(hist)
        self.runs += 1
        self.ntx += ntx
        if eff:
            self.cpu_s += eff["cpu_s"]
            self.syscr += eff["syscr"]
            self.syscw += eff["syscw"]
            if eff["sys_all"] is not None:
                self.sys_all += eff["sys_all"]
                self.sys_io += eff["sys_io"]
                self.perf_runs += 1
            self.peak_rss_kb = max(self.peak_rss_kb, eff["hwm_kb"])

    @property
    def ok(self):
        return bool(self.tps) and not self.error and not self.unavailable

    @property
    def status(self):
        if self.unavailable:
            return "unavailable"
        if self.error:
            return "failed"
        return "ok" if self.tps else "not run"

    def median_tps(self):
        return statistics.median(self.tps) if self.ok else None

    def latency(self, q):
        return percentile(self.hist, q) if self.ok else None

    def has_eff(self):
        return self.ok and self.ntx > 0 and self.runs > 0 and self.peak_rss_kb > 0

    def cpu_per_10k(self):
        return self.cpu_s / self.ntx * 10000 if self.has_eff() else None

    def syscrw_per_tx(self):
        return (self.syscr + self.syscw) / self.ntx if self.has_eff() else None

    def sys_io_per_tx(self):
        if not self.has_eff() or self.perf_runs != self.runs:
            return None
        return self.sys_io / self.ntx

    def sys_all_per_tx(self):
        if not self.has_eff() or self.perf_runs != self.runs:
            return None
        return self.sys_all / self.ntx


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b
