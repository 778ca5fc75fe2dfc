"""Seeding the org-tree scenario (tenant ``bench-org``), directly through SQLAlchemy Core.

5,000 org units (plan2learn Group extension: ``is_org_unit``, ``unit_code``, ``unit_type``,
``parent_id``, ``ean``/``effective_ean``) in a tree ten levels deep, and N users (100,000),
each employed in exactly one unit (one membership row, ``is_primary`` true) and each but one
with a manager, so that the manager hierarchy is eight levels deep under one top manager.

The tree (level: units): 1: 1 (the kommune), 2: 5 (forvaltninger), 3: 15, 4: 45, 5: 120,
6: 300, 7: 600, 8: 1000, 9: 1300, 10: 1614. The 15 level-3 units are split 4/3/3/3/2 over the
five forvaltninger; below that every unit's children are a contiguous, even share of the next
level, so the first forvaltning holds 4/15 of every deeper level (~26,600 of 100,000 people):
that is the unit the ``move-unit`` case moves.

People: every unit of levels 1-7 has a head, employed in that unit and managed by the head of
the parent unit (the kommune's head is the one top manager). Everyone else is employed in a
unit of levels 8-10 (about 25 per unit) and managed by the head of the unit's level-7
ancestor. userNames are ``org-0000001@example.dk`` ... in creation order, assigned to the roles
by a fixed shuffle, so a first page is a mix of heads and staff.

Everything is deterministic (fixed seeds), so the expected answers (exact totalResults) are
computed here from the generated structure, independently of the server, and stored in the
marker (``bench_marker`` key ``org``). A rerun with the same size reuses the data; ``reset``
puts the moved unit back (parent and effective eans) if an earlier run was interrupted.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import seed
from sqlalchemy import delete, func, insert, select, update

from scim_server.storage import derived, emails
from scim_server.storage import tenants as tenant_store
from scim_server.storage.db import make_engine, make_session_factory
from scim_server.storage.migrate import upgrade
from scim_server.storage.models import AuditEvent, Group, Membership, Tenant, User, utcnow

ORG_SEED_VERSION = 2  # 2: the write service's copies (chosen units, work e-mails) made too
TENANT = "bench-org"
MARKER_KEY = "org"
LEVEL_SIZES = (1, 5, 15, 45, 120, 300, 600, 1000, 1300, 1614)   # 5,000 units, ten levels
LEVEL3_SPLIT = (4, 3, 3, 3, 2)                                  # level-3 units per forvaltning
HEAD_LEVELS = 7          # units of levels 1..7 have a head; staff sit in levels 8..10
UNIT_TYPES = ("kommune", "forvaltning", "område", "afdeling", "institution", "sektion", "team",
              "gruppe", "enhed", "hold")
FORVALTNINGER = ("Social og Sundhed", "Børn og Unge", "Teknik og Miljø", "Kultur og Fritid",
                 "Økonomi og Personale")
P2L_USER = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:User"
P2L_GROUP = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:Group"
MID_LEVEL = 5            # the "mid-level" unit and manager of the filter cases


def gln(n: int) -> str:
    """A valid 13-digit GLN (EAN) with the GS1 check digit."""
    from stdnum import ean
    body = f"579{n:09d}"
    return body + ean.calc_check_digit(body)


@dataclass
class Unit:
    idx: int
    id: str
    level: int
    parent: int | None
    code: str
    type: str
    name: str
    ean: str | None
    effective_ean: str | None = None
    forvaltning: int = 0          # index (0..4) of the level-2 ancestor; -1 for the root
    head: int | None = None       # role index of the head (levels 1..HEAD_LEVELS)
    children: list[int] = field(default_factory=list)


@dataclass
class Tree:
    units: list[Unit]
    levels: list[list[int]]
    users: int
    unit_of: list[int]            # role -> unit idx
    manager_of: list[int | None]  # role -> role of manager
    number_of: list[int]          # role -> user number (1..N, creation order)
    user_ids: list[str]           # role -> user id
    subtree_people: list[int]     # unit idx -> people employed in its subtree

    def ancestors(self, u: int) -> list[int]:
        out = []
        while self.units[u].parent is not None:
            u = self.units[u].parent
            out.append(u)
        return out

    def subtree(self, u: int) -> list[int]:
        out, stack = [], [u]
        while stack:
            x = stack.pop()
            out.append(x)
            stack.extend(self.units[x].children)
        return out


def build_tree(users: int) -> Tree:
    """The whole structure, deterministically (no database)."""
    rnd = random.Random(20240611)
    units: list[Unit] = []
    levels: list[list[int]] = []
    for level, n in enumerate(LEVEL_SIZES, 1):
        if level == 1:
            parents: list[int | None] = [None]
        elif level == 3:
            parents = [levels[1][f] for f, k in enumerate(LEVEL3_SPLIT) for _ in range(k)]
            assert len(parents) == n
        else:
            prev = levels[-1]
            parents = [prev[j * len(prev) // n] for j in range(n)]
        row = []
        for j, parent in enumerate(parents):
            idx = len(units)
            uid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            if level == 1:
                name = "Solbjerg Kommune"
            elif level == 2:
                name = FORVALTNINGER[j]
            else:
                name = f"{UNIT_TYPES[level - 1].capitalize()} {level:02d}-{j + 1:04d}"
            # EANs: the kommune, every forvaltning but the first, every third institution (level 5).
            own = None
            if level == 1 or (level == 2 and j > 0) or (level == 5 and j % 3 == 0):
                own = gln(idx + 1)
            unit = Unit(idx, uid, level, parent, f"U{level:02d}-{j + 1:05d}", UNIT_TYPES[level - 1], name, own)
            if parent is not None:
                units[parent].children.append(idx)
                above = units[parent]
                unit.forvaltning = j if level == 2 else above.forvaltning
                unit.effective_ean = own or above.effective_ean
            else:
                unit.forvaltning = -1
                unit.effective_ean = own
            units.append(unit)
            row.append(idx)
        levels.append(row)
    heads = [u for lvl in levels[:HEAD_LEVELS] for u in lvl]
    leafish = [u for lvl in levels[HEAD_LEVELS:] for u in lvl]
    if users < len(heads) + 1:
        raise ValueError(f"the org scenario needs more than {len(heads)} users")
    unit_of: list[int] = []
    manager_of: list[int | None] = []
    for role, u in enumerate(heads):
        units[u].head = role
        unit_of.append(u)
    for u in heads:
        parent = units[u].parent
        manager_of.append(units[parent].head if parent is not None else None)
    for k in range(users - len(heads)):
        u = leafish[k % len(leafish)]
        boss = u
        while units[boss].level > HEAD_LEVELS:
            boss = units[boss].parent
        unit_of.append(u)
        manager_of.append(units[boss].head)
    numbers = list(range(1, users + 1))
    random.Random(77).shuffle(numbers)
    ids = [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(users)]
    direct = [0] * len(units)
    for u in unit_of:
        direct[u] += 1
    subtree_people = list(direct)
    for lvl in reversed(levels[1:]):
        for u in lvl:
            subtree_people[units[u].parent] += subtree_people[u]
    return Tree(units, levels, users, unit_of, manager_of, numbers, ids, subtree_people)


def expectations(tree: Tree) -> dict[str, Any]:
    """The ids the cases use and the answers they must get, from the structure alone."""
    units = tree.units
    root = tree.levels[0][0]
    move, target = tree.levels[1][0], tree.levels[1][1]   # first forvaltning, moved under the second
    mid = tree.levels[MID_LEVEL - 1][0]                    # a level-5 unit inside the moved subtree
    top_head, mid_head = units[root].head, units[mid].head
    # depth of the manager hierarchy (levels of people, the top manager being level 1)
    depth = 0
    for role in range(tree.users):
        d, m = 1, tree.manager_of[role]
        while m is not None:
            d, m = d + 1, tree.manager_of[m]
        depth = max(depth, d)
    moved_units = tree.subtree(move)
    return {
        "root_unit": units[root].id, "mid_unit": units[mid].id, "mid_level": MID_LEVEL,
        "move_unit": units[move].id, "move_unit_name": units[move].name,
        "move_target": units[target].id, "move_target_name": units[target].name,
        "top_manager": tree.user_ids[top_head], "mid_manager": tree.user_ids[mid_head],
        "orgunits_root_total": tree.subtree_people[root],
        "orgunits_mid_total": tree.subtree_people[mid],
        "managerchain_top_total": tree.users - 1,
        "managerchain_mid_total": tree.subtree_people[mid] - 1,
        "move_unit_people": tree.subtree_people[move],
        "move_unit_units": len(moved_units),
        "move_target_people": tree.subtree_people[target],
        # effective eans that change when the unit is under the target instead of the root
        "move_effective_ean_changes": sum(1 for u in moved_units if not _own_ean_on_path(tree, u, move)),
        # distinct unit rows a move changes: those, and the moved unit itself (parent, version)
        "move_group_rows_changed": len({u for u in moved_units if not _own_ean_on_path(tree, u, move)} | {move}),
        "tree_depth": len(LEVEL_SIZES), "units": len(units), "manager_depth": depth,
    }


def _own_ean_on_path(tree: Tree, u: int, top: int) -> bool:
    """Whether unit u or an ancestor up to and including ``top`` has its own ean."""
    while True:
        if tree.units[u].ean:
            return True
        if u == top:
            return False
        u = tree.units[u].parent


def _read_marker(engine) -> dict[str, Any] | None:
    seed._marker_md.create_all(engine)
    with engine.connect() as conn:
        raw = conn.scalar(select(seed.marker_table.c.value).where(seed.marker_table.c.key == MARKER_KEY))
    return json.loads(raw) if raw else None


def ensure_org_database(url: str, users: int, log=print) -> dict[str, Any]:
    """Migrate, seed the ``bench-org`` tenant if needed, and return the marker."""
    t0 = time.perf_counter()
    upgrade(url)
    tree = build_tree(users)
    expect = expectations(tree)
    engine = make_engine(url)
    try:
        marker = _read_marker(engine)
        convert = seed.server_pipeline()
        form = seed.form_signature(convert)
        if (marker and marker.get("users") == users and marker.get("version") == ORG_SEED_VERSION
                and marker.get("form") == form and marker.get("expect") == expect):
            with engine.connect() as conn:
                tenant_id = conn.scalar(select(Tenant.id).where(Tenant.name == TENANT))
                have = conn.scalar(select(func.count()).select_from(User).where(User.tenant_id == tenant_id))
                units = conn.scalar(select(func.count()).select_from(Group).where(
                    Group.tenant_id == tenant_id, Group.is_org_unit))
            if tenant_id == marker.get("tenant_id") and have == users and units == len(tree.units):
                log(f"  reusing org tree ({len(tree.units)} units, {users} users)")
                reset(url, marker, tree, log)
                return dict(marker, reused=True, seconds=time.perf_counter() - t0)
        log(f"  seeding org tree: {len(tree.units)} units, {users} users ...")
        with engine.begin() as conn:
            conn.execute(delete(seed.marker_table).where(seed.marker_table.c.key == MARKER_KEY))
            old = conn.scalar(select(Tenant.id).where(Tenant.name == TENANT))
            if old is not None:
                # groups.parent_id is ON DELETE RESTRICT: unlink the tree before the cascade.
                conn.execute(update(Group).where(Group.tenant_id == old).values(parent_id=None))
                conn.execute(update(User).where(User.tenant_id == old).values(manager_id=None))
                conn.execute(delete(Tenant).where(Tenant.id == old))
        with make_session_factory(engine).begin() as session:
            tenant_id = tenant_store.create_tenant(session, TENANT).id
        now = utcnow().replace(microsecond=0)
        base = now - dt.timedelta(days=30)
        t_units = time.perf_counter()
        with engine.begin() as conn:  # parents first (level order): the FK is checked per row
            rows = [{"id": u.id, "tenant_id": tenant_id, "display_name": u.name,
                     "external_id": str(uuid.UUID(int=random.Random(u.idx).getrandbits(128), version=4)),
                     "is_org_unit": True, "unit_code": u.code, "unit_type": u.type,
                     "parent_id": tree.units[u.parent].id if u.parent is not None else None,
                     "ean": u.ean, "effective_ean": u.effective_ean, "attributes": {},
                     "created": base + dt.timedelta(milliseconds=u.idx), "last_modified": now, "version": 1}
                    for u in tree.units]
            for s in range(0, len(rows), seed.BATCH):
                conn.execute(insert(Group), rows[s:s + seed.BATCH])
        t_units = time.perf_counter() - t_units
        t_users = time.perf_counter()
        started = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
        with engine.begin() as conn:
            batch: list[dict[str, Any]] = []
            jobs: list[dict[str, Any]] = []
            # roles in order: heads by level first (a manager row exists before its reports)
            for role in range(users):
                i = tree.number_of[role]
                display, attrs = seed.user_attributes(i, random.Random(i))
                if convert is not None:
                    attrs = convert(seed.scim_body(i, random.Random(i), "x"))
                attrs = dict(attrs)
                unit = tree.units[tree.unit_of[role]]
                created = base + dt.timedelta(milliseconds=i)
                manager = tree.manager_of[role]
                batch.append({"id": tree.user_ids[role], "tenant_id": tenant_id,
                              "user_name": f"org-{i:07d}@example.dk",
                              "external_id": str(uuid.UUID(int=random.Random(-i).getrandbits(128), version=4)),
                              "display_name": display, "active": True,
                              "manager_id": tree.user_ids[manager] if manager is not None else None,
                              "password_hash": None, "ean": None, "employment_state": "current",
                              "attributes": attrs, "created": created, "last_modified": created, "version": 1})
                jobs.append({"tenant_id": tenant_id, "group_id": unit.id, "user_id": tree.user_ids[role],
                             "member_group_id": None,
                             "title": "Leder" if unit.head == role else attrs.get("title"),
                             "start_date": started + dt.timedelta(days=i % 3000), "end_date": None,
                             "is_primary": True, "source": None, "created": created})
                if len(batch) >= seed.BATCH:
                    conn.execute(insert(User), batch)
                    batch = []
            if batch:
                conn.execute(insert(User), batch)
            t_users = time.perf_counter() - t_users
            t_jobs = time.perf_counter()
            for s in range(0, len(jobs), seed.BATCH):
                conn.execute(insert(Membership), jobs[s:s + seed.BATCH])
            derived.store_chosen_units(conn, tenant_id=tenant_id)  # as the write service keeps them
            emails.store_tenant(conn, tenant_id)
            t_jobs = time.perf_counter() - t_jobs
            marker = {"version": ORG_SEED_VERSION, "users": users, "tenant_id": tenant_id,
                      "seeded_at": now.isoformat(), "form": form, "expect": expect,
                      "server_pipeline": convert is not None}
            conn.execute(insert(seed.marker_table), [{"key": MARKER_KEY, "value": json.dumps(marker)}])
        seed.vacuum_analyze(engine, "users", "groups", "memberships")
        took = time.perf_counter() - t0
        log(f"  seeded {len(tree.units)} units in {t_units:.1f}s, {users} users in {t_users:.1f}s, "
            f"{users} employments in {t_jobs:.1f}s; total {took:.1f}s")
        return dict(marker, reused=False, seconds=took, user_insert_seconds=t_users)
    finally:
        engine.dispose()


def reset(url: str, marker: dict[str, Any], tree: Tree | None = None, log=print) -> dict[str, Any]:
    """Put the tree back as seeded (parents and effective eans, in case a run stopped between
    two moves) and drop the tenant's audit events. Returns what had to be repaired."""
    tree = tree or build_tree(marker["users"])
    tenant_id = marker["tenant_id"]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            have = {r.id: (r.parent_id, r.effective_ean) for r in conn.execute(
                select(Group.id, Group.parent_id, Group.effective_ean).where(Group.tenant_id == tenant_id))}
            fixes = []
            for u in tree.units:
                want = (tree.units[u.parent].id if u.parent is not None else None, u.effective_ean)
                if have.get(u.id) != want:
                    fixes.append({"gid": u.id, "p": want[0], "e": want[1]})
            if fixes:
                from sqlalchemy import bindparam
                t = Group.__table__
                conn.execute(update(t).where(t.c.id == bindparam("gid"))
                             .values(parent_id=bindparam("p"), effective_ean=bindparam("e")), fixes)
                log(f"  org reset: restored parent/effective ean of {len(fixes)} unit(s)")
            audit = conn.execute(delete(AuditEvent).where(AuditEvent.tenant_id == tenant_id)).rowcount
        return {"repaired_units": len(fixes), "deleted_audit_events": audit}
    finally:
        engine.dispose()


FINGERPRINT_COLUMNS = {
    "users": (User.id, User.version, User.last_modified, User.manager_id, User.active, User.employment_state,
              User.user_name, User.display_name, User.ean),
    "memberships": (Membership.id, Membership.group_id, Membership.user_id, Membership.member_group_id,
                    Membership.title, Membership.start_date, Membership.end_date, Membership.is_primary,
                    Membership.source, Membership.created),
    "groups": (Group.id, Group.parent_id, Group.effective_ean, Group.ean, Group.version, Group.last_modified),
}


def fingerprint(url: str, tenant_id: int, tables=("users", "memberships", "groups")) -> dict[str, dict[str, str]]:
    """Per-row digests of the tenant's rows: users (version, lastModified, manager, active, ...),
    memberships (every column) and groups (parent, eans, version, lastModified), keyed by id."""
    engine = make_engine(url)
    try:
        out = {}
        with engine.connect() as conn:
            for table in tables:
                cols = FINGERPRINT_COLUMNS[table]
                model = cols[0].class_
                out[table] = {str(r[0]): _digest(r[1:]) for r in conn.execute(
                    select(*cols).where(model.tenant_id == tenant_id))}
        return out
    finally:
        engine.dispose()


def _digest(values) -> str:
    return hashlib.blake2b(repr(tuple(values)).encode(), digest_size=12).hexdigest()


def changed_rows(before: dict[str, str], after: dict[str, str]) -> int:
    """Rows that differ (changed, added or removed) between two fingerprints of one table."""
    return sum(1 for k in before.keys() | after.keys() if before.get(k) != after.get(k))


if __name__ == "__main__":  # seed only: python bench/orgseed.py URL [USERS]
    import sys
    out = ensure_org_database(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
    print(json.dumps({k: v for k, v in out.items() if k != "form"}, indent=2, default=str))
