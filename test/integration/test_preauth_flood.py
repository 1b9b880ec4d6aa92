"""Hostile clients before authentication: a login-phase message claiming 2 GiB, a flood of
SSLRequest/GSSENCRequest, a CSPRNG that fails. pgmux must keep its memory, stay responsive (the admin
console answers during each attack) and never spin."""
import os
import subprocess
import struct
import time

import pytest

import rawpg
from conftest import Background, wait_for
from pgcluster import SANITIZED

MiB = 1024 * 1024
# pgmux's peak resident memory during an attack. A sanitizer build starts far larger (shadow
# memory) and keeps freed memory in its quarantine, so there the bar is on growth, as in
# test_large.py; either way an attack that got its 64 MiB buffered would cross it.
RSS_PEAK_LIMIT_KB = 40 * 1024
ASAN_GROWTH_LIMIT_KB = 48 * 1024


def md5_mux(pgmux, **settings):
    """pgmux asking md5 of everyone on app, and trusting the admin console (for timing it)."""
    mux = pgmux({"auth_type": "hba", **settings}, start=False)
    path = os.path.join(mux.basedir, "hba.conf")
    with open(path, "w") as f:
        f.write("host pgmux all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 md5\n")
    mux.settings["auth_hba_file"] = path
    return mux.start()


def assert_memory_held(mux, before_kb, what):
    peak = mux.status("VmHWM")
    print(f"{what}: pgmux VmHWM {peak} kB (VmRSS before {before_kb} kB)")
    if SANITIZED:
        assert peak - before_kb < ASAN_GROWTH_LIMIT_KB, f"{what}: grew by {peak - before_kb} kB"
    else:
        assert peak < RSS_PEAK_LIMIT_KB, f"{what}: peak {peak} kB"


def assert_refused(mux, c, user, error, answers=b""):
    """pgmux closed c with error (from its log: the client may not get to read it, since
    closing a socket with unread input resets it, and a reset may discard what was on its way).
    What c does read must be answers, then that error."""
    wait_for(lambda: f"/{user}@" in mux.log() and f"error: {error}" in mux.log(),
             what=f"pgmux to log {error}")
    try:
        for b in answers:
            assert c.read_byte(2) == bytes([b])
        result = c.error_or_close(2)
    except rawpg.Closed:
        return
    assert isinstance(result, (rawpg.PgError, rawpg.Closed)), result
    if isinstance(result, rawpg.PgError):
        assert f"{result.sqlstate} {result.message}".startswith(error), result


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_admin(mux, command="SHOW VERSION"):
    """Log in to the admin console afresh and run command; returns (rows, seconds)."""
    mux.close_admin()
    t0 = time.monotonic()
    rows = mux.admin(command, timeout=10)
    return rows, time.monotonic() - t0


def stream(sock, chunk, total):
    """Send total bytes of chunk repeated, until the peer stops taking them; returns the count."""
    sent = 0
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    return sent


@pytest.mark.timeout(120)
def test_huge_login_message_refused_before_buffering(pgmux):
    mux = md5_mux(pgmux)
    before = mux.status("VmRSS")
    c = mux.raw(timeout=10)
    c.startup("nobody_unknown", "app")
    mtype, payload = c.read_msg()
    assert mtype == b"R" and struct.unpack_from("!i", payload)[0] == 5   # md5 for anyone
    c.send(b"p" + struct.pack("!i", 0x7FFFFFFE))
    attack = Background(stream, c.sock, b"A" * MiB, 64 * MiB)
    _, seconds = timed_admin(mux)
    print(f"admin console answered in {seconds * 1000:.1f} ms during the attack")
    sent = attack.result(60)
    print(f"the client got {sent // MiB} MiB out before pgmux closed it")
    assert sent < 64 * MiB
    assert_refused(mux, c, "nobody_unknown", "08P01 invalid message length")
    assert_memory_held(mux, before, "2 GiB password message")
    assert seconds < 1.0


@pytest.mark.timeout(60)
def test_message_during_auth_query_refused_on_its_header(pgmux, direct):
    # auth_query that takes seconds: the client owes nothing meanwhile
    mux = md5_mux(pgmux, auth_user="postgres",
                  auth_query="select usename, passwd from pg_shadow, pg_sleep(3) "
                             "where usename = $1")
    c = mux.raw(timeout=10)
    c.startup("nobody_unknown", "app")
    t0 = time.monotonic()
    # only the header of a 60 kB message: refused on it, not waited for
    c.send(b"p" + struct.pack("!i", 60000))
    result = c.error_or_close(10)
    elapsed = time.monotonic() - t0
    print(f"refused after {elapsed * 1000:.1f} ms")
    assert isinstance(result, rawpg.PgError) and result.sqlstate == "08P01", result
    assert "unexpected message during authentication" in result.message
    assert elapsed < 2.0


def second_request_error(port, first, second):
    c = rawpg.RawPg("127.0.0.1", port, timeout=5)
    try:
        c.send(struct.pack("!ii", 8, first))
        assert c.read_byte() == b"N"
        c.send(struct.pack("!ii", 8, second))
        return c.error_or_close(5)
    finally:
        c.close()


def test_second_gssenc_request_refused_as_postgresql_does(pgmux, pg):
    mux = pgmux()
    for code in (rawpg.GSSENC_REQUEST, rawpg.SSL_REQUEST):
        ours = second_request_error(mux.port, code, code)
        if code == rawpg.SSL_REQUEST:       # the test server has no TLS (and speaks GSS)
            theirs = second_request_error(pg.port, code, code)
            assert isinstance(theirs, rawpg.PgError), theirs
            assert (ours.sqlstate, ours.message) == (theirs.sqlstate, theirs.message)
        assert isinstance(ours, rawpg.PgError) and ours.sqlstate == "0A000", ours
        assert "unsupported frontend protocol 1234." in ours.message


@pytest.mark.timeout(120)
def test_gssenc_and_ssl_request_flood(pgmux):
    mux = pgmux()
    before = mux.status("VmRSS")
    c = mux.raw(timeout=10)
    pair = struct.pack("!ii", 8, rawpg.GSSENC_REQUEST) + struct.pack("!ii", 8, rawpg.SSL_REQUEST)
    t0 = cpu_seconds(mux.pid)
    # 64 MiB of requests, answers not read while sending
    attack = Background(stream, c.sock, pair * (MiB // len(pair)), 64 * MiB)
    _, seconds = timed_admin(mux)
    print(f"admin console answered in {seconds * 1000:.1f} ms during the attack")
    sent = attack.result(60)
    cpu = cpu_seconds(mux.pid) - t0
    print(f"sent {sent / MiB:.1f} MiB of requests; pgmux used {cpu:.2f} s of CPU")
    assert sent < 64 * MiB
    # refused at the second GSSENCRequest, after one 'N' for each kind
    assert_refused(mux, c, "(nouser)", "0A000 unsupported frontend protocol 1234.5680",
                   answers=b"NN")
    assert_memory_held(mux, before, "request flood")
    assert seconds < 1.0


RAND_FAILS = """
#include <stdlib.h>

/*
 * RAND_bytes failing for requests of RAND_FAIL_SIZE bytes, for pgmux's own calls (OpenSSL's
 * inner ones do not go through it).
 */
extern int RAND_bytes(unsigned char *buf, int num);

int RAND_bytes(unsigned char *buf, int num)
{
	for (int i = 0; i < num; i++)
		buf[i] = (unsigned char)random();
	return num != atoi(getenv("RAND_FAIL_SIZE"));
}
"""


@pytest.mark.parametrize("size,what", [(8, "cancel key"), (32, "salt key")])
def test_login_refused_when_the_csprng_fails(pgmux, tmp_path, monkeypatch, size, what):
    src, lib = tmp_path / "rand_fails.c", tmp_path / "rand_fails.so"
    src.write_text(RAND_FAILS)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    monkeypatch.setenv("LD_PRELOAD", str(lib))
    monkeypatch.setenv("RAND_FAIL_SIZE", str(size))
    if SANITIZED:
        # ASan wants its runtime first in the list; the shim only replaces one function
        monkeypatch.setenv("ASAN_OPTIONS", ":".join(
            filter(None, [os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0"])))
    mux = pgmux()
    for db in ("app", mux.admin_db):
        with pytest.raises(rawpg.PgError) as ei:
            mux.raw().login("postgres", db)
        assert ei.value.sqlstate == "XX000"
        assert ei.value.message == f"could not generate random {what}"
    assert "the random number generator failed: login refused" in mux.log()
