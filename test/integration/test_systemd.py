"""systemd integration without a running systemd.

Readiness: the test binds the datagram socket that $NOTIFY_SOCKET names, as systemd does for a
Type=notify service, and checks what pgmux sends and when: READY=1 once the port accepts,
RELOADING=1 with MONOTONIC_USEC and then READY=1 with the result in STATUS= around a SIGHUP
reload (good and rejected config), STOPPING=1 on SIGTERM. `pgmux --check` is what ExecReload
runs first, so a rejected config fails `systemctl reload`.

Socket activation: listening sockets passed at descriptor 3 onwards with LISTEN_FDS and
LISTEN_PID, the way systemd does, by a fork and exec of our own and by Debian's
systemd-socket-activate when it is installed; pgmux must use them and bind nothing itself.
"""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import PGMUX_BIN, PG_BIN, wait_for


class Notify:
    """The service manager's end of the notify protocol: a datagram socket in tmpdir."""

    def __init__(self, tmpdir):
        self.path = os.path.join(str(tmpdir), "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def next(self, timeout=10.0):
        """The next message as a dict of its VAR=value lines."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        self.messages.append(data)
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def none_pending(self, wait=0.3):
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return True
        self.messages.append(data.decode())
        return False

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path, monkeypatch):
    n = Notify(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", n.path)
    yield n
    n.close()


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_ready_reload_stopping(pgmux, notify):
    mux = pgmux(start=False)
    mux.write_config()
    mux.proc = subprocess.Popen([PGMUX_BIN, mux.config_path], stdout=subprocess.DEVNULL,
                                stderr=open(mux.stderr_path, "ab"))
    ready = notify.next()
    # READY=1 is sent once listening: the port must accept at the moment it arrives
    assert accepts(mux.port), "READY=1 came before the port accepted"
    assert ready["READY"] == "1"
    assert ready["MAINPID"] == str(mux.proc.pid)
    assert "STATUS" in ready
    assert mux.psql("-c", "select 21 * 2").stdout.strip() == "42"
    assert notify.none_pending()

    # a good reload: RELOADING=1 with the monotonic clock now, then READY=1 and the result
    mux.settings["default_pool_size"] = "7"
    before = time.monotonic()
    mux.reload()
    reloading = notify.next()
    after = time.monotonic()
    assert reloading["RELOADING"] == "1"
    usec = int(reloading["MONOTONIC_USEC"])
    assert before * 1e6 - 1e5 <= usec <= after * 1e6 + 1e5
    done = notify.next()
    assert done["READY"] == "1"
    assert done["STATUS"] == "config reloaded"
    assert {r["key"]: r["value"] for r in mux.admin("SHOW CONFIG")}["default_pool_size"] == "7"

    # a rejected config: still RELOADING=1 then READY=1 (the old config stays in force), and
    # STATUS says the reload failed and why
    mux.settings["pool_mode"] = "sometimes"
    mux.reload()
    assert notify.next()["RELOADING"] == "1"
    failed = notify.next()
    assert failed["READY"] == "1"
    assert failed["STATUS"].startswith("reload failed: ")
    assert "pool_mode" in failed["STATUS"]
    assert mux.psql("-c", "select 1").stdout.strip() == "1"

    mux.close_clients()           # SIGTERM waits for clients: the console connection too
    mux.signal(signal.SIGTERM)
    assert notify.next()["STOPPING"] == "1"
    assert mux.wait_exit(10) == 0
    assert [m.split("\n")[0] for m in notify.messages] == [
        "READY=1", "RELOADING=1", "READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


def test_check_option(pgmux):
    """pgmux --check: what ExecReload runs before it signals pgmux."""
    mux = pgmux(start=False)
    mux.write_config()
    ok = subprocess.run([PGMUX_BIN, "--check", mux.config_path], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout

    mux.settings["pool_mode"] = "sometimes"
    mux.write_config()
    bad = subprocess.run([PGMUX_BIN, "-C", mux.config_path], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "pool_mode" in bad.stderr

    mux.settings["pool_mode"] = "session"
    mux.settings["auth_file"] = mux.config_path + ".missing"
    mux.write_config()
    bad = subprocess.run([PGMUX_BIN, "-C", mux.config_path], capture_output=True, text=True)
    assert bad.returncode == 1
    assert ".missing" in bad.stderr

    mux.settings["auth_file"] = mux.default_auth_file
    mux.settings["client_tls_sslmode"] = "require"
    mux.settings["client_tls_key_file"] = "/nonexistent/key.pem"
    mux.settings["client_tls_cert_file"] = "/nonexistent/cert.pem"
    mux.write_config()
    bad = subprocess.run([PGMUX_BIN, "-C", mux.config_path], capture_output=True, text=True)
    assert bad.returncode == 1, bad.stdout
    assert "/nonexistent/" in bad.stderr


def listening_sockets(mux, tmp_path):
    """A TCP socket on mux.port and a unix socket .s.PGSQL.<port> in a directory of the test,
    both listening, as a socket unit would create them."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", mux.port))
    tcp.listen(64)
    sockdir = tmp_path / "run"
    sockdir.mkdir()
    unix_path = str(sockdir / f".s.PGSQL.{mux.port}")
    unx = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unx.bind(unix_path)
    unx.listen(64)
    return tcp, unx, str(sockdir), unix_path


def spawn_activated(argv, fds, names, stderr_path):
    """fork, put fds at 3, 4, ... and exec argv with LISTEN_FDS, LISTEN_PID (the child's own
    pid, known only after the fork) and LISTEN_FDNAMES, as systemd does."""
    err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # move the sockets out of the way of 3.. first, so that no dup2 overwrites another one
    high = [os.dup2(fd, 100 + i, inheritable=False) for i, fd in enumerate(fds)]
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(err, 2)
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i)      # dup2 clears close-on-exec on the copy
            env = dict(os.environ, LISTEN_FDS=str(len(fds)), LISTEN_PID=str(os.getpid()),
                       LISTEN_FDNAMES=":".join(names))
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(err)
    for fd in high:
        os.close(fd)
    return pid


def wait_pid(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    return None


def psql_unix(sockdir, port, sql):
    return subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-h", sockdir,
                           "-p", str(port), "-U", "postgres", "-d", "app", "-c", sql],
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, PGCONNECT_TIMEOUT="5"))


def test_socket_activation(pgmux, notify, tmp_path):
    # The config asks for the same TCP port and no unix socket: were pgmux to bind anything
    # itself, it would fail (port taken) or the unix socket would not answer.
    mux = pgmux(start=False, settings={"unix_socket_dir": ""})
    mux.write_config()
    tcp, unx, sockdir, unix_path = listening_sockets(mux, tmp_path)
    pid = spawn_activated([PGMUX_BIN, mux.config_path], [tcp.fileno(), unx.fileno()],
                          ["pgmux-tcp", "pgmux-unix"], mux.stderr_path)
    try:
        ready = notify.next()
        assert ready["READY"] == "1" and ready["MAINPID"] == str(pid)
        r = mux.psql("-c", "select 'tcp ' || 6 * 7")
        assert r.stdout.strip() == "tcp 42", r.stderr + mux.log()
        r = psql_unix(sockdir, mux.port, "select 'unix ' || 6 * 7")
        assert r.stdout.strip() == "unix 42", r.stderr + mux.log()
        log = mux.log()
        assert "listening on 2 sockets passed by the service manager" in log
        assert "pgmux-tcp:pgmux-unix" in log
        os.kill(pid, signal.SIGTERM)
        assert notify.next()["STOPPING"] == "1"
        assert wait_pid(pid, 10) == 0
        pid = None
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            wait_pid(pid, 5)
        tcp.close()
        unx.close()
    # the socket file belongs to whoever created it (the socket unit): pgmux leaves it
    assert os.path.exists(unix_path)


def test_passed_descriptor_not_a_listener(pgmux, tmp_path):
    mux = pgmux(start=False)
    mux.write_config()
    a, b = socket.socketpair()
    pid = spawn_activated([PGMUX_BIN, mux.config_path], [a.fileno()], ["bogus"], mux.stderr_path)
    try:
        assert wait_pid(pid, 10) not in (None, 0)
    finally:
        a.close()
        b.close()
    assert "not a listening stream socket" in mux.stderr() + mux.log()


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"),
                    reason="systemd-socket-activate (Debian's systemd package) not installed")
def test_systemd_socket_activate(pgmux):
    """Debian's own tool: it listens, and on the first connection starts pgmux with the socket."""
    mux = pgmux(start=False, settings={"unix_socket_dir": ""})
    mux.write_config()
    proc = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{mux.port}",
                             PGMUX_BIN, mux.config_path],
                            stdout=subprocess.DEVNULL, stderr=open(mux.stderr_path, "ab"))
    try:
        wait_for(lambda: accepts(mux.port), timeout=10, what="systemd-socket-activate listening")
        r = mux.psql("-c", "select 'activated'")
        assert r.stdout.strip() == "activated", r.stderr + mux.log() + mux.stderr()
        assert "passed by the service manager" in mux.log()
        proc.send_signal(signal.SIGTERM)   # it execs pgmux, so this is pgmux
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
