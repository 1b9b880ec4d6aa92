"""The pgbench workloads, the run modes and the pgbench command lines.

Multi-client runs use two pgbench threads (-j 2), one per core; everything else is the same for
all three targets except the port.
"""
import os

from targets import DBNAME, PG_BIN, user_for


class Workload:
    def __init__(self, key, title, args, clients, auth="trust", group=None):
        self.key = key
        self.title = title
        self.args = args
        self.clients = clients
        self.auth = auth
        self.group = group  # workloads of one group form the tps-vs-clients chart

    @property
    def jobs(self):
        return 2 if self.clients > 1 else 1


WORKLOADS = [
    Workload("S-c1", "-S -c 1", ["-S"], 1, group="S"),
    Workload("S-c10", "-S -c 10", ["-S"], 10, group="S"),
    Workload("S-c50", "-S -c 50", ["-S"], 50, group="S"),
    Workload("S-c200", "-S -c 200", ["-S"], 200, group="S"),
    Workload("tpcb-c50", "tpcb-like -c 50", [], 50),
    Workload("ext-c50", "-S -M extended -c 50", ["-S", "-M", "extended"], 50),
    Workload("prep-c50", "-S -M prepared -c 50", ["-S", "-M", "prepared"], 50),
    Workload("C-c10", "-S -C -c 10 (trust)", ["-S", "-C"], 10),
    Workload("C-c10-md5", "-S -C -c 10 (md5)", ["-S", "-C"], 10, auth="md5"),
]

MODES = {
    # rounds, seconds per run, warm-up seconds, workloads, idle clients, pgbench scale
    "full": dict(rounds=5, duration=4, warmup=2,
                 workloads=[w.key for w in WORKLOADS], idle=10000, scale=10),
    "quick": dict(rounds=3, duration=2, warmup=1,
                  workloads=["S-c1", "S-c50", "tpcb-c50", "C-c10-md5"], idle=10000, scale=10),
    "tiny": dict(rounds=1, duration=2, warmup=0,
                 workloads=["S-c10", "C-c10"], idle=200, scale=1),
}


def pgbench_cmd(target, workload, duration, log_prefix):
    return ([os.path.join(PG_BIN, "pgbench"), "-h", "127.0.0.1", "-p", str(target.port),
             "-U", user_for(workload.auth), "-n", "-T", str(duration),
             "-c", str(workload.clients), "-j", str(workload.jobs)]
            + workload.args
            + (["-l", f"--log-prefix={log_prefix}"] if log_prefix else [])
            + [DBNAME])


def shown_cmd(workload, duration, port="$PORT"):
    """The pgbench command as a reader would type it."""
    return " ".join(["pgbench", "-h", "127.0.0.1", "-p", port, "-U", user_for(workload.auth),
                     "-n", "-T", str(duration), "-c", str(workload.clients),
                     "-j", str(workload.jobs)] + workload.args + ["-l", DBNAME])
