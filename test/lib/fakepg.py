"""A programmable fake PostgreSQL server, for tests of how pgmux treats a hostile or broken
server (or a man in the middle): it listens on a free loopback port (or a unix socket
directory) and runs one behaviour per connection in a thread.

    fake = FakePg(fakepg.cleartext).start()
    ...  # point pgmux at 127.0.0.1:fake.port
    assert not fake.passwords()          # what pgmux sent, message by message
    fake.stop()

A behaviour is a function of one FakeConn. The ones here: ask for a cleartext password or md5,
run SCRAM-SHA-256 with a given iteration count (completing it when it knows the password),
start a huge ErrorResponse and stream it, send ReadyForQuery (or any message) before
authentication, stay silent, or trust and then answer every query with one row (enough for
pgmux's health checks). SSLRequest and GSSENCRequest are answered 'N', and recorded.
"""
import base64
import hashlib
import hmac
import os
import socket
import struct
import threading
import time

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104

# The row every query gets from serve(): what a health check reads as a healthy primary
# (not in recovery, WAL position, no replay lag, timeline 1).
HEALTHY_ROW = ("f", "0/3000000", "0", "1")


class FakeConn:
    """One accepted connection: what pgmux sent, and helpers to answer it."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(30)
        self.startup = None          # the startup packet's parameters
        self.ssl_requested = False
        self.received = []           # (type, payload) of every message after the startup
        self.bytes_sent = 0
        self.closed = threading.Event()   # pgmux closed (or reset) the connection
        self._buf = b""

    # -- reading ---------------------------------------------------------------------------
    def _fill(self, n):
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed.set()
                return False
            self._buf += chunk
        return True

    def _take(self, n):
        if not self._fill(n):
            return None
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def read_startup(self):
        """The startup packet's parameters (answering SSL and GSSENC requests 'N'); None at EOF."""
        while True:
            head = self._take(8)
            if head is None:
                return None
            length, code = struct.unpack("!ii", head)
            body = self._take(length - 8)
            if body is None:
                return None
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                self.ssl_requested = self.ssl_requested or code == SSL_REQUEST
                self.send_raw(b"N")
                continue
            items = body.split(b"\0")
            self.startup = {items[i].decode(): items[i + 1].decode()
                            for i in range(0, len(items) - 1, 2) if items[i]}
            return self.startup

    def read_msg(self):
        """The next (type, payload) from pgmux, recorded; None when it closed."""
        head = self._take(5)
        if head is None:
            return None
        mtype, length = head[:1], struct.unpack("!i", head[1:])[0]
        payload = self._take(length - 4)
        if payload is None:
            return None
        self.received.append((mtype, payload))
        return mtype, payload

    def wait_closed(self):
        """Read (and record) until pgmux closes the connection."""
        while self.read_msg() is not None:
            pass

    # -- writing ---------------------------------------------------------------------------
    def send_raw(self, data):
        try:
            self.sock.sendall(data)
            self.bytes_sent += len(data)
            return True
        except OSError:
            self.closed.set()
            return False

    def send(self, mtype, payload=b""):
        return self.send_raw(mtype + struct.pack("!i", len(payload) + 4) + payload)

    def auth(self, code, data=b""):
        return self.send(b"R", struct.pack("!i", code) + data)

    def ready(self):
        """AuthenticationOk, a few parameters, BackendKeyData, ReadyForQuery."""
        self.auth(0)
        for name, value in (("server_version", "15.0"), ("server_encoding", "UTF8"),
                            ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
                            ("integer_datetimes", "on"), ("standard_conforming_strings", "on")):
            self.send(b"S", name.encode() + b"\0" + value.encode() + b"\0")
        self.send(b"K", struct.pack("!ii", 4242, 1234))
        self.send(b"Z", b"I")

    def _row_messages(self, row):
        desc = struct.pack("!h", len(row))
        for i in range(len(row)):
            desc += f"c{i}".encode() + b"\0" + struct.pack("!ihihih", 0, 0, 25, -1, -1, 0)
        data = struct.pack("!h", len(row))
        for v in row:
            data += struct.pack("!i", len(v)) + v.encode()
        return desc, data

    def serve(self, row=HEALTHY_ROW):
        """Answer every query (simple or extended) with one row until pgmux leaves."""
        desc, data = self._row_messages(row)
        while True:
            msg = self.read_msg()
            if msg is None or msg[0] == b"X":
                return
            mtype, _ = msg
            if mtype == b"Q":
                for m, p in ((b"T", desc), (b"D", data), (b"C", b"SELECT 1\0"), (b"Z", b"I")):
                    self.send(m, p)
            elif mtype == b"P":
                self.send(b"1")
            elif mtype == b"B":
                self.send(b"2")
            elif mtype == b"D":
                self.send(b"T", desc)
            elif mtype == b"E":
                self.send(b"D", data)
                self.send(b"C", b"SELECT 1\0")
            elif mtype == b"S":
                self.send(b"Z", b"I")

    def passwords(self):
        """Password messages pgmux sent ('p': cleartext, md5 or SASL responses)."""
        return [p for t, p in self.received if t == b"p"]


# -- behaviours ---------------------------------------------------------------------------------

def trust(conn):
    if conn.read_startup() is None:
        return
    conn.ready()
    conn.serve()


def cleartext(conn):
    """Ask for the password in clear; accept whatever comes."""
    if conn.read_startup() is None:
        return
    conn.auth(3)
    if conn.read_msg() is None:
        return
    conn.ready()
    conn.serve()


def md5(conn):
    """Ask for an md5 response; accept whatever comes."""
    if conn.read_startup() is None:
        return
    conn.auth(5, b"salt")
    if conn.read_msg() is None:
        return
    conn.ready()
    conn.serve()


def md5_then_cleartext(conn):
    """Ask for md5 and, in the same write before any answer, for the password in clear: a client
    that answers requests from its buffer would send the password unasked-for by the policy."""
    if conn.read_startup() is None:
        return
    conn.send_raw(b"R" + struct.pack("!ii", 12, 5) + b"salt" + b"R" + struct.pack("!ii", 8, 3))
    conn.wait_closed()


def scram(iterations, password=None, salt=b"fake-salt-16byte"):
    """SCRAM-SHA-256 at this iteration count. With the password the exchange completes (the
    fake proves it knows it), else the fake fails it once pgmux sent its proof."""
    def behave(conn):
        if conn.read_startup() is None:
            return
        conn.auth(10, b"SCRAM-SHA-256\0\0")
        msg = conn.read_msg()
        if msg is None:
            return
        mech, rest = msg[1].split(b"\0", 1)
        (n,) = struct.unpack("!i", rest[:4])
        client_first = rest[4:4 + n].decode()
        bare = client_first[client_first.index("n=", 1):] if client_first.startswith("n,,") \
            else client_first
        nonce = bare.split("r=", 1)[1] + base64.b64encode(os.urandom(12)).decode()
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        conn.auth(11, server_first.encode())
        msg = conn.read_msg()
        if msg is None:
            return
        final = msg[1].decode()
        if password is None:
            conn.send(b"E", b"SFATAL\0C28P01\0Mpassword authentication failed\0\0")
            conn.wait_closed()
            return
        without_proof = final.rsplit(",p=", 1)[0]
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        auth_message = f"{bare},{server_first},{without_proof}".encode()
        signature = hmac.new(server_key, auth_message, "sha256").digest()
        conn.auth(12, b"v=" + base64.b64encode(signature))
        conn.ready()
        conn.serve()
    return behave


def huge_error(size=1 << 30, chunk=1 << 16):
    """Announce an ErrorResponse of size bytes during login and stream its body until pgmux
    stops taking it (or all of it went)."""
    def behave(conn):
        if conn.read_startup() is None:
            return
        conn.send_raw(b"E" + struct.pack("!I", size))
        block = b"x" * chunk
        left = size - 4
        while left > 0 and conn.send_raw(block[:min(chunk, left)]):
            left -= min(chunk, left)
        conn.wait_closed()
    return behave


def huge_error_after_login(size=1 << 30, chunk=1 << 16):
    """Trust, then answer the first query with an ErrorResponse of size bytes, streamed."""
    def behave(conn):
        if conn.read_startup() is None:
            return
        conn.ready()
        while True:
            msg = conn.read_msg()
            if msg is None:
                return
            if msg[0] in (b"Q", b"S"):
                break
        conn.send_raw(b"E" + struct.pack("!I", size))
        block = b"x" * chunk
        left = size - 4
        while left > 0 and conn.send_raw(block[:min(chunk, left)]):
            left -= min(chunk, left)
        conn.wait_closed()
    return behave


def before_auth(mtype, payload=b""):
    """Send one message (ReadyForQuery, a DataRow...) right after the startup packet, then
    behave as a trusting server would if pgmux went on."""
    def behave(conn):
        if conn.read_startup() is None:
            return
        conn.send(mtype, payload)
        conn.serve()
    return behave


def silent(conn):
    """Take the startup packet, then never answer (and read only to notice the close)."""
    if conn.read_startup() is None:
        return
    conn.wait_closed()


class FakePg:
    """The listener: behaviour(conn) runs in a thread for each connection accepted."""

    def __init__(self, behaviour, unix_dir=None, port=None):
        self.behaviour = behaviour
        self.unix_dir = unix_dir
        self.port = (port or 5432) if unix_dir else port
        self.conns = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = None
        self._thread = None

    def start(self):
        if self.unix_dir:
            path = os.path.join(self.unix_dir, f".s.PGSQL.{self.port}")
            if os.path.exists(path):
                os.unlink(path)
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.bind(path)
            os.chmod(path, 0o777)
        else:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(("127.0.0.1", self.port or 0))
            self.port = self._sock.getsockname()[1]
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self):
        while not self._stop.is_set():
            try:
                sock, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn = FakeConn(sock)
            with self._lock:
                self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.behaviour(conn)
        except OSError:
            pass
        finally:
            conn.closed.set()
            try:
                conn.sock.close()
            except OSError:
                pass

    def connections(self):
        with self._lock:
            return list(self.conns)

    def passwords(self):
        """Every password message any connection received."""
        return [p for c in self.connections() for p in c.passwords()]

    def stop(self):
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
        if self._thread is not None:
            self._thread.join(2)
        for c in self.connections():
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def measure_latency(fn, stop, interval=0.05):
    """Call fn() every interval seconds until stop is set; returns the longest call (s)."""
    worst = 0.0
    while not stop.is_set():
        t = time.monotonic()
        fn()
        worst = max(worst, time.monotonic() - t)
        stop.wait(interval)
    return worst
