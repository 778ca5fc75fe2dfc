"""A user's plan2learn ``employments``: their membership rows in org-unit groups.

Being employed in an org unit and being a member of that org-unit group are the
same row (``Membership``), whether it was written here, through the user, or by a
PATCH of the group's members. This class is the user-side view the PATCH engine
writes through; it changes only the rows it names.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, delete, exists, insert, select, update
from sqlalchemy.orm import Session

from ..scim import marshal
from ..scim.errors import ScimError, invalid_value, mutability, no_target
from ..scim.filters import FilterCompiler
from ..scim.schemas import Attribute
from ..scim.validators import P2L_USER
from . import derived, leavers
from .db import take_write_lock
from .models import Group, Membership, User, utcnow
from .resolvers import employment_element
from .resources import check_fits

#: sub-attribute -> membership column
COLUMNS = {"title": "title", "startDate": "start_date", "endDate": "end_date", "primary": "is_primary"}
#: what a PUT of employments writes of each: the sub-attributes, and ``source`` cleared
_COMPARED = (*COLUMNS.values(), "source")


def _fitting(sub: str, value: Any) -> Any:
    """The value, once its column is known to hold it (``check_fits``)."""
    check_fits(Membership.__table__.c[COLUMNS[sub]], f"employments.{sub}", value)
    return value


def parse_datetime(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def changed(session: Session, user_ids: list[str], *, by_unit: bool = False) -> list[leavers.Change]:
    """These users' employments were just written (added, removed, re-dated, made primary), from
    either side: the user's ``employments`` or an org unit's ``members``. What follows from them:
    the leaver rule decides ``active`` (``leavers.evaluate``, forced), and the employment
    effectiveEan comes from is chosen again (``derived.store_chosen_units``; for the users the
    rule rewrites, in the rule's UPDATE); the rule's changes are returned. Every writer of
    employment rows calls this once.

    ``by_unit``: written from the unit's side (its ``members``, its deletion). The users'
    ``employments`` changed without a write of the users themselves, so their version (ETag)
    and lastModified move here: a client holding the old ETag must not be told that nothing
    changed, and a sync compares a person again only when their version moved."""
    if not user_ids:
        return []
    if by_unit:
        session.execute(update(User).where(User.id.in_(list(set(user_ids))))
                        .values(version=User.version + 1, last_modified=utcnow())
                        .execution_options(synchronize_session=False))
    # the users the rule rewrites (all new employees: their state was none) get their chosen unit
    # in that same UPDATE; on PostgreSQL a second UPDATE wrote each row and its eleven index
    # entries once more (13 of the 120 s of a first sync of 100,000 people)
    changes = leavers.evaluate(session, user_ids=user_ids, force=True, also={"chosen_unit_id": derived.chosen_unit()})
    rewritten = {change.user_id for change in changes}
    derived.store_chosen_units(session, user_ids=[u for u in user_ids if u not in rewritten])
    return changes


def in_org_unit():
    return exists().where(Group.id == Membership.group_id, Group.is_org_unit)


def replace_many(session: Session, tenant_id: int, wanted: dict[str, list[dict[str, Any]]]
                 ) -> tuple[list[str], dict[str, ScimError]]:
    """Each user's employments become exactly the list given (user id -> a PUT's employments):
    the users whose employments changed, and the users refused (an employment without a unit,
    a unit that is not an org unit of the tenant, an end before the start), of whom nothing is
    written. The rows of all of them are read, deleted, updated and inserted in one statement
    each, and nothing follows here: the caller calls ``changed`` once for the users changed.

    Only what differs is written: an employment named again keeps its row, and with it its
    place as "the employment written first" that effectiveEan's tie-break reads, whatever
    order the document lists it in; a PUT that changes no employment writes none."""
    refused: dict[str, ScimError] = {}
    desired: dict[str, dict[str, dict[str, Any]]] = {}
    for user_id, values in wanted.items():
        try:
            jobs: dict[str, dict[str, Any]] = {}
            for item in values:
                unit_id = item.get("value")
                if not unit_id:
                    raise invalid_value("Each employment needs a 'value' with the org unit's id")
                # a PUT replaces the whole employment: what it leaves out is cleared
                jobs[unit_id] = EmploymentRows.columns({"title": None, "startDate": None, "endDate": None,
                                                        "primary": False, **item})
            desired[user_id] = jobs
        except ScimError as exc:
            refused[user_id] = exc
    if not desired:
        return [], refused
    stored: dict[str, dict[str, dict[str, Any]]] = {user_id: {} for user_id in desired}
    for row in session.execute(_STORED_EMPLOYMENTS, {"ids": list(desired)}):
        stored[row.user_id][row.group_id] = {c: getattr(row, c) for c in _COMPARED}
    changed = [user_id for user_id, jobs in desired.items() if jobs != stored[user_id]]
    if not changed:
        return [], refused
    take_write_lock(session.connection())  # the checks below must hold until the commit
    named = {unit_id for user_id in changed for unit_id in desired[user_id]}
    units = set(session.scalars(select(Group.id).where(
        Group.tenant_id == tenant_id, Group.is_org_unit, Group.id.in_(list(named))))) if named else set()
    deletes, updates, inserts = [], [], []
    now = utcnow()
    for user_id in list(changed):
        jobs, before = desired[user_id], stored[user_id]
        unknown = [unit_id for unit_id in jobs if unit_id not in units]
        if unknown:
            refused[user_id] = invalid_value(
                f"employments.value must be an org unit of this tenant: {', '.join(unknown[:10])}")
            changed.remove(user_id)
            continue
        deletes += [{"u": user_id, "g": unit_id} for unit_id in before if unit_id not in jobs]
        for unit_id, columns in jobs.items():
            if unit_id not in before:
                inserts.append({"tenant_id": tenant_id, "group_id": unit_id, "user_id": user_id,
                                "member_group_id": None, "created": now, **columns})
            elif before[unit_id] != columns:
                updates.append({"u": user_id, "g": unit_id, **columns})
    connection = session.connection()
    if deletes:
        connection.execute(_DELETE_EMPLOYMENT, deletes)
    if updates:
        connection.execute(_UPDATE_EMPLOYMENT, updates)
    if inserts:
        connection.execute(INSERT_MEMBERSHIPS, inserts)
    return changed, refused


class EmploymentRows:
    def __init__(self, session: Session, tenant_id: int, rt, user: User):
        self.session = session
        self.tenant_id = tenant_id
        self.rt = rt
        self.user = user
        self.attr: Attribute = rt.resolve(f"{P2L_USER}:employments")[0]
        self.changed = False

    def _mine(self):
        return (Membership.user_id == self.user.id) & in_org_unit()

    def _where(self, value_filter):
        condition = self._mine()
        if value_filter is not None:
            compiler = FilterCompiler(self.rt, None)
            condition = condition & compiler.compile(value_filter, (self.attr, employment_element()))
        return condition

    # ------------------------------------------------------------------ writes
    def add(self, values: list[dict[str, Any]]) -> None:
        wanted = {}
        for item in values:  # loaded against the schema (see patch.RowCollection)
            unit_id = item.get("value")
            if not unit_id:
                raise invalid_value("Each employment needs a 'value' with the org unit's id")
            wanted[unit_id] = item
        if not wanted:
            return
        take_write_lock(self.session.connection())  # the checks below must hold until the commit
        units = set(self.session.scalars(select(Group.id).where(
            Group.tenant_id == self.tenant_id, Group.is_org_unit, Group.id.in_(list(wanted)))))
        unknown = [u for u in wanted if u not in units]
        if unknown:
            raise invalid_value(f"employments.value must be an org unit of this tenant: {', '.join(unknown[:10])}")
        existing = set(self.session.scalars(select(Membership.group_id).where(
            Membership.user_id == self.user.id, Membership.group_id.in_(list(wanted)))))
        if any(item.get("primary") for item in wanted.values()):
            self._clear_primary()
        merged = []  # existing employments given one date: the other is the stored one
        for unit_id, item in wanted.items():
            values_ = self.columns(item)
            if unit_id in existing:
                self.session.execute(update(Membership).where(
                    Membership.user_id == self.user.id, Membership.group_id == unit_id).values(**values_)
                    .execution_options(synchronize_session=False))
                if ("start_date" in values_) != ("end_date" in values_):
                    merged.append(unit_id)
            else:
                self.session.execute(insert(Membership).values(
                    tenant_id=self.tenant_id, group_id=unit_id, user_id=self.user.id, created=utcnow(),
                    **{"is_primary": False, **values_}))
        if merged:
            self._check_dates(self._mine() & Membership.group_id.in_(merged))
        self.changed = True

    def replace(self, values: list[dict[str, Any]]) -> None:
        """The employments become exactly ``values`` (a PUT): ``replace_many`` of one user."""
        changed, refused = replace_many(self.session, self.tenant_id, {self.user.id: values})
        if refused:
            raise refused[self.user.id]
        self.changed = bool(changed)

    def remove(self, value_filter) -> None:
        self.session.execute(delete(Membership).where(self._where(value_filter))
                             .execution_options(synchronize_session=False))
        self.changed = True

    def set_sub(self, value_filter, sub: Attribute, value: Any) -> None:
        column = COLUMNS.get(sub.name)
        if column is None:
            raise mutability(f"employments.{sub.name} cannot be changed: remove the employment and add another")
        loaded = _fitting(sub.name, marshal.load_attribute(sub, value))
        if column in ("start_date", "end_date"):
            loaded = parse_datetime(loaded)
        if column == "is_primary":
            loaded = bool(loaded)
            if loaded:
                self._clear_primary()
        dated = None
        if column in ("start_date", "end_date") and loaded is not None:
            # the employments the path selects now (a filter on the date may not select them after)
            dated = list(self.session.scalars(select(Membership.group_id).where(self._where(value_filter))))
        result = self.session.execute(update(Membership).where(self._where(value_filter))
                                      .values({column: loaded}).execution_options(synchronize_session=False))
        if result.rowcount == 0:
            raise no_target("No employment matches the path")
        if column == "is_primary" and loaded and result.rowcount > 1:
            raise invalid_value("At most one employment may be primary")
        if dated:
            self._check_dates(self._mine() & Membership.group_id.in_(dated))
        self.changed = True

    def remove_sub(self, value_filter, sub: Attribute) -> None:
        column = COLUMNS.get(sub.name)
        if column is None:
            raise mutability(f"employments.{sub.name} cannot be removed: remove the employment instead")
        self.session.execute(update(Membership).where(self._where(value_filter))
                             .values({column: False if column == "is_primary" else None})
                             .execution_options(synchronize_session=False))
        self.changed = True

    def _clear_primary(self) -> None:
        self.session.execute(update(Membership).where(self._mine(), Membership.is_primary)
                             .values(is_primary=False).execution_options(synchronize_session=False))

    def _check_dates(self, condition) -> None:
        """After a write that set one date of employments whose other date is stored: none of
        them may end before it starts (the request's transaction is then rolled back)."""
        wrong = self.session.execute(select(Membership.group_id, Membership.start_date, Membership.end_date)
                                     .where(condition, Membership.end_date < Membership.start_date).limit(1)).first()
        if wrong is not None:
            raise _ends_before_start(wrong.group_id, wrong.start_date, wrong.end_date)

    @staticmethod
    def columns(item: dict[str, Any]) -> dict[str, Any]:
        """An employment's sub-attributes as membership columns (those given; ``source`` cleared).
        Raises 400 invalidValue when its endDate lies before its startDate."""
        out: dict[str, Any] = {}
        for sub, column in COLUMNS.items():
            if sub in item:
                value = _fitting(sub, item[sub])
                out[column] = parse_datetime(value) if column in ("start_date", "end_date") else value
        start, end = out.get("start_date"), out.get("end_date")
        if start is not None and end is not None and end < start:
            raise _ends_before_start(item.get("value"), start, end)
        out.setdefault("source", None)
        return out


def _ends_before_start(unit_id: str | None, start: dt.datetime, end: dt.datetime) -> Exception:
    return invalid_value(f"The employment in org unit {unit_id} ends ({marshal.format_datetime(end)}) "
                         f"before it starts ({marshal.format_datetime(start)}): endDate may not lie "
                         "before startDate")


_members = Membership.__table__
_STORED_EMPLOYMENTS = (select(_members.c.user_id, _members.c.group_id, *(_members.c[c] for c in _COMPARED))
                       .where(_members.c.user_id.in_(bindparam("ids", expanding=True)),
                              exists().where(Group.id == _members.c.group_id, Group.is_org_unit)))
#: membership rows (employments, a group's members) in one multi-row INSERT: built once, for every writer
INSERT_MEMBERSHIPS = insert(Membership.__table__)
_DELETE_EMPLOYMENT = delete(_members).where(_members.c.user_id == bindparam("u"), _members.c.group_id == bindparam("g"))
_UPDATE_EMPLOYMENT = (update(_members).where(_members.c.user_id == bindparam("u"), _members.c.group_id == bindparam("g"))
                      .values({c: bindparam(c) for c in _COMPARED}))
