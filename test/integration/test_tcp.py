"""TCP options of pgmux's sockets: keepalive and its timings reach client and server sockets,
and a change applies to sockets opened afterwards."""
import re
import subprocess

from conftest import wait_for

BUSY = "busy"    # a retransmit timer hides the keepalive one while data is unacknowledged


def keepalive_timers(pid):
    """{(local port, peer port): seconds left on the keepalive timer, BUSY, or None (no
    keepalive)} for the established TCP sockets of process pid, as ss(8) shows them."""
    out = subprocess.run(["ss", "-tnoHp", "state", "established"], check=True,
                         capture_output=True, text=True).stdout
    sockets = {}
    for line in out.splitlines():
        if f"pid={pid}," not in line:
            continue
        fields = line.split()
        local, peer = (int(a.rsplit(":", 1)[1]) for a in fields[2:4])
        keepalive = re.search(r"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)sec)?", line)
        if keepalive:
            sockets[(local, peer)] = int(keepalive.group(1) or 0) * 60 + int(keepalive.group(2) or 0)
        else:
            sockets[(local, peer)] = BUSY if "timer:(on," in line else None
    return sockets


def settled_timers(mux, pg, n_clients, n_servers):
    """(client-side, server-side) timers of mux's sockets, once there are as many as expected
    and none is busy; None before."""
    timers = keepalive_timers(mux.proc.pid)
    clients = [t for (local, _), t in timers.items() if local == mux.port]
    servers = [t for (_, peer), t in timers.items() if peer == pg.port]
    if len(clients) != n_clients or len(servers) != n_servers or BUSY in clients + servers:
        return None
    return clients, servers


def test_keepalive_timings_reach_client_and_server_sockets(pgmux, pg):
    mux = pgmux({"pool_mode": "session", "tcp_keepidle": 77, "tcp_keepintvl": 5,
                 "tcp_keepcnt": 3})
    with mux.connect() as conn:
        conn.execute("select 1")
        clients, servers = wait_for(lambda: settled_timers(mux, pg, 1, 1), 10,
                                    what="pgmux's client and server sockets, idle")
    # The operating system's default is 7200 s: a timer under 77 s is pgmux's setting.
    assert all(t is not None and t <= 77 for t in clients + servers), (clients, servers)


def test_keepalive_off_applies_to_new_sockets(pgmux, pg):
    mux = pgmux({"pool_mode": "session", "tcp_keepidle": 77})
    first = mux.connect()
    first.execute("select 1")
    mux.admin("SET tcp_keepalive = 0")
    second = mux.connect("other")
    second.execute("select 1")
    # The admin console's own connection is a client socket too, opened before the SET.
    clients, servers = wait_for(lambda: settled_timers(mux, pg, 3, 2), 10,
                                what="pgmux's sockets, idle")
    for timers in (clients, servers):     # only the sockets opened after the SET lack it
        assert timers.count(None) == 1 and all(t is None or t <= 77 for t in timers), timers
    first.close()
    second.close()
