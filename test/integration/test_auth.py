"""Client authentication against auth_file (plain, md5 and SCRAM secrets) and server logins
with the password pgmux knows."""

import psycopg
import pytest

import rawpg
from conftest import PASSWORDS, assert_error, role_secret, write_userlist


@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256"])
def test_plain_userlist(pgmux, auth_type):
    mux = pgmux({"auth_type": auth_type}, start=False)
    write_userlist(mux, {u: p for u, p in PASSWORDS.items()})
    mux.start()
    for user in ("alice", "carol"):
        with mux.connect(user=user, password=PASSWORDS[user]) as conn:
            assert conn.execute("select current_user").fetchone()[0] == user
    with pytest.raises(psycopg.OperationalError) as ei:
        mux.connect(user="alice", password="wrong")
    assert_error(ei.value, "bad_password", lost_state_ok=True)
    with pytest.raises(psycopg.OperationalError):
        mux.connect(user="nobody", password="x")


def test_md5_wrong_password_sqlstate(pgmux):
    mux = pgmux({"auth_type": "md5"}, start=False)
    write_userlist(mux, {"alice": PASSWORDS["alice"]})
    mux.start()
    c = mux.raw()
    with pytest.raises(rawpg.PgError) as ei:
        c.login("alice", "app", password="wrong")
    assert_error(ei.value, "bad_password")
    ok = mux.raw().login("alice", "app", password=PASSWORDS["alice"])
    assert ok.scalar("select current_user") == "alice"


def test_scram_secret_in_userlist(pgmux, direct):
    """The SCRAM secret from pg_authid is enough to let alice in and to log in as her."""
    mux = pgmux({"auth_type": "scram-sha-256"}, start=False)
    write_userlist(mux, {"alice": role_secret(direct, "alice")})
    mux.start()
    with mux.connect(user="alice", password=PASSWORDS["alice"]) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "alice"
    with pytest.raises(psycopg.OperationalError):
        mux.connect(user="alice", password="wrong")


def test_md5_secret_in_userlist(pgmux, direct):
    mux = pgmux({"auth_type": "md5"}, start=False)
    md5 = role_secret(direct, "carol")
    assert md5.startswith("md5")
    write_userlist(mux, {"carol": md5})
    mux.start()
    with mux.connect(user="carol", password=PASSWORDS["carol"]) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "carol"
    with pytest.raises(psycopg.OperationalError):
        mux.connect(user="carol", password="wrong")


def test_server_password_from_database_entry(pgmux, pg):
    dbs = {"app": f"host=127.0.0.1 port={pg.port} dbname=app user=bob password=bob-secret"}
    mux = pgmux(databases=dbs)
    with mux.connect(user="postgres") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "bob"
