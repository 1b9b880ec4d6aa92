"""The command line: --version, --help, bad arguments and configs, -d with a pidfile."""
import os
import re
import resource
import signal
import ssl
import subprocess
import time

from conftest import PGMUX_BIN, listening_pids
from pgcluster import SANITIZED, wait_port


def run(*args, timeout=10):
    return subprocess.run([PGMUX_BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0
    assert "pgmux" in (r.stdout + r.stderr).lower()
    r = run("-V")
    assert r.returncode == 0 and r.stdout.startswith("pgmux ")
    r = run("--help")
    assert r.returncode == 0
    assert "usage" in (r.stdout + r.stderr).lower()
    r = run("--no-such-option")
    assert r.returncode != 0


def test_version_lists_libraries():
    """As PgBouncer's --version: ours first, then each library as linked at run time."""
    lines = run("--version").stdout.splitlines()
    assert re.fullmatch(r"pgmux \d+\.\d+\.\d+", lines[0]), lines
    want = [r"libev \d+\.\d+", r"adns: c-ares \d+\.\d+\.\d+", r"tls: OpenSSL \d+\.\d+\.\d+.*",
            r"libpq \d+\.\d+", r"libcurl \d+\.\d+\.\d+.*"]
    assert len(lines) == 1 + len(want), lines
    for pattern, line in zip(want, lines[1:]):
        assert re.fullmatch(pattern, line), (pattern, line)
    # the OpenSSL line is the library's own, as Python's ssl module (same system library) has it
    if ssl.OPENSSL_VERSION.startswith("OpenSSL 3"):
        assert lines[3] == "tls: " + ssl.OPENSSL_VERSION


def test_pgbouncer_ini_starts_unchanged(pgmux, pg):
    """Keys of a PgBouncer 1.18 file that pgmux used to refuse: tcp_defer_accept,
    server_fast_close, auth_type = plain, a database's auth_user, min_pool_size above the pool
    size (a warning, not an error)."""
    mux = pgmux(start=False)
    mux.settings.update({"tcp_defer_accept": "1", "server_fast_close": "1",
                         "auth_type": "plain", "min_pool_size": "8", "default_pool_size": "5"})
    mux.databases["app"] += " auth_user=postgres min_pool_size=3 pool_size=2"
    mux.write_config()
    text = open(mux.config_path).read().replace("[pgmux]", "[pgbouncer]")
    with open(mux.config_path, "w") as f:
        f.write(text)
    mux.proc = subprocess.Popen([PGMUX_BIN, mux.config_path], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        wait_port(mux.port, timeout=10)
    except TimeoutError:
        raise AssertionError("pgmux did not start:\n" + mux.log())
    log = mux.log()
    assert re.search(r"WARNING .*min_pool_size: 8 is larger than default_pool_size \(5\)", log)
    assert re.search(r"WARNING .*: app: min_pool_size \(3\) is larger than pool_size \(2\)", log)
    # auth_type = plain asks for a cleartext password; postgres has none, so it is refused
    c = mux.raw()
    c.startup("postgres", "app")
    mtype, payload = c.read_msg()
    assert mtype == b"R" and payload[:4] == b"\0\0\0\x03", (mtype, payload)


def test_missing_and_bad_config(tmp_path):
    missing = tmp_path / "missing.ini"
    r = run(str(missing))
    assert r.returncode != 0
    assert "missing.ini" in r.stdout + r.stderr
    bad = tmp_path / "bad.ini"
    bad.write_text("[pgmux]\nlisten_port = 1\ndefault_pool_size = banana\n[databases]\n")
    r = run(str(bad))
    assert r.returncode != 0
    assert "default_pool_size" in r.stdout + r.stderr


def test_port_in_use(pgmux):
    first = pgmux()
    second = pgmux(start=False)
    second.port = first.port
    second.settings["listen_port"] = str(first.port)
    second.write_config()
    r = run(second.config_path, "-q")
    assert r.returncode != 0, "a second pgmux on a busy port must fail"
    assert first.alive()


def test_daemon_mode_and_pidfile(pgmux):
    mux = pgmux(start=False)
    mux.expect_exit = True          # the process we start is the parent, which exits at once
    pidfile = mux.settings["pidfile"]
    try:
        mux.start(args=("-d",))
        assert mux.wait_exit(5) == 0
        with open(pidfile) as f:
            pid = int(f.read().strip())
        assert pid != mux.proc.pid
        os.kill(pid, 0)
        with mux.connect() as conn:
            assert conn.execute("select 1").fetchone()[0] == 1
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}"), "the daemon did not stop on SIGTERM"
        assert not os.path.exists(pidfile), "the pidfile was left behind"
    finally:
        # never leave a daemon behind, even when its pidfile is missing
        for pid in listening_pids(mux.port):
            os.kill(pid, signal.SIGKILL)


def test_binary_is_hardened():
    """Built with stack canaries, full RELRO (relocations read-only, bound at start) and, outside
    sanitizer builds, fortified libc calls."""
    dynamic = subprocess.run(["readelf", "-dW", PGMUX_BIN], capture_output=True, text=True,
                             check=True).stdout
    segments = subprocess.run(["readelf", "-lW", PGMUX_BIN], capture_output=True, text=True,
                              check=True).stdout
    symbols = subprocess.run(["readelf", "--dyn-syms", "-W", PGMUX_BIN], capture_output=True,
                             text=True, check=True).stdout
    assert "BIND_NOW" in dynamic or "NOW" in dynamic.split("FLAGS_1")[-1], dynamic
    assert "GNU_RELRO" in segments
    assert "__stack_chk_fail" in symbols
    if not SANITIZED:
        assert "_chk@" in symbols, "no fortified libc call: -D_FORTIFY_SOURCE is missing"


def test_warns_when_descriptors_cannot_hold_max_client_conn(pgmux):
    """Started under a descriptor limit of 1024 with max_client_conn = 2000, pgmux says so at
    startup, and how to fix it; with a limit that fits, it says nothing."""
    def start_under(limit, max_client_conn):
        mux = pgmux({"max_client_conn": max_client_conn}, start=False)
        mux.write_config()
        proc = subprocess.Popen([PGMUX_BIN, mux.config_path], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                                      (limit, limit)))
        try:
            wait_port(mux.port)
        finally:
            proc.terminate()
        return proc.communicate(timeout=10)[1]

    err = start_under(1024, 2000)
    assert "max_client_conn (2000)" in err and "limit of 1024" in err, err
    assert "ulimit -n" in err
    assert "file descriptors" not in start_under(1024, 500)
