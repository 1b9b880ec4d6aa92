"""A TCP proxy that injects network faults between pgmux and a PostgreSQL server.

    proxy = FaultProxy("127.0.0.1", pg.port).start()
    ... a pgmux [databases] entry with host=127.0.0.1 port={proxy.port} ...
    proxy.latency(0.2); proxy.drop(); proxy.reset(); proxy.pass_through(); proxy.stop()

One thread runs a selector loop over every connection; the test thread changes the mode with a
call that returns once the loop has applied it, so a fault is in force when the call returns.
The modes, each applied to the connections that exist and to those accepted later:

  pass      forward both ways as they come.
  latency   hold every chunk `delay` seconds in each direction before forwarding it (order kept).
  drop      a black hole: read nothing and forward nothing, either way, without closing
            anything. The peers' writes fill the kernel buffers, then block, as on a path whose
            packets vanish; pass_through() afterwards delivers what waited, as TCP would once
            the path is back. New connections are accepted and get no answer (a half-open
            server).
  stall     the server stops reading: nothing is read from the pgmux side (its writes fill the
            buffers and then block) while the server's output still reaches pgmux.
  reset     every connection is aborted with an RST on both sides (SO_LINGER 0); new
            connections are reset at once.
  half_close  each side gets a FIN (shutdown for writing) and no further data; new
            connections get a FIN at once.

Independently of the mode, delay_server_eof(seconds) holds back the FIN of a server that
closes its connection, after forwarding everything it sent: pgmux sees the server's last
words (a FATAL) at once and the end of the connection `seconds` later, and whatever pgmux sends
meanwhile is dropped, as a closed socket would.

The proxy never buffers more than HOLD_LIMIT bytes per direction: past that it stops reading,
so it adds back-pressure, never memory. `accepted` counts the connections made to it, `open`
those still open.
"""
import collections
import selectors
import socket
import struct
import threading
import time

CHUNK = 65536
HOLD_LIMIT = 256 * 1024
MODES = ("pass", "latency", "drop", "stall", "reset", "half_close")


def _abort(sock):
    """Close sock with an RST rather than a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Flow:
    """One direction of a connection: bytes read from src, waiting to be written to dst."""

    def __init__(self, src, dst, from_client):
        self.src = src
        self.dst = dst
        self.from_client = from_client
        self.chunks = collections.deque()    # (due time, bytes), in order
        self.held = 0
        self.eof = False                     # src sent FIN; dst gets one when chunks are out
        self.shut = False                    # dst was shut down for writing

    def due(self, now):
        return bool(self.chunks) and self.chunks[0][0] <= now


class _Pair:
    def __init__(self, down, up):
        self.down = down                     # accepted from pgmux
        self.up = up                         # connected to the server
        self.flows = (_Flow(down, up, True), _Flow(up, down, False))
        self.closed = False


class FaultProxy:
    def __init__(self, target_host, target_port, host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.mode = "pass"
        self.delay = 0.0
        self.eof_delay = 0.0
        self.accepted = 0
        self.pairs = []
        self._commands = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)

    # -- control (test thread) ------------------------------------------------------------
    def start(self):
        self._thread.start()
        return self

    def stop(self):
        if self._thread.is_alive():
            self._call(self._shutdown)
            self._thread.join(5)
        self.listener.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def open(self):
        return sum(1 for p in self.pairs if not p.closed)

    def pass_through(self):
        self._set("pass")

    def latency(self, delay):
        self._set("latency", delay)

    def drop(self):
        self._set("drop")

    def stall(self):
        self._set("stall")

    def reset(self):
        self._set("reset")

    def half_close(self):
        self._set("half_close")

    def delay_server_eof(self, seconds):
        self._call(lambda: setattr(self, "eof_delay", seconds))

    def _set(self, mode, delay=0.0):
        assert mode in MODES, mode
        self._call(lambda: self._apply(mode, delay))

    def _call(self, fn):
        """Run fn in the proxy's thread and wait until it has run."""
        done = threading.Event()
        self._commands.append((fn, done))
        self._wake_w.send(b"x")
        if not done.wait(5):
            raise RuntimeError("the fault proxy's loop did not answer")

    # -- loop (proxy thread) --------------------------------------------------------------
    def _apply(self, mode, delay):
        self.mode, self.delay = mode, delay
        for pair in self.pairs:
            if not pair.closed:
                self._impose(pair)

    def _impose(self, pair):
        """Apply the modes that act once on a connection rather than on each transfer."""
        if self.mode == "reset":
            self._close(pair, abort=True)
        elif self.mode == "half_close":
            for flow in pair.flows:
                flow.chunks.clear()
                flow.held = 0
                self._shut(flow)

    def _shutdown(self):
        for pair in self.pairs:
            self._close(pair, abort=True)
        self._stopping = True

    def _run(self):
        sel = selectors.DefaultSelector()
        while not self._stopping:
            now = time.monotonic()
            self._register(sel, now)
            timeout = self._next_due(now)
            for key, events in sel.select(timeout):
                self._ready(key.fileobj, events)
            for key in list(sel.get_map().values()):
                sel.unregister(key.fileobj)
            self._send_due(time.monotonic())
        sel.close()

    def _register(self, sel, now):
        sel.register(self._wake_r, selectors.EVENT_READ)
        sel.register(self.listener, selectors.EVENT_READ)
        wanted = {}
        for pair in self.pairs:
            if pair.closed:
                continue
            for flow in pair.flows:
                if self._may_read(flow):
                    wanted[flow.src] = wanted.get(flow.src, 0) | selectors.EVENT_READ
                if flow.due(now) and self._may_send(flow):
                    wanted[flow.dst] = wanted.get(flow.dst, 0) | selectors.EVENT_WRITE
        for sock, events in wanted.items():
            sel.register(sock, events)

    def _may_read(self, flow):
        if flow.eof or flow.held >= HOLD_LIMIT or self.mode in ("drop", "reset", "half_close"):
            return False
        return not (self.mode == "stall" and flow.from_client)

    def _may_send(self, flow):
        return self.mode not in ("drop", "reset", "half_close")

    def _next_due(self, now):
        due = [f.chunks[0][0] for p in self.pairs if not p.closed for f in p.flows
               if f.chunks and self._may_send(f)]
        return max(0.0, min(due) - now) if due else None

    def _ready(self, sock, events):
        if sock is self._wake_r:
            self._wake_r.recv(4096)
            while self._commands:
                fn, done = self._commands.popleft()
                fn()
                done.set()
        elif sock is self.listener:
            self._accept()
        elif events & selectors.EVENT_READ:
            self._read(sock)
        # writes are flushed by _send_due after every select

    def _accept(self):
        try:
            down, _ = self.listener.accept()
        except BlockingIOError:
            return
        self.accepted += 1
        try:
            up = socket.create_connection(self.target, timeout=5)
        except OSError:
            _abort(down)
            return
        for s in (down, up):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(down, up)
        self.pairs.append(pair)
        self._impose(pair)

    def _pair_of(self, sock):
        for pair in self.pairs:
            if not pair.closed and sock in (pair.down, pair.up):
                return pair
        return None

    def _read(self, sock):
        pair = self._pair_of(sock)
        if pair is None:
            return
        flow = pair.flows[0] if sock is pair.down else pair.flows[1]
        try:
            data = sock.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            # a reset on one side is passed on as a reset to the other
            self._close(pair, abort=True)
            return
        if not data:
            flow.eof = True
            if not flow.from_client and self.eof_delay:
                # an empty chunk stands for the FIN: it is due once the delay is over
                flow.chunks.append((time.monotonic() + self.eof_delay, b""))
            if not flow.chunks:
                self._shut(flow)
            if all(f.eof and f.shut for f in pair.flows):
                self._close(pair)
            return
        if flow.from_client and pair.flows[1].eof:
            return                           # the server is gone: nobody reads this
        due = time.monotonic() + (self.delay if self.mode == "latency" else 0.0)
        flow.chunks.append((due, data))
        flow.held += len(data)

    def _send_due(self, now):
        for pair in self.pairs:
            for flow in pair.flows:
                if pair.closed or not self._may_send(flow):
                    continue
                while flow.due(now):
                    data = flow.chunks[0][1]
                    try:
                        n = flow.dst.send(data)
                    except BlockingIOError:
                        break
                    except OSError:
                        self._close(pair, abort=True)
                        break
                    flow.held -= n
                    if n < len(data):
                        flow.chunks[0] = (flow.chunks[0][0], data[n:])
                        break
                    flow.chunks.popleft()
                if not pair.closed and flow.eof and not flow.chunks:
                    self._shut(flow)

    def _shut(self, flow):
        if flow.shut:
            return
        flow.shut = True
        try:
            flow.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass                             # the peer is gone already

    def _close(self, pair, abort=False):
        if pair.closed:
            return
        pair.closed = True
        for s in (pair.down, pair.up):
            if abort:
                _abort(s)
            else:
                s.close()
        self.pairs = [p for p in self.pairs if not p.closed]
