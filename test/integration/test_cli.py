"""The command line: --version, --help, bad arguments and configs, -d with a pidfile."""
import os
import signal
import subprocess
import time

from conftest import PGMUX_BIN, listening_pids


def run(*args, timeout=10):
    return subprocess.run([PGMUX_BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0
    assert "pgmux" in (r.stdout + r.stderr).lower()
    r = run("--help")
    assert r.returncode == 0
    assert "usage" in (r.stdout + r.stderr).lower()
    r = run("--no-such-option")
    assert r.returncode != 0


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
