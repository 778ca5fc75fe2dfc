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
in. Every employment counts, ended and future ones included, as ``employments`` lists them.
``effective_ean_unit`` names that chosen unit (what the billing report groups an EAN's users
by); both read the chosen employment through one subquery, so they cannot drift apart.

``orgUnits``, ``managerChain`` and a user's ``groups`` (direct and indirect) are recursive
walks, defined once each in ``hierarchy`` (``_walk``, ``employed_in``, ``direct_groups`` and
``indirect_groups_of``).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, null, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from .models import Group, Membership, User


def _chosen_employment(user, pick) -> ColumnElement[Any]:
    """One column (``pick(unit)``, e.g. its id or its effective ean) of the org unit of the
    employment effectiveEan is taken from, as a scalar subquery over ``user``.

    The one place the rule's order (primary, earliest start with no start first, first written)
    is spelled: ``effective_ean`` and ``effective_ean_unit`` both read the chosen employment
    through it, so the EAN a report bills and the unit it bills it under cannot come from two
    different employments."""
    unit, job = aliased(Group), aliased(Membership)
    return (select(pick(unit))
            .join(job, job.group_id == unit.id)
            .where(job.user_id == user.id, unit.is_org_unit)
            .order_by(job.is_primary.desc(), job.start_date.asc().nulls_first(), job.id)
            .limit(1).scalar_subquery())


def effective_ean(user=User) -> ColumnElement[Any]:
    """The user's effectiveEan as one SQL expression over ``user`` (the User entity, or an alias
    of it): what the read selects beside the user's columns, and what filters and sortBy compare."""
    return func.coalesce(user.ean, _chosen_employment(user, lambda unit: unit.effective_ean))


def effective_ean_unit(user=User) -> ColumnElement[Any]:
    """The id of the org unit ``effective_ean`` takes its value from: the unit of the chosen
    employment, also when that unit has no effective ean (the user then has none either, and
    this names the unit that lacks it). NULL when the user's own ean is the effectiveEan, or
    when the user has no employment. The billing report groups an EAN's users by it."""
    return case((user.ean.is_(None), _chosen_employment(user, lambda unit: unit.id)), else_=null())
