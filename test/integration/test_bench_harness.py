"""The benchmark harness still runs end to end: bench/bench.py --tiny against its own
PostgreSQL, PgBouncer and pgmux, into a temporary directory.

This checks that the harness produces its tables and its report, never how fast anything is:
speed on two shared cores is far too noisy for a test to judge.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench", "bench.py")
TARGETS = ("direct", "PgBouncer", "pgmux")
TINY_WORKLOADS = ("-S -c 10", "-S -C -c 10 (trust)")


def table_rows(text, heading):
    """Cells of each row of the Markdown table that follows `heading` in text."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line.startswith(heading)
            continue
        if inside and line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:]  # without the header row


@pytest.mark.timeout(60)
def test_bench_tiny_produces_its_tables(tmp_path):
    out = subprocess.run([sys.executable, BENCH, "--tiny", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=55, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    results = table_rows(out.stdout, "## Results")
    for workload in TINY_WORKLOADS:
        for target in TARGETS:
            assert any(r[:2] == [workload, target] for r in results), \
                f"no results row for {target} in {workload}:\n{out.stdout}"

    ratios = {r[0]: r for r in table_rows(out.stdout, "## Ratios")}
    for workload in TINY_WORKLOADS:
        assert workload in ratios, f"no ratio row for {workload}:\n{out.stdout}"
        assert len(ratios[workload]) == 7

    # pgmux is built (conftest requires it), so the harness must have run it; a number in
    # the tps column is all that is asked of it here.
    pgmux_select = [r for r in results if r[:2] == ["-S -c 10", "pgmux"]][0]
    assert pgmux_select[2].replace(",", "").isdigit(), pgmux_select

    goals = table_rows(out.stdout, "## Targets")
    assert goals and all(r[2] in ("met", "missed", "not measured") for r in goals), goals

    reports = [f for f in os.listdir(tmp_path) if f.endswith(".md")]
    assert len(reports) == 1, os.listdir(tmp_path)
    with open(tmp_path / reports[0]) as f:
        md = f.read()
    assert table_rows(md, "## Ratios") and table_rows(md, "## Targets")
