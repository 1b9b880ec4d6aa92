"""Client authentication: every auth_type with every auth_file secret kind through psql,
psycopg and pgbench; SCRAM-SHA-256 as a server (and pass-through to a scram-sha-256 server with
a SCRAM-only auth_file); auth_hba_file rules; PostgreSQL's errors for wrong passwords, unknown
users and refused connections; client_login_timeout against a client stalled mid-SCRAM."""
import base64
import hashlib
import hmac
import os
import struct
import subprocess
import time

import psycopg
import pytest

import rawpg
from conftest import (PASSWORDS, PG_BIN, assert_error, db_entries, role_secret, wait_for,
                      write_userlist)

# The role each auth_file secret kind is tried with, chosen so that the server accepts what
# pgmux then logs in with: bob's plaintext works for any server method, carol's md5 secret for
# her md5 server secret, alice's SCRAM secret only by pass-through of the keys she proved.
SECRET_USERS = {"plain": "bob", "md5": "carol", "scram": "alice"}


def userlist_of_kind(direct, kind):
    user = SECRET_USERS[kind]
    secret = PASSWORDS[user] if kind == "plain" else role_secret(direct, user)
    if kind == "md5":
        assert secret.startswith("md5")
    if kind == "scram":
        assert secret.startswith("SCRAM-SHA-256$")
    return {user: secret}


def write_hba(mux, lines):
    path = os.path.join(mux.basedir, "hba.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    mux.settings["auth_hba_file"] = path
    return path


def run_psql(mux, user, password, dbname="app"):
    return mux.psql("-c", "select current_user", dbname=dbname, user=user,
                    env={"PGPASSWORD": password})


def run_pgbench(mux, user, password, *args, dbname="app"):
    """pgbench with a one-line script, so roles without rights on its tables can run it."""
    script = os.path.join(mux.basedir, "select1.sql")
    with open(script, "w") as f:
        f.write("SELECT 1;\n")
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
    return subprocess.run([os.path.join(PG_BIN, "pgbench"), "-h", "127.0.0.1", "-p",
                           str(mux.port), "-U", user, "-f", script, *args, dbname],
                          capture_output=True, text=True, env=env, timeout=120)


def login_all_clients(mux, user, password):
    """psql, psycopg and pgbench (a new connection per transaction) each log in as user."""
    r = run_psql(mux, user, password)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == user
    with mux.connect(user=user, password=password) as conn:
        assert conn.execute("select current_user").fetchone()[0] == user
    r = run_pgbench(mux, user, password, "-n", "-C", "-t", "5")
    assert r.returncode == 0, r.stdout + r.stderr


def raw_login(mux, user, password, dbname="app"):
    """Log in over a raw socket with cleartext, md5 or a SCRAM-SHA-256 client written here
    (independent of libpq), checking the server signature. Returns the connection; raises
    rawpg.PgError with the SQLSTATE, which libpq may drop at connection time."""
    c = mux.raw()
    c.startup(user, dbname)
    expect_sig = None
    while True:
        mtype, payload = c.read_msg()
        if mtype == b"E":
            raise rawpg.PgError(rawpg.parse_fields(payload))
        if mtype == b"Z":
            return c
        if mtype != b"R":
            continue
        code = struct.unpack_from("!i", payload)[0]
        data = payload[4:]
        if code == 3:
            c.send_msg(b"p", password.encode() + b"\0")
        elif code == 5:
            inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
            outer = hashlib.md5(inner.encode() + data[:4]).hexdigest()
            c.send_msg(b"p", b"md5" + outer.encode() + b"\0")
        elif code == 10:
            assert b"SCRAM-SHA-256\0" in data
            cnonce = base64.b64encode(os.urandom(18)).decode()
            bare = f"n=,r={cnonce}"
            first = ("n,," + bare).encode()
            c.send_msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
        elif code == 11:
            server_first = data.decode()
            attrs = dict(a.split("=", 1) for a in server_first.split(","))
            assert attrs["r"].startswith(cnonce)
            salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                         base64.b64decode(attrs["s"]), int(attrs["i"]))
            ckey = hmac.new(salted, b"Client Key", "sha256").digest()
            skey = hmac.new(salted, b"Server Key", "sha256").digest()
            without_proof = f"c=biws,r={attrs['r']}"
            auth = f"{bare},{server_first},{without_proof}".encode()
            csig = hmac.new(hashlib.sha256(ckey).digest(), auth, "sha256").digest()
            proof = bytes(a ^ b for a, b in zip(ckey, csig))
            expect_sig = hmac.new(skey, auth, "sha256").digest()
            c.send_msg(b"p", f"{without_proof},p={base64.b64encode(proof).decode()}".encode())
        elif code == 12:
            assert data.decode() == "v=" + base64.b64encode(expect_sig).decode()


def login_error(mux, user, password, dbname="app"):
    """The error of a failed login: SQLSTATE from the raw client, message from libpq's."""
    with pytest.raises(rawpg.PgError) as raw:
        raw_login(mux, user, password, dbname)
    with pytest.raises(psycopg.OperationalError) as ei:
        mux.connect(user=user, password=password, dbname=dbname)
    assert raw.value.message in str(ei.value)
    return raw.value


# --- every auth_type x every secret kind ---------------------------------------------------

# (auth_type, secret kind) -> does the login work? scram-sha-256 cannot use an md5 secret.
MATRIX = [
    ("password", "plain", True), ("password", "md5", True), ("password", "scram", True),
    ("md5", "plain", True), ("md5", "md5", True), ("md5", "scram", True),
    ("scram-sha-256", "plain", True), ("scram-sha-256", "md5", False),
    ("scram-sha-256", "scram", True),
]


@pytest.mark.parametrize("auth_type,kind,works", MATRIX,
                         ids=[f"{a}-{k}" for a, k, _ in MATRIX])
def test_auth_type_and_secret_kind(pgmux, direct, auth_type, kind, works):
    mux = pgmux({"auth_type": auth_type}, start=False)
    write_userlist(mux, userlist_of_kind(direct, kind))
    mux.start()
    user = SECRET_USERS[kind]
    if works:
        login_all_clients(mux, user, PASSWORDS[user])
    else:
        assert_error(login_error(mux, user, PASSWORDS[user]), "bad_password")
        r = run_psql(mux, user, PASSWORDS[user])
        assert r.returncode != 0
        assert f'password authentication failed for user "{user}"' in r.stderr
    # a wrong password is always 28P01 with PostgreSQL's message
    err = login_error(mux, user, "wrong-" + PASSWORDS[user])
    assert_error(err, "bad_password")
    assert f'password authentication failed for user "{user}"' in str(err)


def test_trust(pgmux, direct):
    """trust spares the password, not auth_file: as in PgBouncer, a user that is not listed
    (postgres here, whom the server itself would trust) is refused before any server sees it."""
    mux = pgmux({"auth_type": "trust"}, start=False)
    write_userlist(mux, {"bob": PASSWORDS["bob"]})
    mux.start()
    login_all_clients(mux, "bob", "")
    for user, db in (("postgres", "app"), ("nobody", "app"), ("nobody", "nosuchdb"),
                     ("postgres", "pgmux")):
        err = login_error(mux, user, "", dbname=db)
        assert_error(err, "trust_failed")
        assert err.message == '"trust" authentication failed'
    assert not direct.query("select 1 from pg_stat_activity where usename = 'nobody'")


def test_trust_admits_users_auth_query_finds(pgmux, direct, aq_roles):
    """A user not in auth_file but found by auth_query is known; one it does not find is not."""
    entries = db_entries(direct.pg)
    entries["app"] += " user=postgres"       # the server login does not need the client's proof
    mux = pgmux({"auth_type": "trust", "auth_user": "postgres"}, databases=entries)
    with mux.connect(user="aq_user") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "postgres"
    assert_error(login_error(mux, "nobody", ""), "trust_failed")
    assert_error(login_error(mux, "aq_expired", ""), "trust_failed")


def test_md5_auth_type_uses_scram_for_scram_secret(pgmux, direct):
    """Like PostgreSQL: auth_type = md5 asks a user with a SCRAM secret for SCRAM."""
    mux = pgmux({"auth_type": "md5"}, start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice")})
    mux.start()
    c = mux.raw()
    c.startup("alice", "app")
    mtype, payload = c.read_msg()
    assert mtype == b"R"
    assert struct.unpack_from("!i", payload)[0] == 10
    assert payload[4:] == b"SCRAM-SHA-256\0\0"


# --- errors reveal nothing -----------------------------------------------------------------

@pytest.mark.parametrize("auth_type", ["password", "md5", "scram-sha-256"])
def test_unknown_user_looks_like_wrong_password(pgmux, direct, auth_type):
    mux = pgmux({"auth_type": auth_type}, start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice"), "bob": PASSWORDS["bob"],
                         "carol": role_secret(direct, "carol")})
    mux.start()
    for user in ("alice", "bob", "nobody"):
        err = login_error(mux, user, "wrong")
        assert_error(err, "bad_password")
        assert f'password authentication failed for user "{user}"' in str(err)
    # the mock SCRAM exchange shows the same salt on every try, as a real user's would
    if auth_type == "scram-sha-256":
        salts = []
        for _ in range(2):
            c = mux.raw()
            c.startup("nobody", "app")
            assert struct.unpack_from("!i", c.read_msg()[1])[0] == 10
            first = b"n,,n=,r=abcdefghijkl"
            c.send_msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
            mtype, payload = c.read_msg()
            assert mtype == b"R" and struct.unpack_from("!i", payload)[0] == 11
            attrs = dict(a.split("=", 1) for a in payload[4:].decode().split(","))
            assert attrs["r"].startswith("abcdefghijkl")
            assert attrs["i"] == "4096"
            salts.append(attrs["s"])
            c.close()
        assert salts[0] == salts[1]


def test_secrets_never_logged(pgmux, direct):
    mux = pgmux({"auth_type": "scram-sha-256", "verbose": 2, "log_connections": 1},
                start=False)
    alice = role_secret(direct, "alice")
    write_userlist(mux, {"alice": alice, "bob": PASSWORDS["bob"]})
    mux.start()
    with mux.connect(user="alice", password=PASSWORDS["alice"]):
        pass
    with mux.connect(user="bob", password=PASSWORDS["bob"]):
        pass
    login_error(mux, "bob", "wrong-guess")
    log = mux.log() + mux.stderr()
    for secret in (PASSWORDS["alice"], PASSWORDS["bob"], "wrong-guess",
                   alice.split("$")[2].split(":")[0]):
        assert secret not in log


def test_sasl_protocol_violations(pgmux, direct):
    mux = pgmux({"auth_type": "scram-sha-256"}, start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice")})
    mux.start()
    bad = [
        (b"SCRAM-SHA-1\0", b"n,,n=,r=abc"),           # unknown mechanism
        (b"SCRAM-SHA-256\0", b"p=tls-unique,,n=,r=abc"),  # channel binding not offered
        (b"SCRAM-SHA-256\0", b"n,a=alice,n=,r=abc"),   # authorization identity
        (b"SCRAM-SHA-256\0", b"n,,m=ext,n=,r=abc"),    # mandatory extension
        (b"SCRAM-SHA-256\0", b"n,,n=,"),               # no nonce
    ]
    for mech, first in bad:
        c = mux.raw()
        c.startup("alice", "app")
        assert struct.unpack_from("!i", c.read_msg()[1])[0] == 10
        c.send_msg(b"p", mech + struct.pack("!i", len(first)) + first)
        with pytest.raises(rawpg.PgError) as ei:
            while True:
                mtype, payload = c.read_msg()
                if mtype == b"E":
                    raise rawpg.PgError(rawpg.parse_fields(payload))
        assert ei.value.sqlstate == "08P01", (first, ei.value.message)
    # a proof for the wrong nonce
    c = mux.raw()
    c.startup("alice", "app")
    c.read_msg()
    first = b"n,,n=,r=abc"
    c.send_msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
    c.read_msg()
    c.send_msg(b"p", b"c=biws,r=abcXYZ,p=" + b"A" * 43 + b"=")
    assert c.error_or_close().sqlstate == "08P01"


# --- SCRAM pass-through --------------------------------------------------------------------

def test_scram_pass_through_scram_only_userlist(pgmux, direct):
    """Only SCRAM secrets anywhere: the client's proof lets pgmux log in to the server."""
    mux = pgmux({"auth_type": "scram-sha-256", "default_pool_size": 3}, start=False)
    write_userlist(mux, {u: role_secret(direct, u) for u in ("alice", "bob")})
    mux.start()
    with open(mux.settings["auth_file"]) as f:
        text = f.read()
    assert PASSWORDS["alice"] not in text and PASSWORDS["bob"] not in text
    for user in ("alice", "bob"):
        login_all_clients(mux, user, PASSWORDS[user])
        # the server sees a real login as the user, made by pgmux
        assert direct.scalar("select count(*) from pg_stat_activity where usename = %s "
                             "and datname = 'app'", (user,)) >= 1
    # once the server connections are gone, new ones log in with the kept keys
    before = {r[0] for r in direct.query(
        "select pid from pg_stat_activity where usename = 'alice'")}
    direct.query("select pg_terminate_backend(pid) from pg_stat_activity "
                 "where usename = 'alice'")
    wait_for(lambda: not direct.query("select 1 from pg_stat_activity where usename = 'alice'"),
             what="alice's server connections to close")
    time.sleep(0.2)
    for _ in range(3):
        try:
            with mux.connect(user="alice", password=PASSWORDS["alice"]) as conn:
                pid = conn.execute("select pg_backend_pid()").fetchone()[0]
                break
        except psycopg.OperationalError:
            time.sleep(0.5)   # a terminated idle server may be handed out once
    assert pid not in before
    # psql with channel_binding=disable (the libpq default without TLS) goes through
    r = mux.psql("-c", "select 1", user="alice",
                 env={"PGPASSWORD": PASSWORDS["alice"], "PGCHANNELBINDING": "prefer"})
    assert r.returncode == 0, r.stderr


def test_scram_only_userlist_without_client_proof_cannot_reach_server(pgmux, direct):
    """With trust for clients there is no proof, so a SCRAM secret alone cannot log in."""
    mux = pgmux({"auth_type": "trust"}, start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice")})
    mux.start()
    with pytest.raises(psycopg.OperationalError) as ei:
        mux.connect(user="alice")
    assert "28P01" in str(ei.value) or "password" in str(ei.value).lower()


# --- auth_hba_file -------------------------------------------------------------------------

HBA_RULES = [
    "# comment line",
    "local   all        all                     reject",
    'host    app        alice     127.0.0.1/32  scram-sha-256',
    "host    app,other  bob       127.0.0.0 255.0.0.0   md5   # trailing comment",
    "host    other      carol     127.0.0.1/32  reject",
    "host    all        carol     ::1/128       trust",
    "hostssl all        all       0.0.0.0/0     trust",
    "hostnossl app      carol     10.0.0.0/8    trust",
    "host    sameuser   postgres  127.0.0.1/32  trust",
    'host    app        "postgres", dave  127.0.0.1/32  password',
    "host    all        carol     127.0.0.1/32  md5",
]


def test_hba_rules(pgmux, direct):
    mux = pgmux({"auth_type": "hba"}, start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice"), "bob": PASSWORDS["bob"],
                         "carol": PASSWORDS["carol"], "postgres": "pg-pass"})
    write_hba(mux, HBA_RULES)
    mux.start()

    def ok(user, db, password):
        with mux.connect(user=user, dbname=db, password=password) as conn:
            assert conn.execute("select current_user").fetchone()[0] == user

    def refused(user, db, password, phrase):
        err = login_error(mux, user, password, dbname=db)
        assert_error(err, "not_allowed")
        assert phrase.format(user=user, db=db) in str(err), str(err)

    ok("alice", "app", PASSWORDS["alice"])                     # scram rule (pass-through)
    assert_error(login_error(mux, "alice", "wrong"), "bad_password")
    ok("bob", "app", PASSWORDS["bob"])                         # address + mask form
    ok("bob", "other", PASSWORDS["bob"])
    ok("carol", "app", PASSWORDS["carol"])                     # last rule: md5
    refused("carol", "other", PASSWORDS["carol"], "pg_hba.conf rejects connection")
    refused("alice", "other", PASSWORDS["alice"],
            'no pg_hba.conf entry for host "127.0.0.1", user "{user}", database "{db}"')
    ok("postgres", "postgres", "")                            # sameuser + trust
    ok("postgres", "app", "pg-pass")                           # quoted name, cleartext
    assert_error(login_error(mux, "postgres", "app-wrong"), "bad_password")
    refused("mallory", "app", "x", 'no pg_hba.conf entry for host "127.0.0.1", user "mallory"')
    # the same through psql, whose error text is what a user sees
    r = run_psql(mux, "alice", PASSWORDS["alice"], dbname="other")
    assert r.returncode != 0 and "no pg_hba.conf entry" in r.stderr
    r = run_psql(mux, "bob", PASSWORDS["bob"], dbname="other")
    assert r.returncode == 0, r.stderr
    r = run_pgbench(mux, "bob", PASSWORDS["bob"], "-n", "-C", "-t", "5")
    assert r.returncode == 0, r.stdout + r.stderr


def test_hba_reload(pgmux, direct):
    mux = pgmux({"auth_type": "hba"}, start=False)
    write_userlist(mux, {"bob": PASSWORDS["bob"]})
    path = write_hba(mux, ["host all bob 127.0.0.1/32 md5"])
    mux.start()
    with mux.connect(user="bob", password=PASSWORDS["bob"]):
        pass
    with open(path, "w") as f:
        f.write("host all bob 127.0.0.1/32 reject\n")
    mux.reload()
    wait_for(lambda: "rejects" in _login_message(mux, "bob", PASSWORDS["bob"]),
             what="reloaded hba rules to apply")
    # a broken file on RELOAD keeps the rules in force and says why
    with open(path, "w") as f:
        f.write("host all bob 127.0.0.1/32 md5\nhost all +admins 127.0.0.1/32 trust\n")
    mux.reload()
    wait_for(lambda: "group membership" in mux.log(), what="reload error in the log")
    assert "rejects" in _login_message(mux, "bob", PASSWORDS["bob"])


def _login_message(mux, user, password):
    try:
        with mux.connect(user=user, password=password):
            return "ok"
    except psycopg.OperationalError as e:
        return str(e)


@pytest.mark.parametrize("line,why", [
    ("host all all 127.0.0.1/33 trust", "invalid CIDR mask"),
    ("host all +group 127.0.0.1/32 trust", "group membership"),
    ("host all all 127.0.0.1/32 ident", "unsupported authentication method"),
    ("hots all all 127.0.0.1/32 trust", "invalid connection type"),
    ("host all all db.example.com trust", "host names are not supported"),
    ("host all all 127.0.0.1 trust", "mask"),
    # options are refused, not ignored: they would change what the rule admits
    ("hostssl all all 127.0.0.1/32 cert map=certmap", 'option "map" is not supported'),
    ("host all all 127.0.0.1/32 md5 clientcert=verify-full", 'only be configured for "hostssl"'),
])
def test_hba_bad_file_refuses_start(pgmux, line, why):
    mux = pgmux({"auth_type": "hba"}, start=False)
    path = write_hba(mux, ["local all all trust", line])
    with pytest.raises(RuntimeError) as ei:
        mux.start()
    mux.expect_exit = True
    assert f"{path}:2:" in str(ei.value) and why in str(ei.value), str(ei.value)


# --- client_login_timeout ------------------------------------------------------------------

def test_stalled_scram_client_cut_by_login_timeout(pgmux, direct):
    mux = pgmux({"auth_type": "scram-sha-256", "client_login_timeout": 1}, start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice"), "bob": PASSWORDS["bob"]})
    mux.start()
    # one stalls before answering the mechanism list, one after client-first
    before = mux.raw(timeout=10)
    before.startup("alice", "app")
    assert struct.unpack_from("!i", before.read_msg()[1])[0] == 10
    mid = mux.raw(timeout=10)
    mid.startup("alice", "app")
    mid.read_msg()
    first = b"n,,n=,r=stalledclientnonce"
    mid.send_msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
    assert struct.unpack_from("!i", mid.read_msg()[1])[0] == 11
    start = time.monotonic()
    # others log in meanwhile
    for _ in range(5):
        with mux.connect(user="bob", password=PASSWORDS["bob"]) as conn:
            conn.execute("select 1")
    for c in (before, mid):
        assert c.is_closed(timeout=5)
    assert time.monotonic() - start < 5
    assert "client_login_timeout" in mux.log()


# --- auth_query ----------------------------------------------------------------------------

def ddl(direct, sql):
    direct._conn().execute(sql)


@pytest.fixture
def aq_roles(direct):
    """Roles only the server knows: one valid, one whose password expired."""
    roles = {"aq_user": "aq-secret", "aq_expired": "aq-old"}
    for role in roles:
        ddl(direct, f"DROP ROLE IF EXISTS {role}")
    ddl(direct, "CREATE ROLE aq_user LOGIN PASSWORD 'aq-secret'")
    ddl(direct, "CREATE ROLE aq_expired LOGIN PASSWORD 'aq-old' VALID UNTIL '2001-01-01'")
    yield roles
    direct.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE usename LIKE 'aq\\_%%'")
    wait_for(lambda: not direct.query("select 1 from pg_stat_activity where usename "
                                      "like 'aq\\_%%'"), what="aq_ backends to end")
    for role in roles:
        ddl(direct, f"DROP ROLE IF EXISTS {role}")


def test_auth_query(pgmux, direct, aq_roles):
    mux = pgmux({"auth_type": "scram-sha-256", "auth_user": "postgres",
                 "auth_cache_ttl": 1}, start=False)
    write_userlist(mux, {"bob": PASSWORDS["bob"]})
    mux.start()
    login_all_clients(mux, "aq_user", "aq-secret")           # pass-through to the server
    assert_error(login_error(mux, "aq_user", "wrong"), "bad_password")
    assert_error(login_error(mux, "aq_expired", "aq-old"), "bad_password")
    assert_error(login_error(mux, "nobody", "x"), "bad_password")
    login_all_clients(mux, "bob", PASSWORDS["bob"])          # auth_file users still work
    # a new password is seen once the cached answer expires
    ddl(direct, "ALTER ROLE aq_user PASSWORD 'aq-new'")
    time.sleep(1.2)
    with mux.connect(user="aq_user", password="aq-new") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "aq_user"
    assert_error(login_error(mux, "aq_user", "aq-secret"), "bad_password")
    assert "aq-new" not in mux.log() and "aq-secret" not in mux.log()


def test_auth_query_md5_auth_type_uses_scram_secret(pgmux, direct, aq_roles):
    mux = pgmux({"auth_type": "md5", "auth_user": "postgres", "auth_dbname": "postgres"})
    r = run_psql(mux, "aq_user", "aq-secret")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "aq_user"


def test_auth_user_and_auth_dbname_per_database(pgmux, pg, direct, aq_roles):
    """As PgBouncer: a database entry's auth_user overrides [pgmux]'s for its clients, and its
    auth_dbname names the entry the lookup runs in."""
    dbs = db_entries(pg)
    dbs["app"] += " auth_user=postgres auth_dbname=lookup"
    dbs["lookup"] = f"host=127.0.0.1 port={pg.port} dbname=other"
    # [pgmux]'s auth_user cannot log in (alice has no password in auth_file): its lookups fail
    mux = pgmux({"auth_type": "scram-sha-256", "auth_user": "alice"}, databases=dbs)
    r = run_psql(mux, "aq_user", "aq-secret", dbname="app")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "aq_user"
    rows = direct.query("select datname, usename from pg_stat_activity "
                        "where application_name = 'pgmux auth_query'")
    # (a lookup connection of an earlier test's pgmux may still be on its way out)
    assert ("other", "postgres") in rows and not [r for r in rows if r[0] == "app"], rows
    err = login_error(mux, "aq_user", "aq-secret", dbname="other")
    assert err.sqlstate == "08006" and "could not look up" in err.message, err


def test_auth_query_does_not_block(pgmux, pg, direct, aq_roles):
    """A server that never answers the auth query: its clients are cut by
    client_login_timeout, everyone else logs in meanwhile."""
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        dbs = db_entries(pg)
        dbs["void"] = f"host=127.0.0.1 port={port} dbname=void"
        mux = pgmux({"auth_type": "scram-sha-256", "auth_user": "postgres",
                     "auth_dbname": "void", "client_login_timeout": 1}, databases=dbs,
                    start=False)
        write_userlist(mux, {"bob": PASSWORDS["bob"]})
        mux.start()
        stalled = [mux.raw(timeout=10) for _ in range(3)]
        for c in stalled:
            c.startup("aq_user", "app")
        start = time.monotonic()
        for _ in range(5):
            with mux.connect(user="bob", password=PASSWORDS["bob"]) as conn:
                conn.execute("select 1")
        # (the lookups never finish: had they blocked the loop, nothing would have got here)
        for c in stalled:
            assert c.is_closed(timeout=5)
        assert time.monotonic() - start < 5
    finally:
        silent.close()


# --- over TLS: channel binding, hostssl, cert ----------------------------------------------

def _openssl(d, *args):
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A test CA, a server certificate for 127.0.0.1, client certificates for postgres and
    for a stranger CA, made with the openssl command line."""
    d = str(tmp_path_factory.mktemp("auth-tls"))
    _openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca",
             "-keyout", "ca.key", "-out", "ca.crt")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1\n")
    for name, cn, ext in (("server", "127.0.0.1", ["-extfile", "san.ext"]),
                          ("pgclient", "postgres", [])):
        _openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr")
        _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *ext)
        os.chmod(os.path.join(d, f"{name}.key"), 0o600)
    return d


def tls_settings(d, mode="prefer", **extra):
    s = {"client_tls_sslmode": mode, "client_tls_key_file": os.path.join(d, "server.key"),
         "client_tls_cert_file": os.path.join(d, "server.crt")}
    s.update(extra)
    return s


def test_scram_channel_binding_over_tls(pgmux, direct, tls_files):
    mux = pgmux(dict(tls_settings(tls_files), auth_type="scram-sha-256"), start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice"), "bob": PASSWORDS["bob"]})
    mux.start()
    for user in ("alice", "bob"):
        with mux.connect(user=user, password=PASSWORDS[user], sslmode="require",
                         channel_binding="require") as conn:
            assert conn.execute("select current_user").fetchone()[0] == user
        with mux.connect(user=user, password=PASSWORDS[user], sslmode="require",
                         channel_binding="disable") as conn:
            assert conn.execute("select current_user").fetchone()[0] == user
        r = mux.psql("-c", "select current_user", user=user,
                     env={"PGPASSWORD": PASSWORDS[user], "PGSSLMODE": "require",
                          "PGCHANNELBINDING": "require"})
        assert r.returncode == 0 and r.stdout.strip() == user, r.stderr
    # without TLS there is nothing to bind to: libpq refuses
    with pytest.raises(psycopg.OperationalError):
        mux.connect(user="alice", password=PASSWORDS["alice"], sslmode="disable",
                    channel_binding="require")
    # a wrong password over TLS with binding is still 28P01
    with pytest.raises(psycopg.OperationalError) as ei:
        mux.connect(user="alice", password="wrong", sslmode="require", channel_binding="require")
    assert "password authentication failed" in str(ei.value)


def test_hba_hostssl_hostnossl(pgmux, direct, tls_files):
    mux = pgmux(dict(tls_settings(tls_files), auth_type="hba"), start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice")})
    write_hba(mux, ["hostssl   app alice 127.0.0.1/32 scram-sha-256",
                    "hostnossl app alice 127.0.0.1/32 reject"])
    mux.start()
    with mux.connect(user="alice", password=PASSWORDS["alice"], sslmode="require") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "alice"
    with pytest.raises(psycopg.OperationalError) as ei:
        mux.connect(user="alice", password=PASSWORDS["alice"], sslmode="disable")
    assert "pg_hba.conf rejects connection" in str(ei.value)
    assert "no encryption" in str(ei.value)
    with pytest.raises(psycopg.OperationalError) as ei:
        mux.connect(user="alice", password=PASSWORDS["alice"], dbname="other", sslmode="require")
    assert 'no pg_hba.conf entry for host "127.0.0.1", user "alice", database "other", ' \
           'SSL encryption' in str(ei.value)


def test_cert_auth(pgmux, tls_files):
    d = tls_files
    mux = pgmux(tls_settings(d, "verify-ca", client_tls_ca_file=os.path.join(d, "ca.crt"),
                             auth_type="cert"))
    cert = {"sslmode": "require", "sslcert": os.path.join(d, "pgclient.crt"),
            "sslkey": os.path.join(d, "pgclient.key")}
    with mux.connect(user="postgres", **cert) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "postgres"
    with pytest.raises(psycopg.OperationalError) as ei:
        mux.connect(user="alice", **cert)
    assert 'certificate authentication failed for user "alice"' in str(ei.value)


def test_hba_clientcert(pgmux, direct, tls_files):
    """clientcert=verify-ca on a password rule wants a verified certificate as well as the
    password; verify-full also wants its common name to be the user name."""
    d = tls_files
    mux = pgmux(tls_settings(d, "verify-ca", client_tls_ca_file=os.path.join(d, "ca.crt"),
                             auth_type="hba"), start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice"), "postgres": "pg-pw"})
    write_hba(mux, ["hostssl app   alice    127.0.0.1/32 scram-sha-256 clientcert=verify-ca",
                    "hostssl app   postgres 127.0.0.1/32 password clientcert=verify-full",
                    "hostssl other alice    127.0.0.1/32 scram-sha-256 clientcert=verify-full"])
    mux.start()
    cert = {"sslmode": "require", "sslcert": os.path.join(d, "pgclient.crt"),
            "sslkey": os.path.join(d, "pgclient.key")}
    # the certificate's CN is postgres
    with mux.connect(user="alice", password=PASSWORDS["alice"], **cert) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "alice"
    with mux.connect(user="postgres", password="pg-pw", **cert) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "postgres"
    with pytest.raises(psycopg.OperationalError) as ei:
        mux.connect(user="alice", password=PASSWORDS["alice"], dbname="other", **cert)
    assert ('certificate validation (clientcert=verify-full) failed for user "alice": '
            'CN mismatch') in str(ei.value)
    # the password is still wanted
    with pytest.raises(psycopg.OperationalError) as ei:
        mux.connect(user="alice", password="wrong", **cert)
    assert "password authentication failed" in str(ei.value)


def test_hba_clientcert_without_certificate(pgmux, direct, tls_files):
    """With client_tls_sslmode = require no certificate is asked for: a clientcert rule then
    refuses everyone with 28000, however right the password."""
    mux = pgmux(dict(tls_settings(tls_files, "require"), auth_type="hba"), start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice")})
    write_hba(mux, ["hostssl app alice 127.0.0.1/32 scram-sha-256 clientcert=verify-ca"])
    mux.start()
    with pytest.raises(psycopg.OperationalError) as ei:
        mux.connect(user="alice", password=PASSWORDS["alice"], sslmode="require")
    assert "connection requires a valid client certificate" in str(ei.value)
    assert "28000 connection requires a valid client certificate" in mux.log()
