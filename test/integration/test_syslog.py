"""syslog = 1: log lines reach the local syslog socket with syslog_ident and syslog_facility.

glibc's syslog(3) writes datagrams to /dev/log. The test plays the syslog daemon: it binds a
datagram socket and links /dev/log to it when the machine has none, else mounts it over the real
one in a mount namespace of pgmux's own (unshare -m), so a running syslog daemon sees nothing.
"""
import os
import socket
import subprocess

import pytest

import pgcluster
from conftest import PGMUX_BIN, wait_for

DEV_LOG = "/dev/log"
LOCAL3 = 19          # RFC 5424 facility numbers
SEVERITY_INFO = 6


class SyslogDaemon:
    """A datagram socket in tmpdir that receives what pgmux sends to /dev/log."""

    def __init__(self, tmpdir):
        self.path = os.path.join(str(tmpdir), "log.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []

    def drain(self):
        while True:
            try:
                self.messages.append(self.sock.recv(8192).decode(errors="replace"))
            except socket.timeout:
                return self.messages

    def close(self):
        self.sock.close()


@pytest.fixture
def syslogd(tmp_path, monkeypatch):
    """A SyslogDaemon that pgmux processes started in this test write to."""
    daemon = SyslogDaemon(tmp_path)
    linked = False
    if not os.path.exists(DEV_LOG):
        os.symlink(daemon.path, DEV_LOG)
        linked = True
    else:
        # the machine's own syslog socket stays untouched: pgmux sees ours in its namespace
        wrapper = tmp_path / "pgmux-private-devlog"
        wrapper.write_text("#!/bin/sh\n"
                           f"exec unshare -m sh -c 'mount --bind {daemon.path} {DEV_LOG} && "
                           f"exec {PGMUX_BIN} \"$@\"' pgmux \"$@\"\n")
        wrapper.chmod(0o755)
        monkeypatch.setattr(pgcluster, "PGMUX_BIN", str(wrapper))
    yield daemon
    if linked:
        os.unlink(DEV_LOG)
    daemon.close()


def test_lines_go_to_syslog_with_ident_and_facility(pgmux, syslogd):
    mux = pgmux(settings={"syslog": 1, "syslog_ident": "pgmux-test",
                          "syslog_facility": "local3", "log_connections": 1})
    with mux.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    def login_logged():
        return [m for m in syslogd.drain() if "login" in m and "app" in m]

    lines = wait_for(login_logged, timeout=10, what="a login line on the syslog socket")
    line = lines[0]
    # "<PRI>Mmm dd hh:mm:ss pgmux-test[pid]: LOG ..." with PRI = facility * 8 + severity
    assert line.startswith(f"<{LOCAL3 * 8 + SEVERITY_INFO}>"), line
    assert f"pgmux-test[{mux.proc.pid}]: LOG " in line, line
    # the log file still gets every line too
    assert "login" in mux.log()


def test_unknown_facility_is_refused(pgmux, tmp_path):
    mux = pgmux(settings={"syslog": 1, "syslog_facility": "kern"}, start=False)
    mux.write_config()
    out = subprocess.run([PGMUX_BIN, "--check", mux.config_path], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode != 0
    assert "syslog_facility" in out.stderr + out.stdout
