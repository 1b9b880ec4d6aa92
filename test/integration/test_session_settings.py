"""Session settings in transaction mode, followed as PostgreSQL follows them: a SET (not SET
LOCAL) in a transaction that commits lasts, one in a transaction or savepoint that is rolled
back does not, and whatever lasts is the client's on every server it gets, never another's.

Every test runs on a pool of one server shared with a second client, b, that changes nothing:
b seeing the defaults proves the server was put back, a seeing its values proves they were
applied again."""
import psycopg
import pytest

SHOW = "select current_setting('work_mem'), current_setting('search_path'), " \
       "current_setting('statement_timeout')"


@pytest.fixture
def setup(pgmux, direct):
    defaults = tuple(direct.query(SHOW)[0])
    assert defaults[0] != "7MB"
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = mux.connect(), mux.connect()

    def check(a_expects):
        # b first, then a, then b again: the server goes back and forth between them
        assert tuple(b.execute(SHOW).fetchone()) == defaults, "a's settings reached b"
        assert tuple(a.execute(SHOW).fetchone()) == a_expects
        assert tuple(b.execute(SHOW).fetchone()) == defaults, "a's settings reached b"
        assert tuple(a.execute(SHOW).fetchone()) == a_expects

    return mux, a, defaults, check


def test_set_in_committed_transaction_lasts(setup):
    mux, a, (wm, sp, st), check = setup
    a.execute("begin")
    a.execute("set work_mem = '7MB'")
    a.execute("set search_path = pg_catalog, public")
    a.execute("commit")
    check(("7MB", "pg_catalog, public", st))


def test_set_in_rolled_back_transaction_does_not(setup):
    mux, a, (wm, sp, st), check = setup
    a.execute("set statement_timeout = '41s'")
    a.execute("begin")
    a.execute("set work_mem = '7MB'")
    a.execute("rollback")
    check((wm, sp, "41s"))


def test_set_in_failed_transaction_does_not(setup):
    mux, a, (wm, sp, st), check = setup
    a.execute("begin")
    a.execute("set work_mem = '7MB'")
    with pytest.raises(psycopg.errors.DivisionByZero):
        a.execute("select 1/0")
    a.execute("commit")  # PostgreSQL answers ROLLBACK
    check((wm, sp, st))


def test_savepoint_rolled_back(setup):
    mux, a, (wm, sp, st), check = setup
    a.execute("begin")
    a.execute("set work_mem = '7MB'")
    a.execute("savepoint s1")
    a.execute("set search_path = pg_catalog")
    a.execute("rollback to savepoint s1")
    a.execute("savepoint s2")
    a.execute("set statement_timeout = '42s'")
    a.execute("release savepoint s2")
    a.execute("commit")
    check(("7MB", sp, "42s"))


def test_several_statements_in_one_query(setup):
    mux, a, (wm, sp, st), check = setup
    a.execute("set work_mem = '7MB'; set statement_timeout = '43s'")
    check(("7MB", sp, "43s"))
    # an implicit transaction that fails takes its SETs with it
    with pytest.raises(psycopg.errors.DivisionByZero):
        a.execute("set search_path = pg_catalog; select 1/0")
    check(("7MB", sp, "43s"))
    a.execute("begin; set statement_timeout = '44s'; commit; set search_path = pg_catalog")
    check(("7MB", "pg_catalog", "44s"))


def test_set_config_and_reset_all_in_a_transaction(setup):
    mux, a, (wm, sp, st), check = setup
    a.execute("select set_config('work_mem', '7MB', false)")
    check(("7MB", sp, st))
    a.execute("set search_path = pg_catalog")
    a.execute("begin")
    a.execute("reset all")
    a.execute("set statement_timeout = '45s'")
    a.execute("commit")
    check((wm, sp, "45s"))


def test_psycopg_transactions(pgmux, direct):
    # psycopg's default: every statement in a transaction, committed by conn.commit()
    defaults = tuple(direct.query(SHOW)[0])
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    b = mux.connect()
    with mux.connect(autocommit=False) as a:
        a.execute("set work_mem = '7MB'")
        a.commit()
        a.execute("set search_path = pg_catalog")
        a.rollback()
        assert tuple(b.execute(SHOW).fetchone()) == defaults
        assert tuple(a.execute(SHOW).fetchone()) == ("7MB",) + defaults[1:]
        a.rollback()
        assert tuple(b.execute(SHOW).fetchone()) == defaults


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_startup_options_for_reported_parameters(pgmux, mode):
    # PGOPTIONS='-c intervalstyle=postgres_verbose', three runs in a row on one server
    mux = pgmux({"pool_mode": mode, "default_pool_size": 1})
    for i in range(3):
        with mux.connect(options="-c intervalstyle=postgres_verbose -c work_mem=7MB") as c:
            assert c.info.parameter_status("IntervalStyle") == "postgres_verbose", f"run {i}"
            got = c.execute("select current_setting('intervalstyle'), current_setting('work_mem'), "
                            "'1 day'::interval::text").fetchone()
            assert got == ("postgres_verbose", "7MB", "@ 1 day"), f"run {i}"
        with mux.connect() as other:
            assert other.execute("show intervalstyle").fetchone()[0] == "postgres"


def test_custom_setting_in_a_transaction(pgmux):
    # row-level security keys and the like: a placeholder setting, set in a transaction
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = mux.connect(), mux.connect()
    get = "select current_setting('myapp.tenant', true)"
    a.execute("begin")
    a.execute("set myapp.tenant = '42'")
    a.execute("commit")
    assert b.execute(get).fetchone()[0] in (None, ""), "a's setting reached b"
    assert a.execute(get).fetchone()[0] == "42"
    a.execute("begin")
    a.execute("reset myapp.tenant")
    a.execute("rollback")
    assert b.execute(get).fetchone()[0] in (None, "")
    assert a.execute(get).fetchone()[0] == "42"


def test_set_config_of_custom_settings(pgmux):
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    a, b = mux.connect(), mux.connect()
    get = "select current_setting('myapp.tenant', true), current_setting('myapp.role', true)"
    a.execute("select set_config('myapp.tenant', %s, false)", ("7",))
    assert b.execute(get).fetchone() in ((None, None), ("", None)), "a's setting reached b"
    assert a.execute(get).fetchone()[0] == "7"
    # a name pgmux cannot read from the text: never reaches b; a keeps what pgmux knows
    a.execute("select set_config(n, 'admin', false) from (values ('myapp.role')) v(n)")
    assert b.execute(get).fetchone()[1] in (None, ""), "a's setting reached b"
    assert a.execute(get).fetchone()[0] == "7"


def test_startup_setting_names_must_be_names(pgmux):
    """A startup parameter's name goes into SQL on every server the client gets: a name that is
    no setting name is refused as PostgreSQL refuses it (42602), and a real one works."""
    import rawpg
    mux = pgmux({"pool_mode": "transaction", "default_pool_size": 1})
    for params in ({'x"; select pg_terminate_backend(pg_backend_pid()); --': "1"},
                   {"options": "-c a;b=1"}, {"bad name": "1"}, {"1abc": "1"}, {"a..b": "1"}):
        with pytest.raises(rawpg.PgError) as ei:
            mux.raw().login("postgres", "app", **params)
        assert ei.value.sqlstate == "42602", (params, ei.value)
    c = mux.raw().login("postgres", "app", **{"myapp.tenant": "7", "options": "-c myapp.role=x"})
    assert c.scalar("select current_setting('myapp.tenant') || current_setting('myapp.role')") == "7x"
    with mux.connect() as other:
        assert other.execute("select current_setting('myapp.tenant', true)").fetchone()[0] in (None, "")
