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
at most), and above that counts without reading a user or a DISTINCT over everyone
(``_Statements._branch_counts``): employments per unit, summed, with the few users who could
be miscounted (employed twice, or inactive) counted apart. A unit's page walks its subtree
once for the unit and its children (``unit_with_children``); its people are the headcount's
population, so their total is the unit's headcount, and a page of them near the root is read
in name order from an index, with no sort (``people_in``). The manager tree walks the
managers only (``_Statements._manager_level``). The thresholds were measured at 100,000 users
on both databases.
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
from ..storage.derived import rule_order
from ..storage.hierarchy import MAX_DEPTH, _seeds, _walk, unit_subtree
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
        #: large subtrees: the listed units (no counts), and the counts per listed unit (``_branch_counts``)
        self.nodes = {kind: self._nodes(where) for kind, where in (("roots", roots), ("children", children))}
        self.nodes["page"] = self._nodes(lambda g: (g.id == bindparam("unit")) | (g.parent_id == bindparam("unit")))
        self.counts = {kind: self._branch_counts(where, split=False) for kind, where in (("roots", roots),
                                                                                         ("children", children))}
        self.counts["page"] = self._branch_counts(one, split=True)
        self.counts_all = self._branch_counts(one, split=True, overall=True)
        users_ = aliased(User)
        self.tenant_users = select(func.count()).select_from(users_).where(users_.tenant_id == _TENANT)
        self.ancestors = self._ancestors()
        self.people = self._people()
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
                 .where(job.user_id.is_not(None), leavers.in_effect(_NOW, job)))
        heads = self._active_only(heads, job, many).group_by(tree.c.start_id).subquery("heads")
        node, child = aliased(Group), aliased(Group)
        child_count = select(func.count()).where(child.parent_id == node.id).scalar_subquery()
        return (select(node.id, node.display_name, node.unit_code, node.unit_type, node.ean, node.effective_ean,
                       node.parent_id, child_count.label("children"),
                       func.coalesce(heads.c.own, 0).label("own"), func.coalesce(heads.c.subtree, 0).label("subtree"))
                .join(heads, heads.c.start_id == node.id, isouter=True)
                .where(self._listed_units(where)(node))
                .order_by(_folded(node.display_name, self.dialect), node.id))

    def _nodes(self, where):
        """The units matching ``where`` (their tenant's org units) with their child count, no headcounts."""
        node, child = aliased(Group), aliased(Group)
        child_count = select(func.count()).where(child.parent_id == node.id).scalar_subquery()
        return (select(node.id, node.display_name, node.unit_code, node.unit_type, node.ean, node.effective_ean,
                       node.parent_id, child_count.label("children"))
                .where(self._listed_units(where)(node))
                .order_by(_folded(node.display_name, self.dialect), node.id))

    def _branch_counts(self, where, *, split: bool, overall: bool = False):
        """Headcounts of large subtrees without a DISTINCT over every employment (the cost of a
        page near the root: a sort or a hash of 100,000 people).

        The walk down from the listed units carries each unit's *branch*: the listed unit it
        descends from, or, with ``split`` (a unit's page: the unit and its children in one
        walk), the unit itself at depth 0 and the child it lies under below that. Each unit of
        the walk counts its employments in effect by the member index (no DISTINCT, no user
        read), and the counts are summed per branch. That is the headcount for everyone but the
        *exceptions*: users of the tenant with more than one membership row (who could be
        counted twice) and inactive users (who must not be counted). Their rows, found from
        the exceptions (usually few) by the users' own index, are taken out of the sums and
        their heads counted DISTINCT instead. Rows per branch: (branch, n, own, n_e, own_e,
        heads_e, own_heads_e); the headcount is n - n_e + heads_e, the own one
        own - own_e + own_heads_e. ``overall``: one row, the distinct heads of the exceptions
        over every branch (a split unit's subtree is the sum of its branches less n_e plus it)."""
        seed = aliased(Group)
        start = select(seed.id.label("branch"), seed.id.label("id"), literal(0).label("depth")) \
            .where(self._listed_units(where)(seed))
        tree = start.cte("unit_branches", recursive=True)  # one walk for both uses below
        node = aliased(Group)
        branch = case((tree.c.depth == 0, node.id), else_=tree.c.branch) if split else tree.c.branch
        tree = tree.union_all(select(branch, node.id, tree.c.depth + 1)
                              .where(node.parent_id == tree.c.id, tree.c.depth < MAX_DEPTH))
        job = aliased(Membership)
        in_unit = (select(func.count()).where(job.group_id == tree.c.id, job.user_id.is_not(None), leavers.in_effect(_NOW, job))
                   .scalar_subquery())
        # materialized: each unit's count is taken once (both sums below read it)
        per_unit = (select(tree.c.branch, (tree.c.id == tree.c.branch).label("own"), in_unit.label("n"))
                    .cte("unit_counts").prefix_with("MATERIALIZED"))
        main = (select(per_unit.c.branch, func.sum(per_unit.c.n).label("n"),
                       func.sum(case((per_unit.c.own, per_unit.c.n), else_=0)).label("own"))
                .group_by(per_unit.c.branch).subquery("main"))

        row, person, ex_job = aliased(Membership), aliased(User), aliased(Membership)
        multi = (select(row.user_id.label("id")).where(row.tenant_id == _TENANT, row.user_id.is_not(None))
                 .group_by(row.user_id).having(func.count() > 1))
        inactive = select(person.id.label("id")).where(person.tenant_id == _TENANT, person.active.is_(False))
        exceptions = multi.union(inactive).cte("exceptions")
        who = aliased(User)
        active = counts_as_active(who)
        own = tree.c.id == tree.c.branch
        # the exceptions' employments in effect, found by user first (PostgreSQL, which cannot
        # estimate the walk, would otherwise hash every employment of it)
        theirs = (select(ex_job.user_id, ex_job.group_id, active.label("active"))
                  .select_from(exceptions).join(who, who.id == exceptions.c.id)
                  .join(ex_job, ex_job.user_id == exceptions.c.id).where(leavers.in_effect(_NOW, ex_job))
                  .cte("exception_jobs").prefix_with("MATERIALIZED"))
        ex_rows = select().select_from(theirs).join(tree, tree.c.id == theirs.c.group_id)
        active = theirs.c.active
        ex_job = theirs.c
        if overall:
            return ex_rows.add_columns(func.count(case((active, ex_job.user_id)).distinct()))
        corr = (ex_rows.add_columns(tree.c.branch, func.count().label("n_e"), func.count(case((own, 1))).label("own_e"),
                                    func.count(case((active, ex_job.user_id)).distinct()).label("heads_e"),
                                    func.count(case((own & active, 1))).label("own_heads_e"))
                .group_by(tree.c.branch).subquery("corr"))
        return (select(main.c.branch, main.c.n, main.c.own, func.coalesce(corr.c.n_e, 0).label("n_e"),
                       func.coalesce(corr.c.own_e, 0).label("own_e"), func.coalesce(corr.c.heads_e, 0).label("heads_e"),
                       func.coalesce(corr.c.own_heads_e, 0).label("own_heads_e"))
                .join(corr, corr.c.branch == main.c.branch, isouter=True))

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
        """``people_in``'s statements, by how a page is found (see ``people_in``): "few" (the
        employed, each looked up by key, then sorted), "many" (one pass over the tenant's users,
        then sorted) and "scan" (the tenant's users in the order listed, by the (tenant, name)
        index, each checked until the page is full: no sort at all).

        A page is found as ids first (sorted, offset, limit), and only the page's rows are then
        given an employment to show: the primary one in the subtree, else the earliest started
        (no start date first), else the one written first, as ``effectiveEan`` picks a user's unit."""
        seed = aliased(Group)
        units_ = unit_subtree(seed, (seed.id == bindparam("unit")) & _of_tenant(seed)).cte("people_units")
        in_units = select(units_.c.id)

        def employed():
            job_ = aliased(Membership)
            return select(job_.user_id).where(job_.group_id.in_(in_units), job_.user_id.is_not(None),
                                             leavers.in_effect(_NOW, job_))

        def employs(person):
            job_ = aliased(Membership)
            return (select(literal(1)).where(job_.user_id == person.id, _unindexed(job_.group_id).in_(in_units),
                                             leavers.in_effect(_NOW, job_)).exists())

        def page(how: str):
            person = aliased(User)
            name = _sort_name(person, self.dialect)
            if how == "few":  # the employed, each looked up by key
                found = [person.id.in_(employed())]
            elif how == "scan":  # the tenant's users in name order (an index), each checked by its employments
                found = [person.tenant_id == _TENANT, employs(person)]
            elif self.dialect == "postgresql":  # one pass over users, each checked against the employed, hashed
                found = [_of_tenant(person), _unindexed(person.id).in_(employed())]
            else:  # SQLite: one pass over users, each checked by its own employments (their index)
                found = [_of_tenant(person), employs(person)]
            ids = (select(person.id, name.label("sort_name"))
                   .where(*found, counts_as_active(person)).order_by(name, person.id)
                   .offset(bindparam("offset")).limit(bindparam("limit")).subquery("page"))
            shown = aliased(Membership)
            # found by the person's own employments (their index), then checked against the units
            chosen = (select(shown.id).where(shown.user_id == ids.c.id, _unindexed(shown.group_id).in_(in_units),
                                             leavers.in_effect(_NOW, shown))
                      .order_by(*rule_order(shown))
                      .limit(1).scalar_subquery())
            user_, emp, unit_ = aliased(User), aliased(Membership), aliased(Group)
            return (select(user_.id, user_.user_name, user_.display_name, user_.active, emp.title, emp.group_id,
                           unit_.display_name.label("unit_name"))
                    .select_from(ids)
                    .join(user_, user_.id == ids.c.id)
                    .join(emp, emp.id == chosen, isouter=True)
                    .join(unit_, unit_.id == emp.group_id, isouter=True)
                    .order_by(ids.c.sort_name, ids.c.id))

        return {how: page(how) for how in ("few", "many", "scan")}

    # ------------------------------------------------------------------ managers

    def _manager_level(self, where):
        """The users matching ``where`` (the tenant's) with their direct and total reports. Every
        report counts, active or not: the tree a manager heads is everyone who names them, as
        the next level lists them.

        A walk down ``manager_id`` through every user would read the whole tree for its top
        (100,000 users, one index look-up each). Instead the tenant's users are counted per
        manager once (an index-only pass: the *managers*, those with reports, with their
        direct count), and the walk goes down through the managers only: a listed user's total
        is the sum of the direct counts of the managers in their tree, themselves included,
        since everyone below them is the direct report of exactly one of those."""
        def listed(user):
            return _of_tenant(user) & where(user)

        report = aliased(User)
        direct = (select(report.manager_id.label("id"), func.count().label("direct"))
                  .where(report.tenant_id == _TENANT, report.manager_id.is_not(None))
                  .group_by(report.manager_id).cte("direct_reports"))
        boss = aliased(User)
        bosses = (select(direct.c.id, boss.manager_id.label("parent"), direct.c.direct)
                  .join(boss, boss.id == direct.c.id).cte("managers"))
        seed = aliased(User)
        tree = (select(seed.id.label("start_id"), seed.id.label("id"), literal(0).label("depth"))
                .where(listed(seed)).cte("manager_level", recursive=True, nesting=True))
        tree = tree.union_all(select(tree.c.start_id, bosses.c.id, tree.c.depth + 1)
                              .where(bosses.c.parent == tree.c.id, tree.c.depth < MAX_DEPTH - 1))
        totals = (select(tree.c.start_id, func.sum(bosses.c.direct).label("total"))
                  .join(bosses, bosses.c.id == tree.c.id).group_by(tree.c.start_id).subquery("totals"))
        node = aliased(User)
        mine = direct.alias("mine")
        return (select(node.id, node.user_name, node.display_name, node.active,
                       func.coalesce(mine.c.direct, 0).label("direct"), func.coalesce(totals.c.total, 0).label("total"))
                .join(mine, mine.c.id == node.id, isouter=True)
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


def _node(row, own: int, subtree: int) -> UnitNode:
    return UnitNode(row.id, row.display_name, row.unit_code, row.unit_type, row.ean, row.effective_ean,
                    row.parent_id, row.children, int(own), int(subtree))  # PostgreSQL sums are numeric


def _is_large(connection, built: _Statements, kind: str, params: dict[str, Any]) -> bool:
    """More than ``MANY`` employment rows below the listed units (a bounded probe)?"""
    return connection.execute(built.units[kind][0], {**params, "probe": MANY + 1}).scalar_one() > MANY


def _level(session: Session, kind: str, params: dict[str, Any]) -> list[UnitNode]:
    connection = session.connection()
    built = _statements(connection)
    if kind != "one" and _is_large(connection, built, kind, params):
        counts = {row.branch: row for row in connection.execute(built.counts[kind], params)}
        found = []
        for row in connection.execute(built.nodes[kind], params):
            c = counts.get(row.id)
            found.append(_node(row, c.own - c.own_e + c.own_heads_e, c.n - c.n_e + c.heads_e) if c else _node(row, 0, 0))
        return found
    _, few, many = built.units[kind]
    statement = many if kind == "one" and _is_large(connection, built, kind, params) else few
    return [_node(row, row.own, row.subtree) for row in connection.execute(statement, params)]


def units(session: Session, tenant_id: int, parent_id: str | None, now: dt.datetime) -> list[UnitNode]:
    """The child units of ``parent_id`` (the roots when None), by displayName (case-insensitively),
    then id.

    After a bounded probe of the level's size, one statement for a small level (the children
    seed the walk that counts their subtrees, see ``_Statements._unit_level``), two for a
    large one (the units, and their counts by ``_Statements._branch_counts``): the page costs
    what the children's subtrees hold, never the whole tree. Another tenant's unit has no
    children here."""
    if parent_id is None:
        return _level(session, "roots", {"tid": tenant_id, "now": now})
    return _level(session, "children", {"tid": tenant_id, "now": now, "parent": parent_id})


def unit(session: Session, tenant_id: int, unit_id: str, now: dt.datetime) -> UnitNode | None:
    """One org unit of the tenant with its counts (as ``units`` gives them), or None: not an
    org unit of this tenant (another tenant's id is no unit here)."""
    found = _level(session, "one", {"tid": tenant_id, "now": now, "unit": unit_id})
    return found[0] if found else None


def unit_with_children(session: Session, tenant_id: int, unit_id: str,
                       now: dt.datetime) -> tuple[UnitNode, list[UnitNode]] | None:
    """``unit`` and ``units`` of it together (a unit's page), or None: not an org unit of the
    tenant. A large subtree is walked once, not twice: the walk from the unit carries the
    child each unit lies under (``_Statements._branch_counts``, split)."""
    connection = session.connection()
    built = _statements(connection)
    params = {"tid": tenant_id, "now": now, "unit": unit_id}
    if not _is_large(connection, built, "one", params):
        node = unit(session, tenant_id, unit_id, now)
        return None if node is None else (node, units(session, tenant_id, unit_id, now))
    counts = {row.branch: row for row in connection.execute(built.counts["page"], params)}
    heads = connection.execute(built.counts_all, params).scalar_one()
    node, children = None, []
    for row in connection.execute(built.nodes["page"], params):
        c = counts.get(row.id)
        own, subtree = (c.own - c.own_e + c.own_heads_e, c.n - c.n_e + c.heads_e) if c else (0, 0)
        if row.id == unit_id:
            node = row
        else:
            children.append(_node(row, own, subtree))
    if node is None:
        return None
    mine = counts.get(unit_id)
    own = mine.own - mine.own_e + mine.own_heads_e if mine else 0
    subtree = sum(c.n - c.n_e for c in counts.values()) + heads
    return _node(node, own, subtree), children


def ancestors(session: Session, tenant_id: int, unit_id: str) -> list[tuple[str, str]]:
    """(id, displayName) from the root down to the unit's parent: the breadcrumb. Empty for a
    root, and for an id that is not the tenant's."""
    connection = session.connection()
    return [(row.id, row.display_name)
            for row in connection.execute(_statements(connection).ancestors, {"tid": tenant_id, "unit": unit_id})]


#: a page of people is found by reading the tenant's users in name order (no sort) when that
#: reads at most this many users (expected: the page's end times users per person listed)
SCAN_USERS = 20_000


def people_in(session: Session, tenant_id: int, unit_id: str, now: dt.datetime, *,
              offset: int = 0, limit: int = 50, total: int | None = None) -> tuple[int, list[Person]]:
    """The people the unit's ``subtree_headcount`` counts, by displayName then id: (total, page).

    The headcount's population: active users (``counts_as_active``) with an employment in
    effect (``storage.leavers.in_effect``) in the unit's subtree. Each person is listed once, however many of
    their employments lie in the subtree, with one of them (title and unit: the primary, else
    the earliest started, else the first written). So ``total`` is the unit's
    ``subtree_headcount``: pass it as ``total`` when known (the unit's page has it), else it is
    counted. Sorted case-insensitively, a user without displayName by userName
    (``_sort_name``). Another tenant's unit holds nobody here.

    How a page is found: when most of the tenant's users are listed (a unit near the root),
    the tenant's users are read in name order (by index) and checked one by one until the page
    is full, reading about ``(offset + limit) * users / total`` of them; otherwise the people
    are found first (by key for a few, in one pass over the users for many) and sorted."""
    connection = session.connection()
    built = _statements(connection)
    params = {"tid": tenant_id, "now": now, "unit": unit_id}
    offset, limit = max(offset, 0), max(limit, 0)
    if total is None:
        node = unit(session, tenant_id, unit_id, now)
        total = node.subtree_headcount if node else 0
    if total == 0 or offset >= total or limit == 0:
        return total, []
    many = total > PEOPLE_MANY.get(built.dialect, MANY)
    how = "many" if many else "few"
    if total > MANY:
        users_ = connection.execute(built.tenant_users, params).scalar_one()
        if (offset + limit) * users_ <= SCAN_USERS * total:
            how = "scan"
    page = connection.execute(built.people[how], {**params, "offset": offset, "limit": limit})
    return total, [Person(r.id, r.user_name, r.display_name, r.active, r.title, r.group_id, r.unit_name) for r in page]


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
    return [ManagerNode(r.id, r.user_name, r.display_name, r.active, int(r.direct), int(r.total)) for r in rows]
