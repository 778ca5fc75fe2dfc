"""Bearer JWTs issued by a tenant's own identity provider (Entra ID's "Secret Token" left blank).

A tenant may trust one issuer: ``scim-server tenant set NAME --jwt-issuer ISS
--jwt-audience AUD --jwt-jwks-uri URL`` (or ``--jwt-jwks-file`` for a JWKS on disk).
A JWT is accepted only when its signature verifies against that JWKS with an
allowed algorithm (RS256 by default) and its issuer, audience, expiry and
not-before all check out; every other JWT is a 401. Verification is joserfc's
(authlib's JOSE library); nothing here parses a token by hand.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..storage import tenants

JWKS_TTL = 3600
_jwks_cache: dict[str, tuple[float, KeySet]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class TrustedIssuer:
    tenant_id: int
    issuer: str
    audience: str
    jwks_uri: str | None
    jwks_file: str | None
    algorithms: tuple[str, ...]
    scope: str


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


def trusted_issuers(session) -> list[TrustedIssuer]:
    """The issuers the tenants trust (``session``: the request's database session)."""
    out = []
    for tenant_id, settings in tenants.all_settings(session):
        conf = (settings or {}).get("jwt")
        if conf and conf.get("issuer") and conf.get("audience"):
            out.append(TrustedIssuer(tenant_id, conf["issuer"], conf["audience"], conf.get("jwks_uri"),
                                     conf.get("jwks_file"), tuple(conf.get("algorithms") or ("RS256",)),
                                     conf.get("scope") or "scim:read scim:write"))
    return out


def _keys(trust: TrustedIssuer) -> KeySet:
    source = trust.jwks_file or trust.jwks_uri or ""
    with _lock:
        hit = _jwks_cache.get(source)
    if hit and time.monotonic() - hit[0] < JWKS_TTL:
        return hit[1]
    if trust.jwks_file:
        with open(trust.jwks_file, encoding="utf-8") as handle:
            data = json.load(handle)
    else:
        with urllib.request.urlopen(trust.jwks_uri, timeout=5) as response:  # noqa: S310 (configured URL)
            data = json.load(response)
    keys = KeySet.import_key_set(data)
    with _lock:
        _jwks_cache[source] = (time.monotonic(), keys)
    return keys


def verify(session, token: str) -> tuple[TrustedIssuer, dict[str, Any]] | None:
    """The tenant trust and the claims of a valid JWT, or None."""
    for trust in trusted_issuers(session):
        try:
            decoded = jwt.decode(token, _keys(trust), algorithms=list(trust.algorithms))
            jwt.JWTClaimsRegistry(
                leeway=60,
                iss={"essential": True, "value": trust.issuer},
                aud={"essential": True, "value": trust.audience},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError, OSError):
            continue
        return trust, decoded.claims
    return None


def clear_cache() -> None:
    with _lock:
        _jwks_cache.clear()
