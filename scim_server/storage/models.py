"""The tables, in SQLAlchemy 2's typed declarative style.

A resource is one row: the attributes the server must index, join or constrain
(userName, externalId, displayName, active, manager) are real columns; every
other attribute lives in ``attributes``, a JSON document keyed by the schema's
canonical attribute names (extension attributes under their schema URN).
Group membership is never stored in a document: it is one ``Membership`` row per
member, so adding or removing one member touches one row whatever the group size.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    TypeDecorator,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONDocument = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """Timestamps are stored and returned as timezone-aware UTC on every backend.

    SQLite has no time zone type; without this a value written as aware UTC would
    come back naive and compare wrongly against aware values in filters.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSONDocument}


class Tenant(Base):
    """A plan2learn customer. Every resource and every credential belongs to one."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OAuthClient(Base):
    """An OAuth 2.0 client of one tenant (client credentials grant).

    It authenticates with a secret (stored only as a hash) or, with ``private_key_jwt``,
    with a JWT signed by a key from its registered public JWKS.
    """

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    scope: Mapped[str] = mapped_column(String(200), default="scim:read scim:write")
    auth_method: Mapped[str] = mapped_column(String(40), default="client_secret_basic")
    jwks: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    description: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class BearerToken(Base):
    """A bearer token: long-lived (typed into Entra ID's "Secret Token" field, no client) or an
    OAuth access token issued to a client (short-lived).

    Only the SHA-256 of the token is stored: a database dump reveals no credential.
    """

    __tablename__ = "bearer_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    scope: Mapped[str] = mapped_column(String(200), default="scim:read scim:write")
    client_id: Mapped[str | None] = mapped_column(
        ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), default=None, index=True
    )
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: when the token last authenticated a request, to the minute (written at most once a minute
    #: per token and worker): the console's overview shows each IdP's and client's last request
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class UsedAssertion(Base):
    """``jti`` values of client assertions already used (RFC 7523 §3: no replay)."""

    __tablename__ = "oauth_used_assertions"

    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column()


class AuditEvent(Base):
    """One successful write: who changed what, when, in which request, with old and new values."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_tenant_at", "tenant_id", "at", "id"),
        Index("ix_audit_tenant_resource", "tenant_id", "resource_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: "token:<id>", "client:<client id>", "jwt:<issuer>|<subject>" or "system:<job>"
    actor: Mapped[str] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    resource_type: Mapped[str] = mapped_column(String(20))
    resource_id: Mapped[str] = mapped_column(String(36))
    operation: Mapped[str] = mapped_column(String(20))
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: for a write made by a Bulk operation: its 0-based place in the request, and its bulkId
    bulk_index: Mapped[int | None] = mapped_column(Integer, default=None)
    bulk_id: Mapped[str | None] = mapped_column(String(200), default=None)
    #: for a write made by a sync run: the run's id (``SyncRun``)
    run_id: Mapped[str | None] = mapped_column(String(36), default=None)


class Source(Base):
    """A named feed of one tenant's master data (``hr``, ``payroll``, ``members``): the users and
    org units a source's sync creates belong to it, and a sync changes only what is its own."""

    __tablename__ = "sources"
    __table_args__ = (Index("uq_sources_tenant_name", "tenant_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: lower-case: ``HR`` and ``hr`` are one source
    name: Mapped[str] = mapped_column(String(100))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SyncDigest(Base):
    """What a source's last sync wrote of one person: a hash of the person's rows as read
    (``sync.roster``) and the user's version right after that write. A later sync skips a person
    whose rows hash the same while the digest is still here: any other write of the user (an
    IdP's, an admin's, the leaver rule's, an org unit's ``members``) moves the user's version,
    and a trigger on ``users`` (migration 0012) then deletes the digest, so the person is
    compared in full again. Not personal data: a hash, not the values."""

    __tablename__ = "sync_digests"
    #: a source's or tenant's deletion finds them by it
    __table_args__ = (Index("ix_sync_digests_source_id", "source_id"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)


class SyncRun(Base):
    """One sync of a source (the run log): who started it, how, what it counted, its row errors
    and, for a dry run, the changes it would have made. The changes a run made are the audit
    events carrying its id."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_source_started", "tenant_id", "source_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: "full" or "partial"
    mode: Mapped[str] = mapped_column(String(10))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    #: "running", "applied", "dry-run", "refused" or "failed"
    status: Mapped[str] = mapped_column(String(20))
    #: created, updated, unchanged, deactivated, conflicts, errors (and the units' counts)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: {"errors": [{file, line, reason}], "conflicts": [...], "changes": [...] (a dry run's diff)}
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message: Mapped[str | None] = mapped_column(String(2000), default=None)


class ConsoleAdmin(Base):
    """A person who signs in to the console: a tenant admin (``tenant_id`` set) sees and acts on
    that tenant only; an operator (plan2learn staff, ``tenant_id`` NULL) sees every tenant."""

    __tablename__ = "console_admins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: lower-case, unique: one account per e-mail address
    email: Mapped[str] = mapped_column(String(320), unique=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), default=None)
    #: a slow salted hash (scrypt), never the password
    password_hash: Mapped[str] = mapped_column(String(200))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_sign_in: Mapped[dt.datetime | None] = mapped_column(default=None)


class ConsoleSession(Base):
    """A signed-in browser. The cookie holds a random id; only its SHA-256 is stored, so a
    database dump signs nobody in. Signing out deletes the row: the cookie is then worthless."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("console_admins.id", ondelete="CASCADE"), index=True)
    #: the token every form that changes something must carry (CSRF)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()


class SignInFailure(Base):
    """Failed sign-ins per e-mail address (known or not): each one past a few makes the next
    attempt wait longer, whichever worker answers."""

    __tablename__ = "console_sign_in_failures"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("ix_users_tenant_external_id", "tenant_id", "external_id"),
        Index("ix_users_tenant_created", "tenant_id", "created", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(300))
    external_id: Mapped[str | None] = mapped_column(String(300), default=None)
    display_name: Mapped[str | None] = mapped_column(String(300), default=None)
    #: NULL when a client removed it (unassigned); new users without ``active`` start active.
    active: Mapped[bool | None] = mapped_column(Boolean, default=True)
    manager_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    #: plan2learn: the user's own EAN (GLN), a column because effectiveEan is computed in SQL.
    ean: Mapped[str | None] = mapped_column(String(13), default=None)
    #: plan2learn: the employment state ("current", "future", "ended") that ``active`` was last
    #: derived from; NULL after an employment change, so the next evaluation applies it.
    employment_state: Mapped[str | None] = mapped_column(String(10), default=None)
    #: the source (sync) that created the user and keeps it; NULL: an IdP's or an API client's
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"), default=None)
    #: plan2learn: the org unit of the employment effectiveEan is taken from (``derived``'s rule:
    #: primary, else earliest start, else first written), kept by ``derived.store_chosen_units``
    #: whenever the user's employments change, so effectiveEan is one join for a read, a filter
    #: and a report over a whole tenant alike. NULL: no employment.
    chosen_unit_id: Mapped[str | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"), default=None, index=True
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_modified: Mapped[dt.datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    # Every update and delete of a user says "WHERE version = <the version read>" (the ORM's
    # through this setting, UserStore.update in its own UPDATE): a write that read the user
    # before taking SQLite's write lock finds out if it changed meanwhile (see
    # storage.db.take_write_lock). The stores set the new version themselves.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class WorkEmail(Base):
    """One of a user's work e-mail addresses, lower-cased: a copy of what the user's document
    holds (``emails`` of type "work" or of no type), kept by the user store on every write of
    the user (``storage.emails``), so that finding addresses two users share is one pass over
    an index instead of a parse of every user's document (the data-quality check)."""

    __tablename__ = "work_emails"
    __table_args__ = (Index("ix_work_emails_tenant_email", "tenant_id", "email"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (
        Index("ix_groups_tenant_external_id", "tenant_id", "external_id"),
        Index("ix_groups_tenant_created", "tenant_id", "created", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(300))
    external_id: Mapped[str | None] = mapped_column(String(300), default=None)
    # plan2learn org units: a group carrying the plan2learn Group extension.
    is_org_unit: Mapped[bool] = mapped_column(Boolean, default=False)
    unit_code: Mapped[str | None] = mapped_column(String(100), default=None)
    unit_type: Mapped[str | None] = mapped_column(String(50), default=None)
    #: The tree is parent links only: moving a unit changes one row, whatever lies below it.
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("groups.id", ondelete="RESTRICT"), default=None, index=True
    )
    ean: Mapped[str | None] = mapped_column(String(13), default=None)
    #: The unit's own ean, else the nearest ancestor's: kept for the unit's subtree on every
    #: change of an ean or a parent (units only, never users), so effectiveEan is one join.
    effective_ean: Mapped[str | None] = mapped_column(String(13), default=None)
    #: the source (sync) that created the org unit and keeps it; NULL: an IdP's or an API client's
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"), default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_modified: Mapped[dt.datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Membership(Base):
    """One member of one group: a User or a nested Group, never both.

    For an org-unit group, a user's membership *is* the employment (plan2learn): the
    title, dates and primary flag live on this row, whichever way it was written.
    """

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint(
            "(user_id IS NULL) <> (member_group_id IS NULL)", name="ck_memberships_one_member"
        ),
        Index("uq_memberships_group_user", "group_id", "user_id", unique=True),
        Index("uq_memberships_group_group", "group_id", "member_group_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None, index=True
    )
    member_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), default=None, index=True
    )
    title: Mapped[str | None] = mapped_column(String(300), default=None)
    start_date: Mapped[dt.datetime | None] = mapped_column(default=None)
    end_date: Mapped[dt.datetime | None] = mapped_column(default=None)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    #: "mapped" when placed by the tenant's department mapping rather than by a client.
    source: Mapped[str | None] = mapped_column(String(20), default=None)
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RequestError(Base):
    """A request of a tenant's caller that was answered with an error (4xx but 429, or 5xx): what
    the console's overview counts as the errors of the last 24 hours, and lists. Kept for seven
    days; the detail is the SCIM error's, which may name a userName (personal data)."""

    __tablename__ = "request_errors"
    __table_args__ = (Index("ix_request_errors_tenant_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[int] = mapped_column(Integer)
    scim_type: Mapped[str | None] = mapped_column(String(50), default=None)
    detail: Mapped[str | None] = mapped_column(String(1000), default=None)


class ServerSecret(Base):
    """A secret of the server's own (the key that signs pagination cursors), made once.

    Every gunicorn worker and every host of one deployment shares the database, so a secret
    kept here is the same wherever a request lands, with nothing to configure.
    """

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    #: hex of 32 random bytes
    value: Mapped[str] = mapped_column(String(200))


# Expression indexes need the mapped columns, so they are declared after the classes.
# userName is unique per tenant, case-insensitively (RFC 7643 §4.1.1: caseExact false);
# the same lower() expression is what the filter compiler emits, so ``userName eq`` uses it.
Index("uq_users_tenant_username", User.tenant_id, func.lower(User.user_name), unique=True)
# Entra ID matches groups by ``displayName eq`` (caseExact false).
Index("ix_groups_tenant_display_name", Group.tenant_id, func.lower(Group.display_name))
# a source's users, matched on externalId (the source's key)
# with id: a sync reads its source's users (externalId -> id) from the index alone (0012)
Index("ix_users_source_external_id", User.source_id, User.external_id, User.id)
Index("ix_groups_source", Group.source_id)
# unitCode is unique per tenant, case-insensitively as userName (NULLs, i.e. plain groups, do
# not collide); ``unitCode eq`` (caseExact false) compiles to the same lower() expression.
Index("uq_groups_tenant_unit_code", Group.tenant_id, func.lower(Group.unit_code), unique=True)
# The console's reports (migration 0009): headcounts, people lists and the manager tree of a
# tenant. The index that lists people by name is an expression per dialect and lives in the
# migration alone.
Index("ix_users_tenant_active", User.tenant_id, User.active)
Index("ix_users_tenant_manager", User.tenant_id, User.manager_id)
Index("ix_memberships_tenant_user", Membership.tenant_id, Membership.user_id)
Index("ix_memberships_group_cover", Membership.group_id, Membership.user_id, Membership.start_date,
      Membership.end_date)
