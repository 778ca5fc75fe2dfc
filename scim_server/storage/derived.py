"""The read-only values a User derives from other rows, each defined once, in SQL.

A GET, a page of a list and a filter must agree on what a derived value is; two
definitions (one in Python for the read, one in SQL for the filter) drift apart, as
NULL ordering did: SQLite sorts NULLs first, PostgreSQL last. So the read selects the
same expression the filter compiles, and Python only copies the value out of the row.

``effectiveEan`` (``effective_ean``): the user's own ean; else the effective ean of the
org unit of one employment, chosen by the employment alone:

1. the primary employment;
2. else the employment with the earliest ``startDate``, where no ``startDate`` means
   "employed from the beginning", i.e. the earliest of all (NULLS FIRST, on every database);
3. ties by the membership row's id (the employment written first).

The chosen unit's effective ean is its own or its nearest ancestor's (kept on the unit, see
``hierarchy.refresh_effective_ean``). If that unit has none, the user has none: the ean is
never taken from another employment, which would invoice a unit the user's main job is not
in. Every employment counts, ended and future ones included, as ``employments`` lists them,
so the choice depends on the employments alone, never on today's date: it is made when they
change (``store_chosen_units``, or ``chosen_unit`` in the leaver rule's UPDATE of the same
users; ``employments.changed``, called by every write of employments, from either side) and
kept on the user (``users.chosen_unit_id``). effectiveEan is then one join, the same for a
GET, a filter, a sort and a report over a whole tenant (which would otherwise rank every
employment of the tenant per request: a second at 100,000 users).
``effective_ean_unit`` names that chosen unit (what the billing report groups an EAN's users
by) when effectiveEan is not the user's own ean.

``orgUnits``, ``managerChain`` and a user's ``groups`` (direct and indirect) are recursive
walks, defined once each in ``hierarchy`` (``_walk``, ``employed_in``, ``direct_groups`` and
``indirect_groups_of``).
"""
from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from .models import Group, Membership, User


def rule_order(job) -> tuple[ColumnElement[Any], ...]:
    """The order of the rule above over the employments ``job`` (an alias of Membership): the
    first one is chosen. The one place it is spelled: the stored choice is made by it (migration
    0010 filled the column by it), and the org reports show a person's employment by it."""
    return job.is_primary.desc(), job.start_date.asc().nulls_first(), job.id


def _chosen_unit_of(user) -> ColumnElement[Any]:
    """The org unit of ``user``'s chosen employment, as a scalar subquery over its employments."""
    unit, job = aliased(Group), aliased(Membership)
    return (select(unit.id).join(job, and_(job.group_id == unit.id, unit.is_org_unit))
            .where(job.user_id == user.id)
            .order_by(*rule_order(job)).limit(1).scalar_subquery())


def store_chosen_units(session: Session | Connection, *, user_ids: list[str] | None = None, tenant_id: int | None = None) -> None:
    """Choose again, by the rule, the employment of these users (or of every user of a tenant)
    whose unit effectiveEan comes from, and store its unit on the user: one UPDATE of the users
    whose choice changed. Called after any write that adds, removes or changes employments
    (``employments.changed``), and by writers that insert employment rows themselves (the demo
    tenant, the bench seeds)."""
    if user_ids is not None and not user_ids:
        return
    if user_ids is not None:
        params: dict[str, Any] = {"ids": list(dict.fromkeys(user_ids))}
        if tenant_id is not None:
            params["tid"] = tenant_id
        session.execute(_store_chosen_statement(True, tenant_id is not None), params)
    elif tenant_id is not None:
        session.execute(_store_chosen_statement(False, True), {"tid": tenant_id})


@cache
def chosen_unit() -> ColumnElement[Any]:
    """The chosen unit of the user an UPDATE of ``users`` writes, by the rule: for a writer that
    rewrites the users' rows anyway (the leaver rule's UPDATE, ``employments.changed``) and sets
    ``chosen_unit_id`` in the same statement instead of writing each row twice."""
    return _chosen_unit_of(User.__table__.c)


@cache
def _store_chosen_statement(of_users: bool, of_tenant: bool):
    """``store_chosen_units``'s UPDATE, built once per shape: building it (aliases, subqueries)
    cost more than running it, on every write of employments."""
    table = User.__table__
    chosen = _chosen_unit_of(table.c)
    # only the rows whose choice changed are written: a new employment rarely changes it, and an
    # UPDATE of an unchanged row still locks it and leaves a dead row version on PostgreSQL
    statement = update(table).values(chosen_unit_id=chosen).where(table.c.chosen_unit_id.is_distinct_from(chosen))
    if of_users:
        statement = statement.where(table.c.id.in_(bindparam("ids", expanding=True)))
    if of_tenant:
        statement = statement.where(table.c.tenant_id == bindparam("tid"))
    return statement.execution_options(synchronize_session=False)


def effective_ean(user=User, unit=None) -> ColumnElement[Any]:
    """The user's effectiveEan as one SQL expression over ``user`` (the User entity, or an alias
    of it): what the read selects beside the user's columns, and what filters and sortBy compare.
    ``unit``: an alias of Group the statement already outer-joins on ``chosen_unit_id`` (a
    report over many users), else the unit is read by a scalar subquery."""
    if unit is None:
        unit_ean = select(Group.effective_ean).where(Group.id == user.chosen_unit_id).scalar_subquery()
    else:
        unit_ean = unit.effective_ean
    return func.coalesce(user.ean, unit_ean)


def effective_ean_unit(user=User) -> ColumnElement[Any]:
    """The id of the org unit ``effective_ean`` takes its value from: the unit of the chosen
    employment, also when that unit has no effective ean (the user then has none either, and
    this names the unit that lacks it). NULL when the user's own ean is the effectiveEan, or
    when the user has no employment. The billing report groups an EAN's users by it."""
    return case((user.ean.is_(None), user.chosen_unit_id), else_=None)
