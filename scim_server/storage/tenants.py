"""Tenants and their long-lived bearer tokens."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import BearerToken, Tenant, utcnow


class TenantError(Exception):
    """An operator's mistake in a tenant or token command."""


def hash_token(token: str) -> str:
    """Tokens carry 256 bits of randomness, so one fast SHA-256 is a safe lookup key."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_tenant(session: Session, name: str) -> Tenant:
    if session.scalar(select(Tenant).where(Tenant.name == name)) is not None:
        raise TenantError(f"tenant {name!r} already exists")
    tenant = Tenant(name=name, settings={})
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise TenantError(f"no tenant named {name!r}")
    return tenant


def create_token(session: Session, tenant: Tenant, description: str = "",
                 scope: str = "scim:read scim:write", expires_at: dt.datetime | None = None) -> str:
    """Create a bearer token and return it; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    session.add(BearerToken(id=str(uuid.uuid4()), tenant_id=tenant.id, token_hash=hash_token(token),
                            description=description, scope=scope, expires_at=expires_at))
    session.flush()
    return token


def find_token(session: Session, token: str) -> BearerToken | None:
    """The active token row for a presented token, or None."""
    row = session.scalar(select(BearerToken).where(BearerToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row


def all_settings(session: Session) -> list[tuple[int, dict | None]]:
    """Every tenant's id and settings (the issuers of bearer JWTs are found among them)."""
    return [(tenant_id, settings) for tenant_id, settings in session.execute(select(Tenant.id, Tenant.settings))]
