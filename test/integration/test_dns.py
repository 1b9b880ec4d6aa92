"""Host names in database entries resolve without blocking (c-ares), through a tiny DNS server
this file runs on loopback (pgmux's dns_servers points at it) or the hosts file (localhost).
An address change is picked up after dns_max_ttl and servers on the old address retire; a
name that does not resolve gives clients 08006 "could not resolve host" instead of a hang.
"""
import socket
import struct
import threading
import time

import psycopg
import pytest

from pgcluster import PgCluster


class DnsServer:
    """Answers A queries from a dict (name -> IPv4 address); other known-name queries get an
    empty answer and unknown names NXDOMAIN. Counts the A queries it saw per name."""

    def __init__(self, records, ttl=300):
        self.records = dict(records)
        self.ttl = ttl
        self.queries = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(data), peer)
            except (OSError, struct.error, IndexError):
                pass

    def _answer(self, q):
        qid, flags = struct.unpack_from("!HH", q)
        pos, labels = 12, []
        while q[pos]:
            n = q[pos]
            labels.append(q[pos + 1:pos + 1 + n].decode().lower())
            pos += 1 + n
        qtype, _ = struct.unpack_from("!HH", q, pos + 1)
        question = q[12:pos + 5]
        name = ".".join(labels)
        answers = b""
        rcode = 0
        if name not in self.records:
            rcode = 3
        elif qtype == 1:
            self.queries[name] = self.queries.get(name, 0) + 1
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, self.ttl, 4) + \
                socket.inet_aton(self.records[name])
        header = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1,
                             1 if answers else 0, 0, 0)
        return header + question + answers

    def close(self):
        self.running = False
        self.sock.close()


@pytest.fixture
def dns():
    d = DnsServer({"db.pgmux.test": "127.0.0.1"})
    yield d
    d.close()


def dns_settings(dns, **extra):
    s = {"dns_servers": f"127.0.0.1:{dns.port}", "server_login_retry": 0.2}
    s.update(extra)
    return s


def test_hostname_resolves(pgmux, pg, dns):
    mux = pgmux(dns_settings(dns), databases={
        "app": f"host=db.pgmux.test port={pg.port} dbname=app"})
    c = mux.connect()
    assert c.execute("select 1").fetchone()[0] == 1
    assert dns.queries.get("db.pgmux.test", 0) >= 1
    # many clients at once share one lookup and one cached answer
    conns = [mux.connect() for _ in range(5)]
    for x in conns:
        x.execute("begin")
        x.execute("select 1")
    for x in conns:
        x.execute("commit")
    assert dns.queries["db.pgmux.test"] <= 2


def test_localhost_from_hosts_file(pgmux, pg):
    mux = pgmux(databases={"app": f"host=localhost port={pg.port} dbname=app"})
    assert mux.connect().execute("select 2").fetchone()[0] == 2


def test_unresolvable_name_fails_fast(pgmux, pg, dns):
    mux = pgmux(dns_settings(dns), databases={
        "app": f"host=nowhere.pgmux.test port={pg.port} dbname=app"})
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as e:
        mux.connect()
    assert time.monotonic() - started < 5
    assert "could not resolve host" in str(e.value)
    assert "nowhere.pgmux.test" in str(e.value)
    assert e.value.sqlstate in ("08006", None)
    # pgmux itself is fine
    assert mux.admin("SHOW VERSION") is not None


@pytest.fixture
def two_address_pg():
    hba = ["local all all trust", "host all all 127.0.0.0/8 trust"]
    cluster = PgCluster(hba=hba, settings=["listen_addresses = '127.0.0.1,127.0.0.2'",
                                           "log_min_messages = warning"])
    try:
        cluster.init().start()
        yield cluster
    finally:
        cluster.destroy()


def backends(cluster):
    with psycopg.connect(f"host=/{cluster.sockdir.lstrip('/')} port={cluster.port} "
                         "dbname=postgres user=postgres", autocommit=True) as c:
        return c.execute("select count(*) from pg_stat_activity where datname = 'app' "
                         "and backend_type = 'client backend'").fetchone()[0]


@pytest.mark.timeout(60)
def test_address_change_is_picked_up(pgmux, dns, two_address_pg):
    two_address_pg.sql("CREATE DATABASE app")
    mux = pgmux(dns_settings(dns, dns_max_ttl=1, pool_mode="transaction"), databases={
        "app": f"host=db.pgmux.test port={two_address_pg.port} dbname=app"})
    old = mux.connect()
    old.execute("begin")
    assert old.execute("select host(inet_server_addr())").fetchone()[0] == "127.0.0.1"

    dns.records["db.pgmux.test"] = "127.0.0.2"
    time.sleep(1.5)
    new = mux.connect()
    assert new.execute("select host(inet_server_addr())").fetchone()[0] == "127.0.0.2"
    assert backends(two_address_pg) == 2
    # the server on the old address goes when its transaction ends
    old.execute("commit")
    deadline = time.monotonic() + 5
    while backends(two_address_pg) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backends(two_address_pg) == 1
    assert old.execute("select host(inet_server_addr())").fetchone()[0] == "127.0.0.2"
    assert "address changed" in mux.log()


@pytest.mark.timeout(60)
def test_admin_set_dns_max_ttl(pgmux, dns, two_address_pg):
    """SET dns_max_ttl reaches the resolver's cache, as RELOAD does."""
    two_address_pg.sql("CREATE DATABASE app")
    mux = pgmux(dns_settings(dns, pool_mode="transaction"), databases={
        "app": f"host=db.pgmux.test port={two_address_pg.port} dbname=app"})
    mux.admin("SET dns_max_ttl = 1")     # before the first lookup: its answer lives 1 s
    old = mux.connect()
    old.execute("begin")
    assert old.execute("select host(inet_server_addr())").fetchone()[0] == "127.0.0.1"
    dns.records["db.pgmux.test"] = "127.0.0.2"
    time.sleep(1.5)
    new = mux.connect()
    assert new.execute("select host(inet_server_addr())").fetchone()[0] == "127.0.0.2"
    old.execute("commit")
