"""Bearer JWTs issued by a tenant's own identity provider (Entra ID), trusted per tenant
with ``scim-server tenant set NAME --jwt-issuer --jwt-audience --jwt-jwks-file``."""
from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from conftest import CORE_GROUP, CORE_USER, assert_scim_error, bearer
from scim_server.http import issued_jwt

ISSUER = "https://sts.windows.net/11111111-2222-3333-4444-555555555555/"
AUDIENCE = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
OTHER_ISSUER = "https://sts.windows.net/99999999-2222-3333-4444-555555555555/"
OTHER_AUDIENCE = "00000000-67b2-4cf2-a259-e3dc5476c621"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@pytest.fixture(autouse=True)
def _fresh_jwks_cache():
    issued_jwt.clear_cache()
    yield
    issued_jwt.clear_cache()


def write_jwks(path, *keys):
    path.write_text(json.dumps({"keys": [dict(k.as_dict(private=False), kid=k.thumbprint()) for k in keys]}))
    return str(path)


def trust(cli, tenant, issuer, audience, jwks_file, *extra):
    result = cli("tenant", "set", tenant, "--jwt-issuer", issuer, "--jwt-audience", audience,
                 "--jwt-jwks-file", jwks_file, *extra)
    assert result.exit_code == 0, result.output
    return result


def claims(**overrides):
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "entra-provisioning", "iat": now, "nbf": now - 5,
            "exp": now + 600, "tid": "11111111-2222-3333-4444-555555555555", "jti": uuid.uuid4().hex}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key, alg="RS256", **overrides):
    header = {"alg": alg}
    if isinstance(key, RSAKey):
        header["kid"] = key.thumbprint()
    return jwt.encode(header, claims(**overrides), key, algorithms=[alg])


def b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.fixture
def key():
    return RSAKey.generate_key(2048)


@pytest.fixture
def trusted(app, api, cli, key, tmp_path):
    """acme trusts ISSUER/AUDIENCE with ``key``."""
    trust(cli, "acme", ISSUER, AUDIENCE, write_jwks(tmp_path / "entra.jwks", key))
    return key


def test_valid_jwt_reads_and_writes(app, api, trusted):
    client = bearer(app, sign(trusted))
    r = client.get("/Users")
    assert r.status_code == 200, r.get_data(as_text=True)
    created = client.create_user("jwt@acme.com")
    assert api.get(f"/Users/{created['id']}").status_code == 200
    group = client.create_group("JWT group", members=[created["id"]])
    assert client.get(f"/Groups/{group['id']}").status_code == 200
    assert client.delete(f"/Users/{created['id']}").status_code == 204


def test_jwt_without_kid_is_accepted(app, api, cli, key, tmp_path):
    path = tmp_path / "plain.jwks"
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    trust(cli, "acme", ISSUER, AUDIENCE, str(path))
    token = jwt.encode({"alg": "RS256"}, claims(), key)
    assert bearer(app, token).get("/Users").status_code == 200


@pytest.mark.parametrize("case", ["issuer", "audience", "expired", "signature", "tampered", "not_yet_valid",
                                  "no_exp", "no_aud", "no_iss"])
def test_invalid_jwt_is_401(app, api, trusted, case):
    other = RSAKey.generate_key(2048)
    token = {
        "issuer": lambda: sign(trusted, iss=OTHER_ISSUER),
        "audience": lambda: sign(trusted, aud=OTHER_AUDIENCE),
        "expired": lambda: sign(trusted, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200,
                                nbf=int(time.time()) - 7200),
        "signature": lambda: jwt.encode({"alg": "RS256", "kid": trusted.thumbprint()}, claims(), other),
        "tampered": lambda: _tamper(sign(trusted)),
        "not_yet_valid": lambda: sign(trusted, nbf=int(time.time()) + 3600, iat=int(time.time()) + 3600),
        "no_exp": lambda: sign(trusted, exp=None),
        "no_aud": lambda: sign(trusted, aud=None),
        "no_iss": lambda: sign(trusted, iss=None),
    }[case]()
    r = bearer(app, token).get("/Users")
    assert_scim_error(r, 401)
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    # nor may it write
    r = bearer(app, token).post("/Users", json={"schemas": [CORE_USER], "userName": f"{case}@x.com"})
    assert_scim_error(r, 401)
    assert api.get("/Users").get_json()["totalResults"] == 0


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["sub"] = "someone-else"
    return f"{header}.{b64(data)}.{signature}"


def test_hs256_signed_jwt_is_401(app, api, trusted):
    token = jwt.encode({"alg": "HS256"}, claims(), OctKey.generate_key(256))
    assert_scim_error(bearer(app, token).get("/Users"), 401)


def test_hs256_with_public_key_as_secret_is_401(app, api, trusted):
    """Algorithm confusion: an HMAC keyed with the published public key."""
    import hashlib
    import hmac
    public_pem = trusted.as_pem(private=False)
    header, payload = b64({"alg": "HS256", "typ": "JWT", "kid": trusted.thumbprint()}), b64(claims())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert_scim_error(bearer(app, token).get("/Users"), 401)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_jwt_is_401(app, api, trusted, alg):
    token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims())}."
    assert_scim_error(bearer(app, token).get("/Users"), 401)
    # and with the signature of a valid token glued on
    valid_sig = sign(trusted).split(".")[2]
    token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims())}.{valid_sig}"
    assert_scim_error(bearer(app, token).get("/Users"), 401)


def test_algorithm_not_allowed_is_401(app, api, cli, key, tmp_path):
    """A tenant that allows only PS256 refuses an RS256 token signed with its own key."""
    trust(cli, "acme", ISSUER, AUDIENCE, write_jwks(tmp_path / "k.jwks", key), "--jwt-algorithms", "PS256")
    assert_scim_error(bearer(app, sign(key)).get("/Users"), 401)
    assert bearer(app, sign(key, alg="PS256")).get("/Users").status_code == 200


def test_jwt_without_trust_is_401(app, api, key):
    assert_scim_error(bearer(app, sign(key)).get("/Users"), 401)


def test_no_jwt_stops_accepting(app, api, trusted, cli):
    token = sign(trusted)
    assert bearer(app, token).get("/Users").status_code == 200
    result = cli("tenant", "set", "acme", "--no-jwt")
    assert result.exit_code == 0, result.output
    assert_scim_error(bearer(app, token).get("/Users"), 401)


def test_incomplete_trust_is_refused(app, api, cli, key, tmp_path):
    result = cli("tenant", "set", "acme", "--jwt-issuer", ISSUER, "--jwt-jwks-file",
                 write_jwks(tmp_path / "k.jwks", key))
    assert result.exit_code != 0
    assert_scim_error(bearer(app, sign(key)).get("/Users"), 401)


def test_jwt_is_bound_to_its_tenant(app, api, other_api, cli, tmp_path):
    acme_key, globex_key = RSAKey.generate_key(2048), RSAKey.generate_key(2048)
    trust(cli, "acme", ISSUER, AUDIENCE, write_jwks(tmp_path / "acme.jwks", acme_key))
    trust(cli, "globex", OTHER_ISSUER, OTHER_AUDIENCE, write_jwks(tmp_path / "globex.jwks", globex_key))
    theirs = other_api.create_user("secret@globex.com")
    their_group = other_api.create_group("Globex", members=[theirs["id"]])
    acme = bearer(app, sign(acme_key))
    mine = acme.create_user("mine@acme.com")
    my_group = acme.create_group("Acme")
    assert_scim_error(acme.get(f"/Users/{theirs['id']}"), 404)
    assert_scim_error(acme.get(f"/Groups/{their_group['id']}"), 404)
    assert_scim_error(acme.patch_ops(f"/Users/{theirs['id']}", {"op": "replace", "path": "active",
                                                                 "value": False}), 404)
    assert_scim_error(acme.delete(f"/Groups/{their_group['id']}"), 404)
    assert acme.get('/Users?filter=userName eq "secret@globex.com"').get_json()["totalResults"] == 0
    assert [u["id"] for u in acme.get("/Users").get_json()["Resources"]] == [mine["id"]]
    r = acme.post("/.search", json={"schemas": [SEARCH], "filter": f'id eq "{theirs["id"]}"'})
    assert r.get_json()["totalResults"] == 0
    r = acme.patch_ops(f"/Groups/{my_group['id']}", {"op": "add", "path": "members",
                                                      "value": [{"value": theirs["id"]}]})
    assert_scim_error(r, 400)
    # mixed-up trusts: acme's key with globex's issuer/audience, globex's key with acme's
    assert_scim_error(bearer(app, sign(acme_key, iss=OTHER_ISSUER, aud=OTHER_AUDIENCE)).get("/Users"), 401)
    assert_scim_error(bearer(app, sign(globex_key)).get("/Users"), 401)
    assert_scim_error(bearer(app, sign(acme_key, aud=OTHER_AUDIENCE)).get("/Users"), 401)
    # globex's own token sees only globex
    globex = bearer(app, sign(globex_key, iss=OTHER_ISSUER, aud=OTHER_AUDIENCE))
    assert [u["id"] for u in globex.get("/Users").get_json()["Resources"]] == [theirs["id"]]
    assert_scim_error(globex.get(f"/Users/{mine['id']}"), 404)
    assert other_api.get(f"/Groups/{their_group['id']}").get_json()["members"][0]["value"] == theirs["id"]


def test_jwt_writes_are_audited_with_issuer_and_subject(app, api, trusted):
    client = bearer(app, sign(trusted, sub="entra-sp"))
    created = client.create_user("audited@acme.com")
    from sqlalchemy import select

    from scim_server.storage.models import AuditEvent
    with app.extensions["scim_sessions"]() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.resource_id == created["id"])).all()
    assert len(events) == 1
    assert ISSUER in events[0].actor and "entra-sp" in events[0].actor


def test_jwt_scopes_cover_every_endpoint(app, api, trusted):
    client = bearer(app, sign(trusted))
    user = client.create_user("u@acme.com")
    for path in ("/Users", f"/Users/{user['id']}", "/Groups", "/ServiceProviderConfig", "/Schemas",
                 "/ResourceTypes"):
        assert client.get(path).status_code == 200, path
    r = client.put(f"/Users/{user['id']}", json={"schemas": [CORE_USER], "userName": "u@acme.com",
                                                  "displayName": "U"})
    assert r.status_code == 200
    r = client.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": "G"})
    assert r.status_code == 201
