"""Reloading the config (SIGHUP and admin RELOAD) changes pool sizes live, keeps connected
clients, and a broken file leaves the running config alone."""
import signal
import time

import rawpg

from conftest import Background, Sampler


def concurrency(mux, direct, n=3, seconds=0.6):
    """Run n pg_sleep queries at once from new clients; return the most that ran together."""
    with Sampler(direct, "app") as s:
        jobs = [Background(lambda: mux.connect().execute(f"select pg_sleep({seconds})"))
                for _ in range(n)]
        for j in jobs:
            j.result(15)
    return s.max_active


def config_value(mux, key):
    return {r["key"]: r["value"] for r in mux.admin("SHOW CONFIG")}[key]


def wait_config(mux, key, value, timeout=3):
    deadline = time.monotonic() + timeout
    while config_value(mux, key) != value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert config_value(mux, key) == value


def test_reload_grows_pool(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0})
    keeper = mux.connect()
    keeper.execute("select 1")
    assert concurrency(mux, direct) == 1

    # SIGHUP
    mux.settings["default_pool_size"] = "2"
    mux.reload()
    wait_config(mux, "default_pool_size", "2")
    assert keeper.execute("select 'kept'").fetchone()[0] == "kept"
    assert concurrency(mux, direct) == 2

    # admin RELOAD
    mux.settings["default_pool_size"] = "3"
    mux.write_config()
    mux.admin("RELOAD")
    assert config_value(mux, "default_pool_size") == "3"
    assert keeper.execute("select 'still kept'").fetchone()[0] == "still kept"
    assert concurrency(mux, direct) == 3
    assert not keeper.closed, "the client connected before the reloads was dropped"


def test_reload_shrinks_pool(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 3, "reserve_pool_size": 0})
    keeper = mux.connect()
    keeper.execute("select 1")
    assert concurrency(mux, direct) == 3     # leaves 3 idle servers in the pool
    mux.settings["default_pool_size"] = "1"
    mux.write_config()
    mux.admin("RELOAD")
    assert config_value(mux, "default_pool_size") == "1"
    assert concurrency(mux, direct) == 1, "a smaller pool_size must limit the servers in use"
    assert keeper.execute("select 'kept'").fetchone()[0] == "kept"


def test_bad_config_on_reload_keeps_old(pgmux, direct):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 2, "reserve_pool_size": 0})
    keeper = mux.connect()
    keeper.execute("select 1")
    good = open(mux.config_path).read()
    bad_files = [
        good.replace("default_pool_size = 2", "default_pool_size = banana"),
        good.replace("[databases]", "[databases"),
        good.replace("pool_mode = transaction", "pool_mode = sometimes"),
    ]
    for bad in bad_files:
        assert bad != good
        with open(mux.config_path, "w") as f:
            f.write(bad)
        mux.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        try:
            mux.admin("RELOAD")
        except (rawpg.PgError, rawpg.Closed):
            pass     # an error for a bad file is right
        assert mux.alive(), "pgmux died on a bad config file"
        assert config_value(mux, "default_pool_size") == "2"
        assert config_value(mux, "pool_mode") == "transaction"
        assert keeper.execute("select 'kept'").fetchone()[0] == "kept"
    assert concurrency(mux, direct) == 2
    # the good file again: reload works
    with open(mux.config_path, "w") as f:
        f.write(good.replace("default_pool_size = 2", "default_pool_size = 3"))
    mux.admin("RELOAD")
    assert config_value(mux, "default_pool_size") == "3"
