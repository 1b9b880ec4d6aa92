"""Shard maps kept in etcd: read and watched by every pgmux that names the key.

A throwaway etcd (one member, its own ports and data directory) holds the map text as the value
of one key, written through etcd's v3 JSON gateway as an operator's tool would. Two plain
PostgreSQL servers are the shards; where a row landed is checked on the servers themselves.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

import pytest
import rawpg

from conftest import wait_for
from test_sharding import BUCKETS, clean, map_tool, owners, placement, sections, shards  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from pgcluster import PGMUX_BIN, free_port  # noqa: E402

ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")
KEY = "/pgmux/maps/users"


class Etcd:
    """One etcd member on free ports; stop() and start() keep its data directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pgmux-etcd-")
        self.port, self.peer_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        peer = f"http://127.0.0.1:{self.peer_port}"
        state = "existing" if os.path.exists(os.path.join(self.dir, "data")) else "new"
        with open(os.path.join(self.dir, "etcd.log"), "ab") as log:
            self.proc = subprocess.Popen(
                [ETCD_BIN, "--name", "e0", "--data-dir", os.path.join(self.dir, "data"),
                 "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"e0={peer}", "--initial-cluster-state", state,
                 "--heartbeat-interval", "50", "--election-timeout", "500"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.dir, start_new_session=True)
        wait_for(self._healthy, timeout=15, what="etcd healthy")
        return self

    def _healthy(self):
        assert self.proc.poll() is None, "etcd exited:\n" + self.log()[-3000:]
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return json.load(r).get("health") == "true"
        except (OSError, ValueError):
            return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        with open(os.path.join(self.dir, "etcd.log"), errors="replace") as f:
            return f.read()

    def _call(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def put(self, key, text):
        return self._call("/v3/kv/put", {"key": b64(key.encode()), "value": b64(text.encode())})

    def put_file(self, key, path):
        with open(path) as f:
            return self.put(key, f.read())

    def delete(self, key):
        return self._call("/v3/kv/deleterange", {"key": b64(key.encode())})


def b64(data):
    return base64.b64encode(data).decode()


@pytest.fixture
def etcd():
    e = Etcd().start()
    yield e
    e.destroy()


@pytest.fixture
def maps(tmp_path):
    """map files: v1 (a and b), v2 (v1 with the key `moved` placed on the other shard)."""
    v1 = str(tmp_path / "v1.map")
    map_tool("create", "--buckets", str(BUCKETS), "a", "b", "-o", v1)
    owner = owners(v1)
    moved = next(k for k in range(1, 1000) if owner[bucket_of(k)] == "a")
    v2 = str(tmp_path / "v2.map")
    map_tool("override", v1, str(moved), "b", "-o", v2)
    return {"v1": v1, "v2": v2, "owner": owner, "moved": moved, "dir": tmp_path}


def bucket_of(key):
    """The bucket of an int key, as pgmux --shard-of computes it (PostgreSQL's hash)."""
    return _buckets[key]


_buckets = {}


@pytest.fixture(autouse=True, scope="module")
def _bucket_table(shards):
    # PostgreSQL computes the buckets: the same expression the sharding tests check rows with.
    out = shards[0].sql(f"SELECT k, hashint8extended(k, 0) & {BUCKETS - 1} "
                        "FROM generate_series(1, 1000) k", dbname="app")
    for line in out.splitlines():
        k, b = line.split("|")
        _buckets[int(k)] = int(b)


@pytest.fixture
def etcd_mux(pgmux, clean, etcd):
    def make(source=None):
        src = source or f"etcd:{etcd.url}/pgmux/maps/users"
        return pgmux(databases={"app": "shards=users dbname=app"},
                     extra_sections=sections(clean, src))
    return make


def shards_row(mux):
    return mux.admin("SHOW SHARDS")[0]


def version(mux):
    return int(shards_row(mux)["map_version"])


def state(mux):
    return shards_row(mux)["map_state"]


def insert(mux, *uids):
    with mux.connect(dbname="app") as c:
        for uid in uids:
            c.execute("INSERT INTO users (user_id, name) VALUES (%s, %s)", (uid, f"u{uid}"))


def server_of(clean, uid):
    """The shard whose server holds user uid's row."""
    on = [name for name, s in zip("ab", clean)
          if s.sql(f"SELECT count(*) FROM users WHERE user_id = {uid}", dbname="app") == "1"]
    assert len(on) == 1, f"user {uid} is on {on}"
    return on[0]


def test_refused_until_written_then_rows_follow_the_map(etcd_mux, etcd, clean, maps):
    mux = etcd_mux()
    wait_for(lambda: "not found" in state(mux), what="the absent key in map_state")
    assert version(mux) == 0
    with pytest.raises(rawpg.PgError) as e:
        mux.raw().login("postgres", "app")
    assert e.value.sqlstate == "57P03", e.value
    assert "has not been read yet" in e.value.message and KEY in e.value.message, e.value
    assert f"reading {etcd.url} key {KEY}" in state(mux) or "not found" in state(mux)
    assert f"key {KEY} not found" in state(mux), state(mux)

    etcd.put_file(KEY, maps["v1"])
    wait_for(lambda: version(mux) == 1, what="map version 1 from etcd")
    assert state(mux).startswith("etcd revision"), state(mux)
    assert "map version 1 checksum" in mux.log()
    insert(mux, *range(1, 301))
    found = placement(clean, maps["owner"])
    assert len(found) == 300
    assert {v[0] for v in found.values()} == {"a", "b"}


def test_two_instances_follow_a_new_version(etcd_mux, etcd, clean, maps):
    etcd.put_file(KEY, maps["v1"])
    one, two = etcd_mux(), etcd_mux()
    for mux in (one, two):
        wait_for(lambda: version(mux) == 1, what="version 1")
    moved = maps["moved"]
    insert(one, moved)
    assert server_of(clean, moved) == "a"
    for s in clean:
        s.sql(f"DELETE FROM users WHERE user_id = {moved}", dbname="app")

    etcd.put_file(KEY, maps["v2"])
    for mux in (one, two):
        wait_for(lambda: version(mux) == 2, what="version 2 on both instances")
    # the moved key now goes to b from either pgmux; other keys stay where they were
    insert(one, moved)
    assert server_of(clean, moved) == "b"
    for s in clean:
        s.sql(f"DELETE FROM users WHERE user_id = {moved}", dbname="app")
    insert(two, moved)
    assert server_of(clean, moved) == "b"
    other = next(k for k in range(1, 1000) if k != moved and maps["owner"][bucket_of(k)] == "a")
    insert(two, other)
    assert server_of(clean, other) == "a"


def bad_checksum(path, out):
    with open(path) as f:
        text = f.read()
    lines = text.splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith("checksum "))
    digit = lines[at][-1]
    lines[at] = lines[at][:-1] + ("0" if digit != "0" else "1")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    return out


def test_invalid_lower_and_deleted_keep_the_last_good(etcd_mux, etcd, clean, maps):
    etcd.put_file(KEY, maps["v2"])
    mux = etcd_mux()
    wait_for(lambda: version(mux) == 2, what="version 2")
    checksum = shards_row(mux)["map_checksum"]

    etcd.put_file(KEY, bad_checksum(maps["v2"], str(maps["dir"] / "bad.map")))
    wait_for(lambda: "checksum" in state(mux), what="the bad checksum in map_state")
    assert "refused revision" in state(mux) and "keeping map version 2" in state(mux), state(mux)
    assert version(mux) == 2 and shards_row(mux)["map_checksum"] == checksum

    etcd.put_file(KEY, maps["v1"])
    wait_for(lambda: "lower than version 2" in state(mux), what="the lower version refused")
    assert version(mux) == 2
    etcd.put(KEY, "this is not a map\n")
    wait_for(lambda: "refused" in state(mux) and "lower" not in state(mux),
             what="the garbage refused")
    assert version(mux) == 2

    etcd.delete(KEY)
    wait_for(lambda: "key deleted" in state(mux), what="the deletion in map_state")
    assert version(mux) == 2
    insert(mux, maps["moved"])
    assert server_of(clean, maps["moved"]) == "b"
    log = mux.log()
    assert "lower than version 2" in log and "checksum" in log


def test_etcd_down_keeps_the_map_then_follows_again(etcd_mux, etcd, clean, maps):
    etcd.put_file(KEY, maps["v1"])
    mux = etcd_mux()
    wait_for(lambda: version(mux) == 1, what="version 1")
    etcd.stop()
    wait_for(lambda: "unreachable since" in state(mux), what="unreachable in map_state")
    assert "keeping map version 1" in state(mux), state(mux)
    # traffic keeps flowing with the last good map
    insert(mux, *range(1, 101))
    assert len(placement(clean, maps["owner"])) == 100
    wait_for(lambda: "unreachable (" in mux.log(), what="the outage logged")

    etcd.start()
    wait_for(lambda: "unreachable" not in state(mux), timeout=10, what="etcd back")
    etcd.put_file(KEY, maps["v2"])
    wait_for(lambda: version(mux) == 2, what="version 2 after the outage")
    assert mux.log().count("unreachable (") == 1, mux.log()
    assert "answers again" in mux.log()
    for s in clean:
        s.sql("TRUNCATE users", dbname="app")
    insert(mux, maps["moved"])
    assert server_of(clean, maps["moved"]) == "b"


def test_reload_keeps_the_map_and_reads_again(etcd_mux, etcd, clean, maps):
    etcd.put_file(KEY, maps["v1"])
    mux = etcd_mux()
    wait_for(lambda: version(mux) == 1, what="version 1")
    mux.admin("RELOAD")
    assert version(mux) == 1
    etcd.put_file(KEY, maps["v2"])
    wait_for(lambda: version(mux) == 2, what="version 2 after RELOAD")


def test_several_endpoints_and_a_dead_one(etcd_mux, etcd, clean, maps):
    dead = f"http://127.0.0.1:{free_port()}"
    etcd.put_file(KEY, maps["v1"])
    mux = etcd_mux(f"etcd:{dead},{etcd.url}{KEY}")
    wait_for(lambda: version(mux) == 1, what="version 1 through the live endpoint")


@pytest.mark.parametrize("source,why", [
    ("etcd:127.0.0.1:2379/k", "is not an http:// or https:// URL"),
    ("etcd:http://127.0.0.1:2379", "names no key"),
    ("etcd:http://a:1/k,http://b:2/k", "only the last URL has a path"),
])
def test_bad_etcd_source_refused(pgmux, clean, source, why):
    mux = pgmux(databases={"app": "shards=users dbname=app"},
                extra_sections=sections(clean, source), start=False)
    mux.write_config()
    r = subprocess.run([PGMUX_BIN, "--shard-of", "1", mux.config_path], capture_output=True,
                       text=True)
    assert r.returncode != 0
    assert why in r.stderr, r.stderr
