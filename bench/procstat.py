"""What the kernel says a pooler process spent: CPU time, syscalls, memory.

These figures barely move with the noise of sharing two cores with pgbench and PostgreSQL, so
they are the ones to compare between poolers; tps is only comparable within one interleaved run.

Two syscall counts are taken, because they answer different questions:
- syscr/syscw from /proc/PID/io count read(2)/write(2)-style calls only; the kernel does not
  count recv(2)/send(2)/recvmsg(2)/sendmsg(2) there, so a pooler that uses those shows ~0.
- perf counting the syscall tracepoints (no sampling) sees every syscall: the I/O families
  (read/write/recv/send and their vector forms) and all syscalls, epoll included.
"""
import os
import signal
import subprocess
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

IO_SYSCALLS = ("read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg",
               "sendmsg", "recvmmsg", "sendmmsg")


def _children(pid):
    """Direct and indirect child processes of pid (a pooler may fork workers)."""
    parent_of = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent_of[int(name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent_of.items() if pp == p]
        found += kids
        frontier += kids
    return found


def process_tree(pid):
    return [pid] + _children(pid)


def cpu_seconds(pid):
    """utime + stime of pid and its children that are still running."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state is field 3 of stat(5), utime 14 and stime 15.
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def io_syscalls(pid):
    """(syscr, syscw) summed over pid and its children."""
    r = w = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/io") as f:
                d = dict(line.split(":") for line in f)
        except OSError:
            continue
        r += int(d["syscr"])
        w += int(d["syscw"])
    return r, w


def status_kb(pid, key):
    """A kB figure from /proc/PID/status (VmRSS, VmHWM), summed over the process tree."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def reset_peak_rss(pid):
    """Reset VmHWM to the current RSS (writing 5 to clear_refs, Linux >= 4.0)."""
    ok = True
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def perf_available():
    try:
        r = subprocess.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return (r.returncode == 0 and "raw_syscalls:sys_enter" in r.stderr
            and "not supported" not in r.stderr)


class SyscallCounter:
    """Counts the syscalls of a process tree with `perf stat` between start() and stop()."""

    def __init__(self, pid, workdir):
        self.pids = process_tree(pid)
        self.out = tempfile.mktemp(prefix="perf-", suffix=".csv", dir=workdir)
        self.proc = None

    def start(self):
        events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{s}" for s in IO_SYSCALLS]
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x,", "-o", self.out, "-e", ",".join(events),
             "-p", ",".join(map(str, self.pids))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # perf needs a moment to attach; syscalls before that would go uncounted.
        time.sleep(0.1)
        return self

    def stop(self):
        """Return {"all": n, "io": n} or None if perf did not report."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        counts = {"all": 0, "io": 0}
        seen = False
        try:
            with open(self.out) as f:
                for line in f:
                    parts = line.strip().split(",")
                    if len(parts) < 3 or not parts[0].isdigit():
                        continue
                    seen = True
                    n, event = int(parts[0]), parts[2]
                    if event == "raw_syscalls:sys_enter":
                        counts["all"] += n
                    else:
                        counts["io"] += n
            os.unlink(self.out)
        except OSError:
            return None
        return counts if seen else None


class Sampler:
    """Kernel figures for one pooler process over one pgbench run."""

    def __init__(self, pid, workdir, use_perf):
        self.pid = pid
        self.workdir = workdir
        self.use_perf = use_perf
        self.perf = None

    def start(self):
        self.cpu0 = cpu_seconds(self.pid)
        self.io0 = io_syscalls(self.pid)
        if self.use_perf:
            self.perf = SyscallCounter(self.pid, self.workdir).start()
        return self

    def stop(self):
        perf = self.perf.stop() if self.perf else None
        cpu1 = cpu_seconds(self.pid)
        io1 = io_syscalls(self.pid)
        return {
            "cpu_s": cpu1 - self.cpu0,
            "syscr": io1[0] - self.io0[0],
            "syscw": io1[1] - self.io0[1],
            "sys_all": perf["all"] if perf else None,
            "sys_io": perf["io"] if perf else None,
            "hwm_kb": status_kb(self.pid, "VmHWM"),
            "rss_kb": status_kb(self.pid, "VmRSS"),
        }
