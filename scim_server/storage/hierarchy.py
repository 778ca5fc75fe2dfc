"""The two trees of plan2learn master data, both stored as parent links only, and the
nesting of groups, stored as member rows.

Org units point to their parent (``groups.parent_id``); users point to their
manager (``users.manager_id``). Moving a unit or changing a manager writes one
row, whatever lies below it. Every question about a subtree or a chain is a
recursive CTE that the database answers in one round trip: no per-level loops
in Python, and no per-user rows to rewrite when the tree changes.

Each derived attribute has one definition here, which the read and the filter share:
``orgUnits`` and ``managerChain`` are ``_walk`` (up from the user when read, down from the
units or managers a filter names), over the employments ``employed_in`` defines; a user's
``groups`` are ``direct_groups`` and ``indirect_groups_of`` (``enclosing_groups`` above them).
Nested groups are member rows only: an org unit's parent link is no membership.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import String, bindparam, exists, func, literal, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from ..scim.errors import ScimError, invalid_value
from .db import take_write_lock
from .models import Group, Membership, User, utcnow

#: A guard against a cycle that slipped in by hand: no tree here is deeper than this.
MAX_DEPTH = 200


def _walk(model, start, name: str, *, up: bool):
    """The one walk along a tree's parent links (org units' ``parent_id``, users' ``manager_id``):
    from each row (start_id, id, depth) of ``start``, up to the parent, the grandparent, ... or
    down to the children, the grandchildren, ..., at most MAX_DEPTH steps (a guard against a
    cycle that slipped in by hand).

    Reads walk up (a user's units and their ancestors, a manager's chain) and filters walk down
    (everyone below the units or managers the filter names). Both take these same steps, so a
    unit is in a user's orgUnits exactly when a filter on that unit finds the user. UNION ALL:
    a tree reaches a node once from each start, so no de-duplication pass. Every table is an
    alias, so the CTE never correlates with an outer query on the same table.
    """
    tree = start.cte(name, recursive=True, nesting=True)
    node = aliased(model)
    link = node.parent_id if model is Group else node.manager_id
    if up:
        step = select(tree.c.start_id, link, tree.c.depth + 1).join(node, node.id == tree.c.id).where(link.isnot(None))
    else:
        step = select(tree.c.start_id, node.id, tree.c.depth + 1).where(link == tree.c.id)
    return tree.union_all(step.where(tree.c.depth < MAX_DEPTH))


def _seeds(alias, condition: ColumnElement[Any]):
    """The start of a walk: the rows matching ``condition``, each at depth 0."""
    return select(alias.id.label("start_id"), alias.id.label("id"), literal(0).label("depth")).where(condition)


def unit_subtree(seed_unit, seed: ColumnElement[Any], include_seed: bool = True):
    """A SELECT of the ids of the org units matching ``seed`` (a condition on the alias
    ``seed_unit`` of Group) and of every unit below them; without the seeds themselves
    when ``include_seed`` is false."""
    tree = _walk(Group, _seeds(seed_unit, seed_unit.is_org_unit & seed), "unit_subtree", up=False)
    return select(tree.c.id) if include_seed else select(tree.c.id).where(tree.c.depth > 0)


def employed_in(units):
    """A SELECT of the ids of the users employed in one of ``units`` (a SELECT of org unit ids).

    An employment is a user's membership row in an org unit, whatever its dates: ended and
    future employments count, as the user's ``employments`` lists them (``UserStore`` reads
    the same rows: the memberships whose group ``is_org_unit``)."""
    job = aliased(Membership)
    return select(job.user_id).where(job.group_id.in_(units), job.user_id.isnot(None))


def employed_below(seed_unit, seed: ColumnElement[Any]):
    """The filter side of ``orgUnits``: the users employed in a unit matching ``seed`` or below
    it, i.e. the users whose orgUnits (read with ``unit_ancestors``) include a matching unit."""
    return employed_in(unit_subtree(seed_unit, seed))


def report_tree(seed_user, seed: ColumnElement[Any]):
    """A SELECT of the ids of every user managed, directly or not, by a user matching ``seed``
    (a condition on the alias ``seed_user`` of User): the users whose managerChain (read with
    ``manager_chains``) includes a matching user."""
    tree = _walk(User, _seeds(seed_user, seed), "report_tree", up=False)
    return select(tree.c.id).where(tree.c.depth > 0)


def _unit_ancestors_statement():
    start = _seeds(Group, Group.id.in_(bindparam("unit_ids", expanding=True)))
    up = _walk(Group, start, "unit_up", up=True)
    return (select(up.c.start_id, up.c.id, up.c.depth, Group.display_name, Group.effective_ean)
            .join(Group, Group.id == up.c.id).where(up.c.depth > 0).order_by(up.c.start_id, up.c.depth))


def _manager_chains_statement():
    start = _seeds(User, User.id.in_(bindparam("manager_ids", expanding=True)))
    up = _walk(User, start, "manager_up", up=True)
    return (select(up.c.start_id, up.c.id, User.display_name)
            .join(User, User.id == up.c.id).order_by(up.c.start_id, up.c.depth))


def enclosing_groups(first_steps):
    """The one walk up the nesting of groups: a recursive CTE of (start_id, ancestor_id).

    ``first_steps`` selects (start_id, ancestor_id) pairs: something (a user, or a group) and
    a group that contains it directly; the walk adds every group above those, through member
    rows (RFC 7643 §4.1.2's indirect membership). Only member rows nest groups: an org unit's
    parent link is no membership. UNION, not UNION ALL: each pair is kept once, so even a
    cycle that slipped in by hand ends.
    """
    up = first_steps.cte("enclosing_groups", recursive=True, nesting=True)
    above = aliased(Membership)
    return up.union(select(up.c.start_id, above.group_id).where(above.member_group_id == up.c.ancestor_id))


def _containers(groups=None):
    """First steps from groups: each nested group in ``groups`` (a SELECT of ids; None: every
    nested group) with a group it is a member of."""
    edge = aliased(Membership)
    found = select(edge.member_group_id.label("start_id"), edge.group_id.label("ancestor_id"))
    return found.where(edge.member_group_id.isnot(None) if groups is None else edge.member_group_id.in_(groups))


def is_member_group(group_id) -> ColumnElement[Any]:
    """Is the group ``group_id`` (a column) a member of some group? Only then are its members in
    other groups indirectly: a read asks ``indirect_groups`` only for the users it concerns."""
    edge = aliased(Membership)
    return exists().where(edge.member_group_id == group_id)


def direct_groups():
    """A user's direct ``groups``: its own membership rows, as (user_id, group_id, display, type
    "direct"). ``UserStore`` reads these same rows with the user (its memberships)."""
    member, group = aliased(Membership), aliased(Group)
    return (select(member.user_id, member.group_id, group.display_name.label("display"),
                   literal("direct", String()).label("type"))
            .join(group, group.id == member.group_id).where(member.user_id.isnot(None)))


def indirect_groups_of(users=None):
    """A user's indirect ``groups``: the groups above its direct groups (``enclosing_groups``)
    that it is not a direct member of (there it is "direct"), as (user_id, group_id, display,
    type "indirect"). A group reached by two paths is two rows: callers use IN or keep one.

    ``users``: a condition on a membership row's alias that picks the users (a read's page);
    the walk then starts from their own groups, a few rows found by user. None: every user
    (filters), and the walk starts from every nested group, then goes to their members: the
    nesting is small beside the memberships, and a filter's condition on the group narrows it.
    Both are the same pairs, (user, a group above one of the user's groups).
    """
    def picked(alias):
        return alias.user_id.isnot(None) if users is None else users(alias)

    if users is None:
        up = enclosing_groups(_containers())
        member = aliased(Membership)
        user_id = member.user_id
        found = select(user_id).join(up, up.c.start_id == member.group_id).where(picked(member))
    else:
        mine, edge = aliased(Membership), aliased(Membership)
        up = enclosing_groups(select(mine.user_id.label("start_id"), edge.group_id.label("ancestor_id"))
                              .join(edge, edge.member_group_id == mine.group_id).where(picked(mine)))
        user_id = up.c.start_id
        found = select(user_id.label("user_id"))
    # one statement level (no derived table): a filter's condition on the group reaches the join;
    # ``picked(own)`` repeats what ``user_id`` already is, so the database reads those users' rows only
    group, own = aliased(Group), aliased(Membership)
    return (found.add_columns(up.c.ancestor_id.label("group_id"), group.display_name.label("display"),
                              literal("indirect", String()).label("type"))
            .join(group, group.id == up.c.ancestor_id)
            .where(~exists().where(own.user_id == user_id, own.group_id == up.c.ancestor_id, picked(own))))


def _indirect_groups_statement():
    return indirect_groups_of(lambda m: m.user_id.in_(bindparam("user_ids", expanding=True)))


def _enclosing_statement():
    up = enclosing_groups(_containers(select(Group.id).where(Group.id == bindparam("group_id"))))
    return select(up.c.ancestor_id)


# Built once: constructing a recursive CTE costs more than running it (these run on every read).
UNIT_ANCESTORS = _unit_ancestors_statement()
MANAGER_CHAINS = _manager_chains_statement()
INDIRECT_GROUPS = _indirect_groups_statement()
ENCLOSING_GROUPS = _enclosing_statement()


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


def indirect_groups(session: Session, user_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """For each user, the groups they are in only through nested groups: [(id, displayName)],
    each once, in name order (``indirect_groups_of``, read for these users only)."""
    out: dict[str, dict[str, str]] = {u: {} for u in user_ids}
    if user_ids:
        for user_id, group_id, name, _ in session.connection().execute(INDIRECT_GROUPS, {"user_ids": user_ids}):
            out[user_id][group_id] = name
    return {u: sorted(found.items(), key=lambda g: (g[1], g[0])) for u, found in out.items()}


#: advisory lock class per tree (PostgreSQL's two-key advisory locks: class, tenant)
TREES = {"managers": 76431, "units": 76432, "groups": 76433}


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


def not_an_org_unit(parent_id: str) -> ScimError:
    """The refusal of a parent that is not an org unit of the tenant (``check_parent``, and the
    batch's own lookup in ``GroupStore.create_many``)."""
    return invalid_value(f"parent.value '{parent_id}' is not an org unit of this tenant")


def check_parent(session: Session, tenant_id: int, unit: Group, parent_id: str | None, new: bool = False) -> None:
    """A parent must be an org unit of the tenant, and never the unit itself or below it.

    A unit being created has nothing below it yet (no unit can name it as parent before it
    exists), so only the parent is checked, not the chain above it: a first sync of 5,000
    units ran that recursive query 5,000 times (4.4 ms each on PostgreSQL)."""
    if parent_id is None:
        return
    lock_tree(session, tenant_id, "units")
    parent = session.scalar(select(Group).where(Group.id == parent_id, Group.tenant_id == tenant_id))
    if parent is None or not parent.is_org_unit:
        raise not_an_org_unit(parent_id)
    if new:
        return
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


def check_member_groups(session: Session, tenant_id: int, group: Group, member_group_ids: list[str]) -> None:
    """A group may contain another group only if that one does not contain it, directly or not:
    a cycle would make every group on it an indirect member of itself.

    The tenant's group nesting is locked first (see ``lock_tree``), so two requests that nest
    A in B and B in A cannot both pass."""
    if not member_group_ids:
        return
    lock_tree(session, tenant_id, "groups")
    above = set(session.scalars(ENCLOSING_GROUPS, {"group_id": group.id}))
    looping = [m for m in member_group_ids if m in above]
    if looping:
        names = _nesting_path(session, group.id, looping[0], above)
        cycle = " -> ".join(f"'{n}'" for n in [names[-1], *names])
        raise invalid_value(f"Adding '{names[-1]}' to the members of '{group.display_name}' would make a cycle: "
                            f"{cycle} (each is a member of the next)")


def _nesting_path(session: Session, start: str, goal: str, above: set[str]) -> list[str]:
    """The display names on one path of member rows from ``start`` up to ``goal`` (both in),
    for naming a cycle: only a refused request reads it."""
    nodes = above | {start}
    edges = session.execute(select(Membership.member_group_id, Membership.group_id).where(
        Membership.member_group_id.in_(nodes), Membership.group_id.in_(nodes))).all()
    containers: dict[str, list[str]] = {}
    for member, container in edges:
        containers.setdefault(member, []).append(container)
    came_from: dict[str, str | None] = {start: None}
    queue = [start]
    for node in queue:  # breadth first: the shortest path
        for container in containers.get(node, ()):
            if container not in came_from:
                came_from[container] = node
                queue.append(container)
    path = [goal]
    while (below := came_from[path[-1]]) is not None:
        path.append(below)
    names = dict(session.execute(select(Group.id, Group.display_name).where(Group.id.in_(path))).all())
    return [names.get(i, i) for i in reversed(path)]


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
