"""Leavers and starters: ``active`` follows the dates of a user's employments.

A user whose employments have all ended becomes inactive; one whose only
employments start in the future is inactive until the first start date. The
state ``active`` was last derived from is stored on the user
(``employment_state``). The rule is applied

* by ``scim-server deactivate-leavers`` (cron), when the state changed because time
  passed (an end date or a start date was reached), and
* at once after any change to a user's employments through the API (``force``), from
  either side: the user's ``employments`` or an org-unit group's ``members``.

So an IdP's PATCH of ``active`` wins until the next employment change. Becoming
current re-activates only someone the rule had deactivated (a starter, a rehire),
never a user an IdP disabled. Users without employments (most external users) are
never touched. ``evaluate`` is idempotent.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from .. import telemetry
from . import audit
from .models import Group, Membership, User, utcnow

CURRENT, FUTURE, ENDED = "current", "future", "ended"


def in_effect(now: dt.datetime, job=Membership) -> ColumnElement[bool]:
    """An employment is in effect at ``now``: started (or no start date) and not ended (or no end
    date). The one definition the rule, the data-quality checks and the headcounts share."""
    return and_(or_(job.start_date.is_(None), job.start_date <= now),
                or_(job.end_date.is_(None), job.end_date > now))


def starts_later(now: dt.datetime, job=Membership) -> ColumnElement[bool]:
    """An employment that has not started at ``now``."""
    return job.start_date > now


@dataclass(frozen=True)
class Change:
    user_id: str
    user_name: str
    tenant_id: int
    state: str
    active: bool | None


def evaluate(session: Session, *, tenant_id: int | None = None, user_ids: list[str] | None = None,
             now: dt.datetime | None = None, dry_run: bool = False, force: bool = False,
             also: dict[str, Any] | None = None) -> list[Change]:
    """Apply the employment rule to the given users (or every user with employments).

    ``force``: the users' employments just changed, so apply the rule even if the state did not.
    ``now``: the moment the dates are compared with (the current time unless given: tests give
    one, through ``deactivate-leavers --now``, instead of waiting for a date to pass).
    ``also``: more columns (name -> SQL value) for the UPDATEs of the changed users' rows, which
    are rewritten anyway (``employments.changed`` stores their chosen unit this way).
    """
    if user_ids is not None and not user_ids:
        return []
    now = now or utcnow()
    has_current = func.max(case((in_effect(now), 1), else_=0))
    has_future = func.max(case((starts_later(now), 1), else_=0))
    query = (select(User.id, User.user_name, User.tenant_id, User.active, User.employment_state,
                    has_current, has_future)
             .join(Membership, Membership.user_id == User.id)
             .join(Group, and_(Group.id == Membership.group_id, Group.is_org_unit))
             .group_by(User.id, User.user_name, User.tenant_id, User.active, User.employment_state))
    if tenant_id is not None:
        query = query.where(User.tenant_id == tenant_id)
    if user_ids is not None:
        query = query.where(User.id.in_(user_ids))
    changes: list[Change] = []
    for user_id, user_name, tenant, active, stored, current, future in session.execute(query):
        state = CURRENT if current else FUTURE if future else ENDED
        if state == stored and not force:
            continue
        if state == CURRENT:
            # (re)activate only someone whom an earlier state had deactivated
            new_active = True if stored in (FUTURE, ENDED) else active
        else:
            new_active = False
        if state == stored and new_active == active:
            continue
        changes.append(Change(user_id, user_name, tenant, state, new_active if new_active != active else None))
    if not dry_run:
        audit.record_many(session, [
            {"tenant_id": c.tenant_id, "resource_type": "User", "resource_id": c.user_id, "operation": "system",
             "changes": {"active": {"old": not c.active, "new": c.active}, "rule": f"employment {c.state}"}}
            for c in changes if c.active is not None])
        same: dict[tuple[str, bool | None], list[str]] = {}  # one UPDATE per outcome, not per user
        for change in changes:
            same.setdefault((change.state, change.active), []).append(change.user_id)
        for (state, active), ids in same.items():
            values: dict = {"employment_state": state, **(also or {})}
            if active is not None:  # lastModified is when the row changed, whatever clock the rule was given
                values.update(active=active, version=User.version + 1, last_modified=utcnow())
            session.execute(update(User).where(User.id.in_(ids)).values(**values)
                            .execution_options(synchronize_session=False))
        telemetry.count_leaver_run(len(changes))
    return changes
