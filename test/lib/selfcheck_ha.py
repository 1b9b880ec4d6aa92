#!/usr/bin/python3
"""End-to-end check of the HA test helpers, with timings:

    /usr/bin/python3 test/lib/selfcheck_ha.py [--only replicaset|patroni] [--json]

ReplicaSet: start, replication, replay pause and lag, stop/start of a replica.
PatroniCluster: start, switchover, kill -9 of the leader's postmaster (restart in place),
kill -9 of the leader node (failover), rejoin of the killed node.
Afterwards no postgres, Patroni or etcd process of ours may be left. Exits 1 on any failure.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from patroni import PatroniCluster  # noqa: E402
from replication import ReplicaSet  # noqa: E402

PROGRAMS = ("postgres", "patroni", "etcd")
TIMINGS = []


def step(what, seconds, limit=None):
    TIMINGS.append((what, seconds, limit))
    note = "" if limit is None else f"  (aim < {limit:g}s)"
    print(f"  {what:<58} {seconds:6.2f}s{note}", flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}", flush=True)


def pids_of(program):
    out = subprocess.run(["pgrep", "-x", program], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def cwd_of(pid):
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def leftovers(before, dirs):
    """New postgres/patroni/etcd processes that run in one of dirs (PostgreSQL runs in its
    data directory, and we start Patroni and etcd in theirs), and anything with one of dirs
    on its command line (pgrep -f)."""
    found = []
    for prog in PROGRAMS:
        for pid in sorted(pids_of(prog) - before[prog]):
            cwd = cwd_of(pid)
            if any(cwd.startswith(d) for d in dirs):
                found.append(f"{prog} {pid} in {cwd}")
    for d in dirs:
        out = subprocess.run(["pgrep", "-a", "-f", d], capture_output=True, text=True)
        found += [line for line in out.stdout.splitlines() if line.strip()]
    return found


# ---------------------------------------------------------------------------------------------


def check_replicaset(dirs):
    print("ReplicaSet (primary + 2 streaming replicas)", flush=True)
    rs = ReplicaSet(replicas=2)
    dirs.append(rs.basedir)
    total = time.monotonic()
    try:
        t = time.monotonic()
        rs.start()
        step("start (initdb, 2x pg_basebackup, all streaming)", time.monotonic() - t, 10)
        ports = [rs.primary.port] + [r.port for r in rs.replicas]
        print(f"  ports: primary {ports[0]}, replicas {ports[1:]}")

        rs.execute("create table t (id int primary key, v text)")
        rs.execute("insert into t select g, 'x' from generate_series(1, 100) g")
        t = time.monotonic()
        rs.wait_caught_up(10)
        step("wait_caught_up after an insert", time.monotonic() - t)
        for r in rs.replicas:
            check(rs.scalar("select count(*) from t", on=r) == 100,
                  f"{r.name} sees the 100 rows inserted on the primary")
            check(rs.scalar("select pg_is_in_recovery()", on=r), f"{r.name} is in recovery")
        check(rs.scalar("select count(*) from pg_stat_replication where state = 'streaming'")
              == 2, "pg_stat_replication on the primary shows 2 streaming replicas")

        state = rs.pause_replay(0)
        check(state in ("paused", "pause requested"), f"pause_replay(0) -> {state!r}")
        rs.execute("insert into t select g, 'y' from generate_series(101, 1100) g")
        time.sleep(0.2)
        lag1 = rs.lag_bytes(0)
        rs.execute("insert into t select g, 'z' from generate_series(1101, 3100) g")
        time.sleep(0.2)
        lag2 = rs.lag_bytes(0)
        print(f"  lag of replica0 after writes: {lag1} bytes, after more writes: {lag2} bytes")
        check(0 < lag1 < lag2, "pg_wal_lsn_diff(primary current, replica0 replay) grows")
        check(rs.scalar("select count(*) from t", on=rs.replicas[0]) == 100,
              "paused replica0 still sees 100 rows")
        rs.wait_caught_up(10, which=[1])
        check(rs.scalar("select count(*) from t", on=rs.replicas[1]) == 3100,
              "replica1 (not paused) sees all 3100 rows")
        check(rs.receive_lsn(0) >= rs.replay_lsn(0), "replica0 keeps receiving WAL")

        t = time.monotonic()
        rs.resume_replay(0)
        rs.wait_caught_up(10)
        step("resume_replay(0) until caught up", time.monotonic() - t)
        check(rs.lag_bytes(0) == 0 and not rs.replay_paused(0), "replica0 lag back to 0")
        check(rs.scalar("select count(*) from t", on=rs.replicas[0]) == 3100,
              "replica0 sees all 3100 rows")

        t = time.monotonic()
        rs.stop_replica(1)
        step("stop_replica(1)", time.monotonic() - t)
        try:
            rs.execute("select 1", on=rs.replicas[1])
            check(False, "connecting to the stopped replica1 fails")
        except Exception:
            check(True, "connecting to the stopped replica1 fails")
        rs.execute("insert into t values (3101, 'while replica1 was down')")
        t = time.monotonic()
        rs.start_replica(1)
        rs.wait_caught_up(10)
        step("start_replica(1) until streaming and caught up", time.monotonic() - t)
        check(rs.scalar("select v from t where id = 3101", on=rs.replicas[1])
              == "while replica1 was down", "replica1 replayed what was written while down")
        check(rs.psql("select count(*) from t", on=rs.replicas[1].port) == "3101",
              "psql helper on replica1")
    finally:
        t = time.monotonic()
        rs.stop()
        step("stop (immediate) and remove the directory", time.monotonic() - t)
    check(not os.path.exists(rs.basedir), "ReplicaSet directory removed")
    step("ReplicaSet total", time.monotonic() - total)


def summary(members):
    """(name, role, state, timeline) of each member of GET /cluster."""
    return [(n, m["role"], m["state"], m.get("timeline")) for n, m in members.items()]


def write_row(pc, name, value):
    pc.execute("insert into ha (v) values (%s)", (value,), on=name)


def check_patroni(dirs, show_json):
    print("PatroniCluster (etcd + 3 Patroni nodes)", flush=True)
    pc = PatroniCluster()
    dirs.append(pc.basedir)
    total = time.monotonic()
    try:
        t = time.monotonic()
        pc.start(timeout=60)
        step("start (etcd, bootstrap, 2 replicas streaming)", time.monotonic() - t, 40)
        leader = pc.leader()
        print(f"  leader {leader}; REST {pc.rest_urls}")
        if show_json:
            print("  GET /cluster of the healthy cluster:")
            print(json.dumps(pc.cluster(), indent=2))
        states = {n: (m["role"], m["state"]) for n, m in pc.members().items()}
        print(f"  roles/states: {states}")
        check(sorted(pc.replicas()) == sorted(n for n in pc.names if n != leader),
              "one leader, two replicas")
        pc.execute("create table ha (id serial primary key, v text)")
        write_row(pc, leader, "before switchover")

        # planned switchover
        old = leader
        t = time.monotonic()
        new = pc.switchover()
        step(f"switchover {old} -> {new}: command until new leader writes",
             time.monotonic() - t, 15)
        write_row(pc, new, "after switchover")
        pc.wait_member(old, "replica", timeout=30)
        step("  ... until the old leader runs as a replica", time.monotonic() - t)
        members = pc.members()
        print(f"  after switchover: {summary(members)}")
        check(pc.timeline(new) == 2, "new leader on timeline 2")
        check(not pc.is_writable(old), f"old leader {old} is read-only now")
        t = time.monotonic()
        pc.wait_healthy(30)
        step("  ... until all replicas stream again", time.monotonic() - t)

        # kill -9 of the leader's postmaster only: Patroni restarts it in place
        t = time.monotonic()
        name, pid = pc.kill_primary_postmaster()
        deadline = time.monotonic() + 30
        while True:
            pm = pc.postmaster_pid(name)
            if pm and pm != pid and pc.is_writable(name):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}'s PostgreSQL not restarted after 30s")
            time.sleep(0.05)
        step(f"kill -9 postmaster of {name}: until it writes again", time.monotonic() - t)
        check(pc.leader() == name, f"{name} is still the leader (no failover)")
        pc.wait_healthy(30)
        print(f"  timeline after the postmaster restart: {pc.timeline(name)}")
        write_row(pc, name, "after postmaster restart")
        pc.wait_replicated(10)     # asynchronous replication: unreplicated writes are lost

        # kill -9 of the whole leader node: failover
        victim = pc.leader()
        t = time.monotonic()
        pc.kill_node(victim)
        successor = pc.wait_leader(not_name=victim, timeout=40)
        step(f"kill_node({victim}): until {successor} is leader and writes",
             time.monotonic() - t, 30)
        write_row(pc, successor, "after failover")
        print(f"  timeline of {successor}: {pc.timeline(successor)}")
        rows = [r[0] for r in pc.execute("select v from ha order by id", on=successor)]
        check(rows[:3] == ["before switchover", "after switchover", "after postmaster restart"],
              f"rows written before the failover survive: {rows}")
        t = time.monotonic()
        pc.restart_node(victim, timeout=60)
        step(f"restart_node({victim}): until it runs as a replica", time.monotonic() - t)
        pc.wait_healthy(30)
        check(pc.leader() == successor, f"{successor} stays leader, {victim} rejoined")
        check(pc.execute("select count(*) from ha where v = 'after failover'", on=victim)
              == [(1,)], f"{victim} replicates from the new leader")
        members = pc.members()
        print(f"  final: {summary(members)}")
    finally:
        t = time.monotonic()
        pc.stop()
        step("stop (kill everything, remove the directory)", time.monotonic() - t)
    check(not os.path.exists(pc.basedir), "PatroniCluster directory removed")
    step("PatroniCluster total", time.monotonic() - total)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("replicaset", "patroni"))
    ap.add_argument("--json", action="store_true", help="print GET /cluster of a healthy cluster")
    args = ap.parse_args()

    before = {prog: pids_of(prog) for prog in PROGRAMS}
    dirs = []
    failed = False
    started = time.monotonic()
    try:
        if args.only in (None, "replicaset"):
            check_replicaset(dirs)
        if args.only in (None, "patroni"):
            check_patroni(dirs, args.json)
    except Exception as e:
        failed = True
        print(f"FAILED: {type(e).__name__}: {e}", flush=True)
    time.sleep(0.3)       # let killed processes be reaped
    left = leftovers(before, dirs)
    if left:
        failed = True
        print("FAILED: processes left behind:\n  " + "\n  ".join(left))
    else:
        print("  ok: no postgres/patroni/etcd process of ours left (pgrep)")
    print(f"selfcheck_ha: {'FAILED' if failed else 'OK'} in {time.monotonic() - started:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
