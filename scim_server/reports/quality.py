"""Data quality: the checks a customer's admin works through, each a count and the list behind it.

Each check finds what would make plan2learn wrong for someone: a bill without an EAN, a
learner no manager can follow up, an account for a person who left. The definitions ("active"
is ``users.active`` not false, as billing counts; an *employment* is a membership of an org unit):

``without_org_unit``
    Active users with no employment at all, ended or future ones included (so no chosen one,
    ``users.chosen_unit_id``): nobody sees them in the org tree. External users (consultants)
    land here too: the check cannot tell a person the master data forgot from one it never
    had, and the admin can.
``without_manager``
    Active users without a manager: approvals and follow-ups have nobody to go to.
``without_effective_ean``
    Active users whose effectiveEan (``storage.derived.effective_ean``, the billing definition)
    is missing: billing cannot invoice them.
``duplicate_emails``
    Active users who share a work e-mail, compared case-insensitively, with another user of the
    tenant (active or not: an old account of the same person is a duplicate too); sign-in and
    notifications by e-mail cannot tell them apart. A *work* e-mail is one of the user's
    ``emails`` with ``type`` "work" or no type at all (a client that sends one address often
    leaves the type out), as ``storage.emails`` keeps them. One finding per user and e-mail,
    the e-mail as its detail, ordered by e-mail so each duplicate's accounts are listed together.
``units_without_ean``
    Org units with no EAN of their own or above them (``Group.effective_ean`` NULL): whoever's
    chosen employment is there cannot be invoiced. Detail: the unitCode.
``future_starters``
    Users with employments none of which is in effect now and at least one of which starts
    later: the leaver rule keeps them inactive until the first start date (a rehire whose old
    employment has ended is one too). Detail: the earliest start date still to come.
``leavers_due``
    Users still active whose employments have all ended (none in effect, none to come): the
    leaver job (``scim-server deactivate-leavers``) has not run yet, or an IdP re-activated
    them since. Detail: the latest end date.

The last two are the states of ``storage.leavers.evaluate`` (``current``, ``future``,
``ended``), computed with its comparisons: a start date at or before now has started, an end
date after now has not ended.

Every count and every page is one statement in the database (a COUNT, or ORDER BY with OFFSET
and LIMIT), users are never loaded to be counted, and each list has a total order (name, then
id; for duplicates the e-mail first), so pages neither repeat nor skip a finding.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, case, func, literal, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select

from ..storage import leavers
from ..storage.derived import effective_ean
from ..storage.models import Group, Membership, User, WorkEmail

#: the checks, in the order the console and the API show them
CHECKS = ("without_org_unit", "without_manager", "without_effective_ean", "duplicate_emails",
          "units_without_ean", "future_starters", "leavers_due")


@dataclass(frozen=True)
class Finding:
    """One row of a check's list: a user or an org unit."""
    resource_type: str       # "User" or "Group"
    id: str
    name: str                # userName (users) or displayName (units)
    display_name: str | None
    detail: str | None       # e.g. the duplicated e-mail, the unitCode, the start or end date (ISO)


def _active():
    return User.active.isnot(False)


def _users(tenant_id: int, *where, detail=None, tenant=None) -> Select:
    """A check's list over users: the Finding's columns, and the order (userName, id).
    ``tenant``: how the tenant is compared, if not ``User.tenant_id == tenant_id``."""
    detail = literal(None, String()) if detail is None else detail
    tenant = User.tenant_id == tenant_id if tenant is None else tenant
    return (select(literal("User", String()).label("resource_type"), User.id.label("id"),
                   User.user_name.label("name"), User.display_name.label("display_name"), detail.label("detail"))
            .where(tenant, *where)
            .order_by(User.user_name, User.id))


def _employment_states(tenant_id: int, now: dt.datetime, among):
    """Per user with employments: whether one is in effect now, whether one starts later, the
    earliest start to come and the latest end date, by the leaver rule's own definitions.

    ``among``: a condition on an employment (an alias of Membership) that every user the check
    can find has one of (one that starts later, or one that has ended): only those users'
    employments are grouped, not the whole tenant's."""
    job, unit = aliased(Membership), aliased(Group)
    candidates = (select(job.user_id).join(unit, and_(unit.id == job.group_id, unit.is_org_unit))
                  .where(job.tenant_id == tenant_id, job.user_id.is_not(None), among(job)))
    future = leavers.starts_later(now)
    return (select(Membership.user_id.label("user_id"),
                   func.max(case((leavers.in_effect(now), 1), else_=0)).label("current"),
                   func.max(case((future, 1), else_=0)).label("future"),
                   func.min(case((future, Membership.start_date))).label("next_start"),
                   func.max(Membership.end_date).label("last_end"))
            .join(Group, and_(Group.id == Membership.group_id, Group.is_org_unit))
            .where(Membership.tenant_id == tenant_id, Membership.user_id.in_(candidates))
            .group_by(Membership.user_id).subquery())


def _iso_date(value: Any) -> str | None:
    return value.date().isoformat() if value is not None else None


def _duplicate_emails(tenant_id: int) -> Select:
    """Read from the users' work e-mails as the user store keeps them (``storage.emails``): the
    addresses more than one user of the tenant has, found by a pass over their index."""
    shared = (select(WorkEmail.email).where(WorkEmail.tenant_id == tenant_id)
              .group_by(WorkEmail.email).having(func.count() > 1))
    mine = (select(WorkEmail.user_id, WorkEmail.email)
            .where(WorkEmail.tenant_id == tenant_id, WorkEmail.email.in_(shared)).subquery())
    return (_users(tenant_id, _active(), detail=mine.c.email)
            .join(mine, mine.c.user_id == User.id)
            .order_by(None).order_by(mine.c.email, User.user_name, User.id))


def _check(session: Session, tenant_id: int, check: str, now: dt.datetime) -> Select:
    """The statement of one check's list, ordered; its rows are a Finding's fields."""
    if check == "without_org_unit":
        # no employment at all is no chosen one (``derived.store_chosen_units``): read from an index
        return _users(tenant_id, _active(), User.chosen_unit_id.is_(None))
    if check == "without_manager":
        # tenant_id + 0: the manager_id index finds the few without one; SQLite, keeping no
        # statistics, would otherwise read every user of the tenant through a (tenant_id, ...) index
        return _users(tenant_id, _active(), User.manager_id.is_(None), tenant=(User.tenant_id + 0) == tenant_id)
    if check == "without_effective_ean":
        unit = aliased(Group)  # the chosen employment's unit, joined once for every user
        return (_users(tenant_id, _active(), effective_ean(User, unit).is_(None))
                .outerjoin(unit, unit.id == User.chosen_unit_id))
    if check == "duplicate_emails":
        return _duplicate_emails(tenant_id)
    if check == "units_without_ean":
        return (select(literal("Group", String()).label("resource_type"), Group.id.label("id"),
                       Group.display_name.label("name"), Group.display_name.label("display_name"),
                       Group.unit_code.label("detail"))
                .where(Group.tenant_id == tenant_id, Group.is_org_unit, Group.effective_ean.is_(None))
                .order_by(Group.display_name, Group.id))
    if check == "future_starters":
        states = _employment_states(tenant_id, now, lambda job: leavers.starts_later(now, job))
        return (_users(tenant_id, states.c.current == 0, states.c.future == 1, detail=states.c.next_start)
                .join(states, states.c.user_id == User.id))
    if check == "leavers_due":
        # all ended: none in effect and none to come means every one has an end date at or before now
        states = _employment_states(tenant_id, now, lambda job: job.end_date <= now)
        return (_users(tenant_id, _active(), states.c.current == 0, states.c.future == 0, detail=states.c.last_end)
                .join(states, states.c.user_id == User.id))
    raise ValueError(f"unknown check {check!r}; the checks are {', '.join(CHECKS)}")


#: the checks whose detail is a date-time, rendered as an ISO date
_DATED = ("future_starters", "leavers_due")


def count(session: Session, tenant_id: int, check: str, now: dt.datetime) -> int:
    """One check's count (a list's total, without counting the others)."""
    listed = _check(session, tenant_id, check, now).order_by(None).subquery()
    return session.execute(select(func.count()).select_from(listed)).scalar_one()


def counts(session: Session, tenant_id: int, now: dt.datetime) -> dict[str, int]:
    """Every check's count, keyed as ``CHECKS``: one statement, a scalar COUNT subquery per check."""
    columns = [select(func.count()).select_from(_check(session, tenant_id, c, now).order_by(None).subquery())
               .scalar_subquery().label(c) for c in CHECKS]
    row = session.execute(select(*columns)).one()
    return {c: int(n) for c, n in zip(CHECKS, row, strict=True)}


def findings(session: Session, tenant_id: int, check: str, now: dt.datetime, *,
             offset: int = 0, limit: int = 50) -> list[Finding]:
    """One page of a check's list, in a stable order (``offset`` rows skipped, at most ``limit``).

    Unknown ``check``: ValueError (the caller answers 400)."""
    statement = _check(session, tenant_id, check, now).offset(max(offset, 0)).limit(max(limit, 0))
    dated = check in _DATED
    return [Finding(r.resource_type, r.id, r.name, r.display_name, _iso_date(r.detail) if dated else r.detail)
            for r in session.execute(statement)]
