"""Bad input from clients: each bad connection gets an ErrorResponse or is closed, promptly,
while a client connected before keeps working and pgmux stays up."""
import random
import socket
import struct

import pytest

import rawpg
from conftest import Background, assert_error

P3 = rawpg.PROTOCOL_3


def _startup_body(body, version=P3):
    return struct.pack("!ii", len(body) + 8, version) + body


BAD_STARTUPS = {
    # parameters that never end: no value, no terminators
    "unterminated_params": _startup_body(b"user\0postgres\0database"),
    # a name without a value, then the end
    "missing_value": _startup_body(b"user\0postgres\0database\0\0"),
    # a length no startup packet has: pgmux must not wait for 2 GB
    "oversized_length": struct.pack("!ii", 0x7FFFFFFF, P3),
    "zero_length": struct.pack("!ii", 0, P3),
    "negative_length": struct.pack("!ii", -8, P3),
    "length_below_header": struct.pack("!ii", 4, P3),
    "protocol_2": rawpg.startup_packet({"user": "postgres", "database": "app"},
                                       version=rawpg.PROTOCOL_2),
    "protocol_4": rawpg.startup_packet({"user": "postgres", "database": "app"},
                                       version=4 << 16),
    "no_user": rawpg.startup_packet({"database": "app"}),
    "random_bytes": bytes(random.Random(20240229).getrandbits(8) for _ in range(4096)),
    "http_request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
}


@pytest.fixture
def survivor_mux(pgmux):
    mux = pgmux({"pool_mode": "transaction", "client_login_timeout": 5,
                 "max_packet_size": 1 << 20})
    survivor = mux.connect()
    assert survivor.execute("select 1").fetchone()[0] == 1
    return mux, survivor


def check_alive(mux, survivor):
    assert mux.alive(), "pgmux died"
    assert survivor.execute("select 'still here'").fetchone()[0] == "still here"
    fresh = mux.raw().login("postgres", "app")
    assert fresh.scalar("select 2") == "2"
    fresh.terminate()


def assert_rejected(result, conn):
    """An ErrorResponse followed by a close, or a close."""
    if isinstance(result, rawpg.PgError):
        assert result.fields.get("S") in ("FATAL", "ERROR"), result.fields
        assert result.sqlstate and len(result.sqlstate) == 5, result.fields
        assert conn.is_closed(2), "the connection stayed open after the error"
    else:
        assert isinstance(result, rawpg.Closed), repr(result)


@pytest.mark.parametrize("case", sorted(BAD_STARTUPS))
def test_bad_startup(survivor_mux, case):
    mux, survivor = survivor_mux
    c = mux.raw(timeout=3)
    c.send(BAD_STARTUPS[case])
    if case == "random_bytes":
        # random bytes may announce a length that is still to come: say there is no more
        c.sock.shutdown(socket.SHUT_WR)
    assert_rejected(c.error_or_close(3), c)
    check_alive(mux, survivor)


def test_truncated_startup_then_close(survivor_mux):
    mux, survivor = survivor_mux
    c = mux.raw(timeout=3)
    c.send(struct.pack("!ii", 100, P3) + b"user\0post")
    c.sock.shutdown(socket.SHUT_WR)
    assert_rejected(c.error_or_close(3), c)
    check_alive(mux, survivor)
    # and the same, with a hard close from our side
    c = mux.raw(timeout=3)
    c.send(struct.pack("!ii", 100, P3) + b"user\0post")
    c.close()
    check_alive(mux, survivor)


def test_bad_packets_after_login(survivor_mux):
    mux, survivor = survivor_mux
    bad = {
        "oversized_query": b"Q" + struct.pack("!i", 0x7FFFFFFF) + b"select 1",
        "negative_length": b"Q" + struct.pack("!i", -1),
        "short_length": b"Q" + struct.pack("!i", 2),
        "unknown_type": rawpg.message(b"\x01", b"junk"),
    }
    for name, data in bad.items():
        c = mux.raw(timeout=3).login("postgres", "app")
        c.send(data)
        result = c.error_or_close(3)
        if name.endswith("_length") or name.startswith("oversized"):
            # a broken frame: the client is told why before the close
            assert isinstance(result, rawpg.PgError) and result.sqlstate == "08P01", repr(result)
        if isinstance(result, rawpg.PgError) and result.fields.get("S") == "ERROR":
            # an error the session survives is fine too, if the session really goes on
            c.read_msg(2)   # ReadyForQuery
        else:
            assert_rejected(result, c)
        check_alive(mux, survivor)


def test_unknown_database(survivor_mux, direct):
    mux, survivor = survivor_mux
    c = mux.raw()
    with pytest.raises(rawpg.PgError) as ei:
        c.login("postgres", "no_such_db")
    assert_error(ei.value, "unknown_database")
    check_alive(mux, survivor)


def test_ssl_and_gssenc_requests_are_declined(survivor_mux):
    mux, survivor = survivor_mux
    for code in (rawpg.SSL_REQUEST, rawpg.GSSENC_REQUEST):
        c = mux.raw()
        c.send(struct.pack("!ii", 8, code))
        assert c.read_byte() == b"N"
        # the connection goes on with a plain startup
        c.login("postgres", "app")
        assert c.scalar("select 5") == "5"
    check_alive(mux, survivor)


def test_many_bad_clients_at_once(survivor_mux):
    mux, survivor = survivor_mux
    rng = random.Random(7)
    payloads = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
                for _ in range(40)]

    def hit(data):
        c = rawpg.RawPg("127.0.0.1", mux.port, timeout=3)
        try:
            c.send(data)
            c.sock.shutdown(socket.SHUT_WR)
            return c.error_or_close(3)
        finally:
            c.close()
    jobs = [Background(hit, p) for p in payloads]
    for j in jobs:
        r = j.result(10)
        assert isinstance(r, (rawpg.PgError, rawpg.Closed)), repr(r)
    check_alive(mux, survivor)


# ---- malformed extended-protocol messages after login ----------------------------------------
# pgmux reads Parse, Bind, Describe and Close itself (prepared statements in transaction mode):
# a malformed one must get what PostgreSQL answers (ERROR 08P01, then the skip to Sync), never be
# misread or read past. In session mode they pass to the server, which answers them.

def _answers(conn, until_ready=True, timeout=3):
    """Messages up to ReadyForQuery (or a close): [(type, payload)], plus 'closed'."""
    got = []
    while True:
        try:
            mtype, payload = conn.read_msg(timeout)
        except rawpg.Closed:
            got.append((b"closed", b""))
            return got
        got.append((mtype, payload))
        if mtype == b"Z" and until_ready:
            return got


def _first_error(answers):
    for mtype, payload in answers:
        if mtype == b"E":
            f = rawpg.parse_fields(payload)
            return f.get("S"), f.get("C")
    return None


SYNC = rawpg.message(b"S")

BAD_EXTENDED = {
    "bind_portal_without_nul": rawpg.message(b"B", b"portal"),
    "bind_statement_without_nul": rawpg.message(b"B", b"\0stmt"),
    "bind_empty": rawpg.message(b"B", b""),
    # PostgreSQL looks the statement up before it reads the values: one that exists
    "bind_value_past_end": rawpg.message(b"P", b"\0select $1::text\0\0\0") +
        rawpg.message(b"B", b"\0\0" + struct.pack("!hhi", 0, 1, 1000) + b"ab"),
    "parse_param_count_beyond_body":
        rawpg.message(b"P", b"\0select 1\0" + struct.pack("!hI", 5, 23)),
    "named_parse_param_count_beyond_body":
        rawpg.message(b"P", b"fe_s1\0select 1\0" + struct.pack("!hI", 5, 23)),
    "describe_bad_kind": rawpg.message(b"D", b"Xfoo\0"),
    "describe_bad_kind_unnamed": rawpg.message(b"D", b"X\0"),
    "close_bad_kind": rawpg.message(b"C", b"Xfoo\0"),
}


@pytest.fixture(params=["transaction", "session"])
def extended_mux(request, pgmux):
    mux = pgmux({"pool_mode": request.param, "max_packet_size": 1 << 20})
    survivor = mux.connect()
    assert survivor.execute("select 1").fetchone()[0] == 1
    return mux, survivor


def _direct_raw(pg):
    return rawpg.RawPg("127.0.0.1", pg.port, timeout=3).login("postgres", "app")


@pytest.mark.parametrize("case", sorted(BAD_EXTENDED))
def test_malformed_extended_message_answered_as_postgresql(extended_mux, pg, case):
    mux, survivor = extended_mux
    data = BAD_EXTENDED[case] + SYNC

    d = _direct_raw(pg)
    d.send(data)
    expected = _answers(d)
    d.terminate()
    assert _first_error(expected) == ("ERROR", "08P01"), expected

    c = mux.raw(timeout=3).login("postgres", "app")
    c.send(data)
    got = _answers(c)
    assert _first_error(got) == ("ERROR", "08P01"), got
    assert got[-1][0] == b"Z", got
    # the session goes on, and so do the others
    assert c.scalar("select 'after'") == "after"
    c.terminate()
    check_alive(mux, survivor)


def test_malformed_describe_of_pgmux_deallocate(extended_mux, pg):
    """A Describe of an unknown kind after an unnamed Parse/Bind of DEALLOCATE (which pgmux
    answers itself) is an error, not the NoData of a portal."""
    mux, survivor = extended_mux

    def run(conn):
        conn.send(rawpg.message(b"P", b"fe_d1\0select 1\0\0\0") + SYNC)
        assert _answers(conn)[-1][0] == b"Z"
        conn.send(rawpg.message(b"P", b"\0DEALLOCATE fe_d1\0\0\0") +
                  rawpg.message(b"B", b"\0\0\0\0\0\0\0\0") +
                  rawpg.message(b"D", b"X\0") + SYNC)
        return _answers(conn)

    d = _direct_raw(pg)
    expected = run(d)
    d.terminate()
    c = mux.raw(timeout=3).login("postgres", "app")
    got = run(c)
    assert [m for m, _ in got] == [m for m, _ in expected], (got, expected)
    assert _first_error(got) == ("ERROR", "08P01"), got
    assert c.scalar("select 'after'") == "after"
    c.terminate()
    check_alive(mux, survivor)


def test_control_characters_in_names_are_escaped_in_the_log(pgmux):
    """A user or database name is the client's text: a newline in it must not start a forged
    log line, nor an escape sequence reach the terminal that shows the log."""
    mux = pgmux()
    r = mux.raw()
    r.send(rawpg.startup_packet({"user": "mallory\n2026-01-01 00:00:00.000 [1] LOG forged",
                                 "database": "app\x1b[2J"}))
    try:
        while r.read_msg(5)[0] != b"E":
            pass
    except (OSError, EOFError):
        pass
    log = mux.log()
    assert "mallory\\x0a2026" in log, log[-2000:]
    assert "app\\x1b[2J" in log
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())
    assert "\x1b" not in log


def test_unsupported_protocol_answered_as_postgresql_does(pgmux, pg):
    # (PostgreSQL answers protocol 2 in protocol 2's error format, which pgmux does not speak.)
    mux = pgmux()
    answers = []
    for port in (pg.port, mux.port):
        with rawpg.RawPg("127.0.0.1", port, timeout=3) as c:
            c.send(BAD_STARTUPS["protocol_4"])
            answers.append(c.error_or_close(3))
    theirs, ours = answers
    assert isinstance(ours, rawpg.PgError), repr(ours)
    assert (ours.sqlstate, ours.message) == (theirs.sqlstate, theirs.message)
