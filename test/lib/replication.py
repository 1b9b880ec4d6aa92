"""A throwaway PostgreSQL 15 primary with streaming replicas, for tests of replica routing.

    with ReplicaSet(replicas=2) as rs:
        rs.execute("create table t (x int)")            # on the primary
        rs.wait_caught_up()
        rs.execute("select count(*) from t", on=rs.replicas[0])
        rs.pause_replay(0)                               # replica 0 starts to lag
        ...

Every server runs as the `postgres` OS user when we are root (see pgcluster.as_pg_user), on
its own free loopback port, in a subdirectory of one temporary directory that stop() removes.
Replicas are made with pg_basebackup (-X stream -R -C -S replicaN), so each has a physical
replication slot on the primary named after it. Authentication is trust on loopback for every
role, replication included.
"""
import atexit
import os
import shutil
import subprocess
import tempfile
import threading
import time

import psycopg

from pgcluster import PG_BIN, PgCluster, as_pg_user

REPLICATION_SETTINGS = [
    "wal_level = replica",
    "hot_standby = on",
    "hot_standby_feedback = off",
    "max_wal_senders = 10",
    "max_replication_slots = 10",
    "wal_receiver_status_interval = 1s",
    "shared_buffers = 16MB",
    # pgcluster turns synchronous_commit off: then a commit may still sit in the WAL buffers
    # when it returns, beyond pg_current_wal_lsn(), and wait_caught_up() could miss it
    "synchronous_commit = on",
    "max_connections = 200",
]

TRUST_HBA = [
    "local all all trust",
    "host all all 127.0.0.1/32 trust",
    "host all all ::1/128 trust",
    "local replication all trust",
    "host replication all 127.0.0.1/32 trust",
    "host replication all ::1/128 trust",
]


def lsn_int(lsn):
    """'16/B374D848' -> integer byte position (None stays None)."""
    if lsn is None:
        return None
    hi, lo = str(lsn).split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


class Replica(PgCluster):
    """A streaming replica of primary, cloned with pg_basebackup instead of initdb.

    index: its position in ReplicaSet.replicas; slot and application_name are replicaN.
    """

    def __init__(self, primary, index, basedir, port=None):
        super().__init__(basedir=basedir, port=port)
        self.primary = primary
        self.index = index
        self.name = f"replica{index}"
        self.slot = self.name

    def init(self):
        self._chown()
        subprocess.run(as_pg_user([os.path.join(PG_BIN, "pg_basebackup"),
                                   "-h", "127.0.0.1", "-p", str(self.primary.port),
                                   "-U", "postgres", "-D", self.datadir,
                                   "-X", "stream", "-R", "-C", "-S", self.slot,
                                   "-c", "fast", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")
        # the copied postgresql.auto.conf holds the primary's port and socket directory and
        # the primary_conninfo written by -R: later lines win, so append our own
        conf = [
            f"port = {self.port}",
            f"unix_socket_directories = '{self.sockdir}'",
            f"primary_conninfo = 'host=127.0.0.1 port={self.primary.port} user=postgres "
            f"application_name={self.name}'",
            f"primary_slot_name = '{self.slot}'",
        ]
        with open(os.path.join(self.datadir, "postgresql.auto.conf"), "a") as f:
            f.write("\n".join(conf) + "\n")
        return self


class ReplicaSet:
    """One primary (PgCluster) and N streaming replicas (Replica), all on 127.0.0.1.

    settings: extra postgresql.conf lines for the primary (the replicas inherit them).
    """

    def __init__(self, replicas=2, basedir=None, settings=None):
        self.n = replicas
        self.owned_dir = basedir is None
        self.basedir = basedir or tempfile.mkdtemp(prefix="pgmux-repl-")
        self.settings = list(settings or [])
        self.primary = None
        self.replicas = []
        self._atexit = False

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self):
        """Start the primary and the replicas; return once every replica streams."""
        os.chmod(self.basedir, 0o755)          # the postgres user must reach its subdirs
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        try:
            self.primary = PgCluster(basedir=self._subdir("primary"), hba=TRUST_HBA,
                                     settings=REPLICATION_SETTINGS + self.settings)
            self.primary.init().start()
            self.replicas = [Replica(self.primary, i, self._subdir(f"replica{i}"))
                             for i in range(self.n)]
            for r in self.replicas:          # pg_basebackup one after the other: fast checkpoints
                r.init()
            self._parallel([r.start for r in self.replicas])
            self.wait_streaming()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stop every server (immediate) and remove the directories. Safe to call twice."""
        for node in list(self.replicas) + ([self.primary] if self.primary else []):
            if os.path.exists(os.path.join(node.datadir, "postmaster.pid")):
                node.running = True           # also a server whose start did not finish
            try:
                node.stop("immediate")
            except Exception:
                pass
        self.replicas = []
        self.primary = None
        if self.owned_dir:
            shutil.rmtree(self.basedir, ignore_errors=True)
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _subdir(self, name):
        path = os.path.join(self.basedir, name)
        os.makedirs(path, exist_ok=True)
        return path

    @staticmethod
    def _parallel(fns):
        errors = []

        def run(fn):
            try:
                fn()
            except BaseException as e:  # noqa: B036 - re-raised below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    # ---- nodes -----------------------------------------------------------------------------

    @property
    def nodes(self):
        """[primary, replica0, replica1, ...]"""
        return [self.primary] + list(self.replicas)

    def _port(self, on):
        if on is None:
            return self.primary.port
        if isinstance(on, int):
            return on
        return on.port

    def _replica(self, i):
        return i if isinstance(i, Replica) else self.replicas[i]

    # ---- SQL -------------------------------------------------------------------------------

    def connect(self, on=None, dbname="postgres", user="postgres", **kw):
        """An autocommit psycopg connection to on (None = primary, a port or a node)."""
        kw.setdefault("connect_timeout", 5)
        return psycopg.connect(f"host=127.0.0.1 port={self._port(on)} dbname={dbname} "
                               f"user={user}", autocommit=True, **kw)

    def execute(self, sql, params=None, on=None, dbname="postgres", user="postgres"):
        """Run sql on a fresh connection; return its rows (list of tuples), or None when the
        statement returns none. on: None = primary, a port number, or a node object."""
        with self.connect(on, dbname, user) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else None

    def scalar(self, sql, params=None, on=None, dbname="postgres", user="postgres"):
        """First column of the first row of sql's result."""
        return self.execute(sql, params, on, dbname, user)[0][0]

    def psql(self, sql, on=None, dbname="postgres", user="postgres"):
        """Run sql with the psql program; return its unaligned, tuples-only output."""
        out = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v",
                              "ON_ERROR_STOP=1", "-d",
                              f"host=127.0.0.1 port={self._port(on)} dbname={dbname} user={user}",
                              "-c", sql], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    # ---- replication state -----------------------------------------------------------------

    def current_lsn(self):
        """The primary's current WAL write position, as an integer."""
        return lsn_int(self.scalar("select pg_current_wal_lsn()"))

    def replay_lsn(self, i):
        """Replica i's last replayed WAL position, as an integer."""
        return lsn_int(self.scalar("select pg_last_wal_replay_lsn()", on=self._replica(i)))

    def receive_lsn(self, i):
        """Replica i's last WAL position received and flushed by its walreceiver."""
        return lsn_int(self.scalar("select pg_last_wal_receive_lsn()", on=self._replica(i)))

    def lag_bytes(self, i):
        """pg_wal_lsn_diff(primary's current lsn, replica i's replay lsn)."""
        replay = self.scalar("select pg_last_wal_replay_lsn()", on=self._replica(i))
        return int(self.scalar("select pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)",
                               (str(replay),)))

    def wait_streaming(self, timeout=15.0, which=None):
        """Wait until each replica (indices in which, default all running) has a walreceiver
        in state streaming."""
        targets = self._targets(which)
        deadline = time.monotonic() + timeout
        pending = list(targets)
        while pending:
            pending = [r for r in pending if self._safe_scalar(
                "select status from pg_stat_wal_receiver", r) != "streaming"]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"replicas {[r.name for r in pending]} not streaming after "
                                   f"{timeout}s")
            time.sleep(0.05)

    def wait_caught_up(self, timeout=10.0, which=None):
        """Wait until every replica (indices in which, default all running) has replayed the
        primary's WAL up to its current LSN (taken once, at the call)."""
        target = self.current_lsn()
        deadline = time.monotonic() + timeout
        pending = self._targets(which)
        while pending:
            pending = [r for r in pending
                       if (lsn_int(self._safe_scalar("select pg_last_wal_replay_lsn()", r))
                           or 0) < target]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"replicas {[r.name for r in pending]} did not replay up to "
                                   f"{target:X} within {timeout}s")
            time.sleep(0.02)

    def _targets(self, which):
        if which is None:
            return [r for r in self.replicas if r.running]
        return [self._replica(i) for i in which]

    def _safe_scalar(self, sql, node):
        """sql's first value on node; None while the node is down or the row not there yet
        (a walreceiver that has not started)."""
        try:
            return self.scalar(sql, on=node)
        except (psycopg.OperationalError, IndexError):
            return None

    # ---- controls --------------------------------------------------------------------------

    def pause_replay(self, i):
        """Pause WAL replay on replica i: it keeps receiving WAL but its data stop moving."""
        r = self._replica(i)
        self.execute("select pg_wal_replay_pause()", on=r)
        return self.scalar("select pg_get_wal_replay_pause_state()", on=r)

    def resume_replay(self, i):
        r = self._replica(i)
        self.execute("select pg_wal_replay_resume()", on=r)

    def replay_paused(self, i):
        return self.scalar("select pg_get_wal_replay_pause_state()",
                           on=self._replica(i)) != "not paused"

    def stop_replica(self, i, mode="fast"):
        """Stop replica i (pg_ctl stop -m mode); its slot on the primary keeps its WAL."""
        self._replica(i).stop(mode)

    def start_replica(self, i, wait_streaming=True, timeout=15.0):
        """Start replica i again; by default return once its walreceiver streams."""
        r = self._replica(i)
        r.start()
        if wait_streaming:
            self.wait_streaming(timeout, which=[r])

    def promote_replica(self, i):
        """pg_promote() replica i and wait until it accepts writes. The other replicas keep
        following the old primary: this is for tests that only need a second writable server
        with the same data."""
        r = self._replica(i)
        self.execute("select pg_promote(wait => true, wait_seconds => 30)", on=r)

    def restart_primary(self, mode="fast"):
        """Restart the primary; replicas reconnect on their own (wal_retrieve_retry_interval)."""
        self.primary.restart(mode)
