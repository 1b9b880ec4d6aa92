"""Several pgmux processes on one port (so_reuseport) with peer_id and [peers]: a cancel request
reaches the query it names whichever process the kernel hands it to, and one process going
away leaves the others serving the port."""
import os
import signal
import socket
import struct

import psycopg
import pytest

import rawpg
from conftest import Background, wait_for
from pgcluster import free_port

CANCEL_REQUEST = 80877102
PEER_SHIFT = 18            # proto/cancelkey.h: the peer_id sits above bit 18 of the key
FORWARDED = 1 << 17


def start_peers(pgmux, tmp_path, n=2, **settings):
    """n processes on one TCP port, each with its own unix socket directory (its own address,
    which [peers] and the admin console use), all with the same [peers] section."""
    port = free_port()
    dirs = []
    for i in range(1, n + 1):
        d = tmp_path / f"peer{i}"
        d.mkdir()
        dirs.append(str(d))
    peers = "\n[peers]\n" + "".join(f"{i} = host={d} port={port}\n"
                                    for i, d in enumerate(dirs, 1))
    muxes = []
    for i, d in enumerate(dirs, 1):
        conf = {"so_reuseport": 1, "peer_id": i, "unix_socket_dir": d, "pool_mode": "transaction",
                "default_pool_size": 10}
        conf.update(settings)
        mux = pgmux(conf, port=port, extra_sections=peers)
        mux.admin_host = d
        # the TCP port answers as soon as the first process listens: wait for this one's socket
        wait_for(lambda: unix_accepts(d, port), 10, what=f"peer {i} to listen")
        muxes.append(mux)
    return muxes


def unix_accepts(d, port):
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(f"{d}/.s.PGSQL.{port}")
            return True
        except OSError:
            return False


def send_cancel(host, port, pid, key):
    """A CancelRequest to host (an address, or a unix socket directory); waits for the close."""
    if host.startswith("/"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(f"{host}/.s.PGSQL.{port}")
    else:
        s = socket.create_connection((host, port))
    with s:
        s.settimeout(5)
        s.sendall(struct.pack("!iiII", 16, CANCEL_REQUEST, pid & 0xffffffff, key & 0xffffffff))
        try:
            while s.recv(1024):
                pass
        except OSError:
            pass


def peer_pools(mux):
    return {int(r["peer_id"]): {k: int(v) for k, v in r.items()}
            for r in mux.admin("SHOW PEER_POOLS")}


def forwarded_total(muxes):
    return sum(p["forwarded"] for m in muxes for p in peer_pools(m).values())


def running(direct, tag):
    return any(tag in r[2] for r in direct.backends("app", "active"))


@pytest.mark.timeout(150)
def test_cancels_reach_their_query_through_either_process(pgmux, direct, tmp_path):
    muxes = start_peers(pgmux, tmp_path)
    rounds, width = 10, 4
    for rnd in range(rounds):
        conns = [muxes[0].connect() for _ in range(width)]
        tags = [f"r{rnd}c{i}x" for i in range(width)]
        jobs = [Background(lambda c=c, t=t: c.execute(f"select pg_sleep(30), '{t}'").fetchone())
                for c, t in zip(conns, tags)]
        wait_for(lambda: all(running(direct, t) for t in tags), 10,
                 what=f"round {rnd}: {width} queries running")
        for i, (c, job) in enumerate(zip(conns, jobs)):
            # libpq's cancel opens a new connection to the shared port: either process takes it
            c.cancel()
            err = job.exception(5)
            assert isinstance(err, psycopg.errors.QueryCanceled), \
                f"round {rnd} client {i}: {err!r}"
            assert err.sqlstate == "57014"
            # only that query: the others of the round still run
            for t in tags[i + 1:]:
                assert running(direct, t), f"round {rnd}: cancelling client {i} stopped {t}"
        for c in conns:
            assert c.execute("select 1").fetchone()[0] == 1
            c.close()
    # each cancel reached the owner directly or through the other process; with the kernel
    # spreading 40 connections over two processes, all 40 landing on the owner is a 1 in 2^40
    total = forwarded_total(muxes)
    assert 0 < total <= rounds * width, total
    for m in muxes:
        for p in peer_pools(m).values():
            assert p["failed"] == 0 and p["dropped"] == 0, p
            assert p["cl_active_cancel_req"] == 0 and p["cl_waiting_cancel_req"] == 0, p
    rows = muxes[0].admin("SHOW PEERS")
    assert [(r["peer_id"], r["host"], r["port"], r["pool_size"]) for r in rows] == \
        [("1", muxes[0].admin_host, str(muxes[0].port), "10"),
         ("2", muxes[1].admin_host, str(muxes[1].port), "10")]


def raw_client(mux, direct, tag):
    """A client logged in over the shared TCP port, running pg_sleep; its owner's peer_id."""
    r = mux.raw(timeout=10)
    r.login("postgres", "app")
    pid, key = r.backend_key
    r.send_msg(b"Q", f"select pg_sleep(30), '{tag}'".encode() + b"\0")
    wait_for(lambda: running(direct, tag), 5, what=f"{tag} running")
    return r, pid, key & 0xffffffff


def test_cancel_sent_to_the_other_process_is_forwarded(pgmux, direct, tmp_path):
    muxes = start_peers(pgmux, tmp_path)
    for n in range(4):
        r, pid, key = raw_client(muxes[0], direct, f"fwd{n}x")
        owner = key >> PEER_SHIFT
        assert owner in (1, 2), hex(key)
        assert not key & FORWARDED
        other = muxes[2 - owner]
        before = peer_pools(other)[owner]["forwarded"]
        # straight to the process that does not own the key, on its own socket
        send_cancel(other.admin_host, other.port, pid, key)
        err = r.error_or_close(5)
        assert isinstance(err, rawpg.PgError) and err.sqlstate == "57014", repr(err)
        wait_for(lambda: peer_pools(other)[owner]["forwarded"] == before + 1, 5,
                 what="the forward counted")
        r.close()


def test_forwarded_or_unknown_keys_are_dropped(pgmux, direct, tmp_path):
    muxes = start_peers(pgmux, tmp_path)
    r, pid, key = raw_client(muxes[0], direct, "dropx")
    owner = key >> PEER_SHIFT
    other = muxes[2 - owner]
    # already forwarded once: the process that does not own it must not send it on again
    send_cancel(other.admin_host, other.port, pid, key | FORWARDED)
    # a peer_id no [peers] section names
    send_cancel(other.admin_host, other.port, pid, (77 << PEER_SHIFT) | (key & (FORWARDED - 1)))
    # both were decided before the process closed their connections: nothing is on its way
    assert "not in [peers]: dropped" in other.log()
    assert "forwarded by a peer is for peer" in other.log()
    pools = peer_pools(other)[owner]
    assert pools["cl_active_cancel_req"] == 0 and pools["forwarded"] == 0, pools
    assert running(direct, "dropx"), "a dropped cancel request cancelled the query"
    # the owner itself takes a forwarded key: it is the form a peer sends it in
    send_cancel(muxes[owner - 1].admin_host, muxes[owner - 1].port, pid, key | FORWARDED)
    err = r.error_or_close(5)
    assert isinstance(err, rawpg.PgError) and err.sqlstate == "57014", repr(err)


def test_one_process_gone_the_other_serves_the_port(pgmux, direct, tmp_path):
    muxes = start_peers(pgmux, tmp_path)
    # both serve: the kernel spreads new connections over both processes
    conns = [muxes[0].connect() for _ in range(20)]
    per_process = [sum(int(p["cl_active"]) + int(p["cl_waiting"])
                       for p in m.admin("SHOW POOLS") if p["database"] == "app") for m in muxes]
    assert sum(per_process) == 20 and min(per_process) > 0, per_process
    for c in conns:
        c.close()
    muxes[0].expect_exit = True
    muxes[0].proc.send_signal(signal.SIGKILL)
    muxes[0].proc.wait(5)
    # every new connection on the shared port lands on the survivor
    for i in range(30):
        with psycopg.connect(muxes[1].dsn("app"), autocommit=True, connect_timeout=5) as c:
            assert c.execute("select %s::int", (i,)).fetchone()[0] == i
    # a cancel for the survivor's own client still works
    r, pid, key = raw_client(muxes[1], direct, "lastx")
    assert key >> PEER_SHIFT == 2
    send_cancel("127.0.0.1", muxes[1].port, pid, key)
    err = r.error_or_close(5)
    assert isinstance(err, rawpg.PgError) and err.sqlstate == "57014", repr(err)
    # one for the dead process is dropped quietly, counted as failed
    send_cancel("127.0.0.1", muxes[1].port, 12345, 1 << PEER_SHIFT)
    wait_for(lambda: peer_pools(muxes[1])[1]["failed"] == 1, 5, what="the failed forward counted")
    assert os.path.exists(os.path.join(muxes[1].admin_host, f".s.PGSQL.{muxes[1].port}"))


def test_requests_beyond_pool_size_wait_and_a_silent_peer_times_out(pgmux, tmp_path):
    # a "peer" that accepts connections (the kernel does) and never answers or closes them
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        d = tmp_path / "own"
        d.mkdir()
        mux = pgmux({"peer_id": 1, "unix_socket_dir": str(d), "server_connect_timeout": 1},
                    extra_sections=f"\n[peers]\n3 = host=127.0.0.1 port={silent.getsockname()[1]} "
                                   "pool_size=1\n")
        for n in range(3):
            send_cancel("127.0.0.1", mux.port, 1000 + n, (3 << PEER_SHIFT) | n)
        # one on its way (written, unanswered), two waiting for the peer's only slot
        wait_for(lambda: peer_pools(mux)[3]["sv_active_cancel"] == 1, 5, what="one written")
        p = peer_pools(mux)[3]
        assert (p["cl_active_cancel_req"], p["cl_waiting_cancel_req"], p["sv_login"]) == (1, 2, 0), p
        # each is given up after server_connect_timeout, and the next one starts
        wait_for(lambda: peer_pools(mux)[3]["failed"] == 3, 10, what="all three given up")
        p = peer_pools(mux)[3]
        assert (p["cl_active_cancel_req"], p["cl_waiting_cancel_req"], p["forwarded"]) == (0, 0, 0), p
        assert "not confirmed by peer 3" in mux.log()
    finally:
        silent.close()


def test_reload_changes_peers_not_peer_id(pgmux, tmp_path):
    d = tmp_path / "own"
    d.mkdir()
    mux = pgmux({"peer_id": 1, "unix_socket_dir": str(d)},
                extra_sections=f"\n[peers]\n1 = host={d}\n")
    assert [r["peer_id"] for r in mux.admin("SHOW PEERS")] == ["1"]
    mux.extra_sections = f"\n[peers]\n1 = host={d}\n5 = host=10.9.9.9 port=7000 pool_size=2\n"
    mux.write_config()
    mux.admin("RELOAD")
    rows = mux.admin("SHOW PEERS")
    assert [(r["peer_id"], r["host"], r["port"], r["pool_size"]) for r in rows] == \
        [("1", str(d), "6432", "5"), ("5", "10.9.9.9", "7000", "2")]
    assert sorted(peer_pools(mux)) == [1, 5]
    # the keys already given out name this process: its peer_id changes only with a restart
    with pytest.raises(rawpg.PgError) as e:
        mux.admin("SET peer_id = 2")
    assert e.value.sqlstate == "55P02"
    assert [r["value"] for r in mux.admin("SHOW CONFIG") if r["key"] == "peer_id"] == ["1"]
