"""pgmux's shard-key hash is PostgreSQL's, bit for bit: for 100,000 keys of each type (int8 with
negative and extreme values, text with empty and non-ASCII strings in a UTF8 database, random
uuids) and two seeds, the hash the C code computes equals what the server returns for
hashint8extended(), hashtextextended() and uuid_hash_extended(). The C side is the unit test
binary test_bucket in its calculator mode."""
import os
import random
import subprocess
import uuid

import psycopg
import pytest

from pgcluster import SANITIZED

N_KEYS = 100_000
SEEDS = (0, 0x5DEECE66D)
# the unit test binary of the same build as ./pgmux (make check builds the unit tests first)
BUILD = "build/san" if SANITIZED else "build/rel"


def calculator():
    path = os.path.join(BUILD, "test", "test_bucket")
    if not os.access(path, os.X_OK):
        subprocess.run(["make", "-s", path] + (["SANITIZE=1"] if SANITIZED else []), check=True)
    return path


def int8_keys(rng):
    edges = [0, 1, -1, 2**31 - 1, -2**31, 2**31, -2**31 - 1, 2**32, -2**32, 2**63 - 1, -2**63,
             2**63 - 2, -2**63 + 1]
    keys = edges + list(range(-500, 500))
    while len(keys) < N_KEYS:
        bits = rng.choice((8, 16, 31, 32, 33, 48, 63))
        keys.append(rng.randrange(-2**bits, 2**bits))
    return keys


def text_keys(rng):
    alphabet = "abcXYZ019 _-'\\\"%éüñßøΩЖ中文日本語🙂\t"
    keys = ["", "a", "ab", "abc", "abcd", "abcdefghijk", "abcdefghijkl", "abcdefghijklm", "é",
            "user-42", "🙂" * 5]
    while len(keys) < N_KEYS:
        keys.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))))
    return keys


def uuid_keys(rng):
    return [uuid.UUID(int=rng.getrandbits(128)) for _ in range(N_KEYS)]


def c_hashes(kind, seed, lines):
    out = subprocess.run([calculator(), "--hash", kind, str(seed)], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, check=True).stdout
    return [int(v) for v in out.split()]


CASES = {
    "int8": ("select hashint8extended(k, %s::int8) from unnest(%s::int8[]) with ordinality "
             "as t(k, i) order by i", int8_keys, lambda k: str(k)),
    "text": ("select hashtextextended(k, %s::int8) from unnest(%s::text[]) with ordinality "
             "as t(k, i) order by i", text_keys, lambda k: k.encode().hex()),
    "uuid": ("select uuid_hash_extended(k, %s::int8) from unnest(%s::uuid[]) with ordinality "
             "as t(k, i) order by i", uuid_keys, lambda k: k.hex),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", sorted(CASES))
def test_hash_is_postgresqls_bit_for_bit(pg, kind):
    sql, make_keys, as_line = CASES[kind]
    keys = make_keys(random.Random(f"bucket-{kind}"))
    with psycopg.connect(pg.dsn("app")) as conn:
        assert conn.execute("show server_encoding").fetchone()[0] == "UTF8"
        for seed in SEEDS:
            # the argument order of the query: seed first, then the keys
            want = [row[0] for row in conn.execute(sql, (seed, keys)).fetchall()]
            got = c_hashes(kind, seed, [as_line(k) for k in keys])
            assert len(got) == len(want) == len(keys)
            wrong = [(k, g, w) for k, g, w in zip(keys, got, want) if g != w]
            assert not wrong, f"{len(wrong)} of {len(keys)} differ, first: {wrong[:3]}"
            # and so the bucket PostgreSQL computes with & (buckets - 1) is pgmux's too
            assert [g & 16383 for g in got[:1000]] == [w & 16383 for w in want[:1000]]
