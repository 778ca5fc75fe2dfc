"""The two trees of plan2learn master data, both stored as parent links only.

Org units point to their parent (``groups.parent_id``); users point to their
manager (``users.manager_id``). Moving a unit or changing a manager writes one
row, whatever lies below it. Every question about a subtree or a chain is a
recursive CTE that the database answers in one round trip: no per-level loops
in Python, and no per-user rows to rewrite when the tree changes.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, literal, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from ..scim.errors import invalid_value
from .db import take_write_lock
from .models import Group, User, utcnow

#: A guard against a cycle that slipped in by hand: no tree here is deeper than this.
MAX_DEPTH = 200


def unit_subtree(seed_unit, seed: ColumnElement[Any], include_seed: bool = True):
    """A SELECT of the ids of the org units matching ``seed`` (a condition on the alias
    ``seed_unit`` of Group) and of every unit below them; without the seeds themselves
    when ``include_seed`` is false.

    Every table here is an alias, so the CTE never correlates with an outer query on groups.
    """
    seeds = select(seed_unit.id).where(seed_unit.is_org_unit, seed)
    if include_seed:
        start = select(seed_unit.id, literal(0).label("depth")).where(seed_unit.is_org_unit, seed)
    else:
        first = aliased(Group)
        start = select(first.id, literal(1).label("depth")).where(first.parent_id.in_(seeds))
    tree = start.cte("unit_subtree", recursive=True, nesting=True)
    child = aliased(Group)
    # UNION ALL: a tree reaches each unit once, so no de-duplication pass (callers use IN);
    # the depth bound stops a cycle that slipped in by hand.
    tree = tree.union_all(select(child.id, tree.c.depth + 1)
                          .where(child.parent_id == tree.c.id, tree.c.depth < MAX_DEPTH))
    return select(tree.c.id)


def report_tree(seed_user, seed: ColumnElement[Any]):
    """A SELECT of the ids of every user managed, directly or not, by a user matching ``seed``
    (a condition on the alias ``seed_user`` of User)."""
    direct = aliased(User)
    tree = (select(direct.id, literal(1).label("depth"))
            .where(direct.manager_id.in_(select(seed_user.id).where(seed)))
            .cte("report_tree", recursive=True, nesting=True))
    report = aliased(User)
    tree = tree.union_all(select(report.id, tree.c.depth + 1)
                          .where(report.manager_id == tree.c.id, tree.c.depth < MAX_DEPTH))
    return select(tree.c.id)


def _unit_ancestors_statement():
    up = (select(Group.id.label("start_id"), Group.parent_id.label("id"), literal(1).label("depth"))
          .where(Group.id.in_(bindparam("unit_ids", expanding=True)), Group.parent_id.isnot(None))
          .cte("unit_up", recursive=True))
    g = aliased(Group)
    up = up.union_all(select(up.c.start_id, g.parent_id, up.c.depth + 1)
                      .join(g, g.id == up.c.id)
                      .where(g.parent_id.isnot(None), up.c.depth < MAX_DEPTH))
    return (select(up.c.start_id, up.c.id, up.c.depth, Group.display_name, Group.effective_ean)
            .join(Group, Group.id == up.c.id).order_by(up.c.start_id, up.c.depth))


def _manager_chains_statement():
    up = (select(User.id.label("start_id"), User.id.label("id"), literal(0).label("depth"))
          .where(User.id.in_(bindparam("manager_ids", expanding=True))).cte("manager_up", recursive=True))
    u = aliased(User)
    up = up.union_all(select(up.c.start_id, u.manager_id, up.c.depth + 1)
                      .join(u, u.id == up.c.id)
                      .where(u.manager_id.isnot(None), up.c.depth < MAX_DEPTH))
    return (select(up.c.start_id, up.c.id, User.display_name)
            .join(User, User.id == up.c.id).order_by(up.c.start_id, up.c.depth))


# Built once: constructing a recursive CTE costs more than running it (these run on every read).
UNIT_ANCESTORS = _unit_ancestors_statement()
MANAGER_CHAINS = _manager_chains_statement()


def unit_ancestors(session: Session, unit_ids: set[str]) -> dict[str, list[tuple[str, str, str | None]]]:
    """For each unit, its ancestors (id, displayName, effective ean), nearest first."""
    if not unit_ids:
        return {}
    out: dict[str, list[tuple[str, str, str | None]]] = {u: [] for u in unit_ids}
    for start_id, unit_id, _depth, name, ean in session.connection().execute(UNIT_ANCESTORS, {"unit_ids": list(unit_ids)}):
        out[start_id].append((unit_id, name, ean))
    return out


def manager_chains(session: Session, manager_ids: set[str]) -> dict[str, list[tuple[str, str | None]]]:
    """For each manager id, the chain starting with that manager: [(id, displayName)], nearest first."""
    if not manager_ids:
        return {}
    out: dict[str, list[tuple[str, str | None]]] = {m: [] for m in manager_ids}
    for start_id, user_id, name in session.connection().execute(MANAGER_CHAINS, {"manager_ids": list(manager_ids)}):
        out[start_id].append((user_id, name))
    return out


#: advisory lock class per tree (PostgreSQL's two-key advisory locks: class, tenant)
TREES = {"managers": 76431, "units": 76432}


def lock_tree(session: Session, tenant_id: int, tree: str) -> None:
    """Serialise the changes to one of a tenant's trees before checking one for a cycle.

    Two requests that each check "no cycle" and then link A under B and B under A would
    both pass if neither saw the other's change. Holding this lock until commit makes the
    second check see the first change. SQLite: its write lock (taken now if the request
    deferred it); PostgreSQL: a transaction-scoped advisory lock per tenant and tree.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(TREES[tree], tenant_id)))
    else:
        take_write_lock(connection)


def check_parent(session: Session, tenant_id: int, unit: Group, parent_id: str | None) -> None:
    """A parent must be an org unit of the tenant, and never the unit itself or below it."""
    if parent_id is None:
        return
    lock_tree(session, tenant_id, "units")
    parent = session.scalar(select(Group).where(Group.id == parent_id, Group.tenant_id == tenant_id))
    if parent is None or not parent.is_org_unit:
        raise invalid_value(f"parent.value '{parent_id}' is not an org unit of this tenant")
    chain = [(parent.id, parent.display_name)] + [(i, n) for i, n, _ in
                                                   unit_ancestors(session, {parent.id})[parent.id]]
    if unit.id in {i for i, _ in chain}:
        names = [unit.display_name] + [n for _, n in reversed(chain[:[i for i, _ in chain].index(unit.id)])]
        cycle = " -> ".join(f"'{n}'" for n in names + [unit.display_name])
        raise invalid_value(f"Moving '{unit.display_name}' under '{parent.display_name}' would make a cycle: "
                            f"{cycle} (a unit cannot be placed below itself)")


def check_manager(session: Session, tenant_id: int, user: User, manager_id: str | None,
                  new: bool = False) -> None:
    """A manager must be a user of the tenant, and never the user or one of their reports.

    A user being created has no reports yet, so only existence is checked, without the
    tree's lock: no cycle can pass through a user nobody can name yet, and creates with a
    manager (every Entra ID create that maps one) need not wait for each other."""
    if manager_id is None:
        return
    if not new:
        lock_tree(session, tenant_id, "managers")
    if manager_id == user.id:
        raise invalid_value("A user cannot be their own manager")
    manager = session.scalar(select(User).where(User.id == manager_id, User.tenant_id == tenant_id))
    if manager is None:
        raise invalid_value(f"manager.value '{manager_id}' is not a user of this tenant")
    if new:
        return
    chain = manager_chains(session, {manager_id})[manager_id]
    ids = [i for i, _ in chain]
    if user.id in ids:
        loop = chain[:ids.index(user.id) + 1]
        names = [_name(user)] + [n or i for i, n in loop]
        cycle = " -> ".join(f"'{n}'" for n in names)
        raise invalid_value(f"'{_name(manager)}' cannot manage '{_name(user)}': it would make a management "
                            f"cycle {cycle} (each manages the next)")


def _name(user: User) -> str:
    return user.display_name or user.user_name


def refresh_effective_ean(session: Session, unit_id: str) -> None:
    """Recompute ``effective_ean`` for a unit and every unit below it (units only, never users)."""
    unit = session.get(Group, unit_id)
    if unit is None:
        return
    inherited = None
    if unit.parent_id:
        parent = session.get(Group, unit.parent_id)
        inherited = parent.effective_ean if parent else None
    seed = aliased(Group)
    ids = [unit.id] + list(session.scalars(unit_subtree(seed, seed.id == unit.id, include_seed=False)))
    rows = session.execute(select(Group.id, Group.parent_id, Group.ean, Group.effective_ean)
                           .where(Group.id.in_(ids))).all()
    children: dict[str | None, list] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row)
    changes = []
    stack = [(r, inherited) for r in rows if r.id == unit.id]
    while stack:
        row, above = stack.pop()
        effective = row.ean or above
        if effective != row.effective_ean:
            changes.append({"gid": row.id, "new_ean": effective})
        stack.extend((child, effective) for child in children.get(row.id, ()))
    if changes:
        table = Group.__table__  # a Core executemany: one statement for the whole subtree
        session.execute(update(table).where(table.c.id == bindparam("gid")).values(effective_ean=bindparam("new_ean")),
                        changes)
        session.expire_all()


def clear_manager_of_reports(session: Session, manager_id: str) -> list[str]:
    """When a user is deleted, their direct reports lose the manager (and are marked modified)."""
    reports = list(session.scalars(select(User.id).where(User.manager_id == manager_id)))
    if reports:
        session.execute(update(User).where(User.id.in_(reports))
                        .values(manager_id=None, version=User.version + 1, last_modified=utcnow())
                        .execution_options(synchronize_session=False))
    return reports
