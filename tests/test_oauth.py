"""OAuth 2.0: the client credentials grant, client authentication (secret and
private_key_jwt), introspection, revocation, metadata, scopes, long-lived tokens
and the client/token CLI."""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select, text, update

from conftest import (
    CORE_GROUP,
    CORE_USER,
    PATCH_OP,
    access_token,
    assert_scim_error,
    basic,
    bearer,
    make_client,
    tenant_of,
)
from scim_server.storage import tenants
from scim_server.storage.models import BearerToken, OAuthClient

SERVER = "http://localhost"
TOKEN_URL = "/oauth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


# ------------------------------------------------------------------ helpers


def long_lived_token(app, tenant="acme", scope="scim:read scim:write", expires_at=None):
    with app.extensions["scim_sessions"].begin() as session:
        return tenants.create_token(session, tenant_of(session, tenant), "test", scope, expires_at)


def expire_tokens_of(app, client_id):
    """Make every token issued to the client expired (five seconds ago)."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    with app.extensions["scim_sessions"].begin() as session:
        session.execute(update(BearerToken).where(BearerToken.client_id == client_id).values(expires_at=past))


def post_form(http, path, data, headers=None):
    return http.post(path, data=data, headers=headers or {},
                     content_type="application/x-www-form-urlencoded")


def token_basic(http, client_id, secret, **extra):
    return post_form(http, TOKEN_URL, {"grant_type": "client_credentials", **extra}, basic(client_id, secret))


def token_post(http, client_id, secret, **extra):
    return post_form(http, TOKEN_URL, {"grant_type": "client_credentials", "client_id": client_id,
                                       "client_secret": secret, **extra})


def assertion(client_id, key, aud=SERVER + TOKEN_URL, jti=None, exp_delta=300, **extra):
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + exp_delta,
              "jti": jti or uuid.uuid4().hex, **extra}
    return jwt.encode({"alg": "RS256"}, claims, key)


def token_with_assertion(http, signed, **extra):
    return post_form(http, TOKEN_URL, {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                                       "client_assertion": signed, **extra})


@pytest.fixture
def rsa_key():
    return RSAKey.generate_key(2048)


@pytest.fixture
def key_client(app, api, rsa_key):
    client_id, secret = make_client(app, jwks={"keys": [rsa_key.as_dict(private=False)]})
    assert secret is None
    return client_id


def assert_oauth_error(response, status, error):
    # RFC 6749 §5.2: invalid_client is 401 when the client authenticated with a secret (Authorization
    # header or form body) and may be 400 otherwise: the server answers a rejected client assertion
    # (RFC 7523) with 400
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.get_json()["error"] == error, response.get_json()


# ------------------------------------------------------------------ metadata


def test_metadata_describes_the_server(app, anonymous):
    r = anonymous.http.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    meta = r.get_json()
    assert meta["issuer"] == SERVER
    assert meta["token_endpoint"] == SERVER + "/oauth/token"
    assert meta["introspection_endpoint"] == SERVER + "/oauth/introspect"
    assert meta["revocation_endpoint"] == SERVER + "/oauth/revoke"
    assert "client_credentials" in meta["grant_types_supported"]
    for method in ("client_secret_basic", "client_secret_post", "private_key_jwt"):
        assert method in meta["token_endpoint_auth_methods_supported"]
    assert "RS256" in meta["token_endpoint_auth_signing_alg_values_supported"]
    assert {"scim:read", "scim:write"} <= set(meta["scopes_supported"])


# ------------------------------------------------------------------ client credentials


@pytest.mark.parametrize("method", ["basic", "post"])
def test_client_credentials_grant_issues_short_lived_token(app, api, method):
    client_id, secret = make_client(app)
    http = app.test_client()
    r = (token_basic if method == "basic" else token_post)(http, client_id, secret)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["token_type"].lower() == "bearer"
    assert 3500 <= body["expires_in"] <= 3600
    assert set(body["scope"].split()) == {"scim:read", "scim:write"}
    assert "no-store" in r.headers.get("Cache-Control", "")
    scim = bearer(app, body["access_token"])
    created = scim.create_user("oauth@example.com")
    assert scim.get(f"/Users/{created['id']}").status_code == 200
    # the token's row expires in about an hour, and only its hash is stored
    with app.extensions["scim_sessions"]() as session:
        row = session.scalar(select(BearerToken).where(BearerToken.client_id == client_id))
        assert row.token_hash != body["access_token"]
        assert row.token_hash == tenants.hash_token(body["access_token"])
        expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.UTC)
        left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
        assert 3500 < left <= 3601


def test_wrong_secret_and_unknown_client_are_rejected(app, api):
    client_id, secret = make_client(app)
    http = app.test_client()
    assert_oauth_error(token_basic(http, client_id, secret + "x"), 401, "invalid_client")
    assert_oauth_error(token_post(http, client_id, "nope"), 401, "invalid_client")
    assert_oauth_error(token_basic(http, "no-such-client", secret), 401, "invalid_client")
    r = post_form(http, TOKEN_URL, {"grant_type": "client_credentials"})
    assert r.status_code == 401
    assert r.get_json()["error"] == "invalid_client"


def test_other_grant_types_are_refused(app, api):
    client_id, secret = make_client(app)
    r = post_form(app.test_client(), TOKEN_URL, {"grant_type": "password", "username": "a", "password": "b"},
                  basic(client_id, secret))
    assert r.status_code == 400
    assert r.get_json()["error"] == "unsupported_grant_type"


def test_requested_scope_narrows_the_token(app, api):
    client_id, secret = make_client(app)
    r = token_basic(app.test_client(), client_id, secret, scope="scim:read")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["scope"] == "scim:read"
    reader = bearer(app, r.get_json()["access_token"])
    assert reader.get("/Users").status_code == 200
    resp = reader.post("/Users", json={"schemas": [CORE_USER], "userName": "x"})
    assert_scim_error(resp, 403)
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]


def test_client_cannot_get_more_than_its_scope(app, api):
    client_id, secret = make_client(app, scope="scim:read")
    r = token_basic(app.test_client(), client_id, secret, scope="scim:read scim:write")
    if r.status_code == 200:
        assert r.get_json()["scope"].split() == ["scim:read"]
        writer = bearer(app, r.get_json()["access_token"])
        assert_scim_error(writer.post("/Users", json={"schemas": [CORE_USER], "userName": "x"}), 403)
    else:
        assert_oauth_error(r, 400, "invalid_scope")


def test_expired_access_token_is_401(app, api):
    client_id, secret = make_client(app)
    token = access_token(app, client_id, secret)
    expire_tokens_of(app, client_id)
    r = bearer(app, token).get("/Users")
    assert_scim_error(r, 401)
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


# ------------------------------------------------------------------ private_key_jwt


def test_private_key_jwt_issues_token(app, key_client, rsa_key):
    r = token_with_assertion(app.test_client(), assertion(key_client, rsa_key))
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert 0 < body["expires_in"] <= 3600
    assert bearer(app, body["access_token"]).get("/Users").status_code == 200


def test_private_key_jwt_jti_cannot_be_reused(app, key_client, rsa_key):
    jti = uuid.uuid4().hex
    http = app.test_client()
    assert token_with_assertion(http, assertion(key_client, rsa_key, jti=jti)).status_code == 200
    # the same assertion again, and a fresh assertion with the same jti
    first = assertion(key_client, rsa_key, jti=jti)
    assert_oauth_error(token_with_assertion(http, first), 400, "invalid_client")
    assert_oauth_error(token_with_assertion(http, assertion(key_client, rsa_key, jti=jti)), 400, "invalid_client")


def test_private_key_jwt_replay_of_identical_assertion(app, key_client, rsa_key):
    signed = assertion(key_client, rsa_key)
    http = app.test_client()
    assert token_with_assertion(http, signed).status_code == 200
    assert_oauth_error(token_with_assertion(http, signed), 400, "invalid_client")


def test_private_key_jwt_wrong_key_audience_expiry(app, key_client, rsa_key):
    http = app.test_client()
    other_key = RSAKey.generate_key(2048)
    assert_oauth_error(token_with_assertion(http, assertion(key_client, other_key)), 400, "invalid_client")
    assert_oauth_error(token_with_assertion(http, assertion(key_client, rsa_key, aud="https://evil.example/token")),
                       400, "invalid_client")
    assert_oauth_error(token_with_assertion(http, assertion(key_client, rsa_key, exp_delta=-600)),
                       400, "invalid_client")
    # an assertion naming another subject than its issuer
    assert_oauth_error(token_with_assertion(http, assertion(key_client, rsa_key, sub="someone-else")),
                       400, "invalid_client")


def test_private_key_jwt_without_jti_is_rejected(app, key_client, rsa_key):
    now = int(time.time())
    claims = {"iss": key_client, "sub": key_client, "aud": SERVER + TOKEN_URL, "exp": now + 300}
    signed = jwt.encode({"alg": "RS256"}, claims, rsa_key)
    assert_oauth_error(token_with_assertion(app.test_client(), signed), 400, "invalid_client")


def test_key_client_cannot_use_a_secret_and_secret_client_cannot_use_a_key(app, api, key_client, rsa_key):
    assert_oauth_error(token_post(app.test_client(), key_client, ""), 401, "invalid_client")
    assert_oauth_error(token_basic(app.test_client(), key_client, "anything"), 401, "invalid_client")
    client_id, _secret = make_client(app)
    assert_oauth_error(token_with_assertion(app.test_client(), assertion(client_id, rsa_key)), 400, "invalid_client")


def test_private_key_jwt_hs256_or_none_assertion_is_rejected(app, key_client, rsa_key):
    from joserfc.jwk import OctKey
    now = int(time.time())
    claims = {"iss": key_client, "sub": key_client, "aud": SERVER + TOKEN_URL, "exp": now + 300,
              "jti": uuid.uuid4().hex}
    hs = jwt.encode({"alg": "HS256"}, claims, OctKey.generate_key(256))
    assert_oauth_error(token_with_assertion(app.test_client(), hs), 400, "invalid_client")

    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims["jti"] = uuid.uuid4().hex
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    assert_oauth_error(token_with_assertion(app.test_client(), unsigned), 400, "invalid_client")


# ------------------------------------------------------------------ introspection and revocation


def introspect(app, client_id, secret, token):
    return post_form(app.test_client(), "/oauth/introspect", {"token": token}, basic(client_id, secret))


def revoke(app, client_id, secret, token):
    return post_form(app.test_client(), "/oauth/revoke", {"token": token}, basic(client_id, secret))


def test_introspection_of_own_token(app, api):
    client_id, secret = make_client(app)
    token = access_token(app, client_id, secret)
    r = introspect(app, client_id, secret, token)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["active"] is True
    assert body["client_id"] == client_id
    assert set(body["scope"].split()) == {"scim:read", "scim:write"}
    assert body["exp"] > time.time() + 3000
    # client_secret_post works too
    r = post_form(app.test_client(), "/oauth/introspect",
                  {"token": token, "client_id": client_id, "client_secret": secret})
    assert r.status_code == 200 and r.get_json()["active"] is True


def test_introspection_of_foreign_unknown_or_revoked_token_is_inactive(app, api):
    mine_id, mine_secret = make_client(app)
    theirs_id, theirs_secret = make_client(app)
    theirs = access_token(app, theirs_id, theirs_secret)
    r = introspect(app, mine_id, mine_secret, theirs)
    assert r.status_code == 200
    assert r.get_json() == {"active": False}
    # a long-lived token of the same tenant is not the client's either
    assert introspect(app, mine_id, mine_secret, api.token).get_json() == {"active": False}
    assert introspect(app, mine_id, mine_secret, "not-a-token").get_json() == {"active": False}
    mine = access_token(app, mine_id, mine_secret)
    assert revoke(app, mine_id, mine_secret, mine).status_code == 200
    assert introspect(app, mine_id, mine_secret, mine).get_json() == {"active": False}


def test_introspection_of_expired_token_is_inactive(app, api):
    client_id, secret = make_client(app)
    token = access_token(app, client_id, secret)
    expire_tokens_of(app, client_id)
    assert introspect(app, client_id, secret, token).get_json() == {"active": False}


def test_introspection_and_revocation_require_client_authentication(app, api):
    client_id, secret = make_client(app)
    token = access_token(app, client_id, secret)
    for path in ("/oauth/introspect", "/oauth/revoke"):
        r = post_form(app.test_client(), path, {"token": token})
        assert r.status_code == 401, (path, r.get_data(as_text=True))
        r = post_form(app.test_client(), path, {"token": token}, basic(client_id, "wrong"))
        assert r.status_code == 401, (path, r.get_data(as_text=True))
        # a bearer token is no client authentication
        r = post_form(app.test_client(), path, {"token": token}, {"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (path, r.get_data(as_text=True))
    assert bearer(app, token).get("/Users").status_code == 200


def test_revocation_of_own_token(app, api):
    client_id, secret = make_client(app)
    token = access_token(app, client_id, secret)
    scim = bearer(app, token)
    assert scim.get("/Users").status_code == 200
    r = revoke(app, client_id, secret, token)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert_scim_error(scim.get("/Users"), 401)
    # revoking again is fine (RFC 7009 §2.2)
    assert revoke(app, client_id, secret, token).status_code == 200


def test_client_cannot_revoke_another_clients_token(app, api):
    mine_id, mine_secret = make_client(app)
    theirs_id, theirs_secret = make_client(app)
    theirs = access_token(app, theirs_id, theirs_secret)
    r = revoke(app, mine_id, mine_secret, theirs)
    assert r.status_code == 200  # RFC 7009 §2.2: answered as for an invalid token, and left alone
    assert bearer(app, theirs).get("/Users").status_code == 200
    assert introspect(app, theirs_id, theirs_secret, theirs).get_json()["active"] is True
    # nor a long-lived token of the tenant
    revoke(app, mine_id, mine_secret, api.token)
    assert api.get("/Users").status_code == 200


def test_client_of_other_tenant_cannot_introspect_or_revoke(app, api, other_api):
    mine_id, mine_secret = make_client(app, "acme")
    theirs_id, theirs_secret = make_client(app, "globex")
    theirs = access_token(app, theirs_id, theirs_secret)
    assert introspect(app, mine_id, mine_secret, theirs).get_json() == {"active": False}
    revoke(app, mine_id, mine_secret, theirs)
    assert bearer(app, theirs).get("/Users").status_code == 200


# ------------------------------------------------------------------ scopes on every endpoint


@pytest.fixture
def targets(api):
    user = api.create_user("target@example.com")
    group = api.create_group("Target group")
    return user["id"], group["id"]


def read_requests(uid, gid):
    search = {"schemas": [SEARCH], "filter": 'userName pr'}
    return [
        ("GET", "/Users", None), ("GET", f"/Users/{uid}", None),
        ("GET", "/Groups", None), ("GET", f"/Groups/{gid}", None),
        ("POST", "/.search", search), ("POST", "/Users/.search", search),
        ("POST", "/Groups/.search", {"schemas": [SEARCH]}),
        ("GET", "/ServiceProviderConfig", None), ("GET", "/Schemas", None), ("GET", "/ResourceTypes", None),
        ("GET", f"/Schemas/{CORE_USER}", None), ("GET", "/ResourceTypes/User", None),
    ]


def write_requests(uid, gid):
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "X"}]}
    return [
        ("POST", "/Users", {"schemas": [CORE_USER], "userName": "new@example.com"}),
        ("PUT", f"/Users/{uid}", {"schemas": [CORE_USER], "userName": "target@example.com", "displayName": "Y"}),
        ("PATCH", f"/Users/{uid}", patch),
        ("DELETE", f"/Users/{uid}", None),
        ("POST", "/Groups", {"schemas": [CORE_GROUP], "displayName": "New group"}),
        ("PUT", f"/Groups/{gid}", {"schemas": [CORE_GROUP], "displayName": "Renamed"}),
        ("PATCH", f"/Groups/{gid}", patch),
        ("DELETE", f"/Groups/{gid}", None),
    ]


def _scoped_clients(app, scope):
    token = long_lived_token(app, scope=scope)
    client_id, secret = make_client(app, scope=scope)
    return [bearer(app, token), bearer(app, access_token(app, client_id, secret))]


def assert_insufficient_scope(response, label):
    assert response.status_code == 403, (label, response.status_code, response.get_data(as_text=True))
    assert_scim_error(response, 403)
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer"), (label, challenge)
    assert 'error="insufficient_scope"' in challenge, (label, challenge)


def test_write_only_token_cannot_read(app, api, targets):
    uid, gid = targets
    for scim in _scoped_clients(app, "scim:write"):
        for method, path, body in read_requests(uid, gid):
            assert_insufficient_scope(scim.request(method, path, json=body), f"{method} {path}")


def test_read_only_token_cannot_write(app, api, targets):
    uid, gid = targets
    before = api.get(f"/Users/{uid}").get_json()
    for scim in _scoped_clients(app, "scim:read"):
        for method, path, body in write_requests(uid, gid):
            assert_insufficient_scope(scim.request(method, path, json=body), f"{method} {path}")
        for method, path, body in read_requests(uid, gid):
            r = scim.request(method, path, json=body)
            assert r.status_code == 200, (method, path, r.status_code, r.get_data(as_text=True))
    assert api.get(f"/Users/{uid}").get_json() == before
    assert api.get(f"/Groups/{gid}").status_code == 200
    assert api.get("/Users").get_json()["totalResults"] == 1


def test_write_scope_token_can_write(app, api, targets):
    uid, gid = targets
    for scim in _scoped_clients(app, "scim:write")[:1]:
        for method, path, body in write_requests(uid, gid):
            r = scim.request(method, path, json=body)
            # a group's PATCH answers 204 (the member list is never sent back unless asked for)
            expected = {"POST": 201, "DELETE": 204}.get(method, 204 if (method, path[:7]) == ("PATCH", "/Groups") else 200)
            assert r.status_code == expected, (method, path, r.status_code, r.get_data(as_text=True))


def test_audit_scope_alone_reads_nothing(app, api, targets):
    uid, gid = targets
    scim = bearer(app, long_lived_token(app, scope="audit:read"))
    for method, path, body in read_requests(uid, gid)[:4]:
        assert_insufficient_scope(scim.request(method, path, json=body), f"{method} {path}")


# ------------------------------------------------------------------ long-lived tokens and the CLI


def test_cli_token_create_list_revoke(app, api, cli):
    created = cli("token", "create", "--tenant", "acme", "--description", "entra")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token and "\n" not in token
    scim = bearer(app, token)
    assert scim.get("/Users").status_code == 200
    scim.create_user("cli@example.com")  # both scopes by default
    listed = cli("token", "list", "--tenant", "acme")
    assert listed.exit_code == 0, listed.output
    assert token not in listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    mine = [r for r in rows if r["description"] == "entra"]
    assert len(mine) == 1
    assert set(mine[0]["scope"].split()) == {"scim:read", "scim:write"}
    assert mine[0]["expires_at"] is None
    revoked = cli("token", "revoke", mine[0]["token_id"])
    assert revoked.exit_code == 0, revoked.output
    assert_scim_error(scim.get("/Users"), 401)
    listed = cli("token", "list", "--tenant", "acme")
    assert mine[0]["token_id"] not in listed.stdout
    listed = cli("token", "list", "--tenant", "acme", "--all")
    assert mine[0]["token_id"] in listed.stdout


def test_cli_token_with_fewer_scopes_and_expiry(app, api, cli):
    created = cli("token", "create", "--tenant", "acme", "--scope", "scim:read", "--expires-in-days", "30",
                  "--description", "reader")
    assert created.exit_code == 0, created.output
    scim = bearer(app, created.stdout.strip())
    assert scim.get("/Users").status_code == 200
    assert_insufficient_scope(scim.post("/Users", json={"schemas": [CORE_USER], "userName": "n"}), "POST")
    rows = [json.loads(line) for line in cli("token", "list", "--tenant", "acme").stdout.splitlines()]
    reader = next(r for r in rows if r["description"] == "reader")
    assert reader["scope"] == "scim:read"
    expires = dt.datetime.fromisoformat(reader["expires_at"])
    expires = expires if expires.tzinfo else expires.replace(tzinfo=dt.UTC)
    assert dt.timedelta(days=29) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30, minutes=1)


def test_cli_token_unknown_scope_is_refused(app, api, cli):
    result = cli("token", "create", "--tenant", "acme", "--scope", "scim:admin")
    assert result.exit_code != 0
    assert result.stdout.strip() == ""


def test_expired_long_lived_token_is_401(app, api):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    token = long_lived_token(app, expires_at=past)
    assert_scim_error(bearer(app, token).get("/Users"), 401)


def test_long_lived_tokens_stored_as_hashes(app, api):
    with app.extensions["scim_sessions"]() as session:
        dump = json.dumps([list(map(str, r)) for r in session.execute(text("SELECT * FROM bearer_tokens"))])
    assert api.token not in dump
    assert tenants.hash_token(api.token) in dump


def test_cli_client_create_prints_json_and_stores_only_a_hash(app, api, cli):
    result = cli("client", "create", "--tenant", "acme", "--scope", "scim:read scim:write")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    client_id, secret = out["client_id"], out["client_secret"]
    assert client_id and secret
    try:
        stderr = result.stderr
    except ValueError:
        stderr = ""
    assert secret not in stderr
    with app.extensions["scim_sessions"]() as session:
        rows = session.execute(text("SELECT * FROM oauth_clients")).all()
        assert len(rows) == 1
        dump = json.dumps([list(map(str, r)) for r in rows])
        assert secret not in dump
        row = session.get(OAuthClient, client_id)
        assert row.secret_hash and row.secret_hash != secret
    token = access_token(app, client_id, secret)
    assert bearer(app, token).get("/Users").status_code == 200
    listed = cli("client", "list", "--tenant", "acme")
    assert listed.exit_code == 0, listed.output
    assert secret not in listed.output
    entries = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    assert [e["client_id"] for e in entries] == [client_id]
    assert set(entries[0]["scope"].split()) == {"scim:read", "scim:write"}


def test_cli_client_create_with_jwks_file(app, api, cli, tmp_path, rsa_key):
    path = tmp_path / "client.jwks"
    path.write_text(json.dumps({"keys": [rsa_key.as_dict(private=False)]}))
    result = cli("client", "create", "--tenant", "acme", "--jwks-file", str(path))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["client_secret"] is None
    r = token_with_assertion(app.test_client(), assertion(out["client_id"], rsa_key))
    assert r.status_code == 200, r.get_data(as_text=True)


def test_cli_client_revoke_stops_its_tokens(app, api, cli):
    out = json.loads(cli("client", "create", "--tenant", "acme").stdout)
    client_id, secret = out["client_id"], out["client_secret"]
    token = access_token(app, client_id, secret)
    scim = bearer(app, token)
    assert scim.get("/Users").status_code == 200
    result = cli("client", "revoke", client_id)
    assert result.exit_code == 0, result.output
    assert_scim_error(scim.get("/Users"), 401)
    assert_oauth_error(token_basic(app.test_client(), client_id, secret), 401, "invalid_client")
    listed = [json.loads(line) for line in cli("client", "list", "--tenant", "acme").stdout.splitlines()]
    assert listed[0]["revoked_at"] is not None
    # and its tokens are listed as inactive
    tokens = [json.loads(line) for line in cli("token", "list", "--tenant", "acme", "--all").stdout.splitlines()]
    assert all(not t["active"] for t in tokens if t["client_id"] == client_id)


def test_cli_client_create_unknown_tenant_or_scope(app, api, cli):
    assert cli("client", "create", "--tenant", "nope").exit_code != 0
    bad = cli("client", "create", "--tenant", "acme", "--scope", "everything")
    assert bad.exit_code != 0
    assert bad.stdout.strip() == ""


def test_cli_token_list_shows_client_tokens(app, api, cli):
    client_id, secret = make_client(app)
    token = access_token(app, client_id, secret)
    listed = cli("token", "list", "--tenant", "acme")
    assert token not in listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    issued = [r for r in rows if r["client_id"] == client_id]
    assert len(issued) == 1 and issued[0]["expires_at"] is not None
    assert cli("token", "revoke", issued[0]["token_id"]).exit_code == 0
    assert_scim_error(bearer(app, token).get("/Users"), 401)


# ------------------------------------------------------------------ tenancy


def test_oauth_token_is_bound_to_its_tenant(app, api, other_api):
    theirs_user = other_api.create_user("secret@globex.com")
    theirs_group = other_api.create_group("Globex staff", members=[theirs_user["id"]])
    client_id, secret = make_client(app, "acme")
    scim = bearer(app, access_token(app, client_id, secret))
    mine = scim.create_user("mine@acme.com")
    my_group = scim.create_group("Acme staff")
    for path in (f"/Users/{theirs_user['id']}", f"/Groups/{theirs_group['id']}"):
        assert_scim_error(scim.get(path), 404)
        assert_scim_error(scim.put(path, json={"schemas": [CORE_USER], "userName": "x"}), 404)
        assert_scim_error(scim.patch_ops(path, {"op": "replace", "path": "displayName", "value": "x"}), 404)
        assert_scim_error(scim.delete(path), 404)
    listed = scim.get('/Users?filter=userName eq "secret@globex.com"').get_json()
    assert listed["totalResults"] == 0
    listed = scim.get(f'/Users?filter=id eq "{theirs_user["id"]}"').get_json()
    assert listed["totalResults"] == 0
    r = scim.post("/.search", json={"schemas": [SEARCH], "filter": 'displayName co "Globex" or userName co "globex"'})
    assert r.get_json()["totalResults"] == 0
    all_users = scim.get("/Users").get_json()
    assert [u["id"] for u in all_users["Resources"]] == [mine["id"]]
    r = scim.get(f'/Groups?filter=members.value eq "{theirs_user["id"]}"')
    assert r.get_json()["totalResults"] == 0
    # references to the other tenant's ids
    r = scim.patch_ops(f"/Groups/{my_group['id']}", {"op": "add", "path": "members",
                                                      "value": [{"value": theirs_user["id"]}]})
    assert_scim_error(r, 400)
    r = scim.patch_ops(f"/Users/{mine['id']}", {
        "op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "value": {"value": theirs_user["id"]}})
    assert_scim_error(r, 400)
    r = scim.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "Sneaky",
                                   "members": [{"value": theirs_user["id"]}]})
    assert_scim_error(r, 400)
    assert "secret@globex.com" not in r.get_data(as_text=True)
    # globex still intact
    assert other_api.get(f"/Users/{theirs_user['id']}").status_code == 200
    members = other_api.get(f"/Groups/{theirs_group['id']}").get_json()["members"]
    assert [m["value"] for m in members] == [theirs_user["id"]]


def test_cli_revoke_of_an_unknown_token_or_client_fails(app, api, cli):
    for kind in ("token", "client"):
        result = cli(kind, "revoke", "no-such-id")
        assert result.exit_code != 0
        assert f"no {kind} 'no-such-id'" in result.output


def test_client_ids_are_safe_command_line_arguments(app, cli):
    """A client id is typed into `client revoke ID` and into IdP forms: one starting with '-'
    (one in 64 of the URL-safe ids issued before) was read as an option, so the client could
    not be revoked that way. Client ids are 32 hex digits."""
    for _ in range(20):
        client_id, _secret = make_client(app)
        assert re.fullmatch(r"[0-9a-f]{32}", client_id), client_id
    assert cli("client", "revoke", client_id).exit_code == 0
