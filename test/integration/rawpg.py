"""A socket-level PostgreSQL protocol client for tests that need exact bytes.

libpq never sends a malformed packet, so the tests that feed pgmux bad input, read an
ErrorResponse's SQLSTATE during login, or watch when a connection is closed speak the wire
protocol themselves through this module. It knows just enough of protocol 3.0: building startup,
SSL and cancel requests, framing messages, a trust/cleartext/md5 login, simple queries, and
draining a large result without keeping it.
"""
import hashlib
import socket
import struct
import time

PROTOCOL_3 = 196608          # 3.0
PROTOCOL_2 = 131072          # 2.0, no longer spoken by anyone
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


class Closed(Exception):
    """The peer closed the connection (EOF or reset) before a whole message arrived."""


class PgError(Exception):
    """An ErrorResponse; .fields maps field codes to values (C = SQLSTATE, M = message)."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__(f"{fields.get('S', '?')} {fields.get('C', '?')}: {fields.get('M', '')}")

    @property
    def sqlstate(self):
        return self.fields.get("C")

    @property
    def message(self):
        return self.fields.get("M", "")


class Ready:
    """A ReadyForQuery where an error or a close was expected: the input was accepted."""

    def __init__(self, status):
        self.status = status

    def __repr__(self):
        return f"ReadyForQuery({self.status!r}): accepted instead of rejected"


def startup_packet(params, version=PROTOCOL_3):
    """A StartupMessage: int32 length, int32 version, name\\0value\\0 pairs, final \\0."""
    body = struct.pack("!i", version)
    for k, v in params.items():
        body += k.encode() + b"\0" + str(v).encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def message(mtype, payload=b""):
    """A regular message: type byte, int32 length (itself included), payload."""
    return mtype + struct.pack("!i", len(payload) + 4) + payload


def parse_fields(payload):
    """ErrorResponse / NoticeResponse payload -> {code: value}."""
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


def parse_row_description(payload):
    """RowDescription payload -> list of column names."""
    (n,) = struct.unpack_from("!h", payload, 0)
    pos, names = 2, []
    for _ in range(n):
        end = payload.index(b"\0", pos)
        names.append(payload[pos:end].decode())
        pos = end + 1 + 18
    return names


def parse_row(payload):
    """DataRow payload -> list of str or None."""
    (n,) = struct.unpack_from("!h", payload, 0)
    pos, row = 2, []
    for _ in range(n):
        (ln,) = struct.unpack_from("!i", payload, pos)
        pos += 4
        if ln < 0:
            row.append(None)
        else:
            row.append(payload[pos:pos + ln].decode())
            pos += ln
    return row


class RawPg:
    """One TCP connection. Every read has a deadline; nothing here retries."""

    def __init__(self, host="127.0.0.1", port=5432, timeout=5.0, rcvbuf=None, source=None):
        """source: the local address to connect from (another loopback address, say).
        A host starting with / is a unix socket directory, as in libpq."""
        self.timeout = timeout
        unix = host.startswith("/")
        self.sock = socket.socket(socket.AF_UNIX if unix else socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(f"{host}/.s.PGSQL.{port}" if unix else (host, port))
        self.buf = bytearray()
        self.params = {}          # ParameterStatus values seen so far
        self.backend_key = None   # (pid, secret) from BackendKeyData
        self.txn_status = None    # last ReadyForQuery status: b'I', b'T' or b'E'

    # -- bytes --------------------------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def send_msg(self, mtype, payload=b""):
        self.send(message(mtype, payload))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self, need, deadline):
        while len(self.buf) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete message within {self.timeout}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(max(65536, need - len(self.buf)))
            except ConnectionResetError as e:
                raise Closed(str(e)) from e
            except socket.timeout as e:
                raise TimeoutError(f"no complete message within {self.timeout}s") from e
            if not chunk:
                raise Closed("EOF")
            self.buf += chunk

    def read_byte(self, timeout=None):
        """One byte (the answer to SSLRequest / GSSENCRequest)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self._fill(1, deadline)
        b = bytes(self.buf[:1])
        del self.buf[:1]
        return b

    def read_msg(self, timeout=None):
        """Next message as (type byte, payload bytes). Raises Closed on EOF, TimeoutError."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self._fill(5, deadline)
        mtype = bytes(self.buf[:1])
        (ln,) = struct.unpack_from("!i", self.buf, 1)
        if ln < 4:
            raise ValueError(f"bad message length {ln} for type {mtype!r}")
        self._fill(1 + ln, deadline)
        payload = bytes(self.buf[5:1 + ln])
        del self.buf[:1 + ln]
        self._note(mtype, payload)
        return mtype, payload

    def _note(self, mtype, payload):
        if mtype == b"S":
            k, v = payload.split(b"\0")[:2]
            self.params[k.decode()] = v.decode()
        elif mtype == b"K":
            self.backend_key = struct.unpack("!ii", payload)
        elif mtype == b"Z":
            self.txn_status = payload

    def error_or_close(self, timeout=None):
        """Read until an ErrorResponse, EOF or ReadyForQuery. Returns PgError, Closed or Ready
        (not raised); raises TimeoutError when none arrives in time."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                mtype, payload = self.read_msg(max(0.01, deadline - time.monotonic()))
            except Closed as e:
                return e
            if mtype == b"E":
                return PgError(parse_fields(payload))
            if mtype == b"Z":
                return Ready(payload)

    def is_closed(self, timeout=2.0):
        """True if the peer closes the connection within timeout (data before EOF is dropped)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.read_msg(max(0.01, deadline - time.monotonic()))
        except Closed:
            return True
        except TimeoutError:
            return False

    # -- protocol -----------------------------------------------------------------------
    def startup(self, user, database, **params):
        self.send(startup_packet({"user": user, "database": database, **params}))

    def login(self, user, database, password=None, **params):
        """Startup and authentication up to the first ReadyForQuery. Raises PgError."""
        self.startup(user, database, **params)
        while True:
            mtype, payload = self.read_msg()
            if mtype == b"R":
                (code,) = struct.unpack_from("!i", payload)
                if code == 0:
                    continue
                if code == 3:
                    self.send_msg(b"p", (password or "").encode() + b"\0")
                elif code == 5:
                    salt = payload[4:8]
                    inner = hashlib.md5((password or "").encode() + user.encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send_msg(b"p", b"md5" + outer.encode() + b"\0")
                else:
                    raise NotImplementedError(f"authentication request {code}")
            elif mtype == b"E":
                raise PgError(parse_fields(payload))
            elif mtype == b"Z":
                return self

    def query(self, sql, timeout=None):
        """Simple query. Returns (rows, command tags); raises PgError after ReadyForQuery."""
        self.send_msg(b"Q", sql.encode() + b"\0")
        rows, tags, err = [], [], None
        while True:
            mtype, payload = self.read_msg(timeout)
            if mtype == b"D":
                rows.append(parse_row(payload))
            elif mtype == b"C":
                tags.append(payload.rstrip(b"\0").decode())
            elif mtype == b"E":
                err = PgError(parse_fields(payload))
            elif mtype == b"Z":
                if err:
                    raise err
                return rows, tags

    def scalar(self, sql, timeout=None):
        rows, _ = self.query(sql, timeout)
        return rows[0][0]

    def drain_query(self, sql, timeout=60.0, pause_after_send=0.0):
        """Run sql and count its DataRows and their bytes without keeping them.

        pause_after_send: seconds to read nothing after sending, so the result piles up on the
        way (a client that reads slowly). Returns (rows, payload bytes, command tag).
        """
        self.send_msg(b"Q", sql.encode() + b"\0")
        if pause_after_send:
            time.sleep(pause_after_send)
        deadline = time.monotonic() + timeout
        rows = nbytes = 0
        tag, err = None, None
        buf = self.buf
        pos = 0
        while True:
            # parse every whole message in buf without copying payloads
            while len(buf) - pos >= 5:
                (ln,) = struct.unpack_from("!i", buf, pos + 1)
                if len(buf) - pos < 1 + ln:
                    break
                mtype = buf[pos]
                if mtype == 0x44:     # 'D'
                    rows += 1
                    nbytes += ln - 4
                elif mtype == 0x43:   # 'C'
                    tag = bytes(buf[pos + 5:pos + 1 + ln]).rstrip(b"\0").decode()
                elif mtype == 0x45:   # 'E'
                    err = PgError(parse_fields(bytes(buf[pos + 5:pos + 1 + ln])))
                elif mtype == 0x5A:   # 'Z'
                    self.txn_status = bytes(buf[pos + 5:pos + 6])
                    del buf[:pos + 1 + ln]
                    if err:
                        raise err
                    return rows, nbytes, tag
                pos += 1 + ln
            if pos:
                del buf[:pos]
                pos = 0
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"result not complete after {timeout}s ({rows} rows)")
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise Closed(f"EOF after {rows} rows")
            buf += chunk

    def terminate(self):
        try:
            self.send_msg(b"X")
        except OSError:
            pass
        self.close()


def cancel_request(host, port, pid, secret, timeout=5.0):
    """Send a CancelRequest on a new connection and wait for the peer to close it."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack("!iiii", 16, CANCEL_REQUEST, pid, secret))
        try:
            while s.recv(1024):
                pass
        except OSError:
            pass
