"""Logins under attack: floods of SCRAM and cleartext password guesses and a spray of unknown
user names for auth_query must neither stall the clients already in nor keep real users out;
auth_query's waiting lookups are capped and its negative answers cached."""
import multiprocessing
import os
import random
import socket
import statistics
import string
import struct
import threading
import time

import psycopg
import pytest

import rawpg
from conftest import PASSWORDS, Background, db_entries, role_secret, wait_for, write_userlist


def ddl(direct, sql):
    direct._conn().execute(sql)


def write_hba(mux, lines):
    path = os.path.join(mux.basedir, "hba.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    mux.settings["auth_hba_file"] = path


@pytest.fixture
def storm_role(direct):
    """A role only the server knows, for auth_query."""
    ddl(direct, "DROP ROLE IF EXISTS storm_user")
    ddl(direct, "CREATE ROLE storm_user LOGIN PASSWORD 'storm-secret'")
    yield "storm_user", "storm-secret"
    direct.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE usename = 'storm_user'")
    wait_for(lambda: not direct.query("select 1 from pg_stat_activity "
                                      "where usename = 'storm_user'"),
             what="storm_user's backends to end")
    ddl(direct, "DROP ROLE IF EXISTS storm_user")


# --- attackers: each runs in its own process, so that its Python work never delays the
# measuring client's (the GIL), and opens connections at a fixed rate whatever pgmux answers.

def _read_msg(sock):
    head = b""
    while len(head) < 5:
        chunk = sock.recv(5 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    n = struct.unpack("!i", head[1:5])[0] - 4
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return head[:1], body


def _scram_attempt(port, user, db):
    """Up to the server-first message: the point where pgmux derives keys for a plaintext
    secret. Then hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(rawpg.startup_packet({"user": user, "database": db}))
        mtype, body = _read_msg(s)
        if mtype != b"R" or struct.unpack_from("!i", body)[0] != 10:
            return mtype
        first = b"n,,n=,r=" + os.urandom(9).hex().encode()
        s.sendall(rawpg.message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        return _read_msg(s)[0]


def _cleartext_attempt(port, user, db):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(rawpg.startup_packet({"user": user, "database": db}))
        mtype, body = _read_msg(s)
        if mtype != b"R" or struct.unpack_from("!i", body)[0] != 3:
            return mtype
        s.sendall(rawpg.message(b"p", os.urandom(8).hex().encode() + b"\0"))
        return _read_msg(s)[0]


def _spray_attempt(port, user, db):
    """A random name, and gone at once."""
    name = "nobody_" + "".join(random.choice(string.ascii_lowercase) for _ in range(12))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(rawpg.startup_packet({"user": name, "database": db}))
    return b"-"


ATTEMPTS = {"scram": _scram_attempt, "cleartext": _cleartext_attempt, "spray": _spray_attempt}


def _attack(kind, port, user, db, rate, duration, counts):
    """Start rate attempts a second for duration seconds, each on a thread of a pool of 256,
    so a slow answer never slows the rate down; count what came back."""
    import concurrent.futures
    attempt = ATTEMPTS[kind]
    seen = {}
    lock = threading.Lock()

    def one():
        try:
            r = attempt(port, user, db)
        except (OSError, ConnectionError):
            r = b"x"
        with lock:
            seen[r] = seen.get(r, 0) + 1

    with concurrent.futures.ThreadPoolExecutor(256) as pool:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < duration:
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one)
            n += 1
    counts.update({k.decode(): v for k, v in seen.items()})


def start_attack(kind, port, user, db, rate, duration):
    ctx = multiprocessing.get_context("fork")
    counts = ctx.Manager().dict()
    p = ctx.Process(target=_attack, args=(kind, port, user, db, rate, duration, counts))
    p.start()
    return p, counts


def steady_latencies(conn, seconds):
    """Seconds each `select 1` took, one every 2 ms or so, for this long."""
    latencies = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        conn.execute("select 1").fetchone()
        latencies.append(time.monotonic() - t0)
        time.sleep(0.002)
    return latencies


def p99_of(latencies):
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_login_storm_does_not_stall_others(pgmux, direct, storm_role):
    """1000 SCRAM attempts a second against a user with a plaintext auth_file secret (deriving
    its keys each time would need more than the whole loop: PBKDF2-4096 takes 1 to 2.5 ms
    here), cleartext guesses against a SCRAM secret and a spray of unknown names for
    auth_query: a client that is in keeps answering quickly, and real users (auth_file and
    auth_query) still log in."""
    mux = pgmux({"auth_type": "hba", "auth_user": "postgres", "max_client_conn": 2000,
                 "client_login_timeout": 10}, start=False)
    write_userlist(mux, {"postgres": "", "bob": PASSWORDS["bob"],
                         "alice": role_secret(direct, "alice")})
    write_hba(mux, ["host all postgres 127.0.0.1/32 trust",
                    "host all alice 127.0.0.1/32 password",
                    "host all all 127.0.0.1/32 scram-sha-256"])
    mux.start()
    steady = mux.connect(user="postgres")
    steady.execute("select 1")
    # the same client's latency before the storm: what this machine's load allows right now
    calm = p99_of(steady_latencies(steady, 2.0))

    duration = 6.0
    rates = {"scram": 1000, "cleartext": 100, "spray": 200}
    attackers = [start_attack(kind, mux.port, user, "app", rates[kind], duration)
                 for kind, user in (("scram", "bob"), ("cleartext", "alice"), ("spray", "-"))]
    logins = {}

    def real_logins():
        # real users log in during the storm, one a second, with libpq
        for user, pw in [("storm_user", "storm-secret"), ("bob", PASSWORDS["bob"]),
                         ("alice", PASSWORDS["alice"])]:
            time.sleep(1.0)
            t1 = time.monotonic()
            try:
                with mux.connect(user=user, password=pw) as conn:
                    conn.execute("select 1")
                logins[user] = ("ok", time.monotonic() - t1)
            except psycopg.OperationalError as e:
                logins[user] = (str(e).strip(), time.monotonic() - t1)
    real = Background(real_logins)
    latencies = steady_latencies(steady, duration)
    real.result(30)
    results = {}
    for (p, counts), kind in zip(attackers, rates):
        p.join(60)
        results[kind] = dict(counts)
    p99 = p99_of(latencies)
    print(f"steady client: {len(latencies)} queries, median "
          f"{statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms (p99 before the storm {calm * 1000:.1f} ms)")
    print(f"attack answers: {results}")
    print(f"real logins: {logins}")
    # R = the SCRAM server-first / an error message came back: pgmux answered them all
    assert results["scram"].get("R", 0) >= 0.8 * rates["scram"] * duration, results
    # A loop busy deriving keys answers in a second or more (only a few queries get through);
    # the attackers' own CPU slows a loaded machine by tenths, and the bars grow with the
    # latency the same client saw just before the storm.
    assert p99 < max(0.5, 4 * calm), f"p99 {p99 * 1000:.0f} ms, {calm * 1000:.0f} ms before"
    # the legitimate cleartext user may meet a spent budget (53300) but not a wrong verdict
    assert logins.get("storm_user", ("missing",))[0] == "ok", logins
    assert logins["storm_user"][1] < max(3.0, 20 * calm), logins
    assert logins.get("bob", ("missing",))[0] == "ok", logins
    alice = logins.get("alice", ("missing",))[0]
    assert alice == "ok" or "try again later" in alice, logins
    # after the storm everyone logs in at once
    for user, pw in (("storm_user", "storm-secret"), ("bob", PASSWORDS["bob"])):
        with mux.connect(user=user, password=pw) as conn:
            assert conn.execute("select current_user").fetchone()[0] == user
    steady.close()


def cpu_seconds(pid):
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_scram_flood_costs_no_pbkdf2(pgmux):
    """1000 SCRAM attempts against a user with a plaintext secret cost pgmux far less CPU than
    1000 PBKDF2 derivations (timed here, on the same machine): the keys are derived once."""
    import hashlib
    mux = pgmux({"auth_type": "scram-sha-256", "max_client_conn": 1000}, start=False)
    write_userlist(mux, {"bob": PASSWORDS["bob"]})
    mux.start()
    t0 = time.perf_counter()
    for _ in range(50):
        hashlib.pbkdf2_hmac("sha256", b"pw", os.urandom(16), 4096)
    pbkdf2 = (time.perf_counter() - t0) / 50
    n = 1000
    before = cpu_seconds(mux.proc.pid)
    p, counts = start_attack("scram", mux.port, "bob", "app", 500, n / 500)
    p.join(120)
    used = cpu_seconds(mux.proc.pid) - before
    print(f"pgmux used {used:.2f} s of CPU for {dict(counts)} SCRAM attempts; "
          f"{n} PBKDF2-4096 take {n * pbkdf2:.2f} s here")
    assert counts.get("R", 0) >= n * 0.95, dict(counts)
    assert used < 0.5 * n * pbkdf2


def test_cleartext_against_scram_secret_cached(pgmux, direct):
    """A cleartext password checked once against a SCRAM secret is remembered: the next logins
    cost no PBKDF2, even once the budget is spent by wrong guesses."""
    secret = role_secret(direct, "alice")
    mux = pgmux({"auth_type": "password", "auth_kdf_budget": 20}, start=False)
    write_userlist(mux, {"alice": secret})
    mux.start()
    with mux.connect(user="alice", password=PASSWORDS["alice"]) as conn:
        conn.execute("select 1")
    # 60 wrong guesses at once spend the budget (20 ms, about ten checks), the rest are refused
    guesses = []
    for _ in range(60):
        c = mux.raw(timeout=10)
        c.startup("alice", "app")
        mtype, payload = c.read_msg()
        assert mtype == b"R" and struct.unpack_from("!i", payload)[0] == 3   # cleartext
        guesses.append(c)
    for c in guesses:
        c.send_msg(b"p", b"wrong\0")
    answers = [c.error_or_close(10) for c in guesses]
    for c in guesses:
        c.close()
    assert all(isinstance(a, rawpg.PgError) and a.sqlstate in ("28P01", "53300")
               for a in answers), answers
    refused = sum(a.sqlstate == "53300" for a in answers)
    print(f"{refused} of 60 wrong guesses refused with 53300")
    assert refused > 0
    # the right password still gets in at once: it is cached
    for _ in range(5):
        with mux.connect(user="alice", password=PASSWORDS["alice"]) as conn:
            assert conn.execute("select current_user").fetchone()[0] == "alice"


def _server_first_time(port, user):
    """Seconds from SASLInitialResponse to the server-first message."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(rawpg.startup_packet({"user": user, "database": "app"}))
        mtype, body = _read_msg(s)
        assert mtype == b"R" and struct.unpack_from("!i", body)[0] == 10
        first = b"n,,n=,r=" + os.urandom(9).hex().encode()
        t0 = time.monotonic()
        s.sendall(rawpg.message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        mtype, body = _read_msg(s)
        assert mtype == b"R" and struct.unpack_from("!i", body)[0] == 11
        return time.monotonic() - t0


def test_scram_timing_does_not_tell_users_apart(pgmux):
    """A user with a plaintext auth_file secret answers the SCRAM client-first message as fast
    as an unknown user (whose exchange is a mock): the derived keys come from the cache."""
    mux = pgmux({"auth_type": "scram-sha-256"}, start=False)
    write_userlist(mux, {"bob": PASSWORDS["bob"]})
    mux.start()
    _server_first_time(mux.port, "bob")    # the one derivation
    known, unknown = [], []
    for _ in range(40):
        known.append(_server_first_time(mux.port, "bob"))
        unknown.append(_server_first_time(mux.port, "nobody_at_all"))
    k, u = statistics.median(known) * 1000, statistics.median(unknown) * 1000
    print(f"median server-first: plaintext-secret user {k:.2f} ms, unknown user {u:.2f} ms")
    # PBKDF2-4096 takes 1.5 to 2.5 ms here: a difference that large would tell
    assert k < u + 1.0


def test_iteration_count_above_budget_is_refused(pgmux):
    """A stored SCRAM secret dearer than a whole second's budget is never checked in
    cleartext."""
    import base64
    import hashlib
    import hmac
    salt = os.urandom(16)
    iters = 1000000   # 0.5 to 1 s of PBKDF2 on a current core, 10 s under ASan
    salted = hashlib.pbkdf2_hmac("sha256", b"pw", salt, iters)
    ckey = hmac.new(salted, b"Client Key", "sha256").digest()
    skey = hmac.new(salted, b"Server Key", "sha256").digest()
    secret = (f"SCRAM-SHA-256${iters}:{base64.b64encode(salt).decode()}$"
              f"{base64.b64encode(hashlib.sha256(ckey).digest()).decode()}:"
              f"{base64.b64encode(skey).decode()}")
    mux = pgmux({"auth_type": "password", "auth_kdf_budget": 100}, start=False)
    write_userlist(mux, {"bob": secret})
    mux.start()
    c = mux.raw()
    t0 = time.monotonic()
    with pytest.raises(rawpg.PgError) as ei:
        c.login("bob", "app", password="pw")
    print(f"refused in {(time.monotonic() - t0) * 1000:.1f} ms")
    assert ei.value.sqlstate == "28P01"
    assert "more than auth_kdf_budget allows" in mux.log()


# --- auth_query under a spray --------------------------------------------------------------

@pytest.fixture
def silent_server():
    """A listener that accepts and never answers: auth_query lookups on it wait forever."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(512)
    yield s.getsockname()[1]
    s.close()


def _answer(c, timeout):
    """The fields of an ErrorResponse c got within timeout, "closed", or None (still waits)."""
    try:
        mtype, payload = c.read_msg(timeout)
    except TimeoutError:
        return None
    except rawpg.Closed:
        return "closed"
    return rawpg.parse_fields(payload) if mtype == b"E" else mtype


def test_auth_query_pending_cap_and_withdraw(pgmux, pg, silent_server):
    """Lookups waiting for their query are capped (53300 beyond); once their clients leave,
    their queries are dropped and new names are looked up again."""
    dbs = db_entries(pg)
    dbs["void"] = f"host=127.0.0.1 port={silent_server} dbname=void"
    mux = pgmux({"auth_type": "scram-sha-256", "auth_user": "postgres", "auth_dbname": "void",
                 "max_client_conn": 600, "client_login_timeout": 60,
                 "server_connect_timeout": 60}, databases=dbs)
    clients = []
    for i in range(300):
        c = mux.raw(timeout=10)
        c.startup(f"spray_{i}", "app")
        clients.append(c)
    # pgmux takes the clients in whatever order their packets come: count, do not point
    answers = {}

    def all_refused():
        for i, c in enumerate(clients):
            if i not in answers:
                a = _answer(c, 0.001)
                if a is not None:
                    answers[i] = a
        return len(answers) >= 300 - 256
    wait_for(all_refused, 10, interval=0.1, what="44 clients to be refused")
    refused = [a for a in answers.values() if isinstance(a, dict) and a.get("C") == "53300"]
    print(f"{300 - len(answers)} clients wait for their lookup, {len(refused)} were refused: "
          f"{refused[0]}")
    assert len(refused) == len(answers) == 300 - 256, answers
    assert "auth_query" in refused[0].get("M", ""), refused[0]
    # no more refusals come: the others wait for their lookups
    assert not [c for i, c in enumerate(clients) if i not in answers and _answer(c, 0.001)]
    # the waiting clients leave: their queries go, and new names are looked up again
    for c in clients:
        c.close()

    def accepted():
        c = mux.raw(timeout=10)
        c.startup("spray_after", "app")
        try:
            return _answer(c, 0.3) is None
        finally:
            c.close()
    wait_for(accepted, 10, interval=0.2, what="a new name to be looked up")


def test_auth_query_negative_answers_cached(pgmux, direct):
    """With auth_cache_ttl = 0, "no such user" and a failed query are still remembered for a
    few seconds: repeating a name does not ask the server again."""
    ddl(direct, "DROP SEQUENCE IF EXISTS storm_lookups")
    ddl(direct, "CREATE SEQUENCE storm_lookups")
    # counts every run in a sequence, and fails for the name boom once it has counted
    query = ("SELECT x.usename, x.passwd FROM (SELECT CASE WHEN $1 = 'boom' "
             "THEN 1 / (n - n) ELSE 1 END AS ok FROM (SELECT nextval('storm_lookups') AS n) a) s "
             "CROSS JOIN LATERAL (SELECT usename, passwd FROM pg_shadow "
             "WHERE usename = $1 AND s.ok = 1) x")
    try:
        mux = pgmux({"auth_type": "md5", "auth_user": "postgres", "auth_dbname": "postgres",
                     "auth_cache_ttl": 0, "auth_query": query})

        def lookups():
            return direct.scalar("SELECT last_value FROM storm_lookups")

        errors = []
        for _ in range(5):
            for user in ("nobody_here", "boom"):
                c = mux.raw()
                with pytest.raises(rawpg.PgError) as ei:
                    c.login(user, "app", password="x")
                errors.append(ei.value.sqlstate)
                c.close()
        print(f"errors {errors}, lookups run {lookups()}")
        assert set(errors) == {"28P01", "08006"}, errors
        # one lookup for each name, not five
        assert lookups() == 2, lookups()
    finally:
        ddl(direct, "DROP SEQUENCE IF EXISTS storm_lookups")
