"""Console accounts: `scim-server admin create / list / remove`, and the storage functions the
console signs in with (passwords, sessions, the slow-down of failed sign-ins)."""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from scim_server import cli as cli_module
from scim_server.storage import admins, tenants
from scim_server.storage.models import ConsoleAdmin, ConsoleSession, SignInFailure

PASSWORD = "correct horse battery staple"
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def admin_cli(app):
    """``scim-server admin ...`` against the test database, with ``stdin`` as its input."""
    env = {"SCIM_DATABASE_URL": app.config["SCIM"].database_url}

    def run(*args, stdin: str | None = PASSWORD + "\n"):
        return CliRunner().invoke(cli_module.main, ["admin", *args], input=stdin, env=env, catch_exceptions=False)

    return run


@pytest.fixture
def db(app):
    with app.extensions["scim_sessions"]() as session:
        yield session


@pytest.fixture
def acme(app) -> int:
    with app.extensions["scim_sessions"].begin() as session:
        return tenants.create_tenant(session, "acme").id


def account(app, email: str) -> ConsoleAdmin | None:
    with app.extensions["scim_sessions"]() as session:
        return session.scalar(select(ConsoleAdmin).where(ConsoleAdmin.email == email))


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines
    assert "Traceback" not in result.output
    return lines[0]


# ------------------------------------------------------------------ admin create


def test_create_tenant_admin(app, admin_cli, acme):
    result = admin_cli("create", "--tenant", "acme", "  Anna@Acme.DK ")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "created tenant admin anna@acme.dk for tenant acme"
    assert result.stdout == ""
    row = account(app, "anna@acme.dk")
    assert row is not None and row.tenant_id == acme and row.last_sign_in is None


def test_create_operator(app, admin_cli):
    result = admin_cli("create", "--operator", "Ops@plan2learn.dk")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "created operator ops@plan2learn.dk"
    row = account(app, "ops@plan2learn.dk")
    assert row is not None and row.tenant_id is None


def test_the_password_is_stored_hashed(app, admin_cli, db):
    assert admin_cli("create", "--operator", "ops@plan2learn.dk").exit_code == 0
    row = account(app, "ops@plan2learn.dk")
    assert row.password_hash.startswith("scrypt:")
    assert PASSWORD not in row.password_hash
    # the line's break is not part of the password
    assert admins.check_password(db, "ops@plan2learn.dk", PASSWORD) is not None
    assert admins.check_password(db, "ops@plan2learn.dk", PASSWORD + "\n") is None


def test_a_windows_line_break_on_stdin_is_not_part_of_the_password(admin_cli, db):
    assert admin_cli("create", "--operator", "ops@plan2learn.dk", stdin=PASSWORD + "\r\n").exit_code == 0
    assert admins.check_password(db, "ops@plan2learn.dk", PASSWORD) is not None


@pytest.mark.parametrize("flags", [["--operator", "--tenant", "acme"], []])
def test_create_needs_exactly_one_of_tenant_and_operator(app, admin_cli, acme, flags):
    result = admin_cli("create", *flags, "x@acme.dk")
    assert result.exit_code == 2, result.output
    assert "--tenant" in one_error_line(result) and "--operator" in result.stderr
    assert account(app, "x@acme.dk") is None


def test_create_for_an_unknown_tenant(app, admin_cli, acme):
    result = admin_cli("create", "--tenant", "nope", "x@acme.dk")
    assert result.exit_code == 1
    assert "no tenant named 'nope'" in one_error_line(result)
    assert account(app, "x@acme.dk") is None


def test_create_refuses_a_short_password(app, admin_cli):
    result = admin_cli("create", "--operator", "ops@plan2learn.dk", stdin="elevenchars\n")
    assert result.exit_code == 1
    assert "at least 12 characters" in one_error_line(result)
    assert account(app, "ops@plan2learn.dk") is None
    assert admin_cli("create", "--operator", "ops@plan2learn.dk", stdin="").exit_code == 1  # nothing on stdin
    assert admin_cli("create", "--operator", "ops@plan2learn.dk", stdin="twelve chars\n").exit_code == 0


@pytest.mark.parametrize("email", ["no-at-sign", "@acme.dk", "anna@", "a@b@c", "   "])
def test_create_refuses_what_is_no_email_address(app, admin_cli, email):
    result = admin_cli("create", "--operator", email)
    assert result.exit_code == 1
    assert "not an e-mail address" in one_error_line(result)
    with app.extensions["scim_sessions"]() as session:
        assert session.scalar(select(func.count()).select_from(ConsoleAdmin)) == 0


def test_an_email_has_one_account_whatever_its_case(app, admin_cli, acme):
    assert admin_cli("create", "--tenant", "acme", "anna@acme.dk").exit_code == 0
    result = admin_cli("create", "--operator", "ANNA@Acme.dk")
    assert result.exit_code == 1
    assert one_error_line(result) == "Error: an account for anna@acme.dk already exists"
    assert account(app, "anna@acme.dk").tenant_id == acme


def test_the_storage_function_refuses_a_duplicate_too(db, acme):
    admins.create_admin(db, "anna@acme.dk", PASSWORD, acme)
    with pytest.raises(admins.AdminError, match="already exists"):
        admins.create_admin(db, "Anna@ACME.dk", PASSWORD, None)
    with pytest.raises(admins.AdminError, match="at least 12"):
        admins.create_admin(db, "bo@acme.dk", "x" * 11, None)
    with pytest.raises(admins.AdminError, match="no tenant"):
        admins.create_admin(db, "bo@acme.dk", PASSWORD, acme + 1000)


def test_at_a_terminal_the_password_is_asked_twice(app, admin_cli, db, monkeypatch):
    monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)
    # the two differ the first time: asked again
    result = admin_cli("create", "--operator", "ops@plan2learn.dk",
                       stdin=f"{PASSWORD}\nsomething else!\n{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.stderr
    assert PASSWORD not in result.output  # hidden
    assert admins.check_password(db, "ops@plan2learn.dk", PASSWORD) is not None


def test_at_a_terminal_mistakes_are_told_before_the_password_is_asked(admin_cli, acme, monkeypatch):
    monkeypatch.setattr(cli_module, "_stdin_is_terminal", lambda: True)
    result = admin_cli("create", "--tenant", "nope", "x@acme.dk", stdin="")
    assert result.exit_code == 1 and "Password" not in result.output
    assert admin_cli("create", "--tenant", "acme", "x@acme.dk", stdin=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    result = admin_cli("create", "--operator", "X@acme.dk", stdin="")
    assert result.exit_code == 1 and "Password" not in result.output
    assert "already exists" in one_error_line(result)


# ------------------------------------------------------------------ admin list and remove


def test_list(app, admin_cli, acme, db):
    assert admin_cli("list").stdout == ""
    assert admin_cli("create", "--tenant", "acme", "anna@acme.dk").exit_code == 0
    assert admin_cli("create", "--operator", "ops@plan2learn.dk").exit_code == 0
    admins.check_password(db, "ops@plan2learn.dk", PASSWORD)
    db.commit()
    result = admin_cli("list")
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [line[:2] for line in lines] == [["anna@acme.dk", "tenant acme"], ["ops@plan2learn.dk", "operator"]]
    for line in lines:
        assert len(line) == 4
        assert dt.datetime.fromisoformat(line[2]).tzinfo is not None
    assert lines[0][3] == "-"
    signed_in = dt.datetime.fromisoformat(lines[1][3])
    assert abs((signed_in - dt.datetime.now(dt.UTC)).total_seconds()) < 60


def test_remove(app, admin_cli, acme, db):
    assert admin_cli("create", "--tenant", "acme", "anna@acme.dk").exit_code == 0
    assert admin_cli("create", "--operator", "ops@plan2learn.dk").exit_code == 0
    anna = admins.find_admin(db, "anna@acme.dk")
    cookie, _ = admins.start_session(db, anna, T0)
    ops_cookie, _ = admins.start_session(db, admins.find_admin(db, "ops@plan2learn.dk"), T0)
    db.commit()

    result = admin_cli("remove", "Anna@Acme.dk")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "removed anna@acme.dk"
    db.expire_all()
    assert account(app, "anna@acme.dk") is None
    assert admins.find_session(db, cookie, T0) is None
    assert db.scalar(select(func.count()).select_from(ConsoleSession)) == 1  # the operator's stays
    assert admins.find_session(db, ops_cookie, T0) is not None
    assert [line.split("\t")[0] for line in admin_cli("list").stdout.splitlines()] == ["ops@plan2learn.dk"]

    result = admin_cli("remove", "anna@acme.dk")
    assert result.exit_code == 1
    assert "no console account 'anna@acme.dk'" in one_error_line(result)


def test_remove_admin_returns_whether_there_was_one(db):
    admin = admins.create_admin(db, "ops@plan2learn.dk", PASSWORD, None)
    admins.start_session(db, admin, T0)
    assert admins.remove_admin(db, "OPS@plan2learn.dk") is True
    assert admins.remove_admin(db, "ops@plan2learn.dk") is False
    assert db.scalar(select(func.count()).select_from(ConsoleSession)) == 0
    assert admins.list_admins(db) == []


# ------------------------------------------------------------------ passwords


def test_check_password(db, acme):
    admins.create_admin(db, "anna@acme.dk", PASSWORD, acme)
    assert admins.check_password(db, "anna@acme.dk", "wrong password!!") is None
    assert admins.find_admin(db, "anna@acme.dk").last_sign_in is None
    signed_in = admins.check_password(db, " Anna@ACME.dk ", PASSWORD)
    assert signed_in is not None and signed_in.email == "anna@acme.dk"
    assert signed_in.last_sign_in is not None
    assert abs((signed_in.last_sign_in - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    assert admins.check_password(db, "nobody@acme.dk", PASSWORD) is None
    assert admins.check_password(db, "", "") is None


def test_an_unknown_email_costs_a_hash_check_too(db, monkeypatch):
    admins.create_admin(db, "anna@acme.dk", PASSWORD, None)
    checked: list[str] = []
    real = admins.verify_password

    def counting(password_hash: str, password: str) -> bool:
        checked.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(admins, "verify_password", counting)
    assert admins.check_password(db, "nobody@acme.dk", PASSWORD) is None
    assert admins.check_password(db, "someone@acme.dk", PASSWORD) is None
    assert admins.check_password(db, "anna@acme.dk", "wrong password!!") is None
    assert len(checked) == 3
    assert checked[0] == checked[1] != checked[2]  # the same dummy hash, made once
    assert checked[0].startswith("scrypt:")


# ------------------------------------------------------------------ sessions


def test_sessions_start_find_and_end(db, acme):
    anna = admins.create_admin(db, "anna@acme.dk", PASSWORD, acme)
    cookie, csrf = admins.start_session(db, anna, T0)
    db.commit()
    row = db.scalar(select(ConsoleSession))
    assert row.id_hash == hashlib.sha256(cookie.encode()).hexdigest()  # only its hash is stored
    assert cookie not in (row.id_hash, row.csrf_token)
    assert row.expires_at == T0 + admins.SESSION_LIFETIME
    assert len(cookie) >= 43 and len(csrf) >= 43

    found = admins.find_session(db, cookie, T0 + dt.timedelta(hours=1))
    assert found is not None
    assert found.admin.email == "anna@acme.dk" and found.csrf_token == csrf
    assert admins.find_session(db, cookie + "x", T0) is None
    assert admins.find_session(db, "", T0) is None
    assert admins.find_session(db, row.id_hash, T0) is None  # the stored hash is no cookie

    admins.end_session(db, cookie)
    db.commit()
    assert admins.find_session(db, cookie, T0) is None
    assert db.scalar(select(func.count()).select_from(ConsoleSession)) == 0
    admins.end_session(db, cookie)  # twice: nothing to do


def test_each_session_has_its_own_csrf_token(db):
    ops = admins.create_admin(db, "ops@plan2learn.dk", PASSWORD, None)
    first = admins.start_session(db, ops, T0)
    second = admins.start_session(db, ops, T0)
    assert first[0] != second[0] and first[1] != second[1]
    assert admins.find_session(db, first[0], T0).csrf_token == first[1]
    assert admins.find_session(db, second[0], T0).csrf_token == second[1]
    admins.end_session(db, first[0])
    assert admins.find_session(db, first[0], T0) is None
    assert admins.find_session(db, second[0], T0) is not None  # signing out ends this browser's only


def test_an_expired_session_is_gone(db):
    ops = admins.create_admin(db, "ops@plan2learn.dk", PASSWORD, None)
    cookie, _ = admins.start_session(db, ops, T0)
    db.commit()
    end = T0 + admins.SESSION_LIFETIME
    assert admins.find_session(db, cookie, end - dt.timedelta(seconds=1)) is not None
    assert admins.find_session(db, cookie, end) is None
    # pages read in a read-only transaction, so the row goes at the next sign-in, not on lookup
    admins.start_session(db, ops, end)
    db.commit()
    assert db.scalar(select(func.count()).select_from(ConsoleSession)) == 1  # the new one only
    assert admins.find_session(db, cookie, T0) is None


# ------------------------------------------------------------------ failed sign-ins


def test_failed_sign_ins_slow_down_the_next(db):
    email = "anna@acme.dk"
    assert admins.wait_before_sign_in(db, email, T0) == 0
    for n in range(admins.FREE_FAILURES):  # the free ones
        admins.record_failure(db, email, T0)
        assert admins.wait_before_sign_in(db, email, T0) == 0, n
    admins.record_failure(db, email, T0)  # 4th: 2 s
    assert admins.wait_before_sign_in(db, email, T0) == 2
    assert admins.wait_before_sign_in(db, email, T0 + dt.timedelta(seconds=0.5)) == 1.5
    assert admins.wait_before_sign_in(db, email, T0 + dt.timedelta(seconds=2)) == 0
    assert admins.wait_before_sign_in(db, email, T0 + dt.timedelta(hours=1)) == 0
    t1 = T0 + dt.timedelta(seconds=10)
    admins.record_failure(db, email, t1)  # 5th: 4 s from the last failure
    assert admins.wait_before_sign_in(db, email, t1 + dt.timedelta(seconds=1)) == 3
    admins.record_failure(db, email, t1)  # 6th: 8 s
    assert admins.wait_before_sign_in(db, email, t1) == 8
    db.commit()
    row = db.scalar(select(SignInFailure))
    assert (row.email, row.failures, row.last_failure) == (email, 6, t1)


def test_the_wait_stops_growing_at_fifteen_minutes(db):
    for _ in range(admins.FREE_FAILURES + 9):
        admins.record_failure(db, "x@acme.dk", T0)
    assert admins.wait_before_sign_in(db, "x@acme.dk", T0) == 512
    admins.record_failure(db, "x@acme.dk", T0)
    assert admins.wait_before_sign_in(db, "x@acme.dk", T0) == 900  # not 1024
    for _ in range(100):
        admins.record_failure(db, "x@acme.dk", T0)
    assert admins.wait_before_sign_in(db, "x@acme.dk", T0 + dt.timedelta(seconds=100)) == 800


def test_failures_count_per_address_whatever_its_case_and_clear(db):
    for email in ("Anna@Acme.dk", "anna@acme.dk", " ANNA@ACME.DK", "anna@acme.dk"):
        admins.record_failure(db, email, T0)
    admins.record_failure(db, "bo@acme.dk", T0)
    assert admins.wait_before_sign_in(db, "ANNA@acme.dk", T0) == 2
    assert admins.wait_before_sign_in(db, "bo@acme.dk", T0) == 0
    admins.clear_failures(db, "Anna@acme.DK")
    assert admins.wait_before_sign_in(db, "anna@acme.dk", T0) == 0
    db.commit()
    assert db.scalars(select(SignInFailure.email)).all() == ["bo@acme.dk"]
    admins.clear_failures(db, "nobody@acme.dk")  # nothing to clear


def test_nothing_is_kept_unless_the_caller_commits(app, db):
    admins.create_admin(db, "ops@plan2learn.dk", PASSWORD, None)
    admins.record_failure(db, "x@acme.dk", T0)
    db.rollback()
    with app.extensions["scim_sessions"]() as other:
        assert other.scalar(select(func.count()).select_from(ConsoleAdmin)) == 0
        assert other.scalar(select(func.count()).select_from(SignInFailure)) == 0
