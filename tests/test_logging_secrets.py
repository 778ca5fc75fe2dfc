"""No token, client secret, client assertion, password or Authorization header value
ever reaches a log line: neither a Python log record (any logger, INFO and up) nor the
JSON access-log lines that ``scim_server.access`` writes to stderr."""
from __future__ import annotations

import base64
import io
import json
import logging
import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from conftest import CORE_GROUP, CORE_USER, ScimClient
from scim_server.http.requestlog import JsonFormatter
from scim_server.http.requestlog import log as access_log
from scim_server.storage import clients, tenants

PASSWORD = "Hunter2-Very-Secret!"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def access_lines():
    """The JSON lines the access log writes to stderr, redirected to a buffer for the test."""
    buffer = io.StringIO()
    handlers = [h for h in access_log.handlers if isinstance(h.formatter, JsonFormatter)]
    assert handlers, "the access log has no JSON stderr handler"
    old = [h.setStream(buffer) for h in handlers]
    yield buffer
    for handler, stream in zip(handlers, old):
        handler.setStream(stream)


def all_log_text(caplog, buffer) -> str:
    parts = [caplog.text, buffer.getvalue()]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.__dict__))
    return "\n".join(parts)


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def form(http, path, data, headers=None):
    return http.post(path, data=data, headers=headers or {}, content_type="application/x-www-form-urlencoded")


def test_no_secret_or_token_in_any_log_line(app, api, caplog, access_lines):
    caplog.set_level(logging.INFO)  # every logger
    http = app.test_client()
    with app.extensions["scim_sessions"].begin() as session:
        acme = tenants.get_tenant(session, "acme")
        row, secret = clients.create_client(session, acme, "scim:read scim:write")
        client_id = row.client_id
        key = RSAKey.generate_key(2048)
        key_row, _ = clients.create_client(session, acme, "scim:read", jwks={"keys": [key.as_dict(private=False)]})
        key_client = key_row.client_id
        spare = tenants.create_token(session, acme, "spare")
    secrets_seen: list[str] = [secret, api.token, spare, PASSWORD]
    headers_seen: list[str] = []

    # token requests: basic, post, wrong secret, private_key_jwt, a replayed assertion
    auth = basic(client_id, secret)
    headers_seen.append(auth)
    r = form(http, "/oauth/token", {"grant_type": "client_credentials"}, {"Authorization": auth})
    assert r.status_code == 200
    token_a = r.get_json()["access_token"]
    r = form(http, "/oauth/token", {"grant_type": "client_credentials", "client_id": client_id,
                                    "client_secret": secret})
    assert r.status_code == 200
    token_b = r.get_json()["access_token"]
    wrong = basic(client_id, "wrong-" + secret)
    headers_seen.append(wrong)
    secrets_seen.append("wrong-" + secret)
    assert form(http, "/oauth/token", {"grant_type": "client_credentials"}, {"Authorization": wrong}).status_code == 401
    now = int(time.time())
    signed = jwt.encode({"alg": "RS256"}, {"iss": key_client, "sub": key_client, "exp": now + 300, "iat": now,
                                           "aud": "http://localhost/oauth/token", "jti": uuid.uuid4().hex}, key)
    data = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
    r = form(http, "/oauth/token", data)
    assert r.status_code == 200, r.get_data(as_text=True)
    token_c = r.get_json()["access_token"]
    assert form(http, "/oauth/token", data).status_code == 400  # replay: a rejected assertion is 400
    secrets_seen += [token_a, token_b, token_c, signed]

    # introspection and revocation
    assert form(http, "/oauth/introspect", {"token": token_a}, {"Authorization": auth}).status_code == 200
    assert form(http, "/oauth/introspect", {"token": token_a}).status_code == 401
    assert form(http, "/oauth/revoke", {"token": token_b}, {"Authorization": auth}).status_code == 200

    # SCIM calls: success, errors, a revoked token, a bogus token, a bogus JWT, a password
    scim = ScimClient(http, token_a)
    user = scim.create_user("log@acme.com", password=PASSWORD)
    scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "password", "value": PASSWORD + "2"})
    secrets_seen.append(PASSWORD + "2")
    assert scim.get(f"/Users/{user['id']}").status_code == 200
    assert scim.get("/Users/no-such-user").status_code == 404
    assert scim.post("/Users", json={"schemas": [CORE_USER], "userName": "log@acme.com"}).status_code == 409
    assert scim.post("/Users", data="{not json", content_type="application/scim+json").status_code == 400
    assert scim.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "G",
                                      "members": [{"value": "missing"}]}).status_code == 400
    assert ScimClient(http, token_b).get("/Users").status_code == 401
    bogus = "bogus-" + uuid.uuid4().hex
    bogus_jwt = jwt.encode({"alg": "RS256"}, {"iss": "x", "aud": "y", "exp": now + 60}, RSAKey.generate_key(2048))
    secrets_seen += [bogus, bogus_jwt]
    assert ScimClient(http, bogus).get("/Users").status_code == 401
    assert ScimClient(http, bogus_jwt).get("/Users").status_code == 401
    reader = ScimClient(http, token_c)
    assert reader.delete(f"/Users/{user['id']}").status_code == 403
    assert api.get("/Users").status_code == 200
    raw = http.get("/scim/v2/Users", headers={"Authorization": f"Token {bogus}x"})
    secrets_seen.append(f"{bogus}x")
    assert raw.status_code == 401
    assert http.get("/scim/v2/Users", headers={"Authorization": basic(client_id, secret)}).status_code == 401

    text = all_log_text(caplog, access_lines)
    lines = [json.loads(line) for line in access_lines.getvalue().splitlines() if line.strip()]
    assert len(lines) >= 20, "the access log wrote no JSON line per request"
    assert all(line["logger"] == "scim_server.access" and line.get("request_id") for line in lines)
    for value in secrets_seen + headers_seen:
        assert value not in text, f"a secret ({value[:8]}...) appears in the logs"
    # no fragment of a JWT (header.payload) either
    assert signed.split(".")[1] not in text
    assert "Authorization" not in text and "authorization" not in text.lower().replace("authorization_server", "")
    assert "Bearer " not in text and "Basic " not in text


def test_unhandled_error_log_has_no_credentials(app, api, caplog, access_lines, monkeypatch):
    """An unexpected error is logged with a traceback; the traceback must not carry the token."""
    caplog.set_level(logging.INFO)
    from scim_server.storage import users

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(users.UserStore, "search", broken)
    try:
        r = api.get("/Users")
        assert r.status_code == 500
    except RuntimeError:
        pass
    text = all_log_text(caplog, access_lines)
    assert api.token not in text
    assert "Authorization" not in text


def test_cli_client_create_prints_secret_only_on_stdout(app, api, caplog):
    from click.testing import CliRunner

    from scim_server.cli import main
    caplog.set_level(logging.INFO)
    result = CliRunner().invoke(main, ["client", "create", "--tenant", "acme"],
                                env={"SCIM_DATABASE_URL": app.config["SCIM"].database_url})
    assert result.exit_code == 0, result.output
    secret = json.loads(result.stdout)["client_secret"]
    assert secret not in caplog.text
    try:
        assert secret not in result.stderr
    except ValueError:  # older click without separate stderr
        pass
    result = CliRunner().invoke(main, ["token", "create", "--tenant", "acme"],
                                env={"SCIM_DATABASE_URL": app.config["SCIM"].database_url})
    token = result.stdout.strip()
    assert token and token not in caplog.text
