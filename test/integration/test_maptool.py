"""The shard map tool, pgmux --shard-map: create -> plan (add a shard) -> validate -> diff ->
show, overrides, a damaged file refused, bad arguments. Bucket owners are read from the map
files here, not taken from the tool's own report."""
import re
import subprocess

from conftest import PGMUX_BIN


def tool(*args, check=True):
    r = subprocess.run([PGMUX_BIN, "--shard-map", *args], capture_output=True, text=True,
                       timeout=30)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def owners(path):
    """Bucket -> shard name, read from a map file; also checks each bucket is covered once."""
    buckets, owner = None, {}
    for line in open(path):
        words = line.split("#", 1)[0].split() if not line.startswith("override") else []
        if words[:1] == ["buckets"]:
            buckets = int(words[1])
        elif words[:1] == ["range"]:
            lo, _, hi = words[1].partition("-")
            for b in range(int(lo), int(hi or lo) + 1):
                assert b not in owner, f"bucket {b} twice in {path}"
                owner[b] = words[2]
    assert buckets and sorted(owner) == list(range(buckets)), path
    return owner


def test_create_plan_validate_diff_show(tmp_path):
    m1, m2 = tmp_path / "v1.map", tmp_path / "v2.map"
    r = tool("create", "-o", str(m1), "a", "b", "c", "d")
    assert "version 1" in r.stdout
    r = tool("plan", str(m1), "-o", str(m2), "a", "b", "c", "d", "e")
    report = r.stdout

    old, new = owners(m1), owners(m2)
    moved = [b for b in old if old[b] != new[b]]
    assert all(new[b] == "e" for b in moved), "a bucket moved between old shards"
    assert abs(len(moved) / len(old) - 0.20) < 0.001
    counts = {s: list(new.values()).count(s) for s in "abcde"}
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    # few ranges: one per old shard, two for the new one
    assert len(re.findall(r"^range ", m2.read_text(), re.M)) == 6

    # the report's figures agree with the files
    assert re.search(rf"moved {len(moved)} of 16384 buckets: 0\.2000 of the keys "
                     r"\(ideal 0\.2000\); 0 between", report), report
    for src in "abcd":
        n = sum(1 for b in moved if old[b] == src)
        assert re.search(rf"^  {src} -> e: {n} buckets", report, re.M), report

    r = tool("validate", str(m2))
    assert re.match(r".*v2\.map: valid: version 2, 16384 buckets, 5 shards, checksum "
                    r"[0-9a-f]{16}, 0 overrides$", r.stdout.strip()), r.stdout
    r = tool("diff", str(m1), str(m2))
    assert "version 1 -> 2" in r.stdout
    assert f"moved {len(moved)} of 16384" in r.stdout
    ranges = re.findall(r"^  ([a-d]) -> e: \d+ buckets? \([0-9.]+ of keys\): (.*)$", r.stdout,
                        re.M)
    listed = set()
    for src, spans in ranges:
        for span in spans.split():
            lo, _, hi = span.partition("-")
            listed.update((b, src) for b in range(int(lo), int(hi or lo) + 1))
    assert listed == {(b, old[b]) for b in moved}

    r = tool("show", str(m2))
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:7]}
    assert set(rows) == set("abcde"), r.stdout
    for s in "abcde":
        assert int(rows[s][2]) == counts[s]
        assert abs(float(rows[s][3]) - 0.2) < 0.001


def test_plan_to_stdout_and_reweight(tmp_path):
    m1 = tmp_path / "v1.map"
    tool("create", "--buckets", "1024", "--seed", "7", "-o", str(m1), "a", "b")
    r = tool("plan", str(m1), "a=3", "b")
    # the map on stdout, the report on stderr
    assert r.stdout.startswith("# pgmux shard map") and "seed 7\n" in r.stdout
    assert "ideal 0.2500" in r.stderr, r.stderr
    (tmp_path / "v2.map").write_text(r.stdout)
    new = owners(tmp_path / "v2.map")
    assert list(new.values()).count("a") == 768


def test_overrides(tmp_path):
    m1, m2, m3 = (tmp_path / f"v{i}.map" for i in (1, 2, 3))
    tool("create", "-o", str(m1), "a", "b")
    tool("override", str(m1), "acme corp", "b", "-o", str(m2))
    assert "override 'acme corp' b\n" in m2.read_text()
    assert "1 override" in tool("validate", str(m2)).stdout
    r = tool("diff", str(m1), str(m2))
    assert "override 'acme corp' added: on b" in r.stdout
    tool("override", str(m2), "acme corp", "--remove", "-o", str(m3))
    assert "override" not in m3.read_text().replace("# pgmux", "").split("range")[-1]
    r = tool("override", str(m2), "acme corp", "z", check=False)
    assert r.returncode == 1 and "no shard z" in r.stderr
    # a plan that removes the override's shard says it dropped it
    r = tool("plan", str(m2), "a")
    assert "dropped" in r.stderr and "acme corp" in r.stderr


def test_damaged_map_refused(tmp_path):
    m1, bad = tmp_path / "v1.map", tmp_path / "bad.map"
    tool("create", "-o", str(m1), "a", "b", "c", "d")
    text = m1.read_text()
    assert "range 0-4095 a\n" in text
    bad.write_text(text.replace("range 0-4095 a\n", "range 0-4095 b\n"))
    r = tool("validate", str(bad), check=False)
    assert r.returncode == 1
    assert re.search(r"line \d+: checksum [0-9a-f]{16} does not match", r.stderr), r.stderr
    # a truncated file, a bucket in two ranges
    bad.write_text(text[: text.index("\nchecksum ") + 1])
    r = tool("validate", str(bad), check=False)
    assert r.returncode == 1 and "no checksum line" in r.stderr
    bad.write_text(text.replace("range 0-4095 a\n", "range 0-4096 a\n"))
    r = tool("validate", str(bad), check=False)
    assert r.returncode == 1 and "bucket 4096 is already in another range" in r.stderr
    # refused maps are not planned from
    r = tool("plan", str(bad), "a", "b", check=False)
    assert r.returncode == 1 and r.stdout == ""


def test_bad_arguments():
    for args in ([], ["nonsense"], ["create"], ["validate"], ["create", "--bogus", "a"],
                 ["validate", "--buckets", "4", "x"], ["diff", "one"]):
        r = tool(*args, check=False)
        assert r.returncode == 2, args
        assert "usage: pgmux --shard-map" in r.stderr
    r = tool("create", "a=-1", check=False)
    assert r.returncode == 1 and "positive number" in r.stderr
    r = tool("validate", "/nonexistent/map", check=False)
    assert r.returncode == 1 and "cannot read" in r.stderr
