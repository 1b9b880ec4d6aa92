"""TLS on both sides: clients through SSLRequest (psycopg, psql) and direct TLS (a raw ssl
socket with ALPN "postgresql"), client certificates, pgmux to a PostgreSQL with ssl=on, TLS
reload, and a large result through TLS.

A throwaway CA and certificates are made with the openssl command line in a temporary
directory; nothing outside it is touched.
"""
import os
import random
import shutil
import ssl
import struct
import subprocess
import tempfile
import time

import psycopg
import pytest

import rawpg
from conftest import Background, assert_error, db_entries
from pgcluster import PG_BIN, SANITIZED, PgCluster


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


def make_cert(d, ca, name, cn, san=None):
    """A key and a certificate for cn signed by ca, with subjectAltName san (or none)."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = []
    if san:
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName = {san}\n")
        ext = ["-extfile", f"{name}.ext"]
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *ext, cwd=d)
    os.chmod(os.path.join(d, f"{name}.key"), 0o600)


class Certs:
    def __init__(self, d):
        self.dir = d

    def __getattr__(self, name):
        return os.path.join(self.dir, name.replace("_", "."))


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tls"))
    make_ca(d, "ca")
    make_ca(d, "otherca")
    make_cert(d, "ca", "server", "localhost", "DNS:localhost,IP:127.0.0.1")
    make_cert(d, "ca", "server2", "second.pgmux.test", "DNS:localhost,IP:127.0.0.1")
    make_cert(d, "ca", "named", "localhost", "DNS:localhost")
    make_cert(d, "ca", "client", "postgres")
    make_cert(d, "otherca", "stranger", "postgres")
    return Certs(d)


def client_tls(certs, mode="require", **extra):
    s = {"client_tls_sslmode": mode, "client_tls_key_file": certs.server_key,
         "client_tls_cert_file": certs.server_crt}
    s.update(extra)
    return s


def connect(mux, **kw):
    kw.setdefault("connect_timeout", 5)
    return psycopg.connect(host="127.0.0.1", port=mux.port, dbname="app", user="postgres",
                           autocommit=True, **kw)


def direct_tls(mux, certs, alpn=("postgresql",), cafile=None):
    """A RawPg whose socket speaks TLS from the first byte (sslnegotiation=direct)."""
    ctx = ssl.create_default_context(cafile=cafile or certs.ca_crt)
    ctx.check_hostname = False
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    r = mux.raw()
    r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
    return r


def test_require_verify_ca_verify_full(pgmux, certs):
    mux = pgmux(client_tls(certs))
    with connect(mux, sslmode="require") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("select 1").fetchone()[0] == 1
    with connect(mux, sslmode="verify-ca", sslrootcert=certs.ca_crt) as c:
        assert c.pgconn.ssl_in_use
    with psycopg.connect(host="localhost", hostaddr="127.0.0.1", port=mux.port, dbname="app",
                         user="postgres", sslmode="verify-full", sslrootcert=certs.ca_crt,
                         connect_timeout=5) as c:
        assert c.execute("select 2").fetchone()[0] == 2
    # wrong CA
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        connect(mux, sslmode="verify-ca", sslrootcert=certs.otherca_crt)
    # wrong name
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        psycopg.connect(host="wrong.pgmux.test", hostaddr="127.0.0.1", port=mux.port,
                        dbname="app", user="postgres", sslmode="verify-full",
                        sslrootcert=certs.ca_crt, connect_timeout=5)


def test_psql_verify_full(pgmux, certs):
    mux = pgmux(client_tls(certs))
    env = dict(os.environ, PGSSLMODE="verify-full", PGSSLROOTCERT=certs.ca_crt,
               PGCONNECT_TIMEOUT="5")
    out = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-h", "localhost",
                          "-p", str(mux.port), "-U", "postgres", "-d", "app", "-c",
                          "select 'over tls'"], capture_output=True, text=True, env=env,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "over tls"


def test_require_refuses_plain_clients(pgmux, certs):
    mux = pgmux(client_tls(certs))
    with pytest.raises(psycopg.OperationalError) as e:
        connect(mux, sslmode="disable")
    assert "SSL required" in str(e.value)
    r = mux.raw()
    with pytest.raises(rawpg.PgError) as e:
        r.login("postgres", "app")
    assert_error(e.value, "not_allowed")


def test_prefer_allows_both(pgmux, certs):
    mux = pgmux(client_tls(certs, "prefer"))
    with connect(mux, sslmode="disable") as c:
        assert not c.pgconn.ssl_in_use
    with connect(mux, sslmode="require") as c:
        assert c.pgconn.ssl_in_use


def test_disable_answers_n(pgmux, certs):
    mux = pgmux()
    with connect(mux, sslmode="prefer") as c:
        assert not c.pgconn.ssl_in_use
    with pytest.raises(psycopg.OperationalError):
        connect(mux, sslmode="require")


def test_client_certificate(pgmux, certs):
    mux = pgmux(client_tls(certs, "verify-ca", client_tls_ca_file=certs.ca_crt))
    with connect(mux, sslmode="require", sslcert=certs.client_crt, sslkey=certs.client_key) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    with pytest.raises(psycopg.OperationalError):
        connect(mux, sslmode="require", sslcert=certs.stranger_crt, sslkey=certs.stranger_key)
    with pytest.raises(psycopg.OperationalError):
        connect(mux, sslmode="require", sslcert="/nonexistent", sslkey="/nonexistent")


def test_direct_tls(pgmux, certs):
    mux = pgmux(client_tls(certs))
    r = direct_tls(mux, certs)
    assert r.sock.selected_alpn_protocol() == "postgresql"
    r.login("postgres", "app")
    assert r.scalar("select 'direct'") == "direct"
    # without ALPN the handshake is refused
    with pytest.raises((ssl.SSLError, ConnectionError, rawpg.Closed, OSError)):
        r2 = direct_tls(mux, certs, alpn=None)
        r2.login("postgres", "app")
    # a plain pgmux refuses a ClientHello outright
    plain = pgmux()
    with pytest.raises((ssl.SSLError, ConnectionError, rawpg.Closed, OSError)):
        r3 = direct_tls(plain, certs)
        r3.login("postgres", "app")
    assert plain.connect().execute("select 1").fetchone()[0] == 1


def negotiated_tls(mux, certs):
    """A RawPg that sent SSLRequest, got 'S' and speaks TLS from there on."""
    r = mux.raw()
    r.send(struct.pack("!ii", 8, rawpg.SSL_REQUEST))
    assert r.read_byte() == b"S"
    ctx = ssl.create_default_context(cafile=certs.ca_crt)
    ctx.check_hostname = False
    r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
    return r


@pytest.mark.parametrize("code", [rawpg.SSL_REQUEST, rawpg.GSSENC_REQUEST])
def test_no_ssl_or_gssenc_request_once_tls_is_up(pgmux, certs, code):
    # as PostgreSQL: after TLS the connection's negotiation is over, either way it began
    mux = pgmux(client_tls(certs))
    for r in (negotiated_tls(mux, certs), direct_tls(mux, certs)):
        r.send(struct.pack("!ii", 8, code))
        result = r.error_or_close(5)
        assert isinstance(result, rawpg.PgError) and result.sqlstate == "0A000", result
        assert result.message.startswith(f"unsupported frontend protocol {code >> 16}."
                                         f"{code & 0xffff}:")


@pytest.mark.timeout(120)
def test_large_result_through_tls(pgmux, certs):
    mux = pgmux(client_tls(certs, pool_mode="session"))
    with connect(mux, sslmode="require") as c:
        total = 0
        with c.cursor() as cur:
            cur.execute("select repeat('x', 1000) || g from generate_series(1, 50000) g")
            for (v,) in cur:
                total += len(v)
        assert total > 50_000_000
        # and a large message the other way
        big = "y" * 20_000_000
        assert c.execute("select length(%s)", (big,)).fetchone()[0] == 20_000_000
    # streamed through the relay buffers, never held whole
    assert mux.status("VmHWM") < 40 * 1024


@pytest.mark.timeout(120)
def test_large_result_slow_reader_tls(pgmux, certs):
    """A TLS client that reads slowly: back-pressure holds (pgmux stops reading the server
    instead of holding the 30 MB result), and every byte arrives."""
    mux = pgmux(client_tls(certs, pool_mode="session"))
    r = direct_tls(mux, certs)
    r.login("postgres", "app")
    before = mux.status("VmRSS")
    r.send_msg(b"Q", b"select repeat('z', 10000) from generate_series(1, 3000)\0")
    rows = 0
    time.sleep(1.0)        # a reader that reads nothing for a while: pgmux must stop reading
    while True:
        mtype, payload = r.read_msg(30)
        if mtype == b"D":
            rows += 1
        elif mtype == b"Z":
            break
    assert rows == 3000
    growth = mux.status("VmHWM") - before
    limit = (64 if SANITIZED else 8) * 1024   # see test_large.py
    assert growth < limit, f"pgmux grew by {growth} kB relaying 30 MB to a slow reader"


def peer_cn(mux, certs):
    r = direct_tls(mux, certs)
    cert = r.sock.getpeercert()
    r.close()
    return dict(x[0] for x in cert["subject"])["commonName"]


def test_reload_keeps_old_context_on_bad_files(pgmux, certs):
    mux = pgmux(client_tls(certs, "prefer"))   # prefer: the admin console helper is plain
    assert peer_cn(mux, certs) == "localhost"
    mux.settings["client_tls_cert_file"] = os.path.join(certs.dir, "missing.crt")
    mux.settings["client_tls_key_file"] = os.path.join(certs.dir, "missing.key")
    mux.write_config()
    with pytest.raises(rawpg.PgError) as e:
        mux.admin("RELOAD")
    assert "missing.crt" in e.value.message
    assert "client TLS" in mux.log()
    assert peer_cn(mux, certs) == "localhost"
    with connect(mux, sslmode="verify-ca", sslrootcert=certs.ca_crt) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    # good new files apply to new connections; an open one stays as it is
    keeper = connect(mux, sslmode="require")
    mux.settings["client_tls_cert_file"] = certs.server2_crt
    mux.settings["client_tls_key_file"] = certs.server2_key
    mux.write_config()
    mux.admin("RELOAD")
    assert peer_cn(mux, certs) == "second.pgmux.test"
    assert keeper.execute("select 3").fetchone()[0] == 3
    keeper.close()


def config_value(mux, key):
    return {r["key"]: r["value"] for r in mux.admin("SHOW CONFIG")}[key]


def test_admin_set_rebuilds_contexts(pgmux, certs):
    """SET of a TLS key builds the contexts as RELOAD does; a SET they cannot be built from is
    refused with F0000 and changes nothing."""
    mux = pgmux()
    # the console connection is opened now, in plain text, and kept across the changes
    assert mux.admin("SHOW VERSION")
    mux.admin(f"SET client_tls_key_file = '{certs.server_key}'")
    mux.admin(f"SET client_tls_cert_file = '{certs.server_crt}'")
    mux.admin("SET client_tls_sslmode = require")
    with connect(mux, sslmode="require") as c:
        assert c.pgconn.ssl_in_use
    with pytest.raises(psycopg.OperationalError):
        connect(mux, sslmode="disable")

    # files that cannot be read: refused, the old value and the running context stay
    for key in ("client_tls_cert_file", "client_tls_ca_file"):
        old = config_value(mux, key)
        with pytest.raises(rawpg.PgError) as e:
            mux.admin(f"SET {key} = '{certs.dir}/missing.crt'")
        assert e.value.sqlstate == "F0000" and "missing.crt" in e.value.message, e.value
        assert config_value(mux, key) == old
    assert peer_cn(mux, certs) == "localhost"
    # a key that does not match the certificate waits for its certificate (see below)
    notices = admin_notices(mux, f"SET client_tls_key_file = '{certs.client_key}'")
    assert any("pending" in n for n in notices), notices
    assert config_value(mux, "client_tls_key_file") == certs.client_key
    with connect(mux, sslmode="verify-ca", sslrootcert=certs.ca_crt) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    assert not admin_notices(mux, f"SET client_tls_key_file = '{certs.server_key}'")

    # sslmode on its own: back to plain, then require again with the files still set
    mux.admin("SET client_tls_sslmode = disable")
    with connect(mux, sslmode="disable") as c:
        assert not c.pgconn.ssl_in_use
    with pytest.raises(psycopg.OperationalError):
        connect(mux, sslmode="require")
    mux.admin("SET client_tls_sslmode = prefer")
    with connect(mux, sslmode="require") as c:
        assert c.pgconn.ssl_in_use


def admin_notices(mux, command):
    """Run an admin command that must succeed; return the messages of its notices."""
    mux.admin(command)
    return mux.admin_notices


@pytest.mark.parametrize("first", ["key", "cert"])
def test_admin_set_key_and_cert_one_at_a_time(pgmux, certs, first):
    """A new key and certificate set with two SETs: after the first, the running pair keeps
    serving and the SET says the change is pending; the second applies the new pair."""
    mux = pgmux(client_tls(certs, "prefer"))   # prefer: the admin console helper is plain
    assert peer_cn(mux, certs) == "localhost"
    new = {"key": certs.server2_key, "cert": certs.server2_crt}
    second = "cert" if first == "key" else "key"

    notices = admin_notices(mux, f"SET client_tls_{first}_file = '{new[first]}'")
    assert any("pending" in n and f"client_tls_{second}_file" in n for n in notices), notices
    assert config_value(mux, f"client_tls_{first}_file") == new[first]
    # the old certificate is still served, and TLS works meanwhile
    assert peer_cn(mux, certs) == "localhost"
    with connect(mux, sslmode="require") as c:
        assert c.pgconn.ssl_in_use

    notices = admin_notices(mux, f"SET client_tls_{second}_file = '{new[second]}'")
    assert not any("pending" in n for n in notices), notices
    assert peer_cn(mux, certs) == "second.pgmux.test"
    with connect(mux, sslmode="verify-ca", sslrootcert=certs.ca_crt) as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("select 1").fetchone()[0] == 1


def test_admin_set_pending_pair_still_checks_files(pgmux, certs):
    """While a pair is pending, a file that cannot be read is still refused."""
    mux = pgmux(client_tls(certs, "prefer"))
    admin_notices(mux, f"SET client_tls_key_file = '{certs.server2_key}'")
    with pytest.raises(rawpg.PgError) as e:
        mux.admin(f"SET client_tls_cert_file = '{certs.dir}/missing.crt'")
    assert e.value.sqlstate == "F0000" and "missing.crt" in e.value.message, e.value
    assert config_value(mux, "client_tls_cert_file") == certs.server_crt
    assert peer_cn(mux, certs) == "localhost"


def test_admin_set_refuses_tls_without_files(pgmux, certs):
    """Turning client TLS on with no certificate would turn every TCP client away."""
    mux = pgmux()
    with pytest.raises(rawpg.PgError) as e:
        mux.admin("SET client_tls_sslmode = require")
    assert e.value.sqlstate == "F0000"
    assert config_value(mux, "client_tls_sslmode") == "disable"
    with connect(mux, sslmode="disable") as c:
        assert c.execute("select 1").fetchone()[0] == 1
    # the server side too: a CA file that is not there
    with pytest.raises(rawpg.PgError) as e:
        mux.admin("SET server_tls_ca_file = '/nonexistent/ca.crt'")
    assert e.value.sqlstate == "F0000"
    assert config_value(mux, "server_tls_ca_file") == ""
    assert mux.connect().execute("select 2").fetchone()[0] == 2


def test_show_clients_tls_column(pgmux, certs):
    mux = pgmux(client_tls(certs, "prefer"))   # prefer: the admin console helper is plain
    tls_conn = connect(mux, sslmode="require")
    plain_conn = connect(mux, sslmode="disable")
    clients = [c for c in mux.admin("SHOW CLIENTS") if c["database"] == "app"]
    assert len(clients) == 2, clients
    for c in clients:
        assert (c["local_addr"], int(c["local_port"])) == ("127.0.0.1", mux.port), c
    tls_rows = [c for c in clients if c["tls"]]
    assert len(tls_rows) == 1, clients
    version, _, cipher = tls_rows[0]["tls"].partition("/")
    assert version.startswith("TLSv1.") and cipher, tls_rows[0]
    tls_conn.close()
    plain_conn.close()


# ---------------------------------------------------------------------------------------------
# pgmux to PostgreSQL over TLS


@pytest.fixture(scope="module")
def ssl_pg(certs):
    hba = ["local all all trust",
           "hostssl certdb all 127.0.0.1/32 cert", "hostssl certdb all ::1/128 cert",
           "hostssl all all 127.0.0.1/32 trust", "hostssl all all ::1/128 trust"]
    # PostgreSQL reads its key and certificate from a directory of its own
    keydir = tempfile.mkdtemp(prefix="pgmux-pgssl-")
    for f in ("named.crt", "named.key", "ca.crt"):
        shutil.copy(os.path.join(certs.dir, f), keydir)
        os.chmod(os.path.join(keydir, f), 0o600)
        if os.geteuid() == 0:
            shutil.chown(os.path.join(keydir, f), "postgres", "postgres")
    os.chmod(keydir, 0o755)
    if os.geteuid() == 0:
        shutil.chown(keydir, "postgres", "postgres")
    cluster = PgCluster(hba=hba, settings=[
        "ssl = on", f"ssl_cert_file = '{keydir}/named.crt'",
        f"ssl_key_file = '{keydir}/named.key'", f"ssl_ca_file = '{keydir}/ca.crt'",
        "listen_addresses = 'localhost'", "log_min_messages = warning"])
    try:
        cluster.init().start()
        cluster.sql("CREATE DATABASE certdb")
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(keydir, ignore_errors=True)


def ssl_entries(ssl_pg, host):
    return {"app": f"host={host} port={ssl_pg.port} dbname=postgres"}


def test_server_verify_full(pgmux, certs, ssl_pg):
    mux = pgmux({"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.ca_crt},
                databases=ssl_entries(ssl_pg, "localhost"))
    c = mux.connect()
    assert c.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0]


def test_server_verify_full_wrong_name(pgmux, certs, ssl_pg):
    # the certificate names localhost only, not 127.0.0.1
    mux = pgmux({"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.ca_crt,
                 "server_login_retry": 0.2},
                databases=ssl_entries(ssl_pg, "127.0.0.1"))
    with pytest.raises(psycopg.OperationalError) as e:
        mux.connect()
    assert "certificate verify failed" in str(e.value)


def test_server_wrong_ca(pgmux, certs, ssl_pg):
    mux = pgmux({"server_tls_sslmode": "verify-ca", "server_tls_ca_file": certs.otherca_crt},
                databases=ssl_entries(ssl_pg, "localhost"))
    with pytest.raises(psycopg.OperationalError) as e:
        mux.connect()
    assert "certificate verify failed" in str(e.value)


def test_server_require_and_prefer(pgmux, pg, certs, ssl_pg):
    mux = pgmux({"server_tls_sslmode": "require"},
                databases={**ssl_entries(ssl_pg, "127.0.0.1"),
                           "plain": f"host=127.0.0.1 port={pg.port} dbname=app"})
    c = mux.connect()
    version, cipher = c.execute("select version, cipher from pg_stat_ssl "
                                "where pid = pg_backend_pid()").fetchone()
    # SHOW SERVERS names the protocol and cipher the server agreed to, and pgmux's own end
    servers = [s for s in mux.admin("SHOW SERVERS") if s["database"] == "app"]
    assert len(servers) == 1, servers
    assert servers[0]["tls"] == f"{version}/{cipher}", servers
    assert servers[0]["local_addr"] == "127.0.0.1"
    assert int(servers[0]["local_port"]) not in (0, ssl_pg.port)
    # a server without TLS is refused under require
    with pytest.raises(psycopg.OperationalError) as e:
        mux.connect(dbname="plain")
    assert "does not support TLS" in str(e.value)
    # prefer goes on in plain text there
    mux2 = pgmux({"server_tls_sslmode": "prefer"},
                 databases={"plain": f"host=127.0.0.1 port={pg.port} dbname=app"})
    assert mux2.connect(dbname="plain").execute("select 1").fetchone()[0] == 1


@pytest.mark.timeout(120)
def test_tls_both_sides_large(pgmux, certs, ssl_pg):
    mux = pgmux(client_tls(certs, server_tls_sslmode="verify-full",
                           server_tls_ca_file=certs.ca_crt, pool_mode="session"),
                databases=ssl_entries(ssl_pg, "localhost"))
    with connect(mux, sslmode="require") as c:
        total = 0
        with c.cursor() as cur:
            cur.execute("select repeat('x', 1000) || g from generate_series(1, 50000) g")
            for (v,) in cur:
                total += len(v)
        assert total > 50_000_000
    assert mux.status("VmHWM") < 40 * 1024


def test_server_client_certificate(pgmux, certs, ssl_pg):
    """server_tls_cert_file/key_file: pgmux logs in to a `cert` hba rule with its certificate."""
    entries = {"app": f"host=localhost port={ssl_pg.port} dbname=certdb"}
    mux = pgmux({"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.ca_crt,
                 "server_tls_cert_file": certs.client_crt,
                 "server_tls_key_file": certs.client_key}, databases=entries)
    assert mux.connect().execute("select current_user").fetchone()[0] == "postgres"
    # without the certificate the server refuses
    mux2 = pgmux({"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.ca_crt},
                 databases=entries)
    with pytest.raises(psycopg.OperationalError) as e:
        mux2.connect()
    assert "certificate" in str(e.value)


@pytest.mark.parametrize("pkt_buf", [16384, 65536])
def test_tls_records_fit_libpq_buffer(pgmux, certs, pkt_buf):
    """Results in records larger than libpq's 8 kB buffer left psycopg waiting on an empty socket
    for data OpenSSL had already decrypted: every record pgmux writes fits, whatever pkt_buf."""
    mux = pgmux(client_tls(certs, pool_mode="transaction", pkt_buf=pkt_buf))
    rng = random.Random(pkt_buf)
    sizes = [rng.randint(1000, 40000) for _ in range(150)]

    def run():
        with connect(mux, sslmode="require") as c:
            for n in sizes:
                rows = c.execute("select repeat('x', %s) from generate_series(1, 3)", (n,)).fetchall()
                assert [len(r[0]) for r in rows] == [n] * 3
        return len(sizes)

    job = Background(run)
    assert job.result(40) == len(sizes), "a query through TLS never got its whole result"


def cert_serial(path):
    return int(ssl._ssl._test_decode_cert(path)["serialNumber"], 16)


def test_admin_set_server_key_and_cert_one_at_a_time(pgmux, certs, ssl_pg):
    """The certificate pgmux presents to PostgreSQL, changed with two SETs: the old pair logs in
    until the second SET applies the new one."""
    make_cert(certs.dir, "ca", "client2", "postgres")
    entries = {"app": f"host=localhost port={ssl_pg.port} dbname=certdb"}
    mux = pgmux({"server_tls_sslmode": "verify-full", "server_tls_ca_file": certs.ca_crt,
                 "server_tls_cert_file": certs.client_crt,
                 "server_tls_key_file": certs.client_key}, databases=entries)
    serial = "select client_serial from pg_stat_ssl where pid = pg_backend_pid()"
    with mux.connect() as c:
        assert int(c.execute(serial).fetchone()[0]) == cert_serial(certs.client_crt)

    notices = admin_notices(mux, f"SET server_tls_key_file = '{certs.client2_key}'")
    assert any("pending" in n and "server_tls_cert_file" in n for n in notices), notices
    mux.admin("RECONNECT")
    with mux.connect() as c:
        assert int(c.execute(serial).fetchone()[0]) == cert_serial(certs.client_crt)

    assert not admin_notices(mux, f"SET server_tls_cert_file = '{certs.client2_crt}'")
    mux.admin("RECONNECT")
    with mux.connect() as c:
        assert int(c.execute(serial).fetchone()[0]) == cert_serial(certs.client2_crt)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_cancel_then_close_leaves_nothing_over_tls(pgmux, certs, mode):
    """test_cancel.py's cancel-then-close reproduction with TLS clients: the server a cancel
    was sent for is reset before the next client has it."""
    mux = pgmux(client_tls(certs, pool_mode=mode, default_pool_size=1))
    for i in range(50):
        a = psycopg.connect(host="127.0.0.1", port=mux.port, dbname="app", user="postgres",
                            sslmode="require", autocommit=(mode == "session"))
        try:
            if mode == "session":
                a.execute("create temp table leaked_from_a (x int)")
            else:
                a.execute("select wat")
        except psycopg.Error:
            pass
        a.cancel()
        a.close()
        with connect(mux, sslmode="require") as b:
            assert b.execute("select 1").fetchone()[0] == 1, f"iteration {i}"
            assert b.execute("select to_regclass('pg_temp.leaked_from_a')").fetchone()[0] is None
