"""Sharding by user id over two PostgreSQL servers behind one database name.

Where a row landed is checked on each shard's server directly, and by PostgreSQL's own bucket
expression there (hashint8extended(user_id, 0) & 16383), against the map file pgmux was given.
"""
import os
import struct
import subprocess
import sys
import time

import psycopg
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from pgcluster import PGMUX_BIN, PgCluster  # noqa: E402
from conftest import wait_for  # noqa: E402
from shardmap import bucket_owners  # noqa: E402

BUCKETS = 16384
SCHEMA = """
CREATE TABLE users (user_id bigint PRIMARY KEY, name text);
CREATE TABLE orders (id bigserial, user_id bigint NOT NULL, amount int);
"""


@pytest.fixture(scope="module")
def shards():
    """Two servers, each with an empty database app holding the sharded tables."""
    servers = [PgCluster().init().start() for _ in range(2)]
    for s in servers:
        s.sql("CREATE DATABASE app")
        s.sql(SCHEMA, dbname="app")
    yield servers
    for s in servers:
        s.destroy()


@pytest.fixture
def clean(shards):
    for s in shards:
        s.sql("TRUNCATE users, orders", dbname="app")
    return shards


def owners(path):
    """bucket -> shard name, every bucket covered."""
    owner = bucket_owners(path)
    assert len(owner) == BUCKETS
    return owner


def map_tool(*args):
    return subprocess.run([PGMUX_BIN, "--shard-map", *args], check=True, capture_output=True,
                          text=True).stdout


def sections(shards, map_path, **keys):
    lines = []
    for name, s in zip(("one", "two"), shards):
        lines += ["", f"[cluster.{name}]", f"hosts = 127.0.0.1:{s.port}",
                  "health_check_interval = 0.2"]
    lines += ["", "[shards.users]", "key = user_id", f"map = {map_path}",
              "shard.a = cluster=one", "shard.b = cluster=two"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def sharded(pgmux, clean, tmp_path):
    def make(settings=None, **keys):
        path = str(tmp_path / "users.map")
        map_tool("create", "--buckets", str(BUCKETS), "a", "b", "-o", path)
        mux = pgmux(settings=settings, databases={"app": "shards=users dbname=app"},
                    extra_sections=sections(clean, path, **keys))
        mux.map_path = path
        return mux
    return make


def rows_on(server, table="users"):
    return [r.split("|") for r in server.sql(
        f"SELECT user_id, hashint8extended(user_id, 0) & {BUCKETS - 1} FROM {table}",
        dbname="app").splitlines() if r]


def placement(shards, owner, table="users"):
    """{user_id: shard} as found on the servers; asserts each row is where the map says."""
    found = {}
    for name, s in zip(("a", "b"), shards):
        for uid, bucket in rows_on(s, table):
            assert owner[int(bucket)] == name, f"user {uid} (bucket {bucket}) is on shard {name}"
            found.setdefault(int(uid), []).append(name)
    return found


def test_rows_land_where_the_map_says(sharded, clean):
    mux = sharded()
    owner = owners(mux.map_path)
    with mux.connect(dbname="app") as c:
        for uid in range(1, 1001):
            c.execute("INSERT INTO users (user_id, name) VALUES (%s, %s)", (uid, f"u{uid}"))
        with c.cursor(binary=True) as cur:
            for uid in range(-500, 0):
                cur.execute("INSERT INTO users (user_id, name) VALUES (%b, 'neg')", (uid,))
        for uid in (2**63 - 1, -2**63):
            c.execute(f"INSERT INTO users (user_id, name) VALUES ({uid}, 'extreme')")
    found = placement(clean, owner)
    assert len(found) == 1502 and all(len(v) == 1 for v in found.values())
    counts = {name: sum(1 for v in found.values() if v == [name]) for name in "ab"}
    assert counts["a"] > 500 and counts["b"] > 500, counts
    # keyed reads come back from the shard that holds the row
    with mux.connect(dbname="app") as c:
        for uid in (1, 2, 3, -7, 2**63 - 1):
            assert c.execute("SELECT name FROM users WHERE user_id = %s", (uid,)).fetchone()
            port, = c.execute("SELECT inet_server_port() FROM users WHERE user_id = %s",
                              (uid,)).fetchone()
            assert port == clean["ab".index(owner_of(mux, uid))].port


def owner_of(mux, key):
    return mux.admin(f"SHOW SHARD FOR {key}")[0]["shard"]


def test_every_key_source(sharded, clean):
    mux = sharded()
    a, b = [next(k for k in range(1, 100) if owner_of(mux, k) == s) for s in "ab"]
    port = {"a": clean[0].port, "b": clean[1].port}
    with mux.connect(dbname="app") as c:
        here = "SELECT inet_server_port()"
        assert c.execute(f"/* pgmux:shard_key={b} */ {here}").fetchone()[0] == port["b"]
        assert c.execute(f"/* pgmux:shard=a */ {here}").fetchone()[0] == port["a"]
        c.execute(f"SET pgmux.shard_key = {b}")
        assert c.execute(here).fetchone()[0] == port["b"]
        # a hint outranks the setting
        assert c.execute(f"/* pgmux:shard_key={a} */ {here}").fetchone()[0] == port["a"]
        c.execute("RESET pgmux.shard_key")
        with c.transaction():
            c.execute(f"SET LOCAL pgmux.shard_key = {a}")
            assert c.execute(here).fetchone()[0] == port["a"]
        # literals, casts, qualified columns, IN lists, UPDATE and DELETE
        c.execute(f"INSERT INTO users (name, user_id) VALUES ('x', '{b}'::bigint)")
        assert c.execute(f"SELECT u.name, inet_server_port() FROM users u WHERE u.user_id = {b}"
                         ).fetchone() == ("x", port["b"])
        c.execute(f"UPDATE users SET name = 'y' WHERE user_id = {b}")
        assert c.execute("SELECT name FROM users WHERE user_id IN (%s, %s)", (b, b)).fetchone() == ("y",)
        c.execute("DELETE FROM users WHERE user_id = %s", (b,))
    assert clean[1].sql(f"SELECT count(*) FROM users WHERE user_id = {b}", dbname="app") == "0"
    # the startup option
    with mux.connect(dbname="app", options=f"-c pgmux.shard_key={a}") as c:
        assert c.execute("SELECT inet_server_port()").fetchone()[0] == port["a"]


def test_multi_row_insert_and_cross_shard_refusals(sharded, clean):
    mux = sharded()
    a = [k for k in range(1, 200) if owner_of(mux, k) == "a"][:4]
    b = next(k for k in range(1, 200) if owner_of(mux, k) == "b")
    with mux.connect(dbname="app", autocommit=True) as c:
        c.execute("INSERT INTO users (user_id, name) VALUES (%s, 'm'), (%s, 'm'), (%s, 'm')", a[:3])
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="shards a and b|shards b and a"):
            c.execute("INSERT INTO users (user_id, name) VALUES (%s, 'x'), (%s, 'x')", (a[3], b))
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="several|shards"):
            c.execute("SELECT * FROM users WHERE user_id IN (%s, %s)", (a[0], b))
        # the session goes on
        assert c.execute("SELECT count(*) FROM users WHERE user_id = %s", (a[1],)).fetchone() == (1,)
    assert clean[0].sql("SELECT count(*) FROM users WHERE name = 'm'", dbname="app") == "3"
    assert clean[1].sql("SELECT count(*) FROM users", dbname="app") == "0"


def test_transaction_goes_to_its_first_keys_shard(sharded, clean):
    """psycopg sends BEGIN in the extended protocol: pgmux answers it and waits for the key."""
    mux = sharded()
    a, b = keys_on(mux, "a", 1)[0], keys_on(mux, "b", 1)[0]
    with mux.connect(dbname="app") as c:
        for first, port in ((b, clean[1].port), (a, clean[0].port), (b, clean[1].port)):
            with c.transaction():
                c.execute("INSERT INTO users (user_id, name) VALUES (%s, 't') "
                          "ON CONFLICT (user_id) DO UPDATE SET name = 't2'", (first,))
                assert c.execute("SELECT inet_server_port() FROM users WHERE user_id = %s",
                                 (first,)).fetchone() == (port,)
    assert clean[1].sql(f"SELECT name FROM users WHERE user_id = {b}", dbname="app") == "t2"
    assert clean[0].sql(f"SELECT name FROM users WHERE user_id = {a}", dbname="app") == "t"
    # a driver that prepares apart from running (Parse and Sync first) inside the transaction
    with psycopg.connect(mux.dsn("app", "postgres"), autocommit=True, prepare_threshold=0) as c:
        for first in (b, a, b, a):
            with c.transaction():
                c.execute("UPDATE users SET name = name || '+' WHERE user_id = %s", (first,))
    assert clean[1].sql(f"SELECT name FROM users WHERE user_id = {b}", dbname="app") == "t2++"
    assert clean[0].sql(f"SELECT name FROM users WHERE user_id = {a}", dbname="app") == "t++"


def test_cross_shard_transaction_applies_nothing(sharded, clean):
    mux = sharded()
    a = next(k for k in range(1, 200) if owner_of(mux, k) == "a")
    b = next(k for k in range(1, 200) if owner_of(mux, k) == "b")
    with mux.connect(dbname="app") as c:
        c.execute("BEGIN")
        c.execute("INSERT INTO users (user_id, name) VALUES (%s, 'txn')", (a,))
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="transaction"):
            c.execute("INSERT INTO users (user_id, name) VALUES (%s, 'txn')", (b,))
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1 FROM users WHERE user_id = %s", (a,))
        c.execute("COMMIT")  # answered ROLLBACK, as PostgreSQL answers it
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert c.execute("SELECT count(*) FROM users WHERE user_id = %s", (a,)).fetchone() == (0,)
    for s in clean:
        assert s.sql("SELECT count(*) FROM users", dbname="app") == "0"


def test_no_key_policies(sharded, clean):
    mux = sharded()
    with mux.connect(dbname="app", autocommit=True) as c:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="app is sharded by user_id"):
            c.execute("SELECT count(*) FROM users")
        # statements that touch no table run anywhere
        assert c.execute("SELECT 1").fetchone() == (1,)
        c.execute("SET application_name = 'sharded'")
        assert c.execute("SHOW application_name").fetchone() == ("sharded",)
    mux2 = sharded(no_shard_key="b")
    with mux2.connect(dbname="app") as c:
        c.execute("INSERT INTO orders (user_id, amount) SELECT 1, 5")
        assert c.execute("SELECT inet_server_port() FROM orders").fetchone()[0] == clean[1].port


def test_new_map_version_on_reload_and_bad_map_refused(sharded, clean):
    mux = sharded()
    key = 1
    before = owner_of(mux, key)
    after = "b" if before == "a" else "a"
    path = mux.map_path
    # a transaction running on the old shard finishes there, across the switch
    running = mux.connect(dbname="app")
    running.execute("BEGIN")
    running.execute("INSERT INTO orders (user_id, amount) VALUES (%s, 1)", (key,))
    map_tool("override", path, str(key), after, "-o", path)
    mux.admin("RELOAD")
    assert owner_of(mux, key) == after
    running.execute("INSERT INTO orders (user_id, amount) VALUES (%s, 2)", (key,))
    running.execute("COMMIT")
    old = clean["ab".index(before)]
    assert old.sql(f"SELECT count(*) FROM orders WHERE user_id = {key}", dbname="app") == "2"
    # new units of work for the moved key go to its new shard
    with mux.connect(dbname="app") as c:
        c.execute("INSERT INTO users (user_id, name) VALUES (%s, 'moved')", (key,))
    assert clean["ab".index(after)].sql(f"SELECT count(*) FROM users WHERE user_id = {key}",
                                        dbname="app") == "1"
    # a corrupted map is refused whole and the running one stays
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("range 0-", "range 1-", 1))
    with pytest.raises(Exception, match="users.map: line [0-9]+: buckets 0-0 are in no range"):
        mux.admin("RELOAD")
    assert owner_of(mux, key) == after
    rows = mux.admin("SHOW SHARDS")
    assert {r["map_version"] for r in rows} == {"2"}


def test_admin_views(sharded, clean):
    mux = sharded()
    rows = mux.admin("SHOW SHARDS")
    assert [(r["shard"], r["cluster"], r["buckets"]) for r in rows] == [
        ("a", "one", str(BUCKETS // 2)), ("b", "two", str(BUCKETS // 2))]
    one = mux.admin("SHOW SHARD FOR 42")[0]
    want = clean[0].sql(f"SELECT hashint8extended(42, 0), hashint8extended(42, 0) & {BUCKETS - 1}")
    assert f"{one['hash']}|{one['bucket']}" == want
    # the command line says the same without asking the running pgmux
    out = subprocess.run([PGMUX_BIN, "--shard-of", "42", mux.config_path], check=True,
                         capture_output=True, text=True).stdout.split()
    assert out[out.index("hash") + 1] == one["hash"] and out[out.index("shard") + 1] == one["shard"]
    route = mux.admin("SHOW ROUTE FOR SELECT * FROM users WHERE user_id = 42")[0]
    assert route["shard"] == one["shard"] and route["found_by"] == "key"
    assert route["role"] == "replica"
    route = mux.admin("SHOW ROUTE FOR UPDATE users SET name = 'x'")[0]
    assert route["shard"] is None and "names no user_id" in route["refused"]


def keys_on(mux, shard, n, start=1):
    return [k for k in range(start, start + 400) if owner_of(mux, k) == shard][:n]


def test_prepared_statements_and_batches(sharded, clean):
    mux = sharded()
    a, b = keys_on(mux, "a", 5), keys_on(mux, "b", 5)
    with mux.connect(dbname="app", autocommit=True) as c:
        # named statements, parsed once per statement and reused with every key
        for uid in a + b:
            c.execute("INSERT INTO users (user_id, name) VALUES (%s, 'p')", (uid,), prepare=True)
        for uid in a + b:
            assert c.execute("SELECT name FROM users WHERE user_id = %s", (uid,),
                             prepare=True).fetchone() == ("p",)
        # a batch up to one Sync runs on one shard: fine within a shard, refused across
        with c.cursor() as cur:
            cur.executemany("UPDATE users SET name = 'batch' WHERE user_id = %s", [(k,) for k in a])
            with pytest.raises(psycopg.errors.FeatureNotSupported, match="runs on one shard"):
                cur.executemany("UPDATE users SET name = 'cross' WHERE user_id = %s",
                                [(a[0],), (b[0],)])
    assert clean[0].sql("SELECT count(*) FROM users WHERE name = 'batch'", dbname="app") == "5"
    for s in clean:
        assert s.sql("SELECT count(*) FROM users WHERE name = 'cross'", dbname="app") == "0"
    routes = {r["database"]: r for r in mux.admin("SHOW ROUTES")}
    assert int(routes["app"]["shard_by_sql"]) >= 20 and int(routes["app"]["shard_cross"]) >= 1


def test_session_mode_and_direct_shard(sharded, clean):
    mux = sharded(settings={"pool_mode": "session"})
    a = keys_on(mux, "a", 1)[0]
    with pytest.raises(psycopg.OperationalError, match="pgmux.shard_key"):
        mux.connect(dbname="app")
    with mux.connect(dbname="app", options=f"-c pgmux.shard_key={a}") as c:
        assert c.execute("SELECT inet_server_port()").fetchone()[0] == clean[0].port
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="session mode"):
            c.execute("SET pgmux.shard_key = 1")
        assert c.execute("SELECT inet_server_port()").fetchone()[0] == clean[0].port
    # each shard is a database of its own, for work on one shard
    with mux.connect(dbname="app.b") as c:
        assert c.execute("SELECT inet_server_port()").fetchone()[0] == clean[1].port


def test_reads_without_key_go_to_every_shard(sharded, clean):
    mux = sharded(no_shard_key="all")
    a, b = keys_on(mux, "a", 30), keys_on(mux, "b", 20)
    with mux.connect(dbname="app", autocommit=True) as c:
        for uid in a + b:
            c.execute("INSERT INTO users (user_id, name) VALUES (%s, 'fan')", (uid,))
        # extended protocol (psycopg's default) and the simple protocol alike
        cur = c.execute("SELECT user_id, inet_server_port() FROM users WHERE name = %s", ("fan",))
        rows = cur.fetchall()
        assert cur.rowcount == 50 and sorted(r[0] for r in rows) == sorted(a + b)
        assert {r[1] for r in rows} == {clean[0].port, clean[1].port}
        assert [d.name for d in cur.description] == ["user_id", "inet_server_port"]
        with psycopg.ClientCursor(c) as cc:
            cc.execute("SELECT user_id FROM users WHERE name = 'fan'")
            assert cc.rowcount == 50 and len(cc.fetchall()) == 50
        # rows that would have to be merged, writes and transactions need a key
        for sql, why in (("SELECT count(*) FROM users", "aggregates"),
                         ("SELECT * FROM users ORDER BY user_id", "ORDER BY"),
                         ("SELECT * FROM users LIMIT 3", "LIMIT"),
                         ("UPDATE users SET name = 'x'", "writes")):
            with pytest.raises(psycopg.errors.FeatureNotSupported, match=why):
                c.execute(sql)
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="inside a transaction"):
            with c.transaction():
                c.execute("SELECT * FROM users")
        # an error on one shard ends the round there, and the session goes on
        clean[1].sql("CREATE TABLE only_a_lacks (x int)", dbname="app")
        try:
            with pytest.raises(psycopg.errors.UndefinedTable):
                c.execute("SELECT * FROM only_a_lacks")
        finally:
            clean[1].sql("DROP TABLE only_a_lacks", dbname="app")
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert c.execute("SELECT name FROM users WHERE user_id = %s", (a[0],)).fetchone() == ("fan",)
    # a query pipelined behind one going to every shard waits for its last shard's answer
    with mux.raw() as raw:
        raw.login("postgres", "app")
        both = [b"SELECT user_id FROM users WHERE name = 'fan'\0", b"SELECT 42\0"]
        raw.send(b"".join(b"Q" + struct.pack("!I", len(q) + 4) + q for q in both))
        seen = []
        while seen.count(b"Z") < 2:
            mtype, payload = raw.read_msg()
            if mtype in (b"C", b"Z", b"T"):
                seen.append(mtype)
            if mtype == b"C":
                seen.append(payload.rstrip(b"\0"))
            if mtype == b"D" and seen.count(b"Z") == 1:
                seen.append(payload)
    assert seen[:4] == [b"T", b"C", b"SELECT 50", b"Z"], seen
    assert seen[4] == b"T" and seen[-3:] == [b"C", b"SELECT 1", b"Z"], seen
    routes = {r["database"]: r for r in mux.admin("SHOW ROUTES")}
    assert int(routes["app"]["shard_fanned_out"]) >= 2


def test_keyed_reads_use_the_shards_replicas(pgmux, tmp_path):
    """Inside a shard, pgmux routes as for a cluster= database: keyed reads go to that shard's
    replica, keyed writes to its primary."""
    from replication import ReplicaSet
    rs = ReplicaSet(replicas=1).start()
    other = PgCluster().init().start()
    try:
        for s in (rs.primary, other):
            s.sql("CREATE DATABASE app")
            s.sql(SCHEMA, dbname="app")
        rs.wait_caught_up()
        path = str(tmp_path / "users.map")
        map_tool("create", "--buckets", str(BUCKETS), "a", "b", "-o", path)
        extra = "\n".join([
            "", "[cluster.one]",
            f"hosts = 127.0.0.1:{rs.primary.port} 127.0.0.1:{rs.replicas[0].port}",
            "health_check_interval = 0.2", "",
            "[cluster.two]", f"hosts = 127.0.0.1:{other.port}", "",
            "[shards.users]", "key = user_id", f"map = {path}",
            "shard.a = cluster=one", "shard.b = cluster=two", ""])
        mux = pgmux(databases={"app": "shards=users dbname=app"}, extra_sections=extra)
        a = keys_on(mux, "a", 1)[0]

        def replica_known():
            rows = [r for r in mux.admin("SHOW TOPOLOGY") if r["cluster"] == "one"]
            return sum(1 for r in rows if r["role"] == "replica" and r["healthy"] == "1") == 1
        deadline = time.time() + 15
        while not replica_known():
            assert time.time() < deadline, "pgmux never saw shard a's replica healthy"
            time.sleep(0.05)
        with mux.connect(dbname="app") as c:
            port, = c.execute("INSERT INTO users (user_id, name) VALUES (%s, 'r') "
                              "RETURNING inet_server_port()", (a,)).fetchone()
            assert port == rs.primary.port
            rs.wait_caught_up()
            port, rec = c.execute("SELECT inet_server_port(), pg_is_in_recovery() FROM users "
                                  "WHERE user_id = %s", (a,)).fetchone()
            assert (port, rec) == (rs.replicas[0].port, True)
    finally:
        rs.stop()
        other.destroy()


def test_text_and_uuid_keys(pgmux, clean, tmp_path):
    """key_type text and uuid: placed by PostgreSQL's hashtextextended / uuid_hash_extended."""
    import uuid
    for s in clean:
        s.sql("CREATE TABLE IF NOT EXISTS tenants (tenant text PRIMARY KEY); "
              "CREATE TABLE IF NOT EXISTS things (id uuid PRIMARY KEY); "
              "TRUNCATE tenants, things", dbname="app")
    path = str(tmp_path / "any.map")
    map_tool("create", "--buckets", str(BUCKETS), "a", "b", "-o", path)
    lines = []
    for name, s in zip(("one", "two"), clean):
        lines += ["", f"[cluster.{name}]", f"hosts = 127.0.0.1:{s.port}"]
    for set_name, key, kind in (("by_tenant", "tenant", "text"), ("by_id", "id", "uuid")):
        lines += ["", f"[shards.{set_name}]", f"key = {key}", f"key_type = {kind}",
                  f"map = {path}", "shard.a = cluster=one", "shard.b = cluster=two"]
    mux = pgmux(databases={"t": "shards=by_tenant dbname=app", "u": "shards=by_id dbname=app"},
                extra_sections="\n".join(lines) + "\n")
    owner = owners(path)
    tenants = ["", "acme", "Ünïcode ☃", "x" * 300] + [f"tenant-{i}" for i in range(200)]
    ids = [uuid.uuid4() for _ in range(200)]
    with mux.connect(dbname="t") as c:
        for t in tenants:
            c.execute("INSERT INTO tenants (tenant) VALUES (%s)", (t,))
    with mux.connect(dbname="u") as c:
        with c.cursor(binary=True) as cur:
            for i in ids:
                cur.execute("INSERT INTO things (id) VALUES (%b)", (i,))
    for name, s in zip("ab", clean):
        for fn, col, table in (("hashtextextended", "tenant", "tenants"),
                               ("uuid_hash_extended", "id", "things")):
            buckets = s.sql(f"SELECT {fn}({col}, 0) & {BUCKETS - 1} FROM {table}",
                            dbname="app").split()
            assert all(owner[int(b)] == name for b in buckets), (fn, name)
    total = sum(int(s.sql("SELECT count(*) FROM tenants", dbname="app")) for s in clean)
    assert total == len(tenants)
    total = sum(int(s.sql("SELECT count(*) FROM things", dbname="app")) for s in clean)
    assert total == len(ids)
    assert mux.admin("SHOW SHARD FOR 'acme' IN t")[0]["shard"] == \
        owner[int(clean[0].sql(f"SELECT hashtextextended('acme', 0) & {BUCKETS - 1}"))]


# ---- COPY FROM STDIN split over the shards by the key of each row ----

def counts(shards, table="users"):
    return [int(s.sql(f"SELECT count(*) FROM {table}", dbname="app")) for s in shards]


def test_copy_rows_go_to_their_shards(sharded, clean, tmp_path):
    mux = sharded()
    owner = owners(mux.map_path)
    with mux.connect(dbname="app") as c:
        with c.cursor() as cur:
            with cur.copy("COPY users (user_id, name) FROM STDIN") as copy:
                for uid in range(1, 2001):
                    copy.write_row((uid, f"tab\there {uid}" if uid % 7 == 0 else f"u{uid}"))
            assert cur.rowcount == 2000
        # the client's session goes on where it was
        assert c.execute("SELECT name FROM users WHERE user_id = 14").fetchone() == ("tab\there 14",)
    found = placement(clean, owner)
    assert sorted(found) == list(range(1, 2001)) and all(len(v) == 1 for v in found.values())
    assert min(counts(clean)) > 800

    # CSV with a header, no column list (the key's place comes from the table), quoted fields
    # holding the delimiter and line breaks, and psql as the client
    csv = tmp_path / "users.csv"
    lines = ["user_id,name"] + [f'{uid},"a, b\n{uid}"' if uid % 3 == 0 else f"{uid},plain{uid}"
                                for uid in range(-500, 0)]
    csv.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["psql", mux.dsn("app", "postgres"), "-v", "ON_ERROR_STOP=1", "-c",
                          f"\\copy users FROM '{csv}' WITH (FORMAT csv, HEADER)"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "COPY 500" in out.stdout, out.stderr
    found = placement(clean, owner)
    assert len(found) == 2500
    with mux.connect(dbname="app") as c:
        assert c.execute("SELECT name FROM users WHERE user_id = -3").fetchone() == ("a, b\n-3",)


def test_copy_commits_nothing_when_a_shard_fails(sharded, clean):
    mux = sharded()
    b = keys_on(mux, "b", 1)[0]
    with mux.connect(dbname="app") as c:
        c.execute("INSERT INTO users (user_id, name) VALUES (%s, 'there first')", (b,))
        before = counts(clean)
        # a duplicate key on shard b, after rows for both shards
        with pytest.raises(psycopg.errors.UniqueViolation, match="shard b"):
            with c.cursor().copy("COPY users (user_id, name) FROM STDIN") as copy:
                for uid in list(range(1000, 1200)) + [b] + list(range(1200, 1300)):
                    copy.write_row((uid, "x"))
        assert counts(clean) == before
        # a key that is no bigint, and a NULL key: refused by pgmux, nothing committed
        with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="line 3"):
            with c.cursor().copy("COPY users (name, user_id) FROM STDIN") as copy:
                copy.write(b"x\t1\ny\t2\nz\tnot-a-number\nw\t4\n")
        with pytest.raises(psycopg.errors.NotNullViolation, match="NULL"):
            with c.cursor().copy("COPY users (user_id, name) FROM STDIN") as copy:
                copy.write(b"5\tfive\n\\N\tnobody\n")
        with pytest.raises(psycopg.errors.BadCopyFileFormat, match="line 2: missing data"):
            with c.cursor().copy("COPY users (name, user_id) FROM STDIN") as copy:
                copy.write(b"x\t1\ny\n")
        # the client gives up (CopyFail)
        with pytest.raises(psycopg.errors.QueryCanceled, match="from stdin failed"):
            with c.cursor().copy("COPY users (user_id, name) FROM STDIN") as copy:
                copy.write_row((7, "seven"))
                raise RuntimeError("the application stops")
        assert counts(clean) == before
        # the session is fine, and the next COPY works
        with c.cursor().copy("COPY users (user_id, name) FROM STDIN") as copy:
            copy.write_row((1, "one"))
        assert sum(counts(clean)) == sum(before) + 1
    for s in clean:  # no transaction left open behind the failures
        assert s.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND "
                     "state LIKE 'idle in transaction%'") == "0"


def test_copy_refusals(sharded, clean):
    mux = sharded()
    with mux.connect(dbname="app") as c:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="binary format"):
            with c.cursor().copy("COPY users (user_id, name) FROM STDIN (FORMAT binary)") as copy:
                copy.write_row((1, "one"))
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="shard key user_id"):
            with c.cursor().copy("COPY users (name) FROM STDIN") as copy:
                copy.write_row(("one",))
        with pytest.raises(psycopg.errors.UndefinedTable):
            with c.cursor().copy("COPY nosuch FROM STDIN") as copy:
                copy.write_row((1, "one"))
        # inside a transaction: refused, and the transaction is failed as on a server
        c.autocommit = False
        c.execute("SELECT 1")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="outside a transaction"):
            with c.cursor().copy("COPY users (user_id, name) FROM STDIN") as copy:
                copy.write_row((1, "one"))
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        c.autocommit = True
        # with a key given, a COPY goes whole to that key's shard as before
        a = keys_on(mux, "a", 1)[0]
        with c.cursor().copy(f"/* pgmux:shard_key={a} */ COPY users (user_id, name) "
                             "FROM STDIN") as copy:
            copy.write_row((a, "keyed"))
    assert counts(clean) == [1, 0]


def test_copy_splits_stream_and_wait_for_servers(sharded, clean):
    """A large COPY streams through (bounded memory); two at once with one server per shard
    both finish: legs take their servers in shard order, so they cannot deadlock."""
    mux = sharded(settings={"default_pool_size": "1", "query_wait_timeout": "60"})
    owner = owners(mux.map_path)
    n = 100_000
    payload = "".join(f"{uid}\t{'p' * 60}\n" for uid in range(1, n + 1)).encode()
    with mux.connect(dbname="app") as c:
        with c.cursor() as cur:
            with cur.copy("COPY users (user_id, name) FROM STDIN") as copy:
                for i in range(0, len(payload), 1 << 20):
                    copy.write(payload[i:i + (1 << 20)])
            assert cur.rowcount == n
    assert sum(counts(clean)) == n
    assert len(placement(clean, owner)) == n

    import threading
    errors = []

    def load(first):
        try:
            with mux.connect(dbname="app") as c:
                with c.cursor().copy("COPY orders (user_id, amount) FROM STDIN") as copy:
                    for uid in range(first, first + 3000):
                        copy.write_row((uid, 1))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=load, args=(k * 3000,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert sum(counts(clean, "orders")) == 9000
    placement(clean, owner, "orders")


def test_copy_cancelled_commits_nothing(sharded, clean):
    mux = sharded()

    def copying():
        return sum(int(s.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY users%' "
                             "AND backend_type = 'client backend'")) for s in clean)

    with mux.connect(dbname="app") as c:
        with pytest.raises(psycopg.errors.QueryCanceled, match="user request"):
            with c.cursor().copy("COPY users (user_id, name) FROM STDIN") as copy:
                for uid in range(1, 500):
                    copy.write_row((uid, "x"))
                wait_for(lambda: copying() == 2, timeout=10, what="both shards in the COPY")
                c.cancel()
                wait_for(lambda: copying() == 0, timeout=10, what="both shards' COPY ended")
                copy.write_row((500, "after the cancel"))
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert counts(clean) == [0, 0]
