"""Fixtures for the integration tests: one PostgreSQL 15 server for the whole session, and a
fresh pgmux per test (own config, port and log), stopped at teardown.

The PostgreSQL server has databases `app` (pgbench tables at scale 1) and `other`; roles
`alice` and `bob` (scram-sha-256) and `carol` (md5). `postgres` logs in with trust from
loopback, every other role needs its password.

When a test fails, its report carries the tail of each of its pgmux logs (and stderr) and of
the PostgreSQL log. A pgmux that exits on its own during a test, or whose stderr holds a
sanitizer report, fails the test at teardown.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import rawpg  # noqa: E402

# test_packages.py installs the .deb on this machine: only `make check-packages` runs it.
collect_ignore = [] if os.environ.get("PGMUX_CHECK_PACKAGES") == "1" else ["test_packages.py"]
from pgcluster import PG_BIN, PGMUX_BIN, PgCluster, Pgmux  # noqa: E402

ADMIN_DB = "pgmux"
TEST_TIMEOUT = 60          # seconds per test unless marked @pytest.mark.timeout(N)

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}

# What pgmux answers in each situation: the SQLSTATEs accepted and a phrase (lower case) the
# message must contain ("" = any message). Kept in one place so that wording can be aligned.
EXPECTED_ERRORS = {
    "query_wait_timeout": ({"08P01", "57014"}, "query_wait_timeout"),
    "idle_transaction_timeout": ({"08P01", "25P03", "57014"}, "idle transaction timeout"),
    "query_timeout": ({"57014"}, "timeout"),
    "client_idle_timeout": ({"08P01", "57014"}, "client_idle_timeout"),
    "canceled": ({"57014"}, "cancel"),
    "statement_mode_transaction": ({"0A000"}, "transaction"),
    "max_client_conn": ({"53300"}, "max_client_conn"),
    "unknown_database": ({"3D000"}, "no such database: "),
    "bad_password": ({"28P01"}, "authentication failed"),
    "trust_failed": ({"28P01"}, '"trust" authentication failed'),
    "not_allowed": ({"28000"}, ""),
    "server_lost": ({"08006", "57P01", "57P02", "57P03", "08003", "08000"}, ""),
    "shutting_down": ({"57P01"}, ""),
    "protocol_violation": ({"08P01"}, ""),
    "database_disabled": ({"57P03", "08P01", "3D000"}, "is disabled"),
}


def error_state(err):
    """SQLSTATE of a psycopg or rawpg error (None when there is none)."""
    if isinstance(err, rawpg.PgError):
        return err.sqlstate
    state = getattr(err, "sqlstate", None)
    if state is None and getattr(err, "diag", None) is not None:
        state = err.diag.sqlstate
    return state


def assert_error(err, kind, lost_state_ok=False):
    """Assert that err (psycopg.Error or rawpg.PgError) is what pgmux sends for kind.

    lost_state_ok: accept a psycopg error without SQLSTATE when the message matches. libpq
    drops the fields of an ErrorResponse that arrives just before the connection is closed
    while it is not waiting for a result ("consuming input failed: ..."); tests that must see
    the SQLSTATE read it with rawpg instead.
    """
    states, phrase = EXPECTED_ERRORS[kind]
    state, text = error_state(err), str(err)
    if not (lost_state_ok and state is None):
        assert state in states, \
            f"{kind}: expected SQLSTATE in {sorted(states)}, got {state}: {text}"
    assert phrase in text.lower(), f"{kind}: expected {phrase!r} in the message, got: {text}"
    if lost_state_ok and state is None:
        assert text.strip(), f"{kind}: empty error"


# ---------------------------------------------------------------------------------------------
# PostgreSQL


class Direct:
    """An autocommit psycopg connection straight to PostgreSQL (database postgres) for checks.
    Reconnects after a server restart."""

    def __init__(self, pg):
        self.pg = pg
        self.conn = None

    def _conn(self):
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = psycopg.connect(self.pg.dsn(), autocommit=True, connect_timeout=5)
        return self.conn

    def query(self, sql, params=None):
        try:
            return self._conn().execute(sql, params).fetchall()
        except psycopg.OperationalError:
            self.conn = None
            return self._conn().execute(sql, params).fetchall()

    def scalar(self, sql, params=None):
        return self.query(sql, params)[0][0]

    def backends(self, datname, state=None):
        """Client backends connected to datname (excluding this connection), optionally only
        those in a given state ('active', 'idle', 'idle in transaction')."""
        sql = ("select pid, state, query from pg_stat_activity where datname = %s "
               "and backend_type = 'client backend' and pid <> pg_backend_pid()")
        rows = self.query(sql, (datname,))
        return [r for r in rows if state is None or r[1] == state]

    def close(self):
        if self.conn is not None:
            self.conn.close()


@pytest.fixture(scope="session")
def pg():
    """The session's PostgreSQL server."""
    hba = [
        "local all all trust",
        "host all postgres 127.0.0.1/32 trust",
        "host all all 127.0.0.1/32 md5",
    ]
    cluster = PgCluster(hba=hba, settings=["log_min_messages = warning"]).init().start()
    try:
        setup = [
            "CREATE ROLE alice LOGIN PASSWORD 'alice-secret'",
            "CREATE ROLE bob LOGIN PASSWORD 'bob-secret'",
            "SET password_encryption = 'md5'; CREATE ROLE carol LOGIN PASSWORD 'carol-secret'",
            "CREATE DATABASE app",
            "CREATE DATABASE other",
        ]
        for q in setup:
            cluster.sql(q)
        for db in ("app", "other"):
            cluster.sql("GRANT ALL ON SCHEMA public TO alice, bob, carol", dbname=db)
        subprocess.run([os.path.join(PG_BIN, "pgbench"), "-i", "-q", "-s", "1",
                        "-d", cluster.dsn("app")],
                       check=True, capture_output=True)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def direct(pg):
    d = Direct(pg)
    yield d
    d.close()


@pytest.fixture
def pg_restore(pg):
    """For tests that stop or restart the shared server: make sure it runs again afterwards."""
    yield pg
    if not is_up(pg):
        pg.start()


def is_up(pg):
    r = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-h", "127.0.0.1", "-p",
                        str(pg.port), "-t", "2"], capture_output=True)
    return r.returncode == 0


# ---------------------------------------------------------------------------------------------
# pgmux


class Mux(Pgmux):
    """A pgmux under test, with shortcuts for connecting to it."""

    # where admin() connects: a unix socket directory when several processes share the port
    admin_host = "127.0.0.1"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.conns = []
        self.raws = []
        self.expect_exit = False
        self._admin = None
        self.admin_notices = []

    # clients
    def connect(self, dbname="app", user="postgres", autocommit=True, **kw):
        """psycopg connection through pgmux. Never prepares statements on its own (psycopg
        would after 5 runs of one query), as that breaks transaction pooling."""
        kw.setdefault("connect_timeout", 5)
        conn = psycopg.connect(self.dsn(dbname, user), autocommit=autocommit,
                               prepare_threshold=None, **kw)
        self.conns.append(conn)
        return conn

    def raw(self, timeout=5.0, **kw):
        r = rawpg.RawPg("127.0.0.1", self.port, timeout=timeout, **kw)
        self.raws.append(r)
        return r

    def psql(self, *args, dbname="app", user="postgres", input=None, env=None, timeout=30):
        """Run psql against pgmux; returns the CompletedProcess (never raises on failure)."""
        e = dict(os.environ, PGCONNECT_TIMEOUT="5")
        e.update(env or {})
        return subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-v",
                               "ON_ERROR_STOP=1", "-d", self.dsn(dbname, user), *args],
                              input=input, capture_output=True, text=True, env=e,
                              timeout=timeout)

    def pgbench(self, *args, dbname="app", user="postgres", timeout=120):
        return subprocess.run([os.path.join(PG_BIN, "pgbench"), "-h", "127.0.0.1", "-p",
                               str(self.port), "-U", user, *args, dbname],
                              capture_output=True, text=True, timeout=timeout)

    # admin console
    @property
    def admin_db(self):
        return ADMIN_DB

    def admin(self, command, timeout=10.0):
        """Run an admin console command over the simple query protocol; returns a list of
        dicts of text values (empty for commands). Raises rawpg.PgError for an error, and
        TimeoutError when the console does not answer within timeout seconds. The messages of
        the notices it sent are left in self.admin_notices."""
        if self._admin is None:
            self._admin = rawpg.RawPg(self.admin_host, self.port, timeout=timeout)
            try:
                self._admin.login("postgres", ADMIN_DB)
            except BaseException:
                self.close_admin()
                raise
        c = self._admin
        c.send_msg(b"Q", command.encode() + b"\0")
        names, rows, err = None, [], None
        self.admin_notices = []
        try:
            while True:
                mtype, payload = c.read_msg(timeout)
                if mtype == b"N":
                    self.admin_notices.append(rawpg.parse_fields(payload).get("M", ""))
                elif mtype == b"T":
                    names = rawpg.parse_row_description(payload)
                elif mtype == b"D":
                    rows.append(rawpg.parse_row(payload))
                elif mtype == b"E":
                    err = rawpg.PgError(rawpg.parse_fields(payload))
                elif mtype == b"Z":
                    break
        except BaseException:
            self.close_admin()    # the console's state is unknown: start over next time
            raise
        if err is not None:
            raise err
        return [dict(zip(names, r)) for r in rows] if names else []

    def close_admin(self):
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def pool(self, database="app", user="postgres"):
        """This pool's SHOW POOLS row with integer counters, or None."""
        for row in self.admin("SHOW POOLS"):
            if row["database"] == database and row["user"] == user:
                return {k: (int(v) if k.startswith(("cl_", "sv_")) else v)
                        for k, v in row.items()}
        return None

    # process
    def signal(self, sig):
        """Send sig to pgmux; SIGINT/SIGTERM/SIGQUIT mean the test expects it to exit."""
        if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            self.expect_exit = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Return pgmux's exit code, or None if it still runs after timeout seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def status(self, field):
        """A /proc/PID/status value in kB (VmHWM, VmRSS)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def close_clients(self):
        self.close_admin()
        for c in self.conns:
            try:
                c.close()
            except Exception:
                pass
        for r in self.raws:
            r.close()


def db_entries(pg, **extra):
    """[databases] lines for app, other and postgres on the session server."""
    entries = {}
    for name in ("app", "other", "postgres"):
        entries[name] = f"host=127.0.0.1 port={pg.port} dbname={name}"
    entries.update(extra)
    return entries


BASE_SETTINGS = {
    "pool_mode": "transaction",
    "default_pool_size": 5,
    "max_client_conn": 200,
    "query_wait_timeout": 20,    # a stuck wait fails the test instead of hanging it
    "server_login_retry": 1,
}


@pytest.fixture
def pgmux(request, pg, direct, tmp_path_factory):
    """Factory: pgmux(settings=..., databases=..., users=..., start=True) -> started Mux.

    settings are merged over BASE_SETTINGS; databases default to app, other and postgres.
    Every pgmux made here is stopped at teardown.
    """
    made = []
    request.node._muxes = made

    def make(settings=None, databases=None, users=None, start=True, args=(),
             extra_sections="", port=None):
        basedir = str(tmp_path_factory.mktemp("pgmux"))
        conf = dict(BASE_SETTINGS)
        conf.update(settings or {})
        mux = Mux(databases if databases is not None else db_entries(pg), settings=conf,
                  users=users, basedir=basedir, extra_sections=extra_sections, port=port,
                  stderr_path=os.path.join(basedir, "stderr.log"))
        made.append(mux)
        if start:
            mux.start(args)
        return mux

    yield make

    problems = []
    for mux in made:
        mux.close_clients()
        if mux.proc is None:
            continue
        died = mux.proc.poll()
        if died is not None and not mux.expect_exit:
            problems.append(f"pgmux exited on its own during the test with code {died}")
        if mux.proc.poll() is None:
            mux.proc.send_signal(signal.SIGTERM)
            if mux.wait_exit(5) is None:
                mux.proc.send_signal(signal.SIGINT)
                mux.proc.send_signal(signal.SIGINT)
                if mux.wait_exit(3) is None:
                    mux.proc.kill()
                    mux.proc.wait()
    # only once all are stopped: processes sharing a port (so_reuseport) are not strays
    for mux in made:
        if mux.proc is None:
            continue
        # a daemon (-d) outlives the process we started: find it by the port it listens on
        for pid in listening_pids(mux.port):
            problems.append(f"pgmux process {pid} still listened on port {mux.port} after "
                            "the test; killed it")
            os.kill(pid, signal.SIGKILL)
        report = sanitizer_report(mux.stderr())
        if report:
            problems.append("sanitizer report on pgmux stderr:\n" + report)
    # leave no server connections behind for the next test's counts
    deadline = time.time() + 5
    while time.time() < deadline:
        if not direct.backends("app") and not direct.backends("other"):
            break
        time.sleep(0.05)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def listening_pids(port, exe=PGMUX_BIN):
    """PIDs of processes running exe that hold a socket listening on 127.0.0.1:port."""
    inodes = set()
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1] == want and fields[3] == "0A":      # 0A = LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    except OSError:
        return []
    pids = []
    if not inodes:
        return pids
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            running = os.readlink(f"/proc/{pid}/exe").replace(" (deleted)", "")
            if running != os.path.realpath(exe):
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def sanitizer_report(text):
    """The first sanitizer report in text (its opening lines and every SUMMARY), or ""."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", line)), None)
    if start is None:
        return ""
    summaries = [line for line in lines if line.startswith("SUMMARY:")]
    return "\n".join(lines[start:start + 30] + ["..."] + summaries)


# ---------------------------------------------------------------------------------------------
# hooks


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test time limit (default 60)")
    if not os.access(PGMUX_BIN, os.X_OK):
        raise pytest.UsageError(f"{PGMUX_BIN} is missing: build it first (make pgmux)")


def _tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for i, mux in enumerate(getattr(item, "_muxes", [])):
        rep.sections.append((f"pgmux #{i} log ({mux.log_path})", _tail(mux.log())))
        if mux.stderr().strip():
            rep.sections.append((f"pgmux #{i} stderr", _tail(mux.stderr())))
    pg = item.funcargs.get("pg") if hasattr(item, "funcargs") else None
    if pg is not None and rep.when == "call":
        try:
            with open(pg.log_path()) as f:
                rep.sections.append(("postgres log", _tail(f.read(), 20)))
        except OSError:
            pass


class TimeLimitExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _time_limit(request):
    """Fail a test that runs longer than its limit instead of hanging the suite."""
    marker = request.node.get_closest_marker("timeout")
    limit = marker.args[0] if marker else TEST_TIMEOUT

    def expire(signum, frame):
        raise TimeLimitExceeded(f"test exceeded its {limit}s time limit")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------------------------
# small helpers for tests


def wait_for(predicate, timeout=5.0, interval=0.02, what="condition"):
    """Poll predicate until it returns a truthy value; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Sampler:
    """Samples PostgreSQL's backends of one database in a thread; keeps the maxima.

    with Sampler(direct, "app") as s: ...; s.max_total / s.max_active
    """

    def __init__(self, direct, datname, interval=0.02):
        self.pg = direct.pg
        self.datname = datname
        self.interval = interval
        self.max_total = 0
        self.max_active = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with psycopg.connect(self.pg.dsn(), autocommit=True) as conn:
            while not self._stop.is_set():
                total, active = conn.execute(
                    "select count(*), count(*) filter (where state = 'active') "
                    "from pg_stat_activity where datname = %s and pid <> pg_backend_pid() "
                    "and backend_type = 'client backend'", (self.datname,)).fetchone()
                self.max_total = max(self.max_total, total)
                self.max_active = max(self.max_active, active)
                self.samples += 1
                self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


class Background:
    """Run fn(*args) in a daemon thread; .result() re-raises its exception."""

    def __init__(self, fn, *args):
        self.value = None
        self.error = None
        self.started = time.monotonic()
        self.finished = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn, args):
        try:
            self.value = fn(*args)
        except BaseException as e:  # noqa: B036 - handed back to the test
            self.error = e
        finally:
            self.finished = time.monotonic()

    def done(self):
        return not self._thread.is_alive()

    def join(self, timeout=30):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"background call still running after {timeout}s")
        return self

    def result(self, timeout=30):
        self.join(timeout)
        if self.error is not None:
            raise self.error
        return self.value

    def exception(self, timeout=30):
        self.join(timeout)
        return self.error

    def elapsed(self):
        return (self.finished or time.monotonic()) - self.started


# ---------------------------------------------------------------------------------------------
# authentication helpers (test_auth.py, test_client_auth.py)


def write_userlist(mux, entries):
    """Write mux's auth_file ({user: secret}) and point its settings at it."""
    path = os.path.join(mux.basedir, "userlist.txt")
    with open(path, "w") as f:
        for user, secret in entries.items():
            f.write(f'"{user}" "{secret}"\n')
    mux.settings["auth_file"] = path
    return path


def role_secret(direct, user):
    """The secret PostgreSQL stores for user (md5 or SCRAM), as an auth_file can carry it."""
    return direct.scalar("select rolpassword from pg_authid where rolname = %s", (user,))
