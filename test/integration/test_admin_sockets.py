"""SHOW SOCKETS and SHOW ACTIVE_SOCKETS: every client and server socket with PgBouncer's columns
and its buffers, and only the sockets with bytes in flight (PgBouncer's meaning of active: input
not yet processed, a message still arriving, output not yet written)."""
import pytest

from conftest import wait_for

# PgBouncer 1.18's columns, in its order.
SOCKET_COLUMNS = [
    "type", "user", "database", "state", "addr", "port", "local_addr", "local_port",
    "connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link",
    "remote_pid", "tls", "application_name",
    "recv_pos", "pkt_pos", "pkt_remain", "send_pos", "send_remain", "pkt_avail", "send_avail",
]
BUFFER_COLUMNS = SOCKET_COLUMNS[-7:]
IN_FLIGHT = ("pkt_avail", "pkt_remain", "send_avail")

# Far more than the kernel's socket buffers and pgmux's output queue hold together.
FLOOD_SQL = "select repeat('x', 1000) from generate_series(1, 1000000)"


def client_row(rows, app_name):
    found = [r for r in rows if r["type"] == "C" and r["application_name"] == app_name]
    assert len(found) == 1, (app_name, rows)
    return found[0]


def linked_server(rows, client):
    found = [r for r in rows if r["type"] == "S" and r["link"] == client["ptr"]]
    assert len(found) == 1, (client, rows)
    return found[0]


def backend_port(direct, pid):
    return direct.scalar("select client_port from pg_stat_activity where pid = %s", (pid,))


def test_show_sockets_lists_every_client_and_server(pgmux, pg, direct):
    mux = pgmux({"pool_mode": "transaction"})
    idle = mux.raw().login("postgres", "app", application_name="idle")
    idle.query("select 1")                      # its server went back to the pool
    txn = mux.raw().login("postgres", "other", application_name="txn")
    rows, _ = txn.query("begin; select pg_backend_pid()")
    pid = int(rows[0][0])                       # holds its server in its transaction

    rows = mux.admin("SHOW SOCKETS")
    assert list(rows[0]) == SOCKET_COLUMNS
    mine = [r for r in rows if r["database"] != mux.admin_db]
    assert sorted((r["type"], r["database"], r["state"]) for r in mine) == [
        ("C", "app", "cl_idle"), ("C", "other", "cl_active"),
        ("S", "app", "sv_idle"), ("S", "other", "sv_active"),
    ], rows
    assert [r["type"] for r in rows if r["database"] == mux.admin_db] == ["C"], rows

    for raw, name in ((idle, "idle"), (txn, "txn")):
        c = client_row(rows, name)
        assert c["user"] == "postgres", c
        assert (c["addr"], int(c["port"])) == ("127.0.0.1", raw.sock.getsockname()[1]), c
        assert (c["local_addr"], int(c["local_port"])) == ("127.0.0.1", mux.port), c
        assert c["tls"] == "", c
    assert client_row(rows, "idle")["link"] is None

    server = linked_server(rows, client_row(rows, "txn"))
    assert server["user"] == "postgres" and server["application_name"] == "txn", server
    assert (server["addr"], int(server["port"])) == ("127.0.0.1", pg.port), server
    assert int(server["remote_pid"]) == pid, server
    assert server["local_addr"] == "127.0.0.1", server
    assert int(server["local_port"]) == backend_port(direct, pid), server
    assert client_row(rows, "txn")["link"] == server["ptr"]

    # nothing is in flight on a connection that waits for its next query
    for r in mine:
        assert all(r[k] == "0" for k in BUFFER_COLUMNS), r


@pytest.mark.timeout(90)
def test_active_sockets_lists_only_sockets_with_bytes_in_flight(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction"})
    idle = mux.raw().login("postgres", "app", application_name="idle")
    idle.query("select 1")
    txn = mux.raw().login("postgres", "app", application_name="txn")
    txn.query("begin; select 1")               # active in SHOW CLIENTS, but holds no bytes
    assert [r for r in mux.admin("SHOW ACTIVE_SOCKETS") if r["database"] != mux.admin_db] == []

    # a client that asks for a large result and reads none of it: its output piles up in pgmux
    stalled = mux.raw(timeout=10, rcvbuf=64 * 1024).login("postgres", "app",
                                                          application_name="stalled")
    stalled.send_msg(b"Q", FLOOD_SQL.encode() + b"\0")
    try:
        def stalled_in_flight():
            rows = mux.admin("SHOW ACTIVE_SOCKETS")
            found = [r for r in rows if r["application_name"] == "stalled" and r["type"] == "C"]
            return rows if found and int(found[0]["send_avail"]) > 0 else None

        rows = wait_for(stalled_in_flight, 20, what="the stalled client's queued output")
        assert list(rows[0]) == SOCKET_COLUMNS
        c = client_row(rows, "stalled")
        assert c["state"] == "cl_active" and c["database"] == "app", c
        names = {r["application_name"] for r in rows if r["database"] != mux.admin_db}
        assert names == {"stalled"}, rows      # not the idle client, nor the one in a transaction
        for r in rows:
            assert any(int(r[k]) > 0 for k in IN_FLIGHT), r
            if r["type"] == "S":               # the stalled client's server, if it holds bytes
                assert r["link"] == c["ptr"] and r["state"] == "sv_active", r

        # SHOW SOCKETS lists the same socket with the same state, among all the others
        every = mux.admin("SHOW SOCKETS")
        assert client_row(every, "stalled")["ptr"] == c["ptr"]
        assert int(client_row(every, "stalled")["send_avail"]) > 0
        assert client_row(every, "txn")["state"] == "cl_active"
        assert all(client_row(every, "idle")[k] == "0" for k in BUFFER_COLUMNS)
    finally:
        stalled.close()
        direct.query("select pg_terminate_backend(pid) from pg_stat_activity "
                     "where query = %s", (FLOOD_SQL,))
    wait_for(lambda: not [r for r in mux.admin("SHOW ACTIVE_SOCKETS")
                          if r["database"] != mux.admin_db],
             what="no socket of a client left in flight")
