"""The rest of PgBouncer's console and signals: the log file reopened for logrotate (SIGUSR2,
SIGHUP), KILL_CLIENT, SHUTDOWN WAIT_FOR_CLIENTS / WAIT_FOR_SERVERS, SHOW STATE, SHOW DNS_HOSTS,
SHOW DNS_ZONES, SHOW SOCKETS and SHOW ACTIVE_SOCKETS."""
import os
import signal

import pytest

from conftest import wait_for


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def logins(text, database):
    """The "login ok" lines of clients of database in a log text."""
    return [line for line in text.splitlines()
            if "login ok" in line and f" {database}/postgres@" in line]


@pytest.mark.parametrize("sig", [signal.SIGUSR2, signal.SIGHUP])
def test_log_reopened_after_rename(pgmux, sig):
    mux = pgmux()
    mux.connect("app").execute("select 1")
    wait_for(lambda: logins(read(mux.log_path), "app"), what="the first login in the log")

    rotated = mux.log_path + ".1"
    os.rename(mux.log_path, rotated)
    mux.signal(sig)
    wait_for(lambda: "log file" in read(mux.log_path) and "reopened" in read(mux.log_path),
             what="the reopened log file")
    mux.connect("other").execute("select 1")
    wait_for(lambda: logins(read(mux.log_path), "other"), what="the second login in the new log")

    old, new = read(rotated), read(mux.log_path)
    assert logins(old, "app") and not logins(old, "other"), old
    assert not logins(new, "app"), new
    assert mux.alive()
