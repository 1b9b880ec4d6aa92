"""A hostile server (or whoever answers on its address: a man in the middle under the default
server_tls_sslmode = prefer, a wrong Patroni host) must get no password that the policy does
not allow, must not freeze pgmux's event loop or fill its memory, and must not pass for a
logged-in server. Health checks and auth_query (libpq) are held to the same rules. The fake
servers are test/lib/fakepg.py. Where a fake stalls, floods or asks for costly work, the admin
console's SHOW VERSION is timed meanwhile; after a refusal the pool recovers on a real server.
"""
import http.server
import json
import os
import socket
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import fakepg  # noqa: E402
import rawpg  # noqa: E402
from conftest import Background, wait_for, write_userlist  # noqa: E402
from pgcluster import SANITIZED  # noqa: E402

# A freeze to detect is several seconds (PBKDF2 at 10,000,000 iterations: about 8 s here); the
# console answers a healthy loop in milliseconds.
PROMPT = 1.0
# pgmux's whole resident memory, at most (an ASan build starts far larger: its growth is
# measured instead, with room for its quarantine as in test_large.py).
VMHWM_LIMIT_KB = 40 * 1024
ASAN_GROWTH_LIMIT_KB = 64 * 1024


@pytest.fixture
def fake():
    made = []

    def make(behaviour, **kw):
        f = fakepg.FakePg(behaviour, **kw).start()
        made.append(f)
        return f
    yield make
    for f in made:
        f.stop()


def entry(port, **keys):
    keys.setdefault("dbname", "app")
    keys.setdefault("user", "alice")
    keys.setdefault("password", "alice-secret")
    return f"host=127.0.0.1 port={port} " + " ".join(f"{k}={v}" for k, v in keys.items())


class Console:
    """Runs SHOW VERSION on its own console connection every 50 ms in a thread; keeps the
    slowest answer."""

    def __init__(self, mux):
        self.stop = threading.Event()
        self.conn = mux.raw(timeout=30).login("postgres", "pgmux")
        self.conn.query("SHOW VERSION")
        self.bg = Background(fakepg.measure_latency, lambda: self.conn.query("SHOW VERSION"),
                             self.stop)

    def worst(self):
        self.stop.set()
        worst = self.bg.result()
        print(f"slowest SHOW VERSION while the server misbehaved: {worst * 1000:.1f} ms")
        return worst


def login_error(mux, timeout=15):
    """What a client logging in to app gets: the PgError (or Closed/Ready) pgmux answers."""
    c = mux.raw(timeout=timeout)
    c.startup("postgres", "app")
    return c.error_or_close(timeout)


def assert_refused(err, sqlstate, phrase):
    assert isinstance(err, rawpg.PgError), f"expected an ErrorResponse, got {err!r}"
    assert err.sqlstate == sqlstate, f"expected {sqlstate}, got {err.sqlstate}: {err.message}"
    assert phrase in err.message, f"expected {phrase!r} in: {err.message}"


def recovers_on(mux, pg):
    """Point app at the real server: a client gets in."""
    mux.databases = {"app": f"host=127.0.0.1 port={pg.port} dbname=app user=alice "
                            "password=alice-secret"}
    mux.reload()

    def logs_in():
        try:
            return mux.raw(timeout=5).login("postgres", "app").scalar("select current_user")
        except rawpg.PgError:
            return None
    assert wait_for(logs_in, timeout=15, what="a login through the real server") == "alice"


# ---- authentication methods ----------------------------------------------------------------

def test_cleartext_refused_by_default(pgmux, fake, pg):
    f = fake(fakepg.cleartext)
    mux = pgmux(databases={"app": entry(f.port)})
    console = Console(mux)
    err = login_error(mux)
    assert_refused(err, "08004", "server_auth_methods")
    assert "server_tls_sslmode" in err.message
    assert console.worst() < PROMPT
    assert f.connections(), "pgmux never reached the fake server"
    assert f.passwords() == [], "pgmux sent the password in clear to an unverified server"
    assert "password in clear text" in mux.log()
    recovers_on(mux, pg)


def test_cleartext_sent_when_allowed(pgmux, fake):
    """The harness sees a password when the policy allows it: the refusal above is the policy."""
    f = fake(fakepg.cleartext)
    mux = pgmux({"server_auth_methods": "password"}, databases={"app": entry(f.port)})
    mux.raw(timeout=10).login("postgres", "app")
    assert f.passwords() == [b"alice-secret\0"]


def test_md5_refused_when_not_listed(pgmux, fake, pg):
    f = fake(fakepg.md5)
    mux = pgmux({"server_auth_methods": "scram-sha-256"}, databases={"app": entry(f.port)})
    err = login_error(mux)
    assert_refused(err, "08004", "md5")
    assert "server_auth_methods" in err.message
    assert f.passwords() == [], "pgmux sent an md5 response the policy does not allow"
    recovers_on(mux, pg)


def test_trust_refused_when_none_not_listed(pgmux, fake):
    f = fake(fakepg.trust)
    mux = pgmux({"server_auth_methods": "scram-sha-256,md5"}, databases={"app": entry(f.port)})
    assert_refused(login_error(mux), "08004", "none")


# ---- SCRAM ------------------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_scram_iterations_capped_loop_stays_responsive(pgmux, fake, pg):
    f = fake(fakepg.scram(10_000_000))
    mux = pgmux({"server_login_retry": 0.5}, databases={"app": entry(f.port)})
    console = Console(mux)
    err = login_error(mux, timeout=60)
    assert console.worst() < PROMPT
    assert_refused(err, "08004", "server_scram_max_iterations")
    assert "10000000" in err.message
    # the exchange stopped before any proof was computed and sent
    assert len(f.passwords()) <= len(f.connections())
    assert all(p.startswith(b"SCRAM-SHA-256\0") for p in f.passwords())
    recovers_on(mux, pg)


def test_scram_low_iterations_and_keys_reused(pgmux, fake):
    """i=1 is accepted (the cap bounds cost, not strength); a second login to the same server
    with the same salt and count reuses the derived keys."""
    f = fake(fakepg.scram(1, password="alice-secret"))
    mux = pgmux({"verbose": 2}, databases={"app": entry(f.port)})
    for _ in range(2):
        c = mux.raw(timeout=10).login("postgres", "app")
        assert c.scalar("select 1") == "f"     # the fake's one row
        c.terminate()
        # the fake hangs up: the next client needs a new server login
        for x in f.connections():
            try:
                x.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass            # closed the first time round
        wait_for(lambda: mux.pool("app", "alice")["sv_idle"] == 0,
                 what="pgmux to drop the closed server connection")
    assert len(f.connections()) >= 2
    wait_for(lambda: "SCRAM keys for this salt and iteration count reused" in mux.log(),
             what="the second login to reuse the keys")


# ---- messages -------------------------------------------------------------------------------

@pytest.mark.timeout(90)
def test_huge_error_during_login_is_not_buffered(pgmux, fake, pg):
    f = fake(fakepg.huge_error(1 << 30))
    mux = pgmux(databases={"app": entry(f.port)})
    before = mux.status("VmRSS")
    console = Console(mux)
    err = login_error(mux, timeout=60)
    assert console.worst() < PROMPT
    assert_refused(err, "08P01", "server_max_held_message")
    wait_for(lambda: f.connections() and f.connections()[0].closed.is_set(), timeout=30,
             what="pgmux to drop the server connection")
    hwm = mux.status("VmHWM")
    sent = f.connections()[0].bytes_sent
    print(f"pgmux VmHWM {hwm} kB (VmRSS before {before} kB); the fake got {sent} bytes "
          "of its 1 GiB error out before pgmux closed")
    if SANITIZED:
        assert hwm - before < ASAN_GROWTH_LIMIT_KB
    else:
        assert hwm < VMHWM_LIMIT_KB
    recovers_on(mux, pg)


@pytest.mark.timeout(90)
def test_huge_error_after_login_is_not_buffered(pgmux, fake):
    f = fake(fakepg.huge_error_after_login(1 << 30))
    mux = pgmux(databases={"app": entry(f.port)})
    c = mux.raw(timeout=60).login("postgres", "app")
    before = mux.status("VmRSS")
    console = Console(mux)
    c.send_msg(b"Q", b"select 1\0")
    err = c.error_or_close(60)
    assert console.worst() < PROMPT
    assert isinstance(err, rawpg.PgError) and err.sqlstate == "08006", repr(err)
    wait_for(lambda: f.connections()[0].closed.is_set(), timeout=30,
             what="pgmux to drop the server connection")
    hwm = mux.status("VmHWM")
    print(f"pgmux VmHWM {hwm} kB (VmRSS before {before} kB)")
    if SANITIZED:
        assert hwm - before < ASAN_GROWTH_LIMIT_KB
    else:
        assert hwm < VMHWM_LIMIT_KB
    assert "more than server_max_held_message" in mux.log()


def test_ready_for_query_before_authentication(pgmux, fake, pg):
    """A ReadyForQuery first would make an unauthenticated session pass for logged in."""
    f = fake(fakepg.before_auth(b"Z", b"I"))
    mux = pgmux(databases={"app": entry(f.port)})
    err = login_error(mux)
    assert_refused(err, "08P01", "unexpected message")
    recovers_on(mux, pg)


def test_unexpected_message_during_login(pgmux, fake):
    f = fake(fakepg.before_auth(b"D", b"\0\0"))
    mux = pgmux(databases={"app": entry(f.port)})
    assert_refused(login_error(mux), "08P01", "unexpected message")


def test_silent_server(pgmux, fake, pg):
    f = fake(fakepg.silent)
    mux = pgmux({"server_connect_timeout": 2}, databases={"app": entry(f.port)})
    console = Console(mux)
    err = login_error(mux, timeout=30)
    assert console.worst() < PROMPT
    assert isinstance(err, rawpg.PgError) and err.sqlstate == "08006", repr(err)
    recovers_on(mux, pg)


def topology(mux):
    return mux.admin("SHOW TOPOLOGY")


# ---- health checks --------------------------------------------------------------------------

def cluster(port, **keys):
    lines = ["", "[cluster.main]", f"hosts = 127.0.0.1:{port}", "health_check_interval = 0.2",
             "health_check_timeout = 2"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def test_health_check_cleartext_refused(pgmux, fake):
    f = fake(fakepg.cleartext)
    mux = pgmux(databases={"app": "cluster=main dbname=app"},
                extra_sections=cluster(f.port, health_check_user="alice",
                                       health_check_password="alice-secret"))
    wait_for(lambda: "server_auth_methods" in mux.log(), timeout=10,
             what="the health check to be refused")
    assert f.connections()
    assert f.passwords() == [], "the health check sent the password in clear"
    assert "password authentication, which server_auth_methods" in mux.log()


def test_pipelined_cleartext_request_refused(pgmux, fake):
    """md5 and a cleartext request in one write: no password leaves, by login or health check."""
    f = fake(fakepg.md5_then_cleartext)
    mux = pgmux(databases={"app": entry(f.port)})
    assert_refused(login_error(mux), "08004", "server_auth_methods")
    h = fake(fakepg.md5_then_cleartext)
    mux2 = pgmux(databases={"app": "cluster=main dbname=app"},
                 extra_sections=cluster(h.port, health_check_user="alice",
                                        health_check_password="alice-secret"))
    wait_for(lambda: "before its authentication request was answered" in mux2.log(), timeout=10,
             what="the health check to refuse the pipelined request")
    for fk in (f, h):
        assert all(p.startswith(b"md5") for p in fk.passwords()), fk.passwords()


@pytest.mark.timeout(90)
def test_health_check_scram_iterations_capped(pgmux, fake):
    f = fake(fakepg.scram(10_000_000))
    mux = pgmux(databases={"app": "cluster=main dbname=app"},
                extra_sections=cluster(f.port, health_check_user="alice",
                                       health_check_password="alice-secret"))
    console = Console(mux)
    wait_for(lambda: "server_scram_max_iterations" in mux.log(), timeout=30,
             what="the health check to refuse the iteration count")
    assert console.worst() < PROMPT
    assert f.passwords() and all(p.startswith(b"SCRAM-SHA-256\0") for p in f.passwords())


def test_health_check_follows_server_tls_sslmode(pgmux, fake):
    """sslmode=require: a server that refuses TLS gets no startup packet from the check."""
    f = fake(fakepg.trust)
    mux = pgmux({"server_tls_sslmode": "require"}, databases={"app": "cluster=main dbname=app"},
                extra_sections=cluster(f.port))
    wait_for(lambda: "failed its health check" in mux.log(), timeout=10,
             what="the health check to fail")
    conns = f.connections()
    assert conns and all(c.ssl_requested for c in conns)
    assert all(c.startup is None for c in conns), "the health check went on without TLS"
    assert "SSL" in mux.log()


def test_auth_query_cleartext_refused(pgmux, fake):
    """auth_query's libpq connection follows server_auth_methods too."""
    f = fake(fakepg.cleartext)
    mux = pgmux({"auth_type": "md5", "auth_user": "alice"},
                databases={"app": f"host=127.0.0.1 port={f.port} dbname=app"}, start=False)
    write_userlist(mux, {"alice": "alice-secret"})
    mux.start()
    c = mux.raw(timeout=15)
    c.startup("dave", "app")
    wait_for(lambda: "server_auth_methods" in mux.log() or f.passwords(), timeout=10,
             what="auth_query's connection to be refused (or to send the password)")
    assert f.passwords() == [], "auth_query sent the password in clear"
    err = c.error_or_close(15)
    assert isinstance(err, (rawpg.PgError, rawpg.Closed)), repr(err)


def test_health_check_passes_on_a_healthy_fake(pgmux, fake):
    """The harness itself: a trusting fake is a healthy primary to the health checks."""
    f = fake(fakepg.trust)
    mux = pgmux(databases={"app": "cluster=main dbname=app"}, extra_sections=cluster(f.port))
    wait_for(lambda: any(r["role"] == "primary" for r in topology(mux)), timeout=10,
             what="the fake to be confirmed primary")


# ---- Patroni --------------------------------------------------------------------------------

class FakePatroni:
    """GET /cluster answers the given members."""

    def __init__(self, members):
        body = json.dumps({"members": members}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_patroni_unix_socket_host_refused(pgmux, fake):
    sockdir = tempfile.mkdtemp(prefix="pgmux-fake-")
    os.chmod(sockdir, 0o755)
    local = fake(fakepg.trust, unix_dir=sockdir)
    remote = fake(fakepg.trust)
    patroni = FakePatroni([
        {"name": "n1", "role": "leader", "state": "running", "host": sockdir, "port": local.port,
         "timeline": 1},
        {"name": "n2", "role": "replica", "state": "running", "host": "127.0.0.1",
         "port": remote.port, "timeline": 1},
    ])
    try:
        mux = pgmux(databases={"app": "cluster=main dbname=app"},
                    extra_sections=("\n[cluster.main]\n"
                                    f"patroni = http://127.0.0.1:{patroni.port}\n"
                                    "patroni_poll_interval = 0.2\nhealth_check_interval = 0.2\n"))
        wait_for(lambda: "ignoring member n1" in mux.log(), timeout=10,
                 what="the unix socket member to be refused")
        # the TCP member is checked: the same tick would have checked n1
        wait_for(lambda: remote.connections(), timeout=10, what="n2's health check")
        wait_for(lambda: any(r["member"] == "n2" and r["healthy"] == "1" for r in topology(mux)),
                 timeout=10, what="n2 to pass its check")
        assert local.connections() == [], "pgmux connected to a unix socket Patroni named"
        assert all(r["member"] != "n1" for r in topology(mux))
        assert mux.log().count("ignoring member n1") == 1
    finally:
        patroni.stop()
        os.system(f"rm -rf {sockdir}")
