"""Many idle, logged-in clients held open through a pooler.

Each client is a raw socket that sends a StartupMessage (protocol 3.0, trust auth expected),
reads until ReadyForQuery and then just stays connected. A whole driver per connection would
cost more memory in this process than the pooler spends per client, so this speaks the few
bytes of the protocol itself. A bounded number of handshakes run at once so the pooler's
listen backlog is not overrun.
"""
import asyncio
import socket
import struct
import time

PROTOCOL_3 = 196608


def startup_message(user, database):
    body = struct.pack("!i", PROTOCOL_3)
    for k, v in (("user", user), ("database", database), ("application_name", "bench-idle")):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


async def _read_message(loop, sock, buf):
    while len(buf) < 5:
        chunk = await loop.sock_recv(sock, 8192)
        if not chunk:
            raise ConnectionError("closed by the server during login")
        buf += chunk
    kind = buf[0:1]
    length = struct.unpack("!i", bytes(buf[1:5]))[0]
    while len(buf) < 1 + length:
        chunk = await loop.sock_recv(sock, 8192)
        if not chunk:
            raise ConnectionError("closed by the server during login")
        buf += chunk
    payload = bytes(buf[5:1 + length])
    del buf[:1 + length]
    return kind, payload


async def _login(loop, port, user, database):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, startup_message(user, database))
        buf = bytearray()
        while True:
            kind, payload = await _read_message(loop, sock, buf)
            if kind == b"Z":
                return sock
            if kind == b"E":
                fields = dict((f[:1], f[1:].decode(errors="replace"))
                              for f in payload.split(b"\0") if f)
                raise ConnectionError(f"{fields.get(b'C', '?')} {fields.get(b'M', '')}")
            if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
                raise ConnectionError("server asked for a password; idle clients use trust")
    except BaseException:
        sock.close()
        raise


async def _open_all(port, n, user, database, concurrency, timeout, deadline):
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    errors = []
    give_up = time.monotonic() + deadline

    async def one():
        async with gate:
            if time.monotonic() > give_up:
                errors.append(f"not tried: opening took more than {deadline:.0f} s")
                return None
            try:
                return await asyncio.wait_for(_login(loop, port, user, database), timeout)
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                errors.append(str(e) or type(e).__name__)
                return None

    socks = await asyncio.gather(*(one() for _ in range(n)))
    return [s for s in socks if s is not None], errors


class IdleClients:
    """open() n logged-in clients; close() them all (Terminate, then close)."""

    def __init__(self, port, user, database):
        self.port = port
        self.user = user
        self.database = database
        self.socks = []
        self.errors = []
        self.open_seconds = 0.0

    def open(self, n, concurrency=200, timeout=10.0, deadline=60.0):
        """Open n clients, at most `concurrency` logging in at once, each login given
        `timeout` seconds; logins not started `deadline` seconds after the first are skipped.
        Returns how many are logged in; the reasons for the others are in self.errors."""
        t0 = time.monotonic()
        self.socks, self.errors = asyncio.run(
            _open_all(self.port, n, self.user, self.database, concurrency, timeout, deadline))
        self.open_seconds = time.monotonic() - t0
        return len(self.socks)

    def still_open(self):
        """How many of our clients the pooler has not closed (a peek that never blocks)."""
        alive = 0
        for s in self.socks:
            try:
                if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    continue
                alive += 1  # unexpected data, but the connection is there
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def close(self):
        terminate = b"X" + struct.pack("!i", 4)
        for s in self.socks:
            try:
                s.send(terminate, socket.MSG_DONTWAIT)
            except OSError:
                pass
            s.close()
        self.socks = []
