"""Bearer-token authentication, checked in one place with authlib's resource protection.

A token belongs to one tenant. The verified token (tenant, scopes, expiry) is
cached in the worker for a few seconds (``SCIM_TOKEN_CACHE_SECONDS``), so a
busy provisioning cycle does not pay a token lookup per request; a revoked
token stops working within that many seconds.

A stored token's last use (``last_used_at``, the console's "last request") is written at most
once a minute per token and worker, after the response has been sent and in a transaction of
its own (``storage.usage.touch_token``): the request itself only checks an in-memory clock.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

from authlib.oauth2 import OAuth2Error, ResourceProtector
from authlib.oauth2.rfc6749 import MissingAuthorizationError
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError
from flask import Response, after_this_request, current_app, g, request

from ..scim.errors import ScimError
from ..scim.validators import P2L_GROUP, P2L_USER
from ..storage import audit, usage
from ..storage.models import Tenant, utcnow
from ..storage.tenants import find_token, hash_token
from . import issued_jwt

REALM = "scim"
PLAN2LEARN_EXTENSIONS = frozenset({P2L_USER, P2L_GROUP})


@dataclass(frozen=True)
class AuthenticatedToken:
    token_id: str | None
    tenant_id: int
    scope: str
    expires_at: dt.datetime | None
    #: who acts, for the audit trail and the access log: "token:<id>", "client:<id>", "jwt:<iss>|<sub>"
    actor: str = ""
    #: schema extensions the tenant has switched off (see ``scim-server tenant set --no-master-data``)
    disabled_extensions: frozenset[str] = frozenset()
    #: the tenant's settings, cached with the token (changes apply within the token cache time)
    tenant_settings: dict | None = None

    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return False  # revoked tokens are never found (see find_token)

    def get_scope(self) -> str:
        return self.scope


class _Cache:
    def __init__(self):
        self._items: dict[str, tuple[float, AuthenticatedToken | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, ttl: float):
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and time.monotonic() - hit[0] < ttl:
            return hit
        return None

    def put(self, key: str, value: AuthenticatedToken | None) -> None:
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = (time.monotonic(), value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


token_cache = _Cache()


class _Touches:
    """When this worker last had each stored token's use written (monotonic seconds), so that a
    busy token costs one write a minute, not one per request."""

    def __init__(self):
        self._at: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, token_id: str, interval: float) -> bool:
        """True (and the clock restarted) when the token's use is to be written now."""
        now = time.monotonic()
        with self._lock:
            last = self._at.get(token_id)
            if last is not None and now - last < interval:
                return False
            if len(self._at) > 10_000:
                self._at.clear()
            self._at[token_id] = now
            return True

    def clear(self) -> None:
        with self._lock:
            self._at.clear()


token_touches = _Touches()


def _record_use(token: AuthenticatedToken) -> None:
    """Have the stored token's last use written once the response is sent (at most once a minute
    per token in this worker). After the response and outside the request's transaction: the
    caller waits for nothing, and the write cannot take a lock the request holds."""
    if token.token_id is None or not token_touches.due(token.token_id, usage.TOUCH_INTERVAL.total_seconds()):
        return
    sessions, token_id, at = current_app.extensions["scim_sessions"], token.token_id, utcnow()

    @after_this_request
    def _when_sent(response: Response) -> Response:
        response.call_on_close(lambda: usage.touch_token(sessions, token_id, at))
        return response


class StoredTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> AuthenticatedToken | None:
        ttl = current_app.config["SCIM"].token_cache_seconds
        key = hash_token(token_string)
        hit = token_cache.get(key, ttl) if ttl > 0 else None
        if hit is not None:
            return hit[1]
        # a read of its own, outside the request's transaction: a write request decides when its
        # transaction begins and how (``provisioning`` defers SQLite's write lock for users)
        session = current_app.extensions["scim_read_sessions"]()
        try:
            token = _verify(session, token_string)
        finally:
            session.close()
        if ttl > 0:
            token_cache.put(key, token)
        return token


def _verify(session, token_string: str) -> AuthenticatedToken | None:
    """The token as stored (a long-lived or OAuth access token) or as a trusted issuer signed it."""
    row = find_token(session, token_string)
    if row is not None:
        actor = f"client:{row.client_id}" if row.client_id else f"token:{row.id}"
        settings = tenant_settings(session, row.tenant_id)
        return AuthenticatedToken(row.id, row.tenant_id, row.scope, row.expires_at, actor,
                                  disabled_extensions(settings), settings)
    if issued_jwt.looks_like_jwt(token_string):
        verified = issued_jwt.verify(session, token_string)
        if verified is not None:
            trust, claims = verified
            expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
            settings = tenant_settings(session, trust.tenant_id)
            return AuthenticatedToken(None, trust.tenant_id, trust.scope, expires,
                                      f"jwt:{claims.get('iss')}|{claims.get('sub')}",
                                      disabled_extensions(settings), settings)
    return None


def tenant_settings(session, tenant_id: int) -> dict:
    tenant = session.get(Tenant, tenant_id)
    return dict(tenant.settings or {}) if tenant is not None else {}


def disabled_extensions(settings: dict) -> frozenset[str]:
    """The plan2learn extensions are on unless the tenant switched its master data off."""
    return PLAN2LEARN_EXTENSIONS if settings.get("master_data") is False else frozenset()


class _HeadersOnly:
    """authlib reads only the Authorization header; the body is never parsed here."""

    def __init__(self, headers):
        self.headers = headers


protector = ResourceProtector()
protector.register_token_validator(StoredTokenValidator(realm=REALM))


def require_token(scope: str) -> AuthenticatedToken:
    """Authenticate the request or raise 401/403 as a SCIM error."""
    try:
        token = protector.validate_request([scope], _HeadersOnly(request.headers))
    except MissingAuthorizationError as exc:
        raise _unauthorized("Authentication required: send 'Authorization: Bearer <token>'") from exc
    except InsufficientScopeError as exc:
        raise ScimError(403, f"The token lacks the '{scope}' scope", None,
                        {"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'}) from exc
    except OAuth2Error as exc:
        raise _unauthorized("The bearer token is invalid, expired or revoked",
                            'error="invalid_token"') from exc
    g.token = token
    audit.current.set(audit.Actor(token.actor, g.get("request_id")))
    _record_use(token)
    # over the tenant's (or this caller's) rate limit: 429, before any database work of the request
    from .ratelimit import check as check_rate_limit
    check_rate_limit(token)
    return token


def _unauthorized(detail: str, extra: str = "") -> ScimError:
    challenge = f'Bearer realm="{REALM}"' + (f", {extra}" if extra else "")
    return ScimError(401, detail, None, {"WWW-Authenticate": challenge})
