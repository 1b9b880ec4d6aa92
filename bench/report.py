"""Tables, the goals check and gnuplot charts for one bench run.

Everything is Markdown so the printed tables can be pasted as they are. The goals are
informational: a missed goal is reported, never turned into a failing exit status.
"""
import os
import platform
import shutil
import subprocess

from stats import cdf_points, ratio
from workloads import shown_cmd

ORDER = ("direct", "pgbouncer", "pgmux")
LABEL = {"direct": "direct", "pgbouncer": "PgBouncer", "pgmux": "pgmux"}
POOLERS = ("pgbouncer", "pgmux")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def f_tps(v):
    return "-" if v is None else f"{v:,.0f}"


def f_ms(us):
    return "-" if us is None else f"{us / 1000:.3f}"


def f_x(v):
    return "-" if v is None else f"{v:.2f}x"


def f_x3(v):
    """A ratio judged against a limit: three decimals, so 0.997x never reads as 1.00x."""
    return "-" if v is None else f"{v:.3f}x"


def f_num(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def status_text(cell):
    if cell.unavailable:
        return "unavailable"
    if cell.error:
        return "failed: " + cell.error
    return "ok" if cell.tps else "not run"


def short_status(cell):
    return {"unavailable": "unavailable", "failed": "failed", "not run": "not run"}.get(
        cell.status, None)


# --- tables -----------------------------------------------------------------------------------

def results_table(h, workloads):
    rows = []
    for w in workloads:
        for t in ORDER:
            c = h.cells[(w.key, t)]
            if c.ok:
                rows.append([w.title, LABEL[t], f_tps(c.median_tps()), f_tps(min(c.tps)),
                             f_tps(max(c.tps)), f_ms(c.latency(0.50)), f_ms(c.latency(0.95)),
                             f_ms(c.latency(0.99)), len(c.tps)])
            else:
                rows.append([w.title, LABEL[t]] + ["-"] * 6 + [status_text(c)])
    return table(["workload", "target", "tps median", "tps min", "tps max", "p50 ms",
                  "p95 ms", "p99 ms", "runs"], rows)


def efficiency_table(h, workloads):
    rows = []
    for w in workloads:
        for t in POOLERS:
            c = h.cells[(w.key, t)]
            if not c.has_eff():
                rows.append([w.title, LABEL[t]] + ["-"] * 5)
                continue
            rows.append([w.title, LABEL[t], f_num(c.cpu_per_10k(), 3), f_num(c.syscrw_per_tx()),
                         f_num(c.sys_io_per_tx()), f_num(c.sys_all_per_tx()),
                         f_num(c.peak_rss_kb / 1024, 1)])
    return table(["workload", "pooler", "CPU s / 10k tx", "syscr+syscw / tx",
                  "I/O syscalls / tx", "all syscalls / tx", "peak RSS MB"], rows)


def ratio_rows(h, workloads):
    rows = []
    for w in workloads:
        d, b, m = (h.cells[(w.key, t)] for t in ORDER)
        med = {t: h.cells[(w.key, t)].median_tps() for t in ORDER}

        def shown(cell, v):
            return f_tps(v) if cell.ok else short_status(cell)

        rows.append([w.title, shown(d, med["direct"]), shown(b, med["pgbouncer"]),
                     shown(m, med["pgmux"]), f_x(ratio(med["pgmux"], med["pgbouncer"])),
                     f_x(ratio(med["pgmux"], med["direct"])),
                     f_x(ratio(med["pgbouncer"], med["direct"]))])
    return rows


def ratio_table(h, workloads):
    return table(["workload", "direct tps", "PgBouncer tps", "pgmux tps", "pgmux/PgBouncer",
                  "pgmux/direct", "PgBouncer/direct"], ratio_rows(h, workloads))


def idle_table(h):
    rows = []
    for t in ORDER:
        r = h.idle.get(t)
        if r is None:
            continue
        if "note" in r:
            rows.append([LABEL[t]] + ["-"] * 7 + [r["note"]])
            continue
        tps = r.get("tps_while_held")
        note = ""
        if r["errors"]:
            note = "; ".join(f"{n} x {e}" for e, n in r["errors"])
        if r.get("tps_error"):
            note += (" " if note else "") + "pgbench while held: " + r["tps_error"]
        rows.append([LABEL[t], f"{r['opened']:,}", f"{r['held']:,}", f"{r['open_s']:.1f}",
                     f"{r['rss0_kb'] / 1024:.1f}", f"{r['rss1_kb'] / 1024:.1f}",
                     f"{r['kb_per_client']:.2f}", f"{r['cpu_ms_per_login']:.3f}",
                     (f_tps(tps) if tps else "-") + (f"; {note}" if note else "")])
    return table(["pooler", "clients opened", "still open after 1 s", "open time s",
                  "RSS before MB", "RSS with clients MB", "KB per idle client",
                  "CPU ms per login", "-S -c 10 tps while held / notes"], rows)


# --- goals ------------------------------------------------------------------------------------

def _cell(h, key, t):
    return h.cells.get((key, t))


def _tps_ratio(h, key, other):
    m, o = _cell(h, key, "pgmux"), _cell(h, key, other)
    if not m or not o:
        return None, "workload not run"
    if not m.ok:
        return None, f"pgmux {m.status}"
    if not o.ok:
        return None, f"{LABEL[other]} {o.status}"
    return ratio(m.median_tps(), o.median_tps()), None


def goals(h, workloads):
    """[(goal, measured text, 'met' | 'missed' | 'not measured')]"""
    out = []

    def add(goal, value, ok_fn, text):
        if value is None:
            out.append((goal, text or "-", "not measured"))
        else:
            out.append((goal, text, "met" if ok_fn(value) else "missed"))

    for key, title in (("S-c50", "-S -c 50"), ("tpcb-c50", "tpcb-like -c 50")):
        r, why = _tps_ratio(h, key, "pgbouncer")
        add(f"tps {title} >= 1.15x PgBouncer", r, lambda v: v >= 1.15, why or f_x3(r))

    worst = None
    for w in workloads:
        r, _ = _tps_ratio(h, w.key, "pgbouncer")
        if r is not None and (worst is None or r < worst[0]):
            worst = (r, w.title)
    add("tps never below 1.0x PgBouncer", worst and worst[0], lambda v: v >= 1.0,
        f"lowest {f_x3(worst[0])} ({worst[1]})" if worst else "no workload with both")

    worst = None
    for w in workloads:
        m, b = _cell(h, w.key, "pgmux"), _cell(h, w.key, "pgbouncer")
        r = ratio(m.cpu_per_10k(), b.cpu_per_10k()) if m and b else None
        if r is not None and (worst is None or r > worst[0]):
            worst = (r, w.title)
    add("pooler CPU per transaction <= 0.6x PgBouncer's", worst and worst[0],
        lambda v: v <= 0.6,
        f"highest {f_x3(worst[0])} ({worst[1]})" if worst else "no workload with both")

    m = _cell(h, "S-c50", "pgmux")
    if m and m.ok and m.has_eff():
        io = m.sys_io_per_tx()
        if io is not None:
            add("syscalls per simple-query transaction <= 5 (-S -c 50)", io, lambda v: v <= 5,
                f"{io:.2f} I/O syscalls ({m.sys_all_per_tx():.2f} all; "
                f"{m.syscrw_per_tx():.2f} syscr+syscw)")
        else:
            v = m.syscrw_per_tx()
            add("syscalls per simple-query transaction <= 5 (-S -c 50)", v, lambda x: x <= 5,
                f"{v:.2f} syscr+syscw (perf unavailable: recv/send not counted)")
    else:
        add("syscalls per simple-query transaction <= 5 (-S -c 50)", None, None,
            "pgmux " + (m.status if m else "workload not run"))

    m, d = _cell(h, "S-c1", "pgmux"), _cell(h, "S-c1", "direct")
    if m and d and m.ok and d.ok:
        delta = m.latency(0.5) - d.latency(0.5)
        add("added latency at 1 client, p50 vs direct <= 30 us", delta, lambda v: v <= 30,
            f"{delta} us ({f_ms(m.latency(0.5))} vs {f_ms(d.latency(0.5))} ms)")
    else:
        add("added latency at 1 client, p50 vs direct <= 30 us", None, None,
            "workload not run" if not m else f"pgmux {m.status}, direct {d.status}")

    ckey = "C-c10-md5" if ("C-c10-md5", "pgmux") in h.cells else "C-c10"
    ctitle = "-C md5" if ckey == "C-c10-md5" else "-C trust"
    for other, limit in (("direct", 2.5), ("pgbouncer", 1.0)):
        r, why = _tps_ratio(h, ckey, other)
        add(f"{ctitle} tps >= {limit}x {LABEL[other]}", r, lambda v, lim=limit: v >= lim,
            why or f_x3(r))

    m, b = h.idle.get("pgmux", {}), h.idle.get("pgbouncer", {})
    if "kb_per_client" in m and "kb_per_client" in b:
        add("RSS per idle client <= PgBouncer's", m["kb_per_client"] - b["kb_per_client"],
            lambda v: v <= 0, f"{m['kb_per_client']:.2f} KB vs {b['kb_per_client']:.2f} KB")
    else:
        add("RSS per idle client <= PgBouncer's", None, None,
            m.get("note") or b.get("note") or "idle step not run")
    return out


def goals_table(h, workloads):
    return table(["target", "measured", "met/missed"],
                 [[g, m, s] for g, m, s in goals(h, workloads)])


# --- charts -----------------------------------------------------------------------------------

def _gnuplot(script, workdir):
    if not shutil.which("gnuplot"):
        return "gnuplot not installed"
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True, cwd=workdir)
    return None if r.returncode == 0 else r.stderr.strip()[:300]


def tps_chart(h, workloads, path):
    group = [w for w in workloads if w.group == "S"]
    if len(group) < 2:
        return "fewer than two client counts ran"
    data = os.path.join(h.workdir, "tps.dat")
    with open(data, "w") as f:
        for t in ORDER:
            f.write(f"# {t}\n")
            for w in group:
                c = h.cells[(w.key, t)]
                if c.ok:
                    f.write(f"{w.clients} {c.median_tps():.1f} {min(c.tps):.1f} {max(c.tps):.1f}\n")
            f.write("\n\n")
    plots = [f"'{data}' index {i} using 1:2:3:4 with yerrorlines lw 2 title '{LABEL[t]}'"
             for i, t in enumerate(ORDER)]
    script = f"""
set terminal pngcairo size 900,560 font 'sans,11'
set output '{path}'
set title 'pgbench -S: tps by clients (median, bars min..max)'
set xlabel 'clients'
set ylabel 'tps'
set logscale x
set offsets graph 0.05, graph 0.05, 0, 0
set yrange [0:*]
set xtics ({", ".join(str(w.clients) for w in group)})
set key top left
set grid
plot {", ".join(plots)}
"""
    return _gnuplot(script, h.workdir)


def cdf_chart(h, path, key="S-c50"):
    cells = [(t, h.cells.get((key, t))) for t in ORDER]
    cells = [(t, c) for t, c in cells if c and c.ok]
    if not cells:
        return "-S -c 50 did not run"
    plots = []
    for t, c in cells:
        data = os.path.join(h.workdir, f"cdf-{t}.dat")
        with open(data, "w") as f:
            for us, frac in cdf_points(c.hist):
                f.write(f"{us / 1000:.3f} {frac:.5f}\n")
        plots.append(f"'{data}' using 1:2 with lines lw 2 title '{LABEL[t]}'")
    script = f"""
set terminal pngcairo size 900,560 font 'sans,11'
set output '{path}'
set title 'pgbench -S -c 50: latency CDF (measured rounds)'
set xlabel 'latency ms'
set ylabel 'fraction of transactions'
set logscale x
set yrange [0:1]
set key bottom right
set grid
plot {", ".join(plots)}
"""
    return _gnuplot(script, h.workdir)


# --- report -----------------------------------------------------------------------------------

def _git(*args):
    try:
        r = subprocess.run(["git", *args], capture_output=True, text=True,
                           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        return r.stdout.strip() if r.returncode == 0 else None
    except OSError:
        return None


def summary(h, workloads):
    return "\n\n".join([
        "## Results\n\n" + results_table(h, workloads),
        "## Ratios (median tps)\n\n" + ratio_table(h, workloads),
        "## Targets (informational)\n\n" + goals_table(h, workloads),
    ])


def write(h, workloads, opts):
    """Write <out>/<YYYY-MM-DD-HHMM>.md and its charts; return the .md path."""
    os.makedirs(opts.out, exist_ok=True)
    stamp = h.started.strftime("%Y-%m-%d-%H%M")
    if opts.mode != "full":
        stamp += "-" + opts.mode
    md = os.path.join(opts.out, stamp + ".md")
    charts = []
    for name, fn in ((f"{stamp}-tps.png", lambda p: tps_chart(h, workloads, p)),
                     (f"{stamp}-latency-cdf.png", lambda p: cdf_chart(h, p))):
        err = fn(os.path.join(opts.out, name))
        charts.append((name, err))

    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    auths = sorted({w.auth for w in workloads})
    lines = [
        f"# pgmux bench, {h.started.strftime('%Y-%m-%d %H:%M')} ({opts.mode})",
        "",
        f"- commit: {commit}",
        f"- machine: {os.cpu_count()} CPUs, Linux {platform.release()}; pgbench, PostgreSQL "
        "and the pooler share these CPUs",
        "- " + "; ".join(h.versions.get(t, LABEL[t]) for t in ORDER),
        f"- pgbench scale {opts.scale}; {opts.rounds} measured rounds of {opts.duration} s per "
        f"target after a {opts.warmup} s warm-up, interleaved direct, PgBouncer, pgmux in each "
        "round; tps is the median over rounds, latency percentiles pool every measured "
        "transaction (pgbench -l)",
        "- both poolers: pool_mode=transaction, pool_size=20, max_client_conn="
        "10500, listen_backlog=1024, connection logging off, "
        "ignore_startup_parameters=extra_float_digits; auth " + " and ".join(auths)
        + " (see configs)",
        f"- syscall counts by perf tracepoints: {'yes' if h.use_perf else 'no (perf unavailable)'}",
        f"- wall time {h.elapsed:.0f} s",
        "",
        "Targets to show next to measurements are informational; a missed one does not fail "
        "the run.",
        "",
        "## Ratios (median tps)",
        "",
        ratio_table(h, workloads),
        "",
        "## Targets",
        "",
        goals_table(h, workloads),
        "",
        "## tps and latency",
        "",
        results_table(h, workloads),
        "",
        "## Pooler cost (kernel figures, summed over the measured runs)",
        "",
        "CPU is utime+stime of the pooler process; syscr+syscw come from /proc/PID/io and "
        "do not count recv/send/recvmsg/sendmsg; I/O syscalls are read, write, recv, send "
        "and their vector forms counted by perf tracepoints; all syscalls includes epoll "
        "and everything else; peak RSS is VmHWM, reset before each run.",
        "",
        efficiency_table(h, workloads),
        "",
    ]
    if h.idle:
        lines += [f"## Idle clients ({opts.idle:,} logged in through a fresh pooler, trust)", "",
                  "KB per idle client is the VmRSS growth divided by the clients opened.", "",
                  idle_table(h), ""]
    lines += ["## Charts", ""]
    for name, err in charts:
        lines.append(f"![{name}]({name})" if err is None else f"- {name}: not drawn ({err})")
    lines += ["", "## Commands", "", "```"]
    lines.append({"full": "make bench            # bench/bench.py",
                  "quick": "make bench QUICK=1    # bench/bench.py --quick",
                  "tiny": "bench/bench.py --tiny"}[opts.mode])
    lines.append(f"pgbench -i -s {opts.scale} bench     # once, against PostgreSQL")
    for w in workloads:
        lines.append(shown_cmd(w, opts.duration))
    lines += ["```", "",
              "$PORT is PostgreSQL's, PgBouncer's or pgmux's port; -C runs with md5 use user "
              "benchmd5 with PGPASSWORD set, the others user postgres with trust.", ""]
    for (name, auth), text in sorted(h.configs.items()):
        lines += [f"{LABEL[name]} ({auth}):", "", "```ini", text.rstrip(), "```", ""]
    with open(md, "w") as f:
        f.write("\n".join(lines))
    return md
