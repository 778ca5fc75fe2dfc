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
by); both read the chosen employment through one subquery, so they cannot drift apart. For a
whole tenant, ``chosen_employments`` picks every user's employment in one pass (a window over
the tenant's employments) by the same order, spelled once (``_rule_order``), and
``effective_ean_of`` / ``effective_ean_unit_of`` read the values from it as the scalar forms do.

``orgUnits``, ``managerChain`` and a user's ``groups`` (direct and indirect) are recursive
walks, defined once each in ``hierarchy`` (``_walk``, ``employed_in``, ``direct_groups`` and
``indirect_groups_of``).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, null, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Subquery
from sqlalchemy.sql.elements import ColumnElement

from .models import Group, Membership, User
from .resources import of_tenant


def _rule_order(job) -> tuple[ColumnElement[Any], ...]:
    """The order of the rule above over the employments ``job`` (an alias of Membership): the
    first one is chosen. The one place it is spelled: the scalar form (``_chosen_employment``,
    one user) and the set-based form (``chosen_employments``, a whole tenant) both sort by it."""
    return job.is_primary.desc(), job.start_date.asc().nulls_first(), job.id


def _own_else_unit(user, unit_ean) -> ColumnElement[Any]:
    """effectiveEan from the user's own ean and the chosen unit's effective ean (either form)."""
    return func.coalesce(user.ean, unit_ean)


def _unit_if_no_own(user, unit_id) -> ColumnElement[Any]:
    """The chosen unit, when effectiveEan is not the user's own ean (either form)."""
    return case((user.ean.is_(None), unit_id), else_=null())


def _chosen_employment(user, pick) -> ColumnElement[Any]:
    """One column (``pick(unit)``, e.g. its id or its effective ean) of the org unit of the
    employment effectiveEan is taken from, as a scalar subquery over ``user``.

    ``effective_ean`` and ``effective_ean_unit`` both read the chosen employment through it, so
    the EAN and the unit it is taken from cannot come from two different employments."""
    unit, job = aliased(Group), aliased(Membership)
    return (select(pick(unit))
            .join(job, job.group_id == unit.id)
            .where(job.user_id == user.id, unit.is_org_unit)
            .order_by(*_rule_order(job))
            .limit(1).scalar_subquery())


def effective_ean(user=User) -> ColumnElement[Any]:
    """The user's effectiveEan as one SQL expression over ``user`` (the User entity, or an alias
    of it): what the read selects beside the user's columns, and what filters and sortBy compare."""
    return _own_else_unit(user, _chosen_employment(user, lambda unit: unit.effective_ean))


def effective_ean_unit(user=User) -> ColumnElement[Any]:
    """The id of the org unit ``effective_ean`` takes its value from: the unit of the chosen
    employment, also when that unit has no effective ean (the user then has none either, and
    this names the unit that lacks it). NULL when the user's own ean is the effectiveEan, or
    when the user has no employment. The billing report groups an EAN's users by it."""
    return _unit_if_no_own(user, _chosen_employment(user, lambda unit: unit.id))


# ------------------------------------------------------------------ whole tenants


def chosen_employments(tenant_id) -> Subquery:
    """The set-based form of ``_chosen_employment``, for reports over a whole tenant: one row per
    user of the tenant with an employment, the chosen one, with the columns ``user_id``,
    ``unit_id`` and ``effective_ean`` (the chosen unit's). Each user's employments are ranked
    once (``ROW_NUMBER() OVER (PARTITION BY user ORDER BY`` the rule's order ``)``), where the
    scalar form looks each user's employments up and sorts them on its own: the same choice,
    one pass instead of 100,000 look-ups. Read it with ``effective_ean_of`` and
    ``effective_ean_unit_of``, outer-joined to the users by ``user_id``."""
    unit, job = aliased(Group), aliased(Membership)
    # the tenant as a filter, not an index key (``of_tenant``): SQLite would otherwise walk the
    # (tenant, user) index of employments with a table look-up per row instead of one pass
    where = [of_tenant(job.tenant_id, tenant_id), job.user_id.is_not(None)]
    # partitioned by ``user_id || ''``, which no index holds: SQLite would otherwise read the
    # employments in the order of the user_id index, one table look-up per row, rather than in
    # one pass and sort them (measured 730 against 270 ms at 100,000); PostgreSQL sorts either way
    rank = func.row_number().over(partition_by=job.user_id.concat(""), order_by=_rule_order(job))
    ranked = (select(job.user_id.label("user_id"), unit.id.label("unit_id"),
                     unit.effective_ean.label("effective_ean"), rank.label("rank"))
              .join(unit, and_(unit.id == job.group_id, unit.is_org_unit))
              .where(*where).subquery("ranked"))
    return (select(ranked.c.user_id, ranked.c.unit_id, ranked.c.effective_ean).where(ranked.c.rank == 1)
            .subquery("chosen_employments"))


def effective_ean_of(user, chosen: Subquery) -> ColumnElement[Any]:
    """``effective_ean`` for ``user`` outer-joined to ``chosen`` (``chosen_employments``) by user."""
    return _own_else_unit(user, chosen.c.effective_ean)


def effective_ean_unit_of(user, chosen: Subquery) -> ColumnElement[Any]:
    """``effective_ean_unit`` for ``user`` outer-joined to ``chosen`` (``chosen_employments``)."""
    return _unit_if_no_own(user, chosen.c.unit_id)
