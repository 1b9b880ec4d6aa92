"""Listener hand-over (pgmux --takeover): a new pgmux receives the running one's listening
sockets over the takeover socket, and only once it confirmed does the old one stop accepting.

Under load (pgbench in transaction mode, a loop of new connections from pgbench -C and from a
client of our own that counts every attempt, idle clients): no transaction fails, no connection
attempt is refused or reset; the old process hands its transaction-mode clients over between
their transactions (with their prepared statements, settings and cancel keys), keeps serving
the others (TLS, session mode) until they leave and exits after the last one. And what fails before the confirmation (a bad config, nothing to take
over, a new process that dies after receiving the sockets, a second takeover at the same time)
leaves the old process serving as before.

The figures (takeover duration, time until the old process exits, attempts and failures) are
printed: run with -s to see them.
"""
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import psycopg

from conftest import PGMUX_BIN, PG_BIN, Background, Mux, Sampler, listening_pids, wait_for

# The load of test_takeover_under_load: pgbench clients, pgbench -C clients, idle clients,
# seconds of load, seconds into it when the takeover starts. PGMUX_TAKEOVER_LOAD=50,10,100,30,12
# runs it at the scale of a production upgrade (the figures it prints are then worth quoting).
BENCH_CLIENTS, CHURN_CLIENTS, IDLE_CLIENTS, SECONDS, TAKEOVER_AT = (
    int(x) for x in os.environ.get("PGMUX_TAKEOVER_LOAD", "10,4,20,10,4").split(","))

SETTINGS = {
    "pool_mode": "transaction",
    "default_pool_size": 8,
}


def start_old(pgmux, **extra):
    """A running pgmux with a unix socket as well (its takeover socket is then the default),
    and a session-mode database, appsession."""
    mux = pgmux(dict(SETTINGS, **extra), start=False)
    mux.databases["appsession"] = mux.databases["app"] + " pool_mode=session"
    mux.settings["unix_socket_dir"] = mux.basedir
    mux.start()
    # The port takes connections into its backlog as soon as it listens; the takeover socket
    # comes a moment later, before pgmux says it is ready.
    wait_for(lambda: os.path.exists(takeover_path(mux)), timeout=10, what="the takeover socket")
    return mux


def takeover_path(mux):
    return os.path.join(mux.basedir, f".s.PGSQL.{mux.port}.takeover")


def new_process(request, pg, old, settings=None, args=(), env=None):
    """Start `pgmux --takeover` on a config like old's (its own log), as the fixture's teardown
    knows it. Returns the Mux; its proc runs or has exited."""
    basedir = old.basedir + "-new"
    os.makedirs(basedir, exist_ok=True)
    conf = dict(old.settings)
    conf.update({"logfile": os.path.join(basedir, "pgmux.log")})
    conf.update(settings or {})
    new = Mux(old.databases, settings=conf, basedir=basedir, port=old.port,
              stderr_path=os.path.join(basedir, "stderr.log"))
    new.settings = conf  # keep the auth_file and sockets of the old process's config
    request.node._muxes.append(new)
    # Before the fixture's teardown, which would take whichever still listens for a stray.
    request.addfinalizer(lambda: stop(old, new))
    new.write_config()
    with open(new.stderr_path, "ab") as err:
        new.proc = subprocess.Popen([PGMUX_BIN, "--takeover", *args, new.config_path],
                                    stdout=subprocess.DEVNULL, stderr=err,
                                    env=dict(os.environ, **(env or {})))
    return new


def stop(*muxes):
    for mux in muxes:
        mux.close_clients()
        if mux.proc.poll() is None:
            mux.expect_exit = True
            mux.proc.send_signal(signal.SIGTERM)
    for mux in muxes:
        if mux.wait_exit(5) is None:
            mux.proc.kill()
            mux.proc.wait()


def took_over(new):
    return "took over the listening sockets from pid" in new.log()


def log_ms(log, pattern):
    """The time of the first log line matching pattern, in ms of the day."""
    m = re.search(r"^\S+ (\d+):(\d+):(\d+)\.(\d+) .*" + pattern, log, re.M)
    assert m, f"no log line matching {pattern!r}"
    h, mi, s, ms = (int(x) for x in m.groups())
    return ((h * 60 + mi) * 60 + s) * 1000 + ms


def serves(mux, host="127.0.0.1"):
    with psycopg.connect(host=host, port=mux.port, dbname="app", user="postgres",
                         connect_timeout=5, autocommit=True) as c:
        return c.execute("select 'served'").fetchone()[0] == "served"


class Attempts:
    """A loop of new connections in a thread: each connects, runs one query and disconnects.
    Counts attempts and failures by kind (refused, reset, other)."""

    def __init__(self, port):
        self.port = port
        self.attempts = 0
        self.failures = []
        self.slowest = 0.0   # seconds, connect and query
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.attempts += 1
            start = time.monotonic()
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, dbname="app",
                                     user="postgres", connect_timeout=5, autocommit=True) as c:
                    c.execute("select 1").fetchone()
            except psycopg.Error as e:
                self.failures.append(str(e).strip())
            self.slowest = max(self.slowest, time.monotonic() - start)

    def stop(self):
        self._stop.set()
        self._thread.join(15)
        return self


def pgbench_bg(mux, *args):
    return subprocess.Popen([os.path.join(PG_BIN, "pgbench"), "-h", "127.0.0.1", "-p",
                             str(mux.port), "-U", "postgres", "-n", *args, "app"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def pgbench_result(proc):
    out, err = proc.communicate(timeout=60)
    text = out + err
    done = re.search(r"number of transactions actually processed: (\d+)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    return proc.returncode, int(done.group(1)) if done else 0, \
        int(failed.group(1)) if failed else 0, text


class Notify:
    """The service manager's end of the notify protocol."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def messages(self, timeout=0.2):
        got = []
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(4096).decode()
                got.append(dict(line.split("=", 1) for line in data.split("\n") if line))
        except socket.timeout:
            return got


def latencies_around(prefix, start, seconds):
    """pgbench -l logs (prefix.*): latencies in ms of the transactions that ended within
    seconds from start (epoch), and of the others."""
    around, rest = [], []
    for name in os.listdir(os.path.dirname(prefix)):
        if not name.startswith(os.path.basename(prefix) + "."):
            continue
        with open(os.path.join(os.path.dirname(prefix), name)) as f:
            for line in f:
                cols = line.split()
                latency_ms, end = int(cols[2]) / 1000, int(cols[4]) + int(cols[5]) / 1e6
                (around if start <= end < start + seconds else rest).append(latency_ms)
    return around, rest


def p99(values):
    return sorted(values)[int(len(values) * 0.99)] if values else 0.0


def test_takeover_under_load(request, pg, pgmux):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = s.getsockname()[1]
    old = start_old(pgmux, metrics_listen=f"127.0.0.1:{metrics_port}")
    old_pid = old.proc.pid

    idle = [old.connect() for _ in range(IDLE_CLIENTS)]
    for c in idle:
        c.execute("select 1")
    intx = old.connect(autocommit=False)
    intx.execute("select 1")               # a transaction left open across the takeover
    session = old.connect(dbname="appsession")
    session.execute("set application_name = 'kept'")
    session_pid = session.execute("select pg_backend_pid()").fetchone()[0]
    unix_before = serves(old, host=old.basedir)

    bench_log = os.path.join(old.basedir, "bench")
    bench = pgbench_bg(old, "-c", str(BENCH_CLIENTS), "-j", "2", "-T", str(SECONDS), "-l",
                       f"--log-prefix={bench_log}")
    churn = pgbench_bg(old, "-C", "-c", str(CHURN_CLIENTS), "-j", "1", "-T", str(SECONDS), "-S")
    attempts = Attempts(old.port)
    time.sleep(TAKEOVER_AT)   # load, not a condition: the takeover must land in the middle of it

    # A client the old process accepted (it answered the SSL request) that has not logged in
    # when the takeover comes: it must log in there, not be turned away as at a shutdown.
    midlogin = old.raw()
    midlogin.send(struct.pack(">II", 8, 80877103))
    assert midlogin.read_byte(5) == b"N"

    notify = Notify(os.path.join(old.basedir, "notify.sock"))
    t0 = time.monotonic()
    t0_epoch = time.time()
    new = new_process(request, pg, old, env={"NOTIFY_SOCKET": notify.path})
    wait_for(lambda: took_over(new) or new.proc.poll() is not None, timeout=15,
             what="the new process to take over")
    t_takeover = time.monotonic() - t0
    assert new.proc.poll() is None, "the new process exited:\n" + new.log() + new.stderr()
    old.expect_exit = True
    # The old process no longer holds the listening socket; the new one does.
    wait_for(lambda: listening_pids(old.port) == [new.proc.pid], timeout=5,
             what="only the new process to listen")
    ready = [m for m in notify.messages() if m.get("READY") == "1"]
    assert ready and ready[0].get("MAINPID") == str(new.proc.pid), ready
    # metrics and the unix socket came along
    with socket.create_connection(("127.0.0.1", metrics_port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        assert b" 200 " in s.recv(4096)
    assert unix_before and serves(new, host=old.basedir)

    midlogin.login("postgres", "app")
    assert midlogin.scalar("select 'logged in'") == "logged in"

    bench_rc, bench_done, bench_failed, bench_out = pgbench_result(bench)
    churn_rc, churn_done, churn_failed, churn_out = pgbench_result(churn)
    attempts.stop()
    t_load_end = time.monotonic()

    # The old process's clients were served to the end, and still are.
    assert old.proc.poll() is None, "the old process exited with clients connected"
    for c in idle:
        assert c.execute("select 'still here'").fetchone()[0] == "still here"
    intx.execute("select 2")
    intx.commit()
    # the session-mode client kept its server connection and its settings
    assert session.execute("select pg_backend_pid(), current_setting('application_name')"
                           ).fetchone() == (session_pid, "kept")
    # The old process is not accepting any more: a new client is the new process's.
    assert serves(new)
    for c in idle + [intx, session]:
        c.close()
    midlogin.terminate()
    wait_for(lambda: old.proc.poll() is not None, timeout=10,
             what="the old process to exit after its last client")
    t_old_exit = time.monotonic()
    assert old.proc.returncode == 0
    # The old process left the socket files and the pidfile to the new one.
    assert os.path.exists(os.path.join(old.basedir, f".s.PGSQL.{old.port}"))
    assert os.path.exists(takeover_path(old))
    with open(old.settings["pidfile"]) as f:
        assert int(f.read()) == new.proc.pid
    assert serves(new) and serves(new, host=old.basedir)

    old_log = old.log()
    asked = log_ms(old_log, "asked for the listening sockets")
    stopped = log_ms(old_log, "this process stops accepting")
    print(f"\ntakeover: {t_takeover * 1000:.0f} ms from starting the new process to its "
          f"accepting (sockets sent -> old stopped accepting: {stopped - asked} ms); "
          f"old process {old_pid} exited {t_old_exit - t0:.1f} s after the takeover began, "
          f"{t_old_exit - t_load_end:.2f} s after the load ended and its clients left")
    print(f"pgbench -c {BENCH_CLIENTS}: {bench_done} transactions, {bench_failed} failed, "
          f"exit {bench_rc}; pgbench -C -c {CHURN_CLIENTS}: {churn_done} connections and "
          f"transactions, {churn_failed} failed, "
          f"exit {churn_rc}; connection loop: {attempts.attempts} attempts, "
          f"{len(attempts.failures)} failed, the slowest took {attempts.slowest * 1000:.0f} ms; "
          f"{IDLE_CLIENTS} idle clients served after it; {handed_over(old)} clients handed over "
          f"to the new process")
    around, rest = latencies_around(bench_log, t0_epoch, 2.0)
    print(f"pgbench -c {BENCH_CLIENTS} latency p99: {p99(rest):.1f} ms in the rest of the run, "
          f"{p99(around):.1f} ms in the 2 s from the takeover's start "
          f"({len(around)} transactions)")
    assert bench_rc == 0 and bench_failed == 0 and bench_done > 0, bench_out
    assert churn_rc == 0 and churn_failed == 0 and churn_done > 0, churn_out
    assert attempts.failures == [], attempts.failures[:5]
    assert attempts.attempts > 10


def test_takeover_with_bad_config_leaves_old_serving(request, pg, pgmux):
    old = start_old(pgmux)
    new = new_process(request, pg, old, settings={"pool_mode": "sometimes"})
    new.expect_exit = True
    assert new.proc.wait(10) == 1
    assert listening_pids(old.port) == [old.proc.pid]
    assert serves(old) and serves(old, host=old.basedir)
    # and a good takeover works afterwards
    good = new_process(request, pg, old)
    wait_for(lambda: took_over(good), timeout=10, what="the takeover")
    old.expect_exit = True
    assert old.wait_exit(10) == 0
    assert serves(good)


def test_takeover_with_nothing_to_take_over(request, pg, pgmux, tmp_path):
    old = start_old(pgmux)
    new = new_process(request, pg, old, args=(str(tmp_path / "nobody.sock"),))
    new.expect_exit = True
    assert new.proc.wait(10) == 1
    assert "could not connect to takeover socket" in new.log() + new.stderr()
    assert serves(old)
    # the old process stopped: its takeover socket is gone, a takeover finds nobody
    old.expect_exit = True
    old.proc.send_signal(signal.SIGTERM)
    old.close_clients()
    assert old.wait_exit(5) == 0
    assert not os.path.exists(takeover_path(old))
    late = new_process(request, pg, old)
    late.expect_exit = True
    assert late.proc.wait(10) == 1
    assert listening_pids(old.port) == []


def recv_sockets(path):
    """Play a new process up to the point where it holds the sockets: HELLO, then the SOCKETS
    message and its descriptors. Returns (connection, message bytes, descriptors)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.settimeout(5)
    conn.connect(path)
    conn.send(b"pgmx" + b"H" + struct.pack(">HI", 1, os.getpid()))
    msg, fds, _, _ = socket.recv_fds(conn, 8192, 32)
    return conn, msg, fds


def test_new_process_dies_after_receiving_the_sockets(request, pg, pgmux):
    old = start_old(pgmux)
    conn, msg, fds = recv_sockets(takeover_path(old))
    assert msg[:5] == b"pgmxS"
    assert len(fds) == msg[11] == 3   # TCP, unix, the takeover socket
    # The descriptors are the very listening sockets: the same address.
    tcp = socket.socket(fileno=os.dup(fds[0]))
    assert tcp.getsockname() == ("127.0.0.1", old.port)
    tcp.close()
    # Die without saying READY: the old process never stopped accepting.
    for fd in fds:
        os.close(fd)
    conn.close()
    wait_for(lambda: "failed: it closed the connection before it was ready" in old.log(),
             what="the old process to notice")
    assert listening_pids(old.port) == [old.proc.pid]
    assert serves(old) and serves(old, host=old.basedir)
    # A real new process killed as it starts: the old one goes on.
    killed = new_process(request, pg, old)
    killed.expect_exit = True
    killed.proc.kill()
    killed.proc.wait(5)
    assert serves(old)
    # The old process takes the next takeover.
    good = new_process(request, pg, old)
    wait_for(lambda: took_over(good), timeout=10, what="the takeover")
    old.expect_exit = True
    assert old.wait_exit(10) == 0
    assert serves(good)


def test_one_takeover_at_a_time(request, pg, pgmux):
    old = start_old(pgmux)
    conn, msg, fds = recv_sockets(takeover_path(old))
    for fd in fds:
        os.close(fd)
    second = new_process(request, pg, old)
    second.expect_exit = True
    assert second.proc.wait(10) == 1
    assert "another takeover is in progress" in second.log() + second.stderr()
    conn.close()
    assert serves(old)
    assert listening_pids(old.port) == [old.proc.pid]


def test_signals_to_the_old_process_after_takeover(request, pg, pgmux):
    """After the takeover the old process is in SIGTERM's shutdown: SIGINT closes its clients
    as their transactions end, and it tells the service manager nothing (the new one is the
    service now)."""
    old = start_old(pgmux)
    notify = Notify(os.path.join(old.basedir, "notify.sock"))
    old.proc.send_signal(signal.SIGTERM)   # restart the old process with NOTIFY_SOCKET set
    old.wait_exit(5)
    with open(old.stderr_path, "ab") as err:
        old.proc = subprocess.Popen([PGMUX_BIN, old.config_path], stdout=subprocess.DEVNULL,
                                    stderr=err, env=dict(os.environ, NOTIFY_SOCKET=notify.path))
    wait_for(lambda: any(m.get("READY") == "1" for m in notify.messages()),
             what="the old process to be ready")
    # Session mode: an idle client stays with the old process (one in transaction mode would
    # follow the sockets at the first hand-over tick, SIGINT or not).
    idle = old.connect(dbname="appsession")
    idle.execute("select 1")
    busy = old.connect(autocommit=False)
    busy.execute("select 1")
    new = new_process(request, pg, old)
    wait_for(lambda: took_over(new), timeout=10, what="the takeover")
    old.expect_exit = True
    assert idle.execute("select 'kept'").fetchone()[0] == "kept"
    old.proc.send_signal(signal.SIGINT)
    # the idle client is closed, the one in a transaction may finish it
    wait_for(lambda: idle.closed or idle.broken or _fails(idle), what="the idle client closed")
    assert old.proc.poll() is None
    busy.execute("select 2")
    busy.commit()
    assert old.wait_exit(10) == 0
    assert not [m for m in notify.messages() if m.get("STOPPING") == "1"]
    assert serves(new)


def _fails(conn):
    try:
        conn.execute("select 1")
        return False
    except psycopg.Error:
        return True


def test_takeover_socket_moves(request, pg, pgmux):
    """A new configuration naming another takeover socket: the new process listens there, the
    old socket's file is removed once the takeover is done, and the next takeover uses the new
    path."""
    old = start_old(pgmux)
    moved = os.path.join(old.basedir, "moved.sock")
    new = new_process(request, pg, old, settings={"takeover_socket": moved},
                      args=(takeover_path(old),))
    wait_for(lambda: took_over(new), timeout=10, what="the takeover")
    old.expect_exit = True
    assert old.wait_exit(10) == 0
    assert os.path.exists(moved) and not os.path.exists(takeover_path(old))
    third = new_process(request, pg, new)
    wait_for(lambda: took_over(third), timeout=10, what="the second takeover")
    new.expect_exit = True
    assert new.wait_exit(10) == 0
    assert serves(third)


def handed_over(mux):
    return mux.log().count("handed over to the next pgmux process")


def test_idle_clients_follow_the_sockets(request, pg, pgmux, direct):
    """Clients between transactions in transaction mode go to the new process with what they
    set up (named prepared statements, session settings, parameters, their cancel key) and
    notice nothing; clients in a transaction follow when it ends; session-mode clients stay, and
    the old process exits when they leave."""
    old = start_old(pgmux)
    idle = [old.connect() for _ in range(IDLE_CLIENTS)]
    for c in idle:
        c.execute("select 1")
    prepared = old.connect()
    prepared.prepare_threshold = 0   # named statements from the first run (off in the fixture)
    prepared.execute("set search_path = pg_catalog, public")
    prepared.execute("set application_name = 'follows'")
    stmt = "select %s::int + 1, current_setting('search_path'), current_setting('application_name')"
    assert prepared.execute(stmt, (1,), prepare=True).fetchone()[0] == 2
    key = prepared.pgconn.backend_pid
    intx = old.connect(autocommit=False)
    intx.execute("select 1")
    session = old.connect(dbname="appsession")
    session_pid = session.execute("select pg_backend_pid()").fetchone()[0]

    new = new_process(request, pg, old)
    wait_for(lambda: took_over(new), timeout=10, what="the takeover")
    old.expect_exit = True
    wait_for(lambda: handed_over(old) == IDLE_CLIENTS + 1, timeout=10,
             what="the idle clients to be handed over")
    # the one in a transaction stays until it ends, then follows
    assert intx.execute("select 2").fetchone()[0] == 2
    intx.commit()
    wait_for(lambda: handed_over(old) == IDLE_CLIENTS + 2, timeout=10,
             what="the client whose transaction ended to be handed over")
    assert "taken over from the previous pgmux process" in new.log()

    for c in idle:
        assert c.execute("select 'served'").fetchone()[0] == "served"
    # the prepared statement, settings and the key the client was told at login all work
    assert prepared.execute(stmt, (41,), prepare=True).fetchone() == \
        (42, "pg_catalog, public", "follows")
    assert prepared.pgconn.backend_pid == key
    result = {}

    def sleep():
        try:
            prepared.execute("select pg_sleep(30)")
            result["error"] = None
        except psycopg.Error as e:
            result["error"] = e

    t = threading.Thread(target=sleep)
    t.start()
    # Sleeping on PostgreSQL, not only linked in pgmux: a cancel that reaches a backend before the
    # query does is ignored by PostgreSQL. Not merely "active" with that text either: the client
    # prepares the statement in a round trip of its own, which pg_stat_activity shows the same
    # way, and a cancel that comes between the two finds the client idle in pgmux (ignored).
    wait_for(lambda: direct.scalar("select count(*) from pg_stat_activity where datname = 'app' "
                                   "and wait_event = 'PgSleep' and query like '%pg_sleep(30)%'"),
             timeout=10, what="the sleep to run")
    prepared.cancel()
    t.join(10)
    assert isinstance(result.get("error"), psycopg.errors.QueryCanceled), result
    assert prepared.execute("select 'after cancel'").fetchone()[0] == "after cancel"

    # the session client stays on the old process, with its server; the old process's other
    # server connections close, its clients being gone: PostgreSQL sees the new process's
    # servers and that one
    def servers_not_the_new_ones():
        new_servers = [r for r in new.admin("show servers") if r["database"] == "app"]
        return len(direct.backends("app")) - len(new_servers)

    wait_for(lambda: servers_not_the_new_ones() == 1, timeout=10,
             what="the old process to close the servers its clients no longer need")
    assert session.execute("select pg_backend_pid()").fetchone()[0] == session_pid
    assert old.proc.poll() is None
    session.close()
    assert old.wait_exit(10) == 0
    for c in idle + [prepared, intx]:
        assert c.execute("select 'still served'").fetchone()[0] == "still served"
        c.close()


def test_tls_clients_stay_and_finish_on_the_old_process(request, pg, pgmux, tmp_path):
    """A TLS client's session keys are the old process's: it stays there, keeps working with no
    error and the old process exits when it leaves; a plain client beside it is handed over."""
    from test_tls import make_ca, make_cert
    make_ca(str(tmp_path), "ca")
    make_cert(str(tmp_path), "ca", "server", "localhost", "IP:127.0.0.1")
    old = start_old(pgmux, client_tls_sslmode="prefer",
                    client_tls_key_file=str(tmp_path / "server.key"),
                    client_tls_cert_file=str(tmp_path / "server.crt"))
    tls = old.connect(sslmode="require")
    plain = old.connect(sslmode="disable")
    for c in (tls, plain):
        c.execute("select 1")

    new = new_process(request, pg, old)
    wait_for(lambda: took_over(new), timeout=10, what="the takeover")
    old.expect_exit = True
    wait_for(lambda: handed_over(old) == 1, timeout=10, what="the plain client to be handed over")
    for i in range(20):
        assert tls.execute("select %s::int", (i,)).fetchone()[0] == i
        assert plain.execute("select %s::int", (i,)).fetchone()[0] == i
    assert tls.pgconn.ssl_in_use
    assert handed_over(old) == 1 and old.proc.poll() is None
    tls.close()
    assert old.wait_exit(10) == 0
    assert plain.execute("select 'on the new process'").fetchone()[0] == "on the new process"
    plain.close()


def test_client_with_many_statements_follows(request, pg, pgmux):
    """A record larger than one packet (400 prepared statements, about 150 KB) travels in
    pieces: the client is handed over and every statement still runs under its own name."""
    old = start_old(pgmux)
    client = old.connect()
    client.prepare_threshold = 0     # named statements from the first run (off in the fixture)
    client.prepared_max = 1000       # psycopg keeps 100 by default, deallocating the oldest
    pad = "x" * 300
    queries = [f"select {i} as n, '{pad}' as pad" for i in range(400)]
    for q in queries:
        client.execute(q, prepare=True)
    new = new_process(request, pg, old)
    wait_for(lambda: took_over(new), timeout=10, what="the takeover")
    old.expect_exit = True
    wait_for(lambda: handed_over(old) == 1, timeout=10, what="the client to be handed over")
    assert old.wait_exit(10) == 0
    for i, q in enumerate(queries):
        assert client.execute(q, prepare=True).fetchone()[0] == i
    client.close()


def test_max_db_connections_counts_both_processes(request, pg, pgmux, direct):
    """The old process's servers count against the new one's max_db_connections: a client of
    the new process waits while session clients on the old one hold the database's servers, and
    gets one as soon as one of them leaves; PostgreSQL never sees more than the limit."""
    old = start_old(pgmux, max_db_connections=2)
    holders = [old.connect(dbname="appsession") for _ in range(2)]
    for h in holders:
        h.execute("select 1")
    new = new_process(request, pg, old)
    wait_for(lambda: took_over(new), timeout=10, what="the takeover")
    old.expect_exit = True
    with Sampler(direct, "app") as sampler:
        # its login waits too: a new pool shows its first server's parameters
        def late_client():
            with new.connect(dbname="appsession", connect_timeout=30) as late:
                return late.execute("select 'served'").fetchone()[0]

        answer = Background(late_client)
        wait_for(lambda: any(r["database"] == "appsession" and int(r["cl_waiting"]) == 1
                             for r in new.admin("show pools")),
                 timeout=10, what="the new process's client to wait for a server")
        assert not answer.done()
        holders[0].close()
        assert answer.result(timeout=10) == "served"
        holders[1].close()
        assert old.wait_exit(10) == 0
    assert sampler.max_total <= 2, f"{sampler.max_total} server connections to app at once"
