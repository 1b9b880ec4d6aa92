"""A throwaway Patroni cluster for failover tests: one etcd and three Patroni nodes.

    pc = PatroniCluster().start()            # a leader and two streaming replicas
    try:
        old = pc.leader()
        new = pc.switchover()                # planned: old primary rejoins as a replica
        pc.kill_node(new)                    # crash: kill -9 its Patroni and PostgreSQL
        pc.wait_leader(not_name=new)
        pc.restart_node(new)                 # rejoins (pg_rewind) as a replica
    finally:
        pc.stop()

etcd (v3.4, /usr/bin/etcd) runs with the v2 API enabled, which Patroni 3.0's `etcd:` DCS
uses. Patroni and PostgreSQL run as the `postgres` OS user when we are root, with data in a
temporary directory that user owns. Everything listens on free 127.0.0.1 ports. Timings are
small (ttl 10, loop_wait 1, retry_timeout 3), so a crashed leader's key expires within ttl
seconds and a replica takes over a second or two later.

Nodes are named node0, node1, node2 (Patroni member names). Every role logs in with trust from
127.0.0.1 (replication included); the passwords in the config are only there because Patroni
wants them.

stop() kills everything it started (Patroni, the postmasters and their children, anything
still running with our directory on its command line, etcd) and removes the directory; it is
registered with atexit as soon as start() begins, so a failed start leaves nothing behind.
"""
import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import psycopg

from pgcluster import PG_BIN, as_pg_user, free_port

PATRONI_BIN = os.environ.get("PATRONI_BIN", "/usr/bin/patroni")
PATRONICTL_BIN = os.environ.get("PATRONICTL_BIN", "/usr/bin/patronictl")
ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")

MAX_LAG_ON_FAILOVER = 1048576

SUPERUSER = ("postgres", "postgres-secret")
REPLICATION_USER = ("replicator", "replicator-secret")

# PostgreSQL parameters that Patroni keeps in the DCS (the same on every member)
DCS_PARAMETERS = {
    "wal_level": "replica",
    "hot_standby": "on",
    "wal_log_hints": "on",
    "max_connections": 200,
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_keep_size": "64MB",
    "hot_standby_feedback": "off",
}

# local PostgreSQL parameters of each member: fast and throwaway
LOCAL_PARAMETERS = {
    "fsync": "off",
    # on: a commit has reached the WAL (and the OS) when it returns, so it survives a kill -9
    # of the postmaster and wait_replicated() covers it; with fsync off it costs nothing
    "synchronous_commit": "on",
    "full_page_writes": "on",           # pg_rewind wants it on
    "shared_buffers": "16MB",
    "wal_receiver_status_interval": "1s",
    "wal_retrieve_retry_interval": "500ms",
    "checkpoint_timeout": "5min",
    "logging_collector": "off",
}


def _lsn(text):
    hi, lo = str(text).split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def _proc_table():
    """{pid: (ppid, cmdline)} of every process we can see."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            table[int(entry)] = (ppid, cmdline)
        except (OSError, ValueError):
            continue
    return table


def _mentions(cmdline, path):
    """True when cmdline holds path itself or a path under it."""
    return any(arg == path or arg.startswith(path + "/") or ("=" + path) in arg
               for arg in cmdline.split())


def _descendants(roots, table):
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def _kill(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


class PatroniNode:
    """One Patroni member: its ports, directories, config file and process."""

    def __init__(self, name, basedir):
        self.name = name
        self.dir = os.path.join(basedir, name)
        self.datadir = os.path.join(self.dir, "data")
        self.config_path = os.path.join(self.dir, "patroni.yml")
        self.log_path = os.path.join(self.dir, "patroni.log")
        self.port = free_port()           # PostgreSQL
        self.rest_port = free_port()      # Patroni REST API
        self.proc = None

    @property
    def rest_url(self):
        return f"http://127.0.0.1:{self.rest_port}"

    def postmaster_pid(self):
        """PID in postmaster.pid when that process still runs, else None."""
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                pid = int(f.readline().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class PatroniCluster:
    """etcd + `nodes` Patroni members on 127.0.0.1 (see the module docstring)."""

    def __init__(self, nodes=3, basedir=None, scope="pgmux", ttl=10, loop_wait=1,
                 retry_timeout=3, parameters=None, synchronous_mode=False, dcs=None):
        if ttl < loop_wait + 2 * retry_timeout:
            raise ValueError("Patroni needs ttl >= loop_wait + 2 * retry_timeout")
        self.owned_dir = basedir is None
        self.basedir = basedir or tempfile.mkdtemp(prefix="pgmux-patroni-")
        self.scope = scope
        self.ttl, self.loop_wait, self.retry_timeout = ttl, loop_wait, retry_timeout
        self.parameters = dict(parameters or {})
        # more of the bootstrap DCS config: its "parameters" are merged over DCS_PARAMETERS
        # (wal_level is one that only the DCS sets), other keys (ignore_slots...) added
        self.dcs = dict(dcs or {})
        # synchronous_mode: a commit is acknowledged once a standby has it, so a failover
        # loses no acknowledged write (Patroni promotes only the synchronous standby).
        self.synchronous_mode = synchronous_mode
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.etcd_dir = os.path.join(self.basedir, "etcd")
        self.etcd_log = os.path.join(self.basedir, "etcd.log")
        self.etcd = None
        self.ctl_config = os.path.join(self.basedir, "patronictl.yml")
        self.nodes = {f"node{i}": PatroniNode(f"node{i}", self.basedir) for i in range(nodes)}
        self._atexit = False

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, timeout=60.0):
        """Start etcd and every node; return once there is a leader and every other member is
        a replica that streams from it."""
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        try:
            os.chmod(self.basedir, 0o755)
            self._start_etcd()
            self._write_ctl_config()
            for node in self.nodes.values():
                os.makedirs(node.dir, exist_ok=True)
                if os.geteuid() == 0:
                    shutil.chown(node.dir, "postgres", "postgres")
                os.chmod(node.dir, 0o700)
                self._write_node_config(node)
                self._start_node(node)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Kill everything (Patroni, PostgreSQL, etcd) and remove the directory. Idempotent."""
        # Patroni first, so that nothing restarts PostgreSQL behind our back
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                try:
                    os.killpg(node.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                node.proc.wait()
        # then PostgreSQL: SIGQUIT is an immediate shutdown that also frees shared memory
        postmasters = [p for p in (n.postmaster_pid() for n in self.nodes.values()) if p]
        _kill(postmasters, signal.SIGQUIT)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in postmasters) and time.monotonic() < deadline:
            time.sleep(0.05)
        # whatever is left that belongs to us: our directory on its command line, and children
        for _ in range(3):
            left = [p for p in self.stray_pids() if p != os.getpid()]
            if not left:
                break
            _kill(left)
            time.sleep(0.1)
        if self.etcd is not None and self.etcd.poll() is None:
            self.etcd.kill()
            self.etcd.wait()
        if self.owned_dir:
            shutil.rmtree(self.basedir, ignore_errors=True)
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False

    def stray_pids(self):
        """Live processes started for this cluster: those with our directory on their command
        line and all their descendants (PostgreSQL children show only their role there)."""
        table = _proc_table()
        roots = [pid for pid, (_, cmd) in table.items() if _mentions(cmd, self.basedir)]
        return sorted(p for p in _descendants(roots, table) if _alive(p))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- etcd ------------------------------------------------------------------------------

    def _start_etcd(self):
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        client = f"http://127.0.0.1:{self.etcd_port}"
        with open(self.etcd_log, "ab") as log:
            self.etcd = subprocess.Popen(
                [ETCD_BIN, "--name", "etcd0", "--data-dir", self.etcd_dir,
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"etcd0={peer}", "--initial-cluster-state", "new",
                 "--enable-v2=true", "--heartbeat-interval", "50", "--election-timeout", "500"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.basedir, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            if self.etcd.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.etcd.returncode}:\n"
                                   + self._tail(self.etcd_log))
            try:
                with urllib.request.urlopen(client + "/health", timeout=1) as r:
                    if json.load(r).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("etcd not healthy after 15s:\n" + self._tail(self.etcd_log))
            time.sleep(0.05)

    # ---- Patroni configuration -------------------------------------------------------------

    # The config files are JSON, which is YAML too.

    def _write_ctl_config(self):
        conf = {"scope": self.scope, "namespace": "/service/",
                "etcd": {"host": f"127.0.0.1:{self.etcd_port}"}}
        with open(self.ctl_config, "w") as f:
            json.dump(conf, f, indent=2)

    def node_config(self, node):
        hba = [
            "local all all trust",
            "host all all 127.0.0.1/32 trust",
            "local replication all trust",
            "host replication all 127.0.0.1/32 trust",
        ]
        return {
            "scope": self.scope,
            "namespace": "/service/",
            "name": node.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{node.rest_port}",
                        "connect_address": f"127.0.0.1:{node.rest_port}"},
            "etcd": {"host": f"127.0.0.1:{self.etcd_port}"},
            "bootstrap": {
                "dcs": dict({
                    "ttl": self.ttl,
                    "loop_wait": self.loop_wait,
                    "retry_timeout": self.retry_timeout,
                    "maximum_lag_on_failover": MAX_LAG_ON_FAILOVER,
                    "synchronous_mode": self.synchronous_mode,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "remove_data_directory_on_rewind_failure": True,
                        "remove_data_directory_on_diverged_timelines": True,
                        "parameters": dict(DCS_PARAMETERS,
                                           **self.dcs.get("parameters", {})),
                    },
                }, **{k: v for k, v in self.dcs.items() if k != "parameters"}),
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "no-sync"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.port}",
                "connect_address": f"127.0.0.1:{node.port}",
                "data_dir": node.datadir,
                "bin_dir": PG_BIN,
                "pgpass": os.path.join(node.dir, "pgpass"),
                "authentication": {
                    "superuser": {"username": SUPERUSER[0], "password": SUPERUSER[1]},
                    "replication": {"username": REPLICATION_USER[0],
                                    "password": REPLICATION_USER[1]},
                    "rewind": {"username": SUPERUSER[0], "password": SUPERUSER[1]},
                },
                "pg_hba": hba,
                "parameters": dict(LOCAL_PARAMETERS,
                                   unix_socket_directories=node.dir, **self.parameters),
                "basebackup": [{"checkpoint": "fast"}, "no-sync"],
                "use_unix_socket": False,
            },
            "watchdog": {"mode": "off"},
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False,
                     "nosync": False},
        }

    def _write_node_config(self, node):
        with open(node.config_path, "w") as f:
            json.dump(self.node_config(node), f, indent=2)
        os.chmod(node.config_path, 0o644)

    def _start_node(self, node):
        with open(node.log_path, "ab") as log:
            node.proc = subprocess.Popen(as_pg_user([PATRONI_BIN, node.config_path]),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=node.dir,
                                         start_new_session=True)

    # ---- state -----------------------------------------------------------------------------

    @property
    def names(self):
        return list(self.nodes)

    @property
    def rest_urls(self):
        return [n.rest_url for n in self.nodes.values()]

    def member_port(self, name):
        """The PostgreSQL port of member name."""
        return self.nodes[name].port

    def dsn(self, name=None, dbname="postgres", user="postgres", **kw):
        """libpq DSN of member name (default: the current leader)."""
        port = self.member_port(name or self.leader())
        extra = " ".join(f"{k}={v}" for k, v in kw.items())
        return f"host=127.0.0.1 port={port} dbname={dbname} user={user} {extra}".strip()

    def rest(self, name, path="/patroni", method="GET", body=None, timeout=2.0):
        """(status, parsed JSON or text) of a REST call to member name."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.nodes[name].rest_url + path, data=data,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def cluster(self):
        """GET /cluster from the first member that answers (parsed JSON), or None."""
        for name, node in self.nodes.items():
            if node.proc is None or node.proc.poll() is not None:
                continue
            try:
                status, body = self.rest(name, "/cluster")
            except (OSError, ValueError):
                continue
            if status == 200 and isinstance(body, dict):
                return body
        return None

    def status(self, name):
        """GET /patroni of member name (its own, current view: state, role, timeline, xlog),
        or None when it does not answer."""
        try:
            code, body = self.rest(name, "/patroni")
        except (OSError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def timeline(self, name):
        """Member name's current timeline as its Patroni reports it now (GET /cluster shows
        what members published on their last loop, which can be one loop old)."""
        return (self.status(name) or {}).get("timeline")

    def members(self):
        """{name: member dict of GET /cluster}."""
        c = self.cluster() or {}
        return {m["name"]: m for m in c.get("members", [])}

    def leader(self):
        """Name of the member whose role is leader in GET /cluster, or None."""
        for name, m in self.members().items():
            if m.get("role") == "leader":
                return name
        return None

    def replicas(self):
        """Names of the members whose role is replica (or sync_standby)."""
        return [n for n, m in self.members().items() if m.get("role") != "leader"]

    def postmaster_pid(self, name):
        return self.nodes[name].postmaster_pid()

    def execute(self, sql, params=None, on=None, dbname="postgres", user="postgres",
                timeout=5):
        """Run sql on a fresh autocommit connection to member on (default: the leader)."""
        with psycopg.connect(self.dsn(on, dbname, user), autocommit=True,
                             connect_timeout=timeout) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else None

    def is_writable(self, name):
        """True when member name's PostgreSQL accepts connections and is not in recovery."""
        try:
            return self.execute("select not pg_is_in_recovery()", on=name, timeout=2)[0][0]
        except psycopg.Error:
            return False

    # ---- waiting ---------------------------------------------------------------------------

    def _wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}; "
                                   f"cluster: {json.dumps(self.cluster())}\n"
                                   + self.logs_tail())
            time.sleep(0.1)

    def _healthy(self):
        members = self.members()
        if set(members) != set(self.nodes):
            return False
        leaders = [n for n, m in members.items() if m.get("role") == "leader"]
        if len(leaders) != 1 or members[leaders[0]].get("state") != "running":
            return False
        tl = members[leaders[0]].get("timeline")
        for n, m in members.items():
            if n == leaders[0]:
                continue
            if m.get("state") not in ("running", "streaming") or m.get("timeline") != tl:
                return False
            # lag as last published by the member (every loop_wait): a switchover refuses
            # candidates further behind than maximum_lag_on_failover
            if not isinstance(m.get("lag"), int) or m["lag"] > MAX_LAG_ON_FAILOVER:
                return False
        try:
            streaming = self.execute("select count(*) from pg_stat_replication "
                                     "where state = 'streaming'", on=leaders[0], timeout=2)[0][0]
        except psycopg.Error:
            return False
        return leaders[0] if streaming >= len(self.nodes) - 1 else False

    def wait_healthy(self, timeout=60.0):
        """Wait for one running leader and every other member running on its timeline and
        streaming from it; return the leader's name."""
        return self._wait(self._healthy, timeout, "a leader and streaming replicas")

    def wait_leader(self, not_name=None, timeout=30.0, writable=True):
        """Wait until a member other than not_name is leader and running (and, by default,
        accepts writes); return its name."""
        def check():
            members = self.members()
            for n, m in members.items():
                if m.get("role") == "leader" and n != not_name and m.get("state") == "running":
                    if not writable or self.is_writable(n):
                        return n
            return None
        return self._wait(check, timeout, f"a leader other than {not_name}")

    def is_streaming(self, name):
        """True when member name's PostgreSQL is in recovery and its walreceiver streams."""
        try:
            row = self.execute("select pg_is_in_recovery(), "
                               "(select status from pg_stat_wal_receiver)", on=name, timeout=2)
        except psycopg.Error:
            return False
        return bool(row and row[0][0] and row[0][1] == "streaming")

    def wait_replicated(self, timeout=10.0):
        """Wait until every running replica has replayed the leader's WAL up to its current LSN (taken
        once, at the call). Replication is asynchronous: a write that no replica has replayed
        is lost when the leader is killed."""
        leader = self.leader()
        target = _lsn(self.execute("select pg_current_wal_lsn()", on=leader)[0][0])

        def check():
            running = {n for n, m in self.members().items() if m.get("state") == "running"}
            for name in self.nodes:
                if name == leader or name not in running:
                    continue
                try:
                    lsn = self.execute("select pg_last_wal_replay_lsn()", on=name,
                                       timeout=2)[0][0]
                except psycopg.Error:
                    return False
                if lsn is None or _lsn(lsn) < target:
                    return False
            return True
        return self._wait(check, timeout, f"replicas to replay up to {target:X}")

    def wait_member(self, name, role="replica", timeout=30.0):
        """Wait until member name is in GET /cluster with that role, running or streaming, on
        the leader's timeline, and its PostgreSQL is really there: a replica streams
        (pg_stat_wal_receiver), a leader accepts writes. (The DCS can show a killed member's
        last state until its key expires.)"""
        def check():
            members = self.members()
            m = members.get(name)
            if not m or m.get("role") != role or m.get("state") not in ("running", "streaming"):
                return False
            if role == "leader":
                return self.is_writable(name)
            leader = next((x for x in members.values() if x.get("role") == "leader"), None)
            if leader is not None and m.get("timeline") != leader.get("timeline"):
                return False
            return self.is_streaming(name)
        return self._wait(check, timeout, f"{name} to be a running {role}")

    # ---- actions ---------------------------------------------------------------------------

    def patronictl(self, *args, timeout=60):
        """Run patronictl -c <our config> args...; return the CompletedProcess."""
        return subprocess.run([PATRONICTL_BIN, "-c", self.ctl_config, *args],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def switchover(self, candidate=None, timeout=30.0):
        """patronictl switchover --leader CURRENT [--candidate NAME] --force; return the new
        leader once it runs and accepts writes. The old leader rejoins as a replica on its own
        (wait_member(old) waits for that)."""
        old = self.leader()
        if old is None:
            raise RuntimeError("switchover: the cluster has no leader")
        args = ["switchover", "--leader", old, "--force"]
        if candidate:
            args += ["--candidate", candidate]
        out = self.patronictl(*args, self.scope, timeout=timeout)
        text = out.stdout + out.stderr
        # patronictl exits 0 even when Patroni refuses ("Switchover failed, details: ...")
        if out.returncode != 0 or "failed" in text.lower() or "error" in text.lower():
            raise RuntimeError(f"patronictl switchover failed ({out.returncode}):\n{text}")
        new = self.wait_leader(not_name=old, timeout=timeout)
        if candidate and new != candidate:
            raise RuntimeError(f"switchover: {new} became leader instead of {candidate}")
        return new

    def kill_primary_postmaster(self):
        """kill -9 only the leader's postmaster (not Patroni): Patroni restarts PostgreSQL in
        place on its next loop, without a failover. Returns (leader name, killed pid)."""
        name = self.leader()
        if name is None:
            raise RuntimeError("no leader")
        pid = self.postmaster_pid(name)
        if pid is None:
            raise RuntimeError(f"{name} has no running postmaster")
        os.kill(pid, signal.SIGKILL)
        return name, pid

    def kill_node(self, name):
        """kill -9 member name's Patroni, its postmaster and every PostgreSQL child at once: a
        crashed machine. When it was the leader, a replica takes over once its leader key
        expires (ttl)."""
        node = self.nodes[name]
        table = _proc_table()
        roots = []
        if node.proc is not None and node.proc.poll() is None:
            roots.append(node.proc.pid)
        pm = node.postmaster_pid()
        if pm:
            roots.append(pm)
        roots += [pid for pid, (_, cmd) in table.items() if _mentions(cmd, node.dir)]
        victims = _descendants(roots, table)
        _kill(victims)
        if node.proc is not None:
            node.proc.wait()
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in victims) and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop_node(self, name):
        """Stop member name's Patroni gracefully (SIGTERM): it shuts PostgreSQL down (fast)
        and, when leader, gives the leader key up at once."""
        node = self.nodes[name]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.terminate()
            try:
                node.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill_node(name)

    def restart_node(self, name, wait=True, timeout=60.0):
        """Start member name's Patroni again (after kill_node or stop_node). By default wait
        until it is a running replica again (pg_rewind or a fresh clone when it diverged)."""
        node = self.nodes[name]
        if node.proc is not None and node.proc.poll() is None:
            raise RuntimeError(f"{name}'s Patroni still runs")
        self._start_node(node)
        if wait:
            self.wait_member(name, "replica", timeout)

    # ---- diagnostics -----------------------------------------------------------------------

    @staticmethod
    def _tail(path, lines=30):
        try:
            with open(path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except OSError:
            return ""

    def logs_tail(self, lines=15):
        """The last lines of every node's Patroni log, for error messages."""
        return "\n".join(f"--- {n.name} ({n.log_path})\n{self._tail(n.log_path, lines)}"
                         for n in self.nodes.values())
