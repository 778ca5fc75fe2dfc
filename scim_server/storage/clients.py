"""OAuth 2.0 clients and the tokens issued to them, as stored rows.

Secrets and tokens are random (256 bits) and stored only as SHA-256 hashes,
compared in constant time. The OAuth protocol itself (grants, client
authentication, introspection, revocation) is authlib's, in ``http/oauth``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import BearerToken, OAuthClient, Tenant, UsedAssertion, utcnow
from .tenants import TenantError, hash_token

SECRET_METHODS = ("client_secret_basic", "client_secret_post")
KEY_METHOD = "private_key_jwt"
SCOPES = ("scim:read", "scim:write", "audit:read", "sync:write")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(client: OAuthClient, secret: str) -> bool:
    return client.secret_hash is not None and hmac.compare_digest(client.secret_hash, hash_secret(secret))


def check_scope(scope: str) -> str:
    words = scope.split()
    unknown = [w for w in words if w not in SCOPES]
    if unknown or not words:
        raise TenantError(f"unknown scope(s) {unknown or scope!r}: use {' '.join(SCOPES)}")
    return " ".join(dict.fromkeys(words))


def create_client(session: Session, tenant: Tenant, scope: str, description: str = "",
                  jwks: dict[str, Any] | None = None) -> tuple[OAuthClient, str | None]:
    """A new client; returns it with its secret (shown once), or None when it uses private_key_jwt."""
    secret = None if jwks else secrets.token_urlsafe(32)
    # hex, not URL-safe base64: an id starting with "-" would read as an option on the command line
    client = OAuthClient(client_id=secrets.token_hex(16), tenant_id=tenant.id,
                         secret_hash=hash_secret(secret) if secret else None, scope=check_scope(scope),
                         auth_method=KEY_METHOD if jwks else "client_secret_basic", jwks=jwks,
                         description=description)
    session.add(client)
    session.flush()
    return client, secret


def long_lived_tokens(session: Session, tenant_id: int) -> list[BearerToken]:
    """A tenant's long-lived bearer tokens (an IdP's "Secret Token"), not OAuth access tokens,
    revoked ones included, newest first."""
    return list(session.scalars(select(BearerToken).where(BearerToken.tenant_id == tenant_id,
                                                          BearerToken.client_id.is_(None))
                                .order_by(BearerToken.created.desc(), BearerToken.id)))


def clients_of(session: Session, tenant_id: int) -> list[OAuthClient]:
    return list(session.scalars(select(OAuthClient).where(OAuthClient.tenant_id == tenant_id)
                                .order_by(OAuthClient.created.desc(), OAuthClient.client_id)))


def token_of(session: Session, tenant_id: int, token_id: str) -> BearerToken | None:
    row = session.get(BearerToken, token_id)
    return row if row is not None and row.tenant_id == tenant_id else None


def client_of(session: Session, tenant_id: int, client_id: str) -> OAuthClient | None:
    row = session.get(OAuthClient, client_id)
    return row if row is not None and row.tenant_id == tenant_id else None


def find_client(session: Session, client_id: str) -> OAuthClient | None:
    client = session.get(OAuthClient, client_id)
    return client if client is not None and client.revoked_at is None else None


def save_access_token(session: Session, client: OAuthClient, token: str, scope: str, expires_in: int) -> None:
    session.add(BearerToken(id=str(uuid.uuid4()), tenant_id=client.tenant_id, token_hash=hash_token(token),
                            description=f"access token of {client.client_id}", scope=scope,
                            client_id=client.client_id,
                            expires_at=utcnow() + dt.timedelta(seconds=expires_in)))
    session.flush()


def find_any_token(session: Session, token: str) -> BearerToken | None:
    """A token row whatever its state (introspection reports expired and revoked ones as inactive)."""
    return session.scalar(select(BearerToken).where(BearerToken.token_hash == hash_token(token)))


def revoke_token(session: Session, row: BearerToken) -> None:
    row.revoked_at = row.revoked_at or utcnow()
    session.flush()


def revoke_client(session: Session, client: OAuthClient) -> None:
    now = utcnow()
    client.revoked_at = client.revoked_at or now
    session.execute(update(BearerToken).where(BearerToken.client_id == client.client_id,
                                              BearerToken.revoked_at.is_(None)).values(revoked_at=now))


def use_assertion(session: Session, client_id: str, jti: str, expires_at: dt.datetime) -> bool:
    """Record a client assertion's jti; False when it was used before (a replay)."""
    try:
        with session.begin_nested():
            session.add(UsedAssertion(jti=jti, client_id=client_id, expires_at=expires_at))
    except IntegrityError:
        return False
    return True
