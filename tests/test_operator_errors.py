"""Operator mistakes end in one clear line on stderr and exit status 1 or 2, never a traceback
(issue 14): a database URL that cannot be used, a setting or option out of range, an unknown
tenant in any command, a JWKS file that cannot be used, nonsense numbers, bad tenant names.
Errors about a missing tenant, and ``serve``, name the database (password masked). And two
servers on one machine do not share gunicorn's control socket.

Commands run in-process through click's runner (a traceback would be an exception there) and,
where the process matters (``serve``, the cron job), as real subprocesses."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from conftest import assert_scim_error, bearer
from scim_server.cli import main
from scim_server.config import ConfigError, Settings
from scim_server.storage import tenants
from scim_server.storage.models import BearerToken, OAuthClient, Tenant

REPO = Path(__file__).resolve().parent.parent
ISSUER = "https://sts.windows.net/11111111-2222-3333-4444-555555555555/"
AUDIENCE = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"


# ------------------------------------------------------------------ helpers


@pytest.fixture
def url(app) -> str:
    """The test database's URL."""
    return app.config["SCIM"].database_url


@pytest.fixture(autouse=True)
def _no_server_in_process(monkeypatch):
    """A ``serve`` run in-process must fail before it starts gunicorn (which would never return)."""
    from scim_server import serving

    def refuse(*_args, **_kwargs):
        raise AssertionError("serve started gunicorn instead of refusing")

    monkeypatch.setattr(serving, "run_gunicorn", refuse)


@pytest.fixture
def run(url):
    """``scim-server ARGS`` in-process on the test database (``env`` adds or overrides variables)."""

    def invoke(*args: str, env: dict[str, str | None] | None = None, input: str | None = None):
        result = CliRunner().invoke(main, list(args), env={"SCIM_DATABASE_URL": url, **(env or {})}, input=input)
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            f"a traceback for {args}: {result.exception!r}\n{result.output}"
        return result

    return invoke


def one_error(result, status: int | tuple[int, ...] = (1, 2)) -> str:
    """The command failed with ``status`` and said why in exactly one line on stderr."""
    statuses = (status,) if isinstance(status, int) else status
    assert result.exit_code in statuses, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines
    assert "Traceback" not in result.output
    return lines[0]


def process(*args: str, env: dict[str, str | None], cwd: str | None = None, timeout: float = 60):
    """``scim-server ARGS`` as a real process (the cron job, ``serve``)."""
    full = dict(os.environ)
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run([sys.executable, "-m", "scim_server.cli", *args], env=full, cwd=cwd or str(REPO),
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(completed: subprocess.CompletedProcess, status: tuple[int, ...] = (1, 2)) -> str:
    assert completed.returncode in status, (completed.returncode, completed.stderr)
    assert "Traceback" not in completed.stderr, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def label(url: str) -> str:
    """How the commands name a database: password masked, a SQLite file with its absolute path."""
    return tenants.database_label(url)


def tenant_names(app) -> list[str]:
    with app.extensions["scim_sessions"]() as session:
        return list(session.scalars(select(Tenant.name).order_by(Tenant.name)))


def missing_database_url(app, tmp_path) -> str:
    """A database that does not exist, on the test database's kind of server."""
    engine = app.extensions["scim_engine"]
    if engine.dialect.name == "postgresql":
        return engine.url.set(database="scim_no_such_database_h14").render_as_string(hide_password=False)
    return f"sqlite:///{tmp_path}/no/such/folder/scim.db"


# ------------------------------------------------------------------ database URLs


@pytest.mark.parametrize("bad", ["nonsense", "sqlite//scim.db", "postgresql://scim:hunter2@db:notaport/scim"])
def test_database_url_that_cannot_be_parsed(run, bad):
    line = one_error(run("tenant", "list", env={"SCIM_DATABASE_URL": bad}), 1)
    assert "SCIM_DATABASE_URL is not a database URL" in line
    assert "hunter2" not in line


@pytest.mark.parametrize("bad", ["foo://x/y", "mysql://scim@db/scim", "postgresql+nosuchdriver://scim@db/scim",
                                 "postgresql+psycopg2://scim:hunter2@db/scim"])
def test_database_url_with_unknown_driver(run, bad):
    line = one_error(run("tenant", "list", env={"SCIM_DATABASE_URL": bad}), 1)
    assert "SCIM_DATABASE_URL names" in line and ("unsupported database" in line or "not installed" in line)
    assert "hunter2" not in line


def test_database_that_cannot_be_reached_masks_the_password(run):
    bad = "postgresql://scim:hunter2@127.0.0.1:1/scim"
    line = one_error(run("tenant", "list", env={"SCIM_DATABASE_URL": bad}), 1)
    assert "cannot open the database postgresql://scim:***@127.0.0.1:1/scim: " in line
    assert "hunter2" not in line


def test_database_that_does_not_exist(app, run, tmp_path):
    bad = missing_database_url(app, tmp_path)
    line = one_error(run("token", "list", "--tenant", "acme", env={"SCIM_DATABASE_URL": bad}), 1)
    assert line.startswith("Error: cannot open the database ")
    assert ("scim_no_such_database_h14" in line and "does not exist" in line) or "no/such/folder" in line


COMMANDS = [
    ["serve"], ["serve", "--demo"], ["db", "upgrade"], ["demo", "--employees", "1"], ["deactivate-leavers"],
    ["tenant", "create", "x"], ["tenant", "list"], ["tenant", "set", "x", "--master-data"],
    ["tenant", "delete", "x", "--yes"], ["token", "create", "--tenant", "x"], ["token", "list", "--tenant", "x"],
    ["token", "revoke", "x"], ["client", "create", "--tenant", "x"], ["client", "list", "--tenant", "x"],
    ["client", "revoke", "x"], ["audit", "--tenant", "x"], ["audit", "purge", "--older-than", "5"],
    ["audit", "erase", "--tenant", "x", "--user", "y"], ["sync", "--tenant", "x", "--source", "hr", "--users", "u.csv"],
    ["sync-runs", "--tenant", "x"], ["source", "list", "--tenant", "x"], ["source", "create", "--tenant", "x", "hr"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_refuses_an_unusable_database_in_one_line(app, run, tmp_path, args):
    for bad in ("nonsense", "foo://x/y", "postgresql://scim:hunter2@127.0.0.1:1/scim",
                missing_database_url(app, tmp_path)):
        line = one_error(run(*args, env={"SCIM_DATABASE_URL": bad}), 1)
        assert "SCIM_DATABASE_URL" in line or "cannot open the database" in line
        assert "hunter2" not in line


def test_help_needs_no_database(run):
    """Help, a group named alone and an unknown command are answered without opening the database."""
    bad = {"SCIM_DATABASE_URL": "postgresql://scim:hunter2@127.0.0.1:1/scim"}
    for args in (["--help"], ["serve", "--help"], ["tenant", "delete", "--help"], ["audit", "purge", "--help"],
                 ["tenant"]):
        result = run(*args, env=bad)
        assert result.exit_code in (0, 2) and "Usage: " in result.output, (args, result.output)
        assert "cannot open the database" not in result.output
    assert "No such command 'bogus'" in one_error(run("bogus", env=bad), 2)


def test_serve_with_unusable_database_exits_in_one_line(app, tmp_path):
    """A real process: nothing of gunicorn starts, one line, exit status 1."""
    for bad in ("nonsense", "postgresql://scim:hunter2@127.0.0.1:1/scim", missing_database_url(app, tmp_path)):
        done = process("serve", "--port", str(free_port()), env={"SCIM_DATABASE_URL": bad})
        line = one_error_line(done, (1,))
        assert "hunter2" not in done.stderr
        assert "Listening at" not in done.stderr, line


def test_a_database_error_during_a_command_is_one_line(run, url, monkeypatch, api):
    """A database that goes away mid-command: one line naming the database, never a traceback."""

    def lost(*_args, **_kwargs):
        raise OperationalError("INSERT INTO tenants ...", {}, Exception("server closed the connection\nunexpectedly"))

    monkeypatch.setattr(tenants, "create_tenant", lost)
    line = one_error(run("tenant", "create", "newco"), 1)
    assert line == f"Error: database error in {label(url)}: server closed the connection unexpectedly"


def test_database_label_masks_passwords_and_shows_sqlite_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tenants.database_label("sqlite:///scim.db") == f"sqlite:///scim.db ({tmp_path}/scim.db)"
    assert tenants.database_label("postgresql://scim:hunter2@db:5432/scim") == "postgresql://scim:***@db:5432/scim"
    assert "hunter2" not in tenants.database_label("postgresql://scim@db/scim?password=hunter2")
    assert "hunter2" not in tenants.database_label("postgresql://scim:hunter2@db:notaport/scim")


# ------------------------------------------------------------------ settings and --port


@pytest.mark.parametrize(("name", "value"), [
    ("SCIM_MAX_PAGE_SIZE", "abc"), ("SCIM_MAX_PAGE_SIZE", "0"), ("SCIM_DEFAULT_PAGE_SIZE", "1.5"),
    ("SCIM_CURSOR_TIMEOUT", "-1"), ("SCIM_MAX_BODY_BYTES", "10MB"), ("SCIM_MAX_PATCH_OPERATIONS", "0"),
    ("SCIM_BULK_MAX_OPERATIONS", "many"), ("SCIM_BULK_MAX_PAYLOAD_BYTES", "-5"), ("SCIM_SYNC_MAX_BYTES", "0"),
    ("SCIM_SYNC_INLINE_BYTES", "x"), ("SCIM_TOKEN_CACHE_SECONDS", "-1"),
    ("SCIM_ACCESS_TOKEN_SECONDS", "99999999999999999999"),
])
def test_setting_that_is_not_a_usable_number(run, name, value):
    for args in (["tenant", "list"], ["serve"], ["deactivate-leavers"]):
        line = one_error(run(*args, env={name: value}), 1)
        assert name in line and "must be" in line


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SCIM_") and name not in ("SCIM_TEST_DATABASE_URL", "SCIM_SCHEMA_DIR"):
            monkeypatch.delenv(name, raising=False)


def test_settings_raise_one_clear_error(monkeypatch):
    monkeypatch.setenv("SCIM_MAX_PAGE_SIZE", "abc")
    with pytest.raises(ConfigError, match="SCIM_MAX_PAGE_SIZE must be a whole number, not 'abc'"):
        Settings.from_env()
    monkeypatch.setenv("SCIM_MAX_PAGE_SIZE", "0")
    with pytest.raises(ConfigError, match="SCIM_MAX_PAGE_SIZE must be from 1 to"):
        Settings.from_env()
    monkeypatch.setenv("SCIM_MAX_PAGE_SIZE", " 50 ")
    assert Settings.from_env().max_page_size == 50
    monkeypatch.setenv("SCIM_MAX_PAGE_SIZE", "")
    assert Settings.from_env().max_page_size == Settings.max_page_size


@pytest.mark.parametrize(("args", "env", "word"), [
    (["serve", "--port", "abc"], {}, "--port"),
    (["serve", "--port", "0"], {}, "--port"),
    (["serve", "--port", "70000"], {}, "--port"),
    (["serve"], {"SCIM_PORT": "http"}, "SCIM_PORT"),
    (["serve"], {"SCIM_PORT": "65536"}, "SCIM_PORT"),
    (["serve"], {"SCIM_WORKERS": "-1"}, "SCIM_WORKERS"),
    (["serve"], {"SCIM_THREADS": "0"}, "SCIM_THREADS"),
    (["serve", "--threads", "lots"], {}, "--threads"),
])
def test_port_workers_and_threads_out_of_range(run, args, env, word):
    line = one_error(run(*args, env=env), 2)
    assert word in line


def test_serve_with_bad_port_as_a_process():
    done = process("serve", "--port", "99999", env={})
    assert "--port" in one_error_line(done, (2,))
    done = process("serve", env={"SCIM_PORT": "eighty"})
    assert "SCIM_PORT" in one_error_line(done, (2,))


# ------------------------------------------------------------------ unknown tenants, in every command


TENANT_COMMANDS = [
    ["deactivate-leavers", "--tenant", "typo"],
    ["deactivate-leavers", "--tenant", "typo", "--dry-run"],
    ["tenant", "set", "typo", "--org-unit-attribute", "department"],
    ["tenant", "set", "typo", "--audit-retention-days", "30"],
    ["tenant", "delete", "typo", "--yes"],
    ["token", "create", "--tenant", "typo"],
    ["token", "list", "--tenant", "typo"],
    ["client", "create", "--tenant", "typo"],
    ["client", "list", "--tenant", "typo"],
    ["audit", "--tenant", "typo"],
    ["audit", "purge", "--tenant", "typo", "--older-than", "30"],
    ["audit", "erase", "--tenant", "typo", "--user", "someone"],
    ["sync", "--tenant", "typo", "--source", "hr", "--users", "users.csv"],
    ["sync-runs", "--tenant", "typo"],
    ["source", "create", "--tenant", "typo", "hr"],
    ["source", "list", "--tenant", "typo"],
]


@pytest.mark.parametrize("args", TENANT_COMMANDS, ids=[" ".join(c) for c in TENANT_COMMANDS])
def test_unknown_tenant_in_any_command_names_the_database(run, url, api, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "users.csv").write_text("externalId,userName\n1,a@k.dk\n", encoding="utf-8")
    line = one_error(run(*args), 1)
    assert line == f"Error: no tenant named 'typo' in {label(url)}"


def test_unknown_tenant_suggests_the_one_differing_in_case(run, url, api):
    line = one_error(run("deactivate-leavers", "--tenant", "ACME"), 1)
    assert line == f"Error: no tenant named 'ACME' in {label(url)} (did you mean 'acme'?)"


def test_token_and_client_revoke_of_unknown_ids_name_the_database(run, url, api):
    assert one_error(run("token", "revoke", "nope"), 1) == f"Error: no token 'nope' in {label(url)}"
    assert one_error(run("client", "revoke", "nope"), 1) == f"Error: no client 'nope' in {label(url)}"


def test_deactivate_leavers_for_unknown_tenant_from_cron(url, api):
    """The command meant for cron, as cron runs it: one line, exit status 1, nothing on stdout."""
    done = process("deactivate-leavers", "--tenant", "typo", env={"SCIM_DATABASE_URL": url})
    assert one_error_line(done, (1,)) == f"Error: no tenant named 'typo' in {label(url)}"
    assert done.stdout == ""


def test_relative_default_database_in_another_folder_is_named(tmp_path):
    """Without SCIM_DATABASE_URL a command in another folder opens ./scim.db there: the error says so."""
    done = process("deactivate-leavers", "--tenant", "acme", env={"SCIM_DATABASE_URL": None}, cwd=str(tmp_path))
    line = one_error_line(done, (1,))
    assert line == f"Error: no tenant named 'acme' in sqlite:///scim.db ({tmp_path}/scim.db)"
    listed = process("tenant", "list", env={"SCIM_DATABASE_URL": None}, cwd=str(tmp_path))
    assert listed.returncode == 0 and listed.stdout == ""
    assert listed.stderr.strip() == f"no tenants in sqlite:///scim.db ({tmp_path}/scim.db)"


def test_missing_tenant_message_masks_the_password(app, api):
    engine = app.extensions["scim_engine"]
    if engine.dialect.name != "postgresql":
        pytest.skip("a SQLite URL holds no password")
    with_password = engine.url.set(password="hunter2").render_as_string(hide_password=False)
    result = CliRunner().invoke(main, ["token", "list", "--tenant", "typo"], env={"SCIM_DATABASE_URL": with_password})
    line = one_error(result, 1)
    assert "hunter2" not in result.output and ":***@" in line


def test_demo_into_unknown_tenant_spelling_is_refused(run, api):
    line = one_error(run("demo", "--tenant", "ACME", "--employees", "1", "--externals", "0"), 1)
    assert "differs from the existing tenant 'acme' only in case" in line


# ------------------------------------------------------------------ JWKS files


def rsa_public(key: RSAKey, **extra) -> dict:
    return {**key.as_dict(private=False), "kid": key.thumbprint(), **extra}


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048)


BAD_JWKS = {
    "not-json.jwks": ("this is not JSON {", "is not JSON"),
    "empty.jwks": ("", "is not JSON"),
    "list.jwks": ("[1, 2, 3]", "holds no key set"),
    "no-keys.jwks": ('{"keys": []}', "holds no key set"),
    "strings.jwks": ('{"keys": ["abc"]}', "holds no key set"),
    "oct.jwks": (json.dumps({"keys": [OctKey.generate_key(256).as_dict()]}), "is not a public key"),
    "broken-rsa.jwks": ('{"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}', "cannot be read as a RSA public key"),
    "missing-n.jwks": ('{"keys": [{"kty": "RSA", "e": "AQAB"}]}', "cannot be read as a RSA public key"),
}


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def trust(run, path: str, *extra: str):
    return run("tenant", "set", "acme", "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
               "--jwt-jwks-file", path, *extra)


def signed(key, alg: str = "RS256") -> str:
    now = int(time.time())
    return jwt.encode({"alg": alg, "kid": key.thumbprint()},
                      {"iss": ISSUER, "aud": AUDIENCE, "sub": "entra", "iat": now, "exp": now + 600}, key,
                      algorithms=[alg])


@pytest.fixture
def fresh_jwks():
    from scim_server.http import issued_jwt
    issued_jwt.clear_cache()
    yield
    issued_jwt.clear_cache()


@pytest.mark.parametrize("name", sorted(BAD_JWKS))
def test_tenant_set_refuses_an_unusable_jwks_file(app, api, run, tmp_path, rsa, fresh_jwks, name):
    text, reason = BAD_JWKS[name]
    line = one_error(trust(run, write(tmp_path, name, text)), 2)
    assert "--jwt-jwks-file" in line and reason in line, line
    with app.extensions["scim_sessions"]() as session:
        assert "jwt" not in (tenants.get_tenant(session, "acme").settings or {})
    assert_scim_error(bearer(app, signed(rsa)).get("/Users"), 401)


def test_tenant_set_refuses_private_keys_and_keys_for_other_algorithms(app, api, run, tmp_path, rsa, fresh_jwks):
    private = write(tmp_path, "private.jwks", json.dumps({"keys": [rsa.as_dict(private=True)]}))
    assert "is a private key" in one_error(trust(run, private), 2)
    ec = ECKey.generate_key("P-256")
    ec_only = write(tmp_path, "ec.jwks", json.dumps({"keys": [{**ec.as_dict(private=False), "kid": ec.thumbprint()}]}))
    assert "no public key usable for signatures with RS256" in one_error(trust(run, ec_only), 2)
    enc_only = write(tmp_path, "enc.jwks", json.dumps({"keys": [rsa_public(rsa, use="enc")]}))
    assert "no public key usable for signatures" in one_error(trust(run, enc_only), 2)
    good = write(tmp_path, "good.jwks", json.dumps({"keys": [rsa_public(rsa)]}))
    assert "--jwt-algorithms" in one_error(trust(run, good, "--jwt-algorithms", "HS256"), 2)
    assert "--jwt-algorithms" in one_error(trust(run, good, "--jwt-algorithms", "none"), 2)
    # the same EC key is usable with ES256
    ok = trust(run, ec_only, "--jwt-algorithms", "ES256")
    assert ok.exit_code == 0, ok.output
    assert bearer(app, signed(ec, "ES256")).get("/Users").status_code == 200


def test_tenant_set_takes_a_usable_jwks_file(app, api, run, tmp_path, rsa, fresh_jwks):
    good = write(tmp_path, "good.jwks", json.dumps({"keys": [rsa_public(rsa), OctKey.generate_key(256).as_dict()]}))
    assert "is not a public key" in one_error(trust(run, good), 2)  # one bad key spoils the file
    good = write(tmp_path, "good.jwks", json.dumps({"keys": [rsa_public(rsa, use="enc"), rsa_public(rsa)]}))
    result = trust(run, good)
    assert result.exit_code == 0, result.output
    assert bearer(app, signed(rsa)).get("/Users").status_code == 200


@pytest.mark.parametrize("name", sorted(BAD_JWKS))
def test_client_create_refuses_an_unusable_jwks_file(app, api, run, tmp_path, name):
    text, reason = BAD_JWKS[name]
    line = one_error(run("client", "create", "--tenant", "acme", "--jwks-file", write(tmp_path, name, text)), 2)
    assert "--jwks-file" in line and reason in line, line
    with app.extensions["scim_sessions"]() as session:
        assert session.scalars(select(OAuthClient)).all() == []


def test_client_create_takes_a_public_key_or_a_key_set(app, api, run, tmp_path, rsa):
    private = write(tmp_path, "private.jwk", json.dumps(rsa.as_dict(private=True)))
    assert "is a private key" in one_error(run("client", "create", "--tenant", "acme", "--jwks-file", private), 2)
    for name, data in (("one.jwk", rsa_public(rsa)), ("set.jwks", {"keys": [rsa_public(rsa)]})):
        result = run("client", "create", "--tenant", "acme", "--jwks-file", write(tmp_path, name, json.dumps(data)))
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["token_endpoint_auth_method"] == "private_key_jwt"


# ------------------------------------------------------------------ nonsense numbers


@pytest.mark.parametrize(("args", "option"), [
    (["token", "create", "--tenant", "acme", "--expires-in-days", "0"], "--expires-in-days"),
    (["token", "create", "--tenant", "acme", "--expires-in-days", "-3"], "--expires-in-days"),
    (["token", "create", "--tenant", "acme", "--expires-in-days", "99999999"], "--expires-in-days"),
    (["demo", "--tenant", "d", "--employees", "-5"], "--employees"),
    (["demo", "--tenant", "d", "--externals", "-1"], "--externals"),
    (["audit", "--tenant", "acme", "--limit", "-1"], "--limit"),
    (["audit", "--tenant", "acme", "--limit", "0"], "--limit"),
    (["audit", "--tenant", "acme", "--since", "9999-12-31T23:59:59-01:00"], "--since"),
    (["audit", "--tenant", "acme", "--since", "yesterday"], "--since"),
    (["tenant", "set", "acme", "--audit-retention-days", "-1"], "--audit-retention-days"),
    (["audit", "purge", "--older-than", "0"], "--older-than"),
    (["deactivate-leavers", "--now", "next tuesday"], "--now"),
    (["sync-runs", "--tenant", "acme", "--limit", "0"], "--limit"),
])
def test_nonsense_numbers_are_refused(app, api, run, args, option):
    line = one_error(run(*args), 2)
    assert option in line
    assert tenant_names(app) == ["acme"]  # no demo tenant
    with app.extensions["scim_sessions"]() as session:
        assert len(session.scalars(select(BearerToken)).all()) == 1  # the fixture's token only


def test_usage_errors_are_one_line(run, api):
    assert "Missing option '--tenant'" in one_error(run("token", "create"), 2)
    assert "Missing option '--tenant'" in one_error(run("audit"), 2)
    assert "No such command 'bogus'" in one_error(run("bogus"), 2)
    # options of the listing given before a subcommand would be ignored by it: refused
    line = one_error(run("audit", "--tenant", "acme", "purge", "--older-than", "1"), 2)
    assert "give --tenant after 'audit purge'" in line


# ------------------------------------------------------------------ tenant names


@pytest.mark.parametrize(("name", "reason"), [
    ("", "cannot be empty"), ("   ", "cannot be empty"), (" acme2", "cannot begin or end with spaces"),
    ("acme2\t", "cannot begin or end with spaces"), ("ac\x00me", "control characters"),
    ("a" * 101, "at most 100 characters"), ("ACME", "differs from the existing tenant 'acme' only in case"),
    ("Acme", "differs from the existing tenant 'acme' only in case"), ("acme", "already exists"),
])
def test_tenant_create_refuses_bad_names(app, api, run, name, reason):
    line = one_error(run("tenant", "create", name), 1)
    assert reason in line
    assert tenant_names(app) == ["acme"]
    assert api.get("/Users").status_code == 200


def test_tenant_names_that_differ_in_more_than_case_are_fine(app, api, run):
    result = run("tenant", "create", "acme-2")
    assert result.exit_code == 0, result.output
    assert tenant_names(app) == ["acme", "acme-2"]


# ------------------------------------------------------------------ serve, and gunicorn's control socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def control_sockets(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.ctl") if p.is_socket()) if folder.exists() else []


def answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(2)
        try:
            client.connect(str(path))
        except OSError:
            return False
        return True


def test_two_servers_do_not_share_gunicorn_control_socket(url, api):
    """Two servers on one machine (same user, same HOME): each has its own control socket, and
    the second's exit leaves the first's socket (and the first) working."""
    home = Path(tempfile.mkdtemp(prefix="scim-ctl-"))  # short: a socket path has at most 107 bytes
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}  # gunicorn's folder is then ~/.gunicorn
    env.update(SCIM_DATABASE_URL=url, HOME=str(home))
    ports = [free_port(), free_port()]
    servers, logs = [], []
    try:
        for port in ports:
            log = open(home / f"server-{port}.log", "w+")  # closed below
            logs.append(log)
            servers.append(subprocess.Popen(
                [sys.executable, "-m", "scim_server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--workers", "1", "--threads", "2"], env=env, cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(healthy(p) for p in ports):
            assert all(s.poll() is None for s in servers), [Path(f.name).read_text() for f in logs]
            time.sleep(0.2)
        deadline = time.monotonic() + 10  # gunicorn opens its control socket once its workers run
        while time.monotonic() < deadline and len(control_sockets(home)) < 2:
            time.sleep(0.2)
        sockets = control_sockets(home)
        assert all(healthy(p) for p in ports), [Path(f.name).read_text() for f in logs]
        assert len(sockets) == 2, (sockets, "the two servers share one control socket")
        first = [s for s in sockets if s.name.endswith(f"_{ports[0]}.ctl")]
        assert first, sockets
        # the second server stops
        servers[1].send_signal(signal.SIGTERM)
        servers[1].wait(timeout=40)
        assert first[0].is_socket() and answers(first[0]), "the second server's exit removed the first's socket"
        assert control_sockets(home) == first
        assert healthy(ports[0])
        assert "database: " + label(url) in Path(logs[0].name).read_text()
    finally:
        for server in servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        for log in logs:
            log.close()
        shutil.rmtree(home, ignore_errors=True)
