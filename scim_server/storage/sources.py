"""Sources of master data and their sync runs: what a sync needs to read from the database.

A source is a named feed of one tenant (``hr``, ``payroll``, ``members``). What its syncs
create belongs to it (``users.source_id``, ``groups.source_id``); a sync compares a file with
what its source owns, and never touches another owner's resources.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, insert, select, text
from sqlalchemy.orm import Session

from .models import Group, Membership, Source, SyncDigest, SyncRun, User, utcnow

#: a source's name: what a cron line or a URL can carry without quoting
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


class SourceError(Exception):
    """An operator's mistake with a source (a bad name): one clear line, never a traceback."""


def source(session: Session, tenant_id: int, name: str, *, create: bool = True) -> Source | None:
    """The tenant's source called ``name`` (case-insensitively), made on first use."""
    name = name.strip().lower()
    if not NAME.match(name):
        raise SourceError(f"'{name}' is not a source name: use letters, digits, '-', '_' or '.' (at most 100)")
    found = session.scalar(select(Source).where(Source.tenant_id == tenant_id, Source.name == name))
    if found is None and create:
        found = Source(tenant_id=tenant_id, name=name, created=utcnow())
        session.add(found)
        session.flush()
    return found


def sources(session: Session, tenant_id: int) -> list[Source]:
    return list(session.scalars(select(Source).where(Source.tenant_id == tenant_id).order_by(Source.name)))


# ------------------------------------------------------------------ what a source owns


@dataclass(frozen=True)
class OwnedUnit:
    id: str
    unit_code: str
    display_name: str
    parent_id: str | None
    unit_type: str | None
    ean: str | None
    source_id: int | None


def units_by_code(session: Session, tenant_id: int) -> dict[str, OwnedUnit]:
    """Every org unit of the tenant by its unitCode folded to lower case, whoever owns it (a
    unitCode held by another owner is a conflict). A tenant has thousands of units, not more."""
    query = select(Group.id, Group.unit_code, Group.display_name, Group.parent_id, Group.unit_type, Group.ean,
                   Group.source_id).where(Group.tenant_id == tenant_id, Group.is_org_unit, Group.unit_code.isnot(None))
    return {row.unit_code.lower(): OwnedUnit(*row) for row in session.execute(query)}


def unit_usage(session: Session, unit_ids: list[str]) -> dict[str, tuple[int, int]]:
    """(people employed, child units) of each unit: a unit in use is kept when its file drops it."""
    if not unit_ids:
        return {}
    people = dict(session.execute(select(Membership.group_id, func.count()).where(
        Membership.group_id.in_(unit_ids), Membership.user_id.isnot(None)).group_by(Membership.group_id)).all())
    children = dict(session.execute(select(Group.parent_id, func.count()).where(
        Group.parent_id.in_(unit_ids)).group_by(Group.parent_id)).all())
    return {u: (people.get(u, 0), children.get(u, 0)) for u in unit_ids}


def owned_users(session: Session, source_id: int, page: int = 5000) -> Iterator[Sequence[Row]]:
    """The source's users as (id, externalId) rows: one statement on the source's index alone
    (it holds both), streamed in pages (no ORDER BY: a sort of every row for each page cost
    more than the rest). Core, not the ORM's session.execute: the ORM's row handling cost 2 of
    2.4 s at 100,000 users."""
    query = select(User.id, User.external_id).where(User.source_id == source_id)
    yield from session.connection().execute(query.execution_options(yield_per=page)).partitions()


def kept_digests(session: Session, source_id: int) -> dict[str, str]:
    """user id -> the digest the source's last sync kept of each user it wrote or compared, of
    the users no one has written since: a write of a user moves its version, and a trigger
    (migration 0012) then deletes the digest. Read apart from the users, not joined to them:
    a join looks up every user's (wide) row."""
    query = select(SyncDigest.user_id, SyncDigest.digest).where(SyncDigest.source_id == source_id)
    return dict(session.connection().execute(query).all())


def store_digests(session: Session, source_id: int, digests: list[tuple[str, str, int]], *,
                  created: bool = False) -> None:
    """Keep (user id, digest, version) for users a sync has just written or compared: the
    version is the one the user has after the write (the leaver rule's included). A wrong one
    costs nothing but a comparison: the person is compared again by the next sync.
    ``created``: the users are new, so there is no old digest to delete (on PostgreSQL that
    DELETE scanned the table a first sync fills: 2.9 s of one at 100,000 people)."""
    if not digests:
        return
    connection = session.connection()
    for start in range(0, len(digests), 1000):
        chunk = digests[start:start + 1000]
        if not created:
            connection.execute(_FORGET_DIGESTS, {"ids": [user_id for user_id, _, _ in chunk]})
        connection.execute(_STORE_DIGEST, [{"user_id": user_id, "source_id": source_id, "digest": digest,
                                            "version": version} for user_id, digest, version in chunk])


_FORGET_DIGESTS = delete(SyncDigest).where(SyncDigest.user_id.in_(bindparam("ids", expanding=True)))
_STORE_DIGEST = insert(SyncDigest)


def active_users(session: Session, source_id: int) -> int:
    return session.scalar(select(func.count()).select_from(User).where(User.source_id == source_id,
                                                                      User.active.is_(True))) or 0


def user_name_owners(session: Session, tenant_id: int, user_names: list[str]) -> dict[str, tuple[str, int | None]]:
    """For each of these userNames (folded to lower case) that a user of the tenant holds: that
    user's (id, source)."""
    out: dict[str, tuple[str, int | None]] = {}
    names = list({n.lower() for n in user_names})
    for start in range(0, len(names), 1000):
        for row in session.execute(_NAME_OWNERS, {"tid": tenant_id, "names": names[start:start + 1000]}):
            out[row.user_name.lower()] = (row.id, row.source_id)
    return out


#: folded by Python (a name the database folds differently is still caught by the unique index)
_NAME_OWNERS = select(User.id, User.user_name, User.source_id).where(
    User.tenant_id == bindparam("tid"), func.lower(User.user_name).in_(bindparam("names", expanding=True)))


# ------------------------------------------------------------------------ the run log


def start_run(session: Session, tenant_id: int, source_id: int, actor: str, mode: str, dry_run: bool) -> SyncRun:
    run = SyncRun(id=str(uuid.uuid4()), tenant_id=tenant_id, source_id=source_id, actor=actor,
                  started_at=utcnow(), mode=mode, dry_run=dry_run, status="running", summary={}, report={})
    session.add(run)
    session.flush()
    return run


def finish_run(run: SyncRun, status: str, summary: dict[str, Any], report: dict[str, Any],
               message: str | None = None) -> None:
    run.status, run.summary, run.report = status, summary, report
    run.message = (message or None) and message[:2000]
    run.finished_at = utcnow()


def runs(session: Session, tenant_id: int, source_id: int | None = None, limit: int = 50) -> list[SyncRun]:
    query = select(SyncRun).where(SyncRun.tenant_id == tenant_id)
    if source_id is not None:
        query = query.where(SyncRun.source_id == source_id)
    return list(session.scalars(query.order_by(SyncRun.started_at.desc(), SyncRun.id).limit(limit)))


def run_by_id(session: Session, tenant_id: int, run_id: str) -> SyncRun | None:
    return session.scalar(select(SyncRun).where(SyncRun.tenant_id == tenant_id, SyncRun.id == run_id))


def refresh_statistics(session: Session) -> None:
    """ANALYZE the tables a sync fills (PostgreSQL; SQLite is steered by its statements)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE users, groups, memberships"))


def today() -> dt.datetime:
    """The start of today (UTC): the end date a leaver's employments get."""
    now = utcnow()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)
