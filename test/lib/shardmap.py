"""Reading pgmux shard map files in tests, the demo and benchmarks (the format: doc/shard-map.md).

Independent of pgmux's own parser on purpose: a test that checks where rows landed must not
trust the code it checks.
"""


def map_ranges(path):
    """{shard: [(first, last), ...]} from a map file's range lines."""
    ranges = {}
    with open(path) as f:
        for line in f:
            words = line.split("#")[0].split()
            if len(words) == 3 and words[0] == "range":
                lo, _, hi = words[1].partition("-")
                ranges.setdefault(words[2], []).append((int(lo), int(hi or lo)))
    return ranges


def bucket_owners(path):
    """{bucket: shard} from a map file's range lines."""
    return {b: shard for shard, runs in map_ranges(path).items()
            for lo, hi in runs for b in range(lo, hi + 1)}
