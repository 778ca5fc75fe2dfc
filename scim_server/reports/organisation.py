"""The org tree and the manager tree as the console shows them: one level at a time, with
headcounts, so a page never walks more of the tree than it shows.

Headcount: distinct *active* users (``active`` not false) with an employment in effect now
(started, or no start date; not ended, or no end date) in the unit ("own") or in the unit or
any unit below it ("subtree"). A user employed twice in a subtree is one head there.

Every number is counted by the database: a level's units (or managers) seed one recursive
walk down the tree (``hierarchy._walk``, the walk the ``orgUnits`` and ``managerChain``
filters take), each row of it carrying the listed unit (or manager) it descends from, and
the counts are grouped by that. Nothing loads a table or a subtree into Python; what comes
back is the level's rows, with their numbers.

How a count reads the people depends on how many there are. Neither database can estimate
the size of a recursive walk (PostgreSQL guesses a few dozen rows for 5,000 units), so both
would look every employed person up by key, one random read each: fine for a team, but the
whole cost of a page when a unit near the root holds 100,000 people. So a query first counts
the subtree's employment rows, stopping at ``MANY`` (an index-only count, a few milliseconds
at most), and above that reads the users table in one sequential pass instead (see
``_Statements``): the active check becomes "not one of the tenant's inactive users" (found in
one scan, usually few, kept in memory), and a page of people is found by one scan of the
users. The thresholds were measured at 100,000 users on both databases.
"""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, func, literal, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from ..storage import leavers
from ..storage.hierarchy import _seeds, _walk, unit_subtree
from ..storage.models import Group, Membership, User, UTCDateTime


@dataclass(frozen=True)
class UnitNode:
    id: str
    display_name: str
    unit_code: str | None
    unit_type: str | None
    ean: str | None             # the unit's own
    effective_ean: str | None   # its own or the nearest ancestor's
    parent_id: str | None
    children: int               # number of child units
    headcount: int              # own
    subtree_headcount: int      # the unit and everything below it


@dataclass(frozen=True)
class Person:
    id: str
    user_name: str
    display_name: str | None
    active: bool | None
    title: str | None           # of the employment in the unit, if any
    unit_id: str | None
    unit_name: str | None


@dataclass(frozen=True)
class ManagerNode:
    id: str
    user_name: str
    display_name: str | None
    active: bool | None
    direct_reports: int
    total_reports: int          # everyone below them in the manager tree


def in_effect(membership, at) -> ColumnElement[bool]:
    """Is the employment ``membership`` (Membership or an alias of it) in effect at ``at`` (a
    datetime or a bind parameter)? The leaver rule's own definition (``storage.leavers``), which
    the data-quality checks read too: a person counted in a unit here is one the rule keeps
    active, and one a check calls a leaver is counted nowhere."""
    return leavers.in_effect(at, membership)


def counts_as_active(user) -> ColumnElement[bool]:
    """Active for a headcount: ``active`` true or absent (a client removed it); false is out."""
    return user.active.is_not(False)


#: above this many employment rows in the subtrees counted, the users table is read in one pass
#: rather than person by person (see the module's docstring); measured at 100,000 users
MANY = 10_000
#: the same for a page of people, per dialect: SQLite's pass checks each user by its own index
#: lookups (no hash join), so person by person stays cheaper up to about half the users
PEOPLE_MANY = {"postgresql": 10_000, "sqlite": 50_000}

_NOW = bindparam("now", type_=UTCDateTime())
_TENANT = bindparam("tid")
_PROBE = bindparam("probe")


def _of_tenant(row) -> ColumnElement[bool]:
    """``row`` (an alias of User or Group) is the tenant's: a filter, never the index searched.
    ``tenant_id + 0`` is no indexed column, so SQLite, which keeps no statistics, does not walk
    every row of the tenant by a (tenant_id, ...) index when the other condition (a parent, a
    manager, an id) finds the few rows wanted by its own index."""
    return (row.tenant_id + 0) == _TENANT


def _sort_name(user, dialect: str) -> ColumnElement[str]:
    """How people are listed: by displayName, or userName when there is none, case-insensitively,
    so that "anna" and "Bo" sort as a reader expects. PostgreSQL: ``lower()``. SQLite: the
    NOCASE collation, which folds in C as it compares (ASCII letters only), where ``lower`` is
    the server's Unicode-aware Python function, called once per row: on a page of a large
    subtree, 100,000 calls to sort by."""
    return _folded(func.coalesce(user.display_name, user.user_name), dialect)


def _folded(text, dialect: str) -> ColumnElement[str]:
    return text.collate("NOCASE") if dialect == "sqlite" else func.lower(text)


def _unindexed(column) -> ColumnElement[Any]:
    """``column`` as an expression no index serves (``id || ''``), for a join that must read
    the table in one pass and hash (PostgreSQL) rather than look each row up by key."""
    return column.concat("")


class _Statements:
    """Every statement of this module for one SQL dialect, built once: constructing a recursive
    CTE costs more than running it on a small tree (as in ``storage.hierarchy``).

    The one-pass forms differ by dialect: SQLite has no hash join, but builds a temporary
    index of a ``NOT IN`` subquery's rows once; PostgreSQL hashes an anti join (its ``NOT IN``
    falls back to searching a list row by row once the list outgrows ``work_mem``)."""

    def __init__(self, dialect: str):
        self.dialect = dialect
        roots = lambda g: g.parent_id.is_(None)  # noqa: E731
        children = lambda g: g.parent_id == bindparam("parent")  # noqa: E731
        one = lambda g: g.id == bindparam("unit")  # noqa: E731
        self.units = {kind: (self._unit_probe(where), self._unit_level(where, False), self._unit_level(where, True))
                      for kind, where in (("roots", roots), ("children", children), ("one", one))}
        self.ancestors = self._ancestors()
        self.people_probe, self.people_total, self.people_few, self.people_many = self._people()
        self.top_managers = self._manager_level(lambda u: u.manager_id.is_(None) & _has_reports(u))
        self.reports_of = self._manager_level(lambda u: u.manager_id == bindparam("manager"))

    # ------------------------------------------------------------------ org units

    @staticmethod
    def _listed_units(where):
        return lambda unit_: unit_.is_org_unit & _of_tenant(unit_) & where(unit_)

    def _level_walk(self, where, name: str):
        seed = aliased(Group)
        return _walk(Group, _seeds(seed, self._listed_units(where)(seed)), name, up=False)

    def _unit_probe(self, where):
        """How many employment rows the level's subtrees hold, counted up to :probe (the member
        index alone: no row is read)."""
        tree = self._level_walk(where, "unit_probe")
        job = aliased(Membership)
        rows = (select(literal(1).label("one")).select_from(tree).join(job, job.group_id == tree.c.id)
                .where(job.user_id.is_not(None)).limit(_PROBE).subquery())
        return select(func.count()).select_from(rows)

    def _unit_level(self, where, many: bool):
        """The units matching ``where`` (their tenant's org units), with their child count and
        their own and subtree headcounts.

        One statement: the listed units seed a walk down the tree in which every descendant
        carries the unit it descends from (``start_id``); the walk is joined to the employments
        in effect of active users and counted DISTINCT per (listed unit, user), so someone
        employed in two units below the same listed unit is one head there. The own headcount
        needs no DISTINCT: a user has at most one membership row per unit (a unique index).
        Units without anyone get zeros (the outer join)."""
        tree = self._level_walk(where, "unit_level")
        job = aliased(Membership)
        heads = (select(tree.c.start_id,
                        func.count(job.user_id.distinct()).label("subtree"),
                        func.count(case((tree.c.depth == 0, 1))).label("own"))
                 .join(job, job.group_id == tree.c.id)
                 .where(job.user_id.is_not(None), in_effect(job, _NOW)))
        heads = self._active_only(heads, job, many).group_by(tree.c.start_id).subquery("heads")
        node, child = aliased(Group), aliased(Group)
        child_count = select(func.count()).where(child.parent_id == node.id).scalar_subquery()
        return (select(node.id, node.display_name, node.unit_code, node.unit_type, node.ean, node.effective_ean,
                       node.parent_id, child_count.label("children"),
                       func.coalesce(heads.c.own, 0).label("own"), func.coalesce(heads.c.subtree, 0).label("subtree"))
                .join(heads, heads.c.start_id == node.id, isouter=True)
                .where(self._listed_units(where)(node))
                .order_by(_folded(node.display_name, self.dialect), node.id))

    def _active_only(self, query, job, many: bool):
        """Keep the rows of ``job`` (an employment alias in ``query``) whose user is active."""
        person = aliased(User)
        if not many:  # a few people: each looked up by key
            return query.join(person, person.id == job.user_id).where(counts_as_active(person))
        # one scan of users for the tenant's inactive ones (usually few), kept in memory
        inactive = _of_tenant(person) & person.active.is_(False)
        if self.dialect == "postgresql":  # hashed (an anti join: no NOT IN, which past work_mem searches a list)
            return query.where(~select(literal(1)).where(_unindexed(person.id) == job.user_id, inactive).exists())
        # SQLite: a temporary index of them (no hash joins; NOT IN builds the index once)
        return query.where(job.user_id.not_in(select(person.id).where(inactive)))

    def _ancestors(self):
        """The unit's ancestors, root first: the walk up that a user's orgUnits are read with,
        seeded with the unit if it is the tenant's."""
        seed = aliased(Group)
        up = _walk(Group, _seeds(seed, (seed.id == bindparam("unit")) & _of_tenant(seed)), "unit_ancestors", up=True)
        unit_ = aliased(Group)
        return (select(unit_.id, unit_.display_name).join(up, up.c.id == unit_.id)
                .where(up.c.depth > 0).order_by(up.c.depth.desc()))

    # ------------------------------------------------------------------ people

    def _people(self):
        """``people_in``'s statements: the probe (how many employment rows, up to :probe), the
        total alone (for a page past the end), and a page with the total beside each row, read
        person by person (few) or in one scan of the users table (many).

        A page is found as ids first (sorted, offset, limit), the total counted over the same
        rows (a window), and only the page's rows are then given an employment to show: the
        primary one in the subtree, else the earliest started (no start date first), else the
        one written first, as ``effectiveEan`` picks a user's unit."""
        seed = aliased(Group)
        units_ = unit_subtree(seed, (seed.id == bindparam("unit")) & _of_tenant(seed)).cte("people_units")
        in_units = select(units_.c.id)

        job = aliased(Membership)
        probe_rows = (select(literal(1).label("one")).where(job.group_id.in_(in_units), job.user_id.is_not(None))
                      .limit(_PROBE).subquery())
        probe = select(func.count()).select_from(probe_rows)

        def employed():
            job_ = aliased(Membership)
            return select(job_.user_id).where(job_.group_id.in_(in_units), job_.user_id.is_not(None),
                                             in_effect(job_, _NOW))

        total = select(func.count()).select_from(employed().distinct().subquery())

        def employs(person):
            job_ = aliased(Membership)
            return (select(literal(1)).where(job_.user_id == person.id, _unindexed(job_.group_id).in_(in_units),
                                             in_effect(job_, _NOW)).exists())

        def page(many: bool):
            person = aliased(User)
            name = _sort_name(person, self.dialect)
            if not many:  # the employed, each looked up by key
                found = [person.id.in_(employed())]
            elif self.dialect == "postgresql":  # one pass over users, each checked against the employed, hashed
                found = [_of_tenant(person), _unindexed(person.id).in_(employed())]
            else:  # SQLite: one pass over users, each checked by its own employments (their index)
                found = [_of_tenant(person), employs(person)]
            ids = (select(person.id, name.label("sort_name"), func.count().over().label("total"))
                   .where(*found).order_by(name, person.id)
                   .offset(bindparam("offset")).limit(bindparam("limit")).subquery("page"))
            shown = aliased(Membership)
            # found by the person's own employments (their index), then checked against the units
            chosen = (select(shown.id).where(shown.user_id == ids.c.id, _unindexed(shown.group_id).in_(in_units),
                                             in_effect(shown, _NOW))
                      .order_by(shown.is_primary.desc(), shown.start_date.asc().nulls_first(), shown.id)
                      .limit(1).scalar_subquery())
            user_, emp, unit_ = aliased(User), aliased(Membership), aliased(Group)
            return (select(user_.id, user_.user_name, user_.display_name, user_.active, emp.title, emp.group_id,
                           unit_.display_name.label("unit_name"), ids.c.total)
                    .select_from(ids)
                    .join(user_, user_.id == ids.c.id)
                    .join(emp, emp.id == chosen, isouter=True)
                    .join(unit_, unit_.id == emp.group_id, isouter=True)
                    .order_by(ids.c.sort_name, ids.c.id))

        return probe, total, page(False), page(True)

    # ------------------------------------------------------------------ managers

    def _manager_level(self, where):
        """The users matching ``where`` (the tenant's) with their direct and total reports. The
        listed users seed one walk down ``manager_id`` (the walk the ``managerChain`` filter
        takes); each row carries the listed user it descends from, so the total per listed user
        is a count grouped by that. Every report counts, active or not: the tree a manager
        heads is everyone who names them, as the next level lists them."""
        def listed(user):
            return _of_tenant(user) & where(user)

        seed = aliased(User)
        tree = _walk(User, _seeds(seed, listed(seed)), "manager_level", up=False)
        totals = (select(tree.c.start_id, func.count().label("total"))
                  .where(tree.c.depth > 0).group_by(tree.c.start_id).subquery("totals"))
        node, report = aliased(User), aliased(User)
        direct = select(func.count()).where(report.manager_id == node.id).scalar_subquery()
        return (select(node.id, node.user_name, node.display_name, node.active, direct.label("direct"),
                       func.coalesce(totals.c.total, 0).label("total"))
                .join(totals, totals.c.start_id == node.id, isouter=True)
                .where(listed(node))
                .order_by(_sort_name(node, self.dialect), node.id))


def _has_reports(user) -> ColumnElement[bool]:
    report = aliased(User)
    return select(literal(1)).where(report.manager_id == user.id).exists()


_BUILT: dict[str, _Statements] = {}
_BUILDING = threading.Lock()


def _statements(connection) -> _Statements:
    name = connection.dialect.name
    built = _BUILT.get(name)
    if built is None:
        with _BUILDING:
            built = _BUILT.get(name) or _BUILT.setdefault(name, _Statements(name))
    return built


# ------------------------------------------------------------------ the queries


def _level(session: Session, kind: str, params: dict[str, Any]) -> list[UnitNode]:
    connection = session.connection()
    probe, few, many = _statements(connection).units[kind]
    rows = connection.execute(probe, {**params, "probe": MANY + 1}).scalar_one()
    statement = many if rows > MANY else few
    return [UnitNode(row.id, row.display_name, row.unit_code, row.unit_type, row.ean, row.effective_ean,
                     row.parent_id, row.children, row.own, row.subtree)
            for row in connection.execute(statement, params)]


def units(session: Session, tenant_id: int, parent_id: str | None, now: dt.datetime) -> list[UnitNode]:
    """The child units of ``parent_id`` (the roots when None), by displayName (case-insensitively),
    then id.

    One statement for the level, whatever lies below it (after a bounded probe of its size):
    the children seed the walk that counts their subtrees (see ``_Statements._unit_level``),
    so the page costs what the children's subtrees hold, never the whole tree. Another
    tenant's unit has no children here."""
    if parent_id is None:
        return _level(session, "roots", {"tid": tenant_id, "now": now})
    return _level(session, "children", {"tid": tenant_id, "now": now, "parent": parent_id})


def unit(session: Session, tenant_id: int, unit_id: str, now: dt.datetime) -> UnitNode | None:
    """One org unit of the tenant with its counts (as ``units`` gives them), or None: not an
    org unit of this tenant (another tenant's id is no unit here)."""
    found = _level(session, "one", {"tid": tenant_id, "now": now, "unit": unit_id})
    return found[0] if found else None


def ancestors(session: Session, tenant_id: int, unit_id: str) -> list[tuple[str, str]]:
    """(id, displayName) from the root down to the unit's parent: the breadcrumb. Empty for a
    root, and for an id that is not the tenant's."""
    connection = session.connection()
    return [(row.id, row.display_name)
            for row in connection.execute(_statements(connection).ancestors, {"tid": tenant_id, "unit": unit_id})]


def people_in(session: Session, tenant_id: int, unit_id: str, now: dt.datetime, *,
              offset: int = 0, limit: int = 50) -> tuple[int, list[Person]]:
    """People employed (now) in the unit or below it, by displayName then id: (total, page).

    Employed now: an employment in effect (``in_effect``) in the unit's subtree. Each person
    is listed once, however many of their employments lie in the subtree, with one of them
    (title and unit: the primary, else the earliest started, else the first written). Inactive
    users are listed too, marked by ``active``: a person whose IdP disabled them still holds
    the job, and an admin looking for them must find them; the headcounts count active users
    only, so ``total`` can exceed the unit's ``subtree_headcount`` by exactly those.
    Sorted case-insensitively, a user without displayName by userName (``_sort_name``).
    Another tenant's unit holds nobody here."""
    connection = session.connection()
    built = _statements(connection)
    params = {"tid": tenant_id, "now": now, "unit": unit_id}
    offset, limit = max(offset, 0), max(limit, 0)
    probe = PEOPLE_MANY.get(built.dialect, MANY) + 1
    rows = connection.execute(built.people_probe, {**params, "probe": probe}).scalar_one()
    if rows == 0:
        return 0, []
    statement = built.people_many if rows > PEOPLE_MANY.get(built.dialect, MANY) else built.people_few
    page = connection.execute(statement, {**params, "offset": offset, "limit": limit}).all()
    if not page:  # past the end (or an empty page asked for): the total on its own
        return connection.execute(built.people_total, params).scalar_one(), []
    return page[0].total, [Person(r.id, r.user_name, r.display_name, r.active, r.title, r.group_id, r.unit_name)
                           for r in page]


def managers(session: Session, tenant_id: int, manager_id: str | None) -> list[ManagerNode]:
    """The direct reports of ``manager_id`` who are managers themselves or not (all of them),
    or, when None, the top of the tree: users who have reports and no manager.

    By displayName (userName when there is none, case-insensitively), then id. ``direct_reports`` is the next
    level (what this function lists for that user); ``total_reports`` everyone below them,
    counted by one walk seeded with the listed users only (see ``_Statements._manager_level``).
    Another tenant's user has no reports here."""
    connection = session.connection()
    built = _statements(connection)
    if manager_id is None:
        rows = connection.execute(built.top_managers, {"tid": tenant_id})
    else:
        rows = connection.execute(built.reports_of, {"tid": tenant_id, "manager": manager_id})
    return [ManagerNode(r.id, r.user_name, r.display_name, r.active, r.direct, r.total) for r in rows]
