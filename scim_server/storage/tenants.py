"""Tenants and their long-lived bearer tokens."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import unicodedata
import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from .models import (
    AuditEvent,
    BearerToken,
    ConsoleAdmin,
    ConsoleSession,
    Group,
    Membership,
    OAuthClient,
    RequestError,
    Source,
    SyncDigest,
    SyncRun,
    Tenant,
    UsedAssertion,
    User,
    WorkEmail,
    utcnow,
)


class TenantError(Exception):
    """An operator's mistake in a tenant or token command."""


def hash_token(token: str) -> str:
    """Tokens carry 256 bits of randomness, so one fast SHA-256 is a safe lookup key."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def database_label(url: str | URL) -> str:
    """The database a command used, for its messages: the URL with any password masked and, for
    a SQLite file, its absolute path (the default ``sqlite:///scim.db`` is relative to the
    working folder)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:  # not a URL at all: mask what looks like a password
        text = str(url)
        scheme, sep, rest = text.partition("://")
        userinfo, at, host = rest.rpartition("@")
        if sep and at and ":" in userinfo:
            text = f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
        return text
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    if parsed.drivername == "postgresql+psycopg":  # the driver the server picks for postgresql://
        parsed = parsed.set(drivername="postgresql")
    shown = parsed.render_as_string(hide_password=True)
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path and path != ":memory:" and not path.startswith("file:"):
        return f"{shown} ({os.path.abspath(path)})"
    return shown


def _database_of(session: Session) -> str:
    return database_label(session.get_bind().url)


#: the longest tenant name (the column's size)
MAX_NAME = 100


def check_tenant_name(name: str) -> None:
    """A new tenant's name: not empty, no spaces around it, no control characters, at most 100."""
    if not name or not name.strip():
        raise TenantError("a tenant name cannot be empty")
    if name != name.strip():
        raise TenantError(f"a tenant name cannot begin or end with spaces: {name!r}")
    if len(name) > MAX_NAME:
        raise TenantError(f"a tenant name has at most {MAX_NAME} characters, not {len(name)}")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise TenantError(f"a tenant name cannot hold control characters: {name!r}")


def create_tenant(session: Session, name: str) -> Tenant:
    check_tenant_name(name)
    folded = name.casefold()
    for existing in session.scalars(select(Tenant.name)):
        if existing == name:
            raise TenantError(f"tenant {name!r} already exists")
        if existing.casefold() == folded:
            raise TenantError(f"tenant {name!r} differs from the existing tenant {existing!r} only in case: "
                              f"pick another name")
    tenant = Tenant(name=name, settings={})
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        folded = (name or "").casefold()
        near = [n for n in session.scalars(select(Tenant.name)) if n.casefold() == folded]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise TenantError(f"no tenant named {name!r} in {_database_of(session)}{hint}")
    return tenant


def tenant_name(session: Session, tenant_id: int) -> str | None:
    return session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))


def tenant_names(session: Session) -> list[str]:
    return list(session.scalars(select(Tenant.name).order_by(Tenant.name)))


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


#: what ``delete_tenant`` removes, in the words of its report
TENANT_ROWS = ("users", "groups", "memberships", "tokens", "clients", "audit events", "sources", "sync runs",
               "console accounts", "request errors")


def tenant_rows(session: Session, tenant_id: int) -> dict[str, int]:
    """How many rows of each kind a tenant holds (what ``delete_tenant`` would remove)."""
    models = (User, Group, Membership, BearerToken, OAuthClient, AuditEvent, Source, SyncRun, ConsoleAdmin,
              RequestError)
    return {label: session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id)) or 0
            for label, model in zip(TENANT_ROWS, models)}


def delete_tenant(session: Session, tenant: Tenant) -> dict[str, int]:
    """Remove a tenant and every row of it; returns how many rows of each kind went.

    The rows are deleted explicitly, children first, rather than left to the foreign keys'
    ON DELETE CASCADE: org units' parent links RESTRICT deletes, the replay guard of client
    assertions (``oauth_used_assertions``) has no foreign key, and the explicit statements
    count what they removed. A table added later with a cascading tenant key goes with the
    tenant's row at the end.
    """
    tid = tenant.id
    connection = session.connection()

    def remove(table, *where) -> int:
        return connection.execute(delete(table).where(*where)).rowcount or 0

    counts: dict[str, int] = {}
    counts["memberships"] = remove(Membership.__table__, Membership.tenant_id == tid)
    connection.execute(update(User.__table__).where(User.tenant_id == tid, User.manager_id.is_not(None))
                       .values(manager_id=None))
    remove(WorkEmail.__table__, WorkEmail.tenant_id == tid)  # copies of the users' documents
    remove(SyncDigest.__table__, SyncDigest.source_id.in_(select(Source.id).where(Source.tenant_id == tid)))
    counts["users"] = remove(User.__table__, User.tenant_id == tid)
    connection.execute(update(Group.__table__).where(Group.tenant_id == tid, Group.parent_id.is_not(None))
                       .values(parent_id=None))
    counts["groups"] = remove(Group.__table__, Group.tenant_id == tid)
    counts["tokens"] = remove(BearerToken.__table__, BearerToken.tenant_id == tid)
    remove(UsedAssertion.__table__, UsedAssertion.client_id.in_(
        select(OAuthClient.client_id).where(OAuthClient.tenant_id == tid)))
    counts["clients"] = remove(OAuthClient.__table__, OAuthClient.tenant_id == tid)
    counts["audit events"] = remove(AuditEvent.__table__, AuditEvent.tenant_id == tid)
    counts["sync runs"] = remove(SyncRun.__table__, SyncRun.tenant_id == tid)
    counts["sources"] = remove(Source.__table__, Source.tenant_id == tid)
    remove(ConsoleSession.__table__, ConsoleSession.admin_id.in_(
        select(ConsoleAdmin.id).where(ConsoleAdmin.tenant_id == tid)))
    counts["console accounts"] = remove(ConsoleAdmin.__table__, ConsoleAdmin.tenant_id == tid)
    counts["request errors"] = remove(RequestError.__table__, RequestError.tenant_id == tid)
    remove(Tenant.__table__, Tenant.id == tid)
    session.expunge(tenant)
    return {label: counts[label] for label in TENANT_ROWS}
