"""Query cancellation through pgmux reaches the right server, and only when it should."""
import os
import signal
import socket
import subprocess
import threading
import time

import psycopg
import pytest

import rawpg
from conftest import PG_BIN, Background, assert_error, db_entries, wait_for


def running(direct, needle, n=1):
    return len([r for r in direct.backends("app", "active") if needle in r[2]]) >= n


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_cancel_running_query(pgmux, direct, mode):
    mux = pgmux({"pool_mode": mode, "default_pool_size": 2})
    a, b = mux.connect(), mux.connect()
    slow = Background(lambda: a.execute("select pg_sleep(30)").fetchone())
    other = Background(lambda: b.execute("select pg_sleep(1.5), 'b'").fetchone()[1])
    wait_for(lambda: running(direct, "pg_sleep(30)") and running(direct, "pg_sleep(1.5)"), 5,
             what="both queries running on PostgreSQL")
    t0 = time.monotonic()
    a.cancel()
    err = slow.exception(5)
    assert err is not None, "pg_sleep(30) was not cancelled"
    assert slow.finished - t0 < 1.0, f"cancel took {slow.finished - t0:.2f}s"
    assert isinstance(err, psycopg.errors.QueryCanceled), repr(err)
    assert_error(err, "canceled")
    # the other client's query on the same pool ran to its end
    assert other.result(5) == "b"
    assert other.elapsed() >= 1.4
    # and the cancelled client goes on
    assert a.execute("select 'again'").fetchone()[0] == "again"


def test_cancel_idle_client_does_nothing(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = mux.connect(), mux.connect()
    # a used the only server last, then released it; b is now running on that same server
    pid = a.execute("select pg_backend_pid()").fetchone()[0]
    job = Background(lambda: b.execute("select pg_sleep(1), pg_backend_pid()").fetchone()[1])
    wait_for(lambda: running(direct, "pg_sleep(1)"), 3, what="b's query to run")
    a.cancel()
    # a request with keys nobody owns must not cancel anything either
    rawpg.cancel_request("127.0.0.1", mux.port, 12345, 67890)
    assert job.result(5) == pid, "b ran on the server a had used"
    assert job.elapsed() >= 0.9, "b's query was cut short by a's cancel"
    # the idle client's cancel is not kept for later either
    assert a.execute("select pg_sleep(0.3), 'a'").fetchone()[1] == "a"
    assert b.execute("select 'b'").fetchone()[0] == "b"


def test_cancel_with_psql_sigint(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction"})
    p = subprocess.Popen([os.path.join(PG_BIN, "psql"), "-X", "-d", mux.dsn("app"), "-c",
                          "select pg_sleep(30)"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: running(direct, "pg_sleep(30)"), 5, what="psql's query to run")
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=5)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "canceling statement due to user request" in err, err
    assert took < 1.0, f"psql's cancel took {took:.2f}s"
    wait_for(lambda: not running(direct, "pg_sleep(30)"), 2, what="pg_sleep to stop")


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_cancel_then_close_leaves_nothing_to_the_next_client(pgmux, mode):
    # The server a cancel was sent for is reset like any other before the next client has it.
    mux = pgmux({"pool_mode": mode, "default_pool_size": 1})
    for i in range(50):
        a = mux.connect(autocommit=(mode == "session"))
        try:
            if mode == "session":
                a.execute("create temp table leaked_from_a (x int)")
            else:
                a.execute("select wat")  # a's transaction is now aborted
        except psycopg.Error:
            pass
        a.cancel()
        a.close()
        with mux.connect() as b:
            assert b.execute("select 1").fetchone()[0] == 1, f"iteration {i}"
            leaked = b.execute("select to_regclass('pg_temp.leaked_from_a')").fetchone()[0]
            assert leaked is None, f"iteration {i}: a's temp table is visible to b"


def test_late_cancel_never_hits_the_next_client(pgmux):
    # a's cancel is on its way while a gives its server up and b takes it: until PostgreSQL has
    # closed the cancel connection, b must not run there.
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    b = mux.connect()
    for i in range(30):
        a = mux.connect(autocommit=False)
        a.execute("select 1")  # a holds the only server, idle in transaction
        job = Background(lambda: b.execute("select pg_sleep(0.2), 'b'").fetchone()[1])
        a.cancel()
        try:
            a.rollback()
        except psycopg.errors.QueryCanceled:
            pass  # the cancel may land on a's own ROLLBACK, as it would on PostgreSQL: not b's
        a.close()
        err = job.exception(10)
        assert err is None, f"iteration {i}: a's cancel hit b's query: {err}"
        assert job.result(1) == "b"


# --- cancels that PostgreSQL never confirms --------------------------------------------------

class CancelTrap:
    """A TCP proxy in front of PostgreSQL. While forwarding, connections are piped both ways.
    hold(): new connections are accepted and read, never answered nor closed (a server that
    never confirms a cancel). blackhole(): new connections are not even accepted (the listen
    queue is kept full, so the kernel drops their SYNs and connect() hangs)."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.mode = "forward"
        self.held = []
        self.closed_held = 0
        self.socks = []
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.05)
        self.port = self.lsock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _drain(self, s):
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
        self.closed_held += 1

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.socks.append(c)
            if self.mode == "forward":
                u = socket.create_connection(("127.0.0.1", self.upstream))
                self.socks.append(u)
                threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
                threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()
            else:
                self.held.append(c)
                threading.Thread(target=self._drain, args=(c,), daemon=True).start()

    def hold(self):
        self.mode = "hold"

    def blackhole(self):
        """Stop accepting: a fresh listener on the same port with a queue of one, filled."""
        self.stop = True
        self.thread.join(2)
        self.lsock.close()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(0)
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", self.port))
            self.socks.append(f)

    def close(self):
        self.stop = True
        self.thread.join(2)
        for s in self.socks + [self.lsock]:
            # close() alone does not end a connection another thread is blocked reading: the
            # kernel keeps it open until that read returns, which for an idle server never
            # happens, and PostgreSQL keeps the backend for the tests that follow
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def trap(pg):
    t = CancelTrap(pg.port)
    yield t
    t.close()


def trapped_databases(pg, trap):
    dbs = db_entries(pg)
    dbs["app"] = f"host=127.0.0.1 port={trap.port} dbname=app"
    return dbs


def test_cancel_to_blackholed_server_is_given_up(pgmux, pg, direct, trap):
    """A cancel whose connect never completes is given up after server_connect_timeout, and
    the server it was for is not reused (the cancel could still land)."""
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1,
                 "server_connect_timeout": 2}, databases=trapped_databases(pg, trap))
    a = mux.connect()
    a.execute("select 1")
    slow = Background(lambda: a.execute("select pg_sleep(4), pg_backend_pid()").fetchone()[1])
    wait_for(lambda: running(direct, "pg_sleep(4)"), 5, what="the query to run")
    trap.blackhole()
    t0 = time.monotonic()
    a.cancel()
    wait_for(lambda: "cancel request not confirmed" in mux.log(), 10, interval=0.05,
             what="the cancel to be given up")
    took = time.monotonic() - t0
    print(f"cancel given up after {took:.2f} s (server_connect_timeout 2 s)")
    assert took < 8.0
    # the cancel never arrived: the query ran to its end, and its server is not reused
    pid = slow.result(10)
    wait_for(lambda: pid not in [r[0] for r in direct.backends("app")], 5,
             what="the server the cancel was for to be closed")


def test_forwarded_cancels_are_capped(pgmux, pg, direct, trap):
    """A client may send any number of cancels for its own key; at most 64 are on their way to
    the server at once, the rest are dropped."""
    mux = pgmux({"pool_mode": "session", "default_pool_size": 1, "verbose": 1},
                databases=trapped_databases(pg, trap))
    a = mux.connect()
    slow = Background(lambda: a.execute("select pg_sleep(3)").fetchone())
    wait_for(lambda: running(direct, "pg_sleep(3)"), 5, what="the query to run")
    trap.hold()
    for _ in range(100):
        a.cancel()
    wait_for(lambda: mux.log().count("cancel dropped") + len(trap.held) >= 100, 10,
             what="every cancel to be forwarded or dropped")
    dropped = mux.log().count("cancel dropped")
    print(f"{len(trap.held)} cancels forwarded, {dropped} dropped")
    assert len(trap.held) == 64 and dropped == 36
    slow.result(10)
