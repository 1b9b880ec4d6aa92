"""Session parameters in transaction mode: what one client sets (in its startup packet or
with SET outside a transaction) is what it sees, and never what another client sees, even when
all of them share one server."""
import pytest

SHOW = ("select current_setting('TimeZone'), current_setting('DateStyle'), "
        "current_setting('application_name'), '2024-03-05'::date::text, pg_backend_pid()")


@pytest.fixture
def defaults(direct):
    tz, ds = direct.query("select current_setting('TimeZone'), current_setting('DateStyle')")[0]
    assert tz != "Asia/Tokyo" and ds != "SQL, DMY"
    return tz, ds


def seen(c):
    return tuple(c.query(SHOW)[0][0])


def test_startup_parameters_do_not_leak(pgmux, defaults):
    tz, ds = defaults
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a = mux.raw().login("postgres", "app", TimeZone="Asia/Tokyo", DateStyle="SQL, DMY",
                        application_name="client_a")
    b = mux.raw().login("postgres", "app", application_name="client_b")
    # what a asked for is what the startup reported
    assert a.params.get("TimeZone") == "Asia/Tokyo"
    assert a.params.get("DateStyle") == "SQL, DMY"
    assert a.params.get("application_name") == "client_a"
    assert b.params.get("TimeZone") == tz
    assert b.params.get("application_name") == "client_b"
    expect_a = ("Asia/Tokyo", "SQL, DMY", "client_a", "05/03/2024")
    expect_b = (tz, ds, "client_b", "2024-03-05")
    pids = set()
    for _ in range(3):
        for c, expect in ((a, expect_a), (b, expect_b), (b, expect_b), (a, expect_a)):
            row = seen(c)
            assert row[:4] == expect
            pids.add(row[4])
    assert len(pids) == 1, "the two clients must have shared one server"


def test_set_outside_transaction_does_not_leak(pgmux, defaults):
    tz, ds = defaults
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a = mux.raw().login("postgres", "app", application_name="a")
    b = mux.raw().login("postgres", "app", application_name="b")
    a.query("set TimeZone = 'America/New_York'")
    a.query("set DateStyle = 'German'")
    a.query("set application_name = 'renamed_a'")
    # a change made inside a committed transaction sticks too; a SET LOCAL does not
    b.query("begin; set TimeZone = 'Europe/Paris'; commit")
    b.query("begin; set local DateStyle = 'SQL, DMY'; commit")
    expect_a = ("America/New_York", "German, DMY", "renamed_a", "05.03.2024")
    expect_b = ("Europe/Paris", ds, "b", "2024-03-05")
    pids = set()
    for _ in range(3):
        for c, expect in ((a, expect_a), (b, expect_b), (a, expect_a), (b, expect_b)):
            row = seen(c)
            assert row[:4] == expect
            pids.add(row[4])
    assert len(pids) == 1
    # a newcomer gets the server defaults
    c = mux.raw().login("postgres", "app")
    assert seen(c)[:4] == (tz, ds, "", "2024-03-05")


def test_psycopg_client_encoding_and_application_name(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a = mux.connect(application_name="psy_a")
    a.execute("set client_encoding = 'LATIN1'")
    b = mux.connect(application_name="psy_b")
    for _ in range(2):
        assert a.execute("show client_encoding").fetchone()[0] == "LATIN1"
        assert a.execute("show application_name").fetchone()[0] == "psy_a"
        assert b.execute("show client_encoding").fetchone()[0] == "UTF8"
        assert b.execute("show application_name").fetchone()[0] == "psy_b"
        # text goes through in each client's encoding
        assert a.execute("select 'caf\u00e9'").fetchone()[0] == "caf\u00e9"
        assert b.execute("select 'caf\u00e9'").fetchone()[0] == "caf\u00e9"
