"""Groups and org units: members as rows (one row per member, so one member costs the
same at any group size), and the plan2learn org-unit attributes."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from ..scim.errors import ScimError, invalid_value, mutability, not_found, uniqueness
from ..scim.filters import FilterCompiler
from ..scim.projection import Projection
from ..scim.validators import P2L_GROUP
from . import employments, hierarchy
from .models import Group, Membership, User, utcnow
from .resolvers import GroupResolver, member_element
from .resources import ResourceStore, check_version, new_row, of_tenant


class GroupStore(ResourceStore):
    model = Group
    resolver_class = GroupResolver
    column_attributes = {"externalId": "external_id", "displayName": "display_name"}

    def stored_document(self, row: Group) -> dict[str, Any]:
        doc = super().stored_document(row)
        if row.is_org_unit:
            unit = {"unitCode": row.unit_code, "unitType": row.unit_type, "ean": row.ean,
                    "parent": {"value": row.parent_id} if row.parent_id else None}
            doc[P2L_GROUP] = {k: v for k, v in unit.items() if v is not None}
        return doc

    def documents(self, rows: list[Group], projection: Projection) -> list[dict[str, Any]]:
        members: dict[str, list[dict[str, Any]]] = {r.id: [] for r in rows}
        if rows and projection.wants_name("members"):
            members = self.members_of([r.id for r in rows])
        units = {r.id for r in rows if r.is_org_unit}
        ancestors = hierarchy.unit_ancestors(self.session, units) if units else {}
        out = []
        for row in rows:
            doc = self.stored_document(row)
            doc["id"] = row.id
            if members.get(row.id):
                doc["members"] = members[row.id]
            if row.is_org_unit:
                unit = doc[P2L_GROUP]
                chain = ancestors.get(row.id, [])
                if row.parent_id:
                    unit["parent"] = {"value": row.parent_id, "$ref": self.location(row.parent_id),
                                      "display": chain[0][1] if chain else None}
                if chain:
                    unit["ancestors"] = [{"value": i, "display": n} for i, n, _ in reversed(chain)]
            doc["meta"] = self.meta(row)
            doc["schemas"] = self.schemas_of(doc)
            if row.is_org_unit and P2L_GROUP not in doc["schemas"]:
                doc["schemas"].append(P2L_GROUP)
            out.append(doc)
        return out

    def members_of(self, group_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        member_user, member_group = aliased(User), aliased(Group)
        query = (select(Membership.group_id, Membership.user_id, Membership.member_group_id,
                        member_user.display_name, member_group.display_name)
                 .outerjoin(member_user, member_user.id == Membership.user_id)
                 .outerjoin(member_group, member_group.id == Membership.member_group_id)
                 .where(Membership.group_id.in_(group_ids)).order_by(Membership.id))
        out: dict[str, list[dict[str, Any]]] = {g: [] for g in group_ids}
        for group_id, user_id, sub_group_id, user_display, group_display in self.session.connection().execute(query):
            if user_id:
                out[group_id].append({"value": user_id, "$ref": f"{self.base_url}/Users/{user_id}",
                                      "display": user_display, "type": "User"})
            else:
                out[group_id].append({"value": sub_group_id, "$ref": f"{self.base_url}/Groups/{sub_group_id}",
                                      "display": group_display, "type": "Group"})
        return out

    def _write(self, row: Group, doc: dict[str, Any], new: bool = False, checks: bool = True) -> bool:
        """Set the row's values from a validated document; True when the unit's place in the
        tree or its own ean changed, so what its subtree inherits must be computed again.
        ``checks``: look up the parent and the unitCode here (``create_many`` looks them up
        for all its documents at once instead)."""
        columns, rest = self._split(doc)
        tree_changed = False
        rest.pop("members", None)
        unit = rest.pop(P2L_GROUP, None)
        declared = P2L_GROUP.lower() in {str(s).lower() for s in doc.get("schemas") or []}
        was_unit = row.is_org_unit
        if self.master_data and (unit is not None or declared):
            row.is_org_unit = True  # an org unit stays one: its employments and subtree depend on it
        if row.is_org_unit and self.master_data:
            unit = unit or {}
            before = (row.ean, row.parent_id, row.unit_code)
            for name, limit in (("unitCode", 100), ("unitType", 50)):
                if len(unit.get(name) or "") > limit:
                    raise invalid_value(f"'{name}' is longer than {limit} characters")
            row.unit_code = unit.get("unitCode")
            row.unit_type = unit.get("unitType")
            row.ean = unit.get("ean")
            parent_id = (unit.get("parent") or {}).get("value") or None
            if parent_id != row.parent_id and checks:
                hierarchy.check_parent(self.session, self.tenant_id, row, parent_id, new=new)
            row.parent_id = parent_id
            if row.unit_code != before[2] and checks:
                self._check_unit_code(row)  # the unique index still guards races
            # A new org unit inherits from its parent; after that only a new ean or a new parent
            # changes what the unit and its subtree inherit (a rename rewrites nothing).
            tree_changed = not was_unit or before[:2] != (row.ean, row.parent_id)
        for column, value in columns.items():
            setattr(row, column, value)
        row.attributes = rest
        return tree_changed

    def _check_unit_code(self, row: Group) -> None:
        if row.unit_code is None:
            return
        # case-insensitively, folded by the database on both sides as its unique index folds
        clash = self.session.scalar(select(Group.unit_code).where(
            Group.tenant_id == self.tenant_id, func.lower(Group.unit_code) == func.lower(row.unit_code),
            Group.id != row.id))
        if clash is not None:
            raise _unit_code_taken(row.unit_code, clash)

    def update(self, row: Group, doc: dict[str, Any]) -> None:
        was_unit = row.is_org_unit
        tree_changed = self._write(row, doc)
        self._touch(row)
        self._flush()
        if tree_changed:
            hierarchy.refresh_effective_ean(self.session, row.id)
        if row.is_org_unit and not was_unit:  # its user members are employed in it from now on
            employments.changed(self.session, list(self.session.scalars(select(Membership.user_id).where(
                Membership.group_id == row.id, Membership.user_id.is_not(None)))), by_unit=True)

    def create(self, doc: dict[str, Any]) -> tuple[Group, dict[str, Any]]:
        now = utcnow()
        row = Group(id=str(uuid.uuid4()), tenant_id=self.tenant_id, source_id=self.source_id, created=now,
                    last_modified=now, version=1,
                    is_org_unit=False)
        if self._write(row, doc, new=True):  # a new unit has no subtree: its own ean, else its parent's
            row.effective_ean = row.ean or (self.session.scalar(select(Group.effective_ean).where(
                Group.id == row.parent_id)) if row.parent_id else None)
        self.session.add(row)
        self._flush()
        members = MemberRows(self, row)
        if doc.get("members"):
            members.add(doc["members"])
        return row, members.changes()

    def creates_together(self, doc: dict[str, Any]) -> bool:
        """Can ``create_many`` write this new group with others? One without members (the new
        org units of a sync's units file): members are checked and written group by group."""
        return not doc.get("members")

    def create_many(self, docs: list[dict[str, Any]]) -> list[Group | ScimError]:
        """New groups without members in one multi-row INSERT (a sync's new org units: 5,000
        one by one took 1.7 ms each), each checked alone, as ``create`` checks one: a unitCode
        the tenant has (or an earlier document gives), or a parent that is not an org unit of
        the tenant, is that document's error, and the others are written. (A parent is named by
        its id, so it exists before its children's documents are made.) The rows are plain
        objects outside the ORM session, written with Core."""
        now = utcnow()
        units = [(d.get(P2L_GROUP) or {}) for d in docs]
        codes = list({u["unitCode"].lower() for u in units if isinstance(u.get("unitCode"), str)})
        taken = {c.lower(): c for c in self.session.scalars(select(Group.unit_code).where(
            Group.tenant_id == self.tenant_id, func.lower(Group.unit_code).in_(codes)))} if codes else {}
        wanted = list({(u.get("parent") or {}).get("value") for u in units} - {None, ""})
        if wanted:
            hierarchy.lock_tree(self.session, self.tenant_id, "units")  # as ``check_parent`` does
        parents = {g.id: g for g in self.session.execute(select(Group.id, Group.is_org_unit, Group.effective_ean).where(
            Group.tenant_id == self.tenant_id, Group.id.in_(wanted)))} if wanted else {}
        out: list[Group | ScimError] = []
        rows: list[dict[str, Any]] = []
        for doc in docs:
            row = _NEW_GROUP_INSTANCE()
            row.__dict__.update({**NEW_GROUP, "id": str(uuid.uuid4()), "tenant_id": self.tenant_id,
                                 "source_id": self.source_id, "created": now, "last_modified": now})
            try:
                self._write(row, doc, new=True, checks=False)
                parent = parents.get(row.parent_id) if row.parent_id else None
                if row.parent_id and (parent is None or not parent.is_org_unit):
                    raise hierarchy.not_an_org_unit(row.parent_id)
                if row.unit_code is not None and row.unit_code.lower() in taken:
                    raise _unit_code_taken(row.unit_code, taken[row.unit_code.lower()])
            except ScimError as exc:
                out.append(exc)
                continue
            if row.is_org_unit:  # a new unit has no subtree: its own ean, else its parent's
                row.effective_ean = row.ean or (parent.effective_ean if parent else None)
            if row.unit_code is not None:
                taken[row.unit_code.lower()] = row.unit_code
            rows.append({c: row.__dict__[c] for c in _GROUP_COLUMN_KEYS})
            out.append(row)
        if rows:
            with self._write_errors():
                self.session.connection().execute(INSERT_GROUP, rows)
        return out

    def replace(self, row: Group, doc: dict[str, Any]) -> dict[str, Any]:
        members = MemberRows(self, row)
        members.replace(doc.get("members") or [])
        self.update(row, doc)
        return members.changes()

    def patch(self, row: Group, doc: dict[str, Any], collections: dict[str, Any]) -> dict[str, Any]:
        self.update(row, doc)
        return collections["members"].changes()

    def add_users_many(self, adds: list[tuple[str, list[str], str | None]]) -> list[Any]:
        """Users added to groups by many PATCHes (a Bulk request's member adds), in a fixed
        number of statements whatever their number: per (group id, user ids, If-Match) the
        group as written (id and version: each add counts as one change of the group, as a
        PATCH does) or the ScimError that refused that add alone. Users only: adding a group
        checks for cycles, one PATCH at a time (``MemberRows``)."""
        group_ids = list({group_id for group_id, _, _ in adds})
        groups = {g.id: g for g in self.session.connection().execute(_GROUPS_FOR_UPDATE[self.dialect == "postgresql"],
                                                                    {"ids": group_ids, "tid": self.tenant_id})}
        wanted = list({u for _, users, _ in adds for u in users})
        known = set(self.session.scalars(select(User.id).where(of_tenant(User.tenant_id, self.tenant_id),
                                                               User.id.in_(wanted))))
        members = {(g, u) for g, u in self.session.execute(select(Membership.group_id, Membership.user_id).where(
            Membership.group_id.in_(group_ids), Membership.user_id.in_(wanted)))}
        versions = {g.id: g.version for g in groups.values()}
        out: list[Any] = []
        rows: list[dict[str, Any]] = []
        now = utcnow()
        for group_id, users, if_match in adds:
            group = groups.get(group_id)
            if group is None:
                out.append(not_found(f"Group {group_id} not found"))
                continue
            unknown = [u for u in users if u not in known]
            if unknown:
                out.append(invalid_value(f"Unknown member id(s): {', '.join(unknown[:10])}"))
                continue
            try:
                check_version(_Written(group_id, versions[group_id], []), if_match)
            except ScimError as exc:
                out.append(exc)
                continue
            added = [u for u in dict.fromkeys(users) if (group_id, u) not in members]
            members.update((group_id, u) for u in added)
            rows += [{"tenant_id": self.tenant_id, "group_id": group_id, "user_id": u, "member_group_id": None,
                      "created": now} for u in added]
            versions[group_id] += 1
            out.append(_Written(group_id, versions[group_id], added))
        if rows:
            self.session.connection().execute(employments.INSERT_MEMBERSHIPS, rows)
        changed = [{"gid": g, "new_version": v, "now": now} for g, v in versions.items() if v != groups[g].version]
        if changed:
            table = Group.__table__
            self.session.execute(update(table).where(table.c.id == bindparam("gid"))
                                 .values(version=bindparam("new_version"), last_modified=bindparam("now")), changed)
        employed = [r["user_id"] for r in rows if groups[r["group_id"]].is_org_unit]
        if employed:  # new employments may (re)activate their users
            employments.changed(self.session, employed, by_unit=True)
        return out

    def collections(self, row: Group) -> dict[str, MemberRows]:
        return {"members": MemberRows(self, row)}

    def delete(self, row: Group) -> None:
        employees = []
        if row.is_org_unit:
            children = self.session.scalar(select(func.count()).select_from(Group).where(Group.parent_id == row.id))
            if children:
                raise ScimError(409, f"Org unit '{row.display_name}' still has {children} child unit(s): "
                                     "move or delete them first")
            employees = list(self.session.scalars(select(Membership.user_id).where(
                Membership.group_id == row.id, Membership.user_id.isnot(None))))
        super().delete(row)
        if employees:  # their employments here are gone: the rest decide whether they stay active
            employments.changed(self.session, employees, by_unit=True)

    def _integrity_error(self, exc: IntegrityError) -> ScimError:
        return uniqueness("unitCode is already used by another org unit")


@dataclass(frozen=True)
class _Written:
    """A group as ``add_users_many`` wrote it (what a response names: id and version)."""

    id: str
    version: int
    added: list[str]


def _groups_for_update(locked: bool):
    table = Group.__table__
    query = select(table.c.id, table.c.version, table.c.is_org_unit).where(
        table.c.id.in_(bindparam("ids", expanding=True)), table.c.tenant_id == bindparam("tid"))
    return query.with_for_update(key_share=True) if locked else query


def _unit_code_taken(unit_code: str, clash: str) -> ScimError:
    """The refusal of a unitCode another org unit of the tenant has (spelt ``clash`` there)."""
    spelt = f" (as '{clash}': unitCodes are compared case-insensitively)" if clash != unit_code else ""
    return uniqueness(f"unitCode '{unit_code}' is already used by another org unit{spelt}")


INSERT_GROUP = insert(Group.__table__)
_GROUP_COLUMN_KEYS = [c.key for c in Group.__table__.columns]
NEW_GROUP = new_row(Group.__table__)
_NEW_GROUP_INSTANCE = Group.__mapper__.class_manager.new_instance
#: by "is this PostgreSQL" (which locks the groups' rows as ``get`` does)
_GROUPS_FOR_UPDATE = {False: _groups_for_update(False), True: _groups_for_update(True)}


class MemberRows:
    """A group's ``members`` as membership rows: each change touches only the rows it names."""

    def __init__(self, store: GroupStore, group: Group):
        self.store = store
        self.session = store.session
        self.group = group
        self.added: list[str] = []
        self.removed: list[str] = []

    def changes(self) -> dict[str, Any]:
        """For the audit trail: the members this PATCH added and removed."""
        out = {}
        added, removed = [m for m in self.added if m not in self.removed], \
            [m for m in self.removed if m not in self.added]
        if added or removed:
            out["members"] = {"added": added, "removed": removed}
        return out

    def add(self, values: Iterable[dict[str, Any]]) -> None:
        wanted: list[str] = []
        for value in values:  # loaded against the schema (see patch.RowCollection)
            member_id = value.get("value") if isinstance(value, dict) else None
            if not isinstance(member_id, str) or not member_id:
                raise invalid_value("Each member needs a 'value' with the member's id")
            if member_id not in wanted:
                wanted.append(member_id)
        if not wanted:
            return
        if self.group.id in wanted:
            raise invalid_value("A group cannot be a member of itself")
        tenant = self.store.tenant_id
        users = set(self.session.scalars(select(User.id).where(of_tenant(User.tenant_id, tenant), User.id.in_(wanted))))
        groups = set(self.session.scalars(select(Group.id).where(Group.tenant_id == tenant, Group.id.in_(wanted))))
        unknown = [w for w in wanted if w not in users and w not in groups]
        if unknown:
            raise invalid_value(f"Unknown member id(s): {', '.join(unknown[:10])}")
        existing = set(self.session.scalars(select(func.coalesce(Membership.user_id, Membership.member_group_id))
                                            .where(Membership.group_id == self.group.id,
                                                   (Membership.user_id.in_(wanted)) |
                                                   (Membership.member_group_id.in_(wanted)))))
        hierarchy.check_member_groups(self.session, tenant, self.group,
                                      [w for w in wanted if w in groups and w not in existing])
        rows = [{"tenant_id": tenant, "group_id": self.group.id,
                 "user_id": w if w in users else None, "member_group_id": w if w in groups else None,
                 "created": utcnow()}
                for w in wanted if w not in existing]
        if rows:
            self.session.execute(insert(Membership), rows)
            self.added += [r["user_id"] or r["member_group_id"] for r in rows]
            if self.group.is_org_unit:  # new employments may (re)activate their users
                employments.changed(self.session, [r["user_id"] for r in rows if r["user_id"]], by_unit=True)

    def remove(self, value_filter) -> None:
        condition = Membership.group_id == self.group.id
        if value_filter is not None:
            attr = self.store.rt.top_level("members")
            compiler = FilterCompiler(self.store.rt, self.store.resolver)
            condition = condition & compiler.compile(value_filter, (attr, member_element()))
        self._remove_where(condition)

    def _remove_where(self, condition) -> None:
        removed = self.session.execute(select(Membership.user_id, Membership.member_group_id).where(condition)).all()
        self.removed += [u or g for u, g in removed]
        affected = [u for u, _ in removed if u] if self.group.is_org_unit else []
        self.session.execute(delete(Membership).where(condition).execution_options(synchronize_session=False))
        if affected:  # ended employments may deactivate their users
            employments.changed(self.session, affected, by_unit=True)

    def replace(self, values: Iterable[dict[str, Any]]) -> None:
        """The members become exactly ``values`` (a PUT): those not named are removed, the new
        ones added, and those named again keep their rows. In an org unit a member's row is an
        employment: removing and adding it again would drop its dates, title and primary flag."""
        values = list(values)
        kept = [v.get("value") for v in values if isinstance(v, dict) and isinstance(v.get("value"), str)]
        condition = Membership.group_id == self.group.id
        if kept:
            condition = condition & func.coalesce(Membership.user_id, Membership.member_group_id).not_in(kept)
        self._remove_where(condition)
        self.add(values)

    def set_sub(self, value_filter, sub, value) -> None:
        raise mutability(f"members.{sub.name} is immutable: remove the member and add it again")

    def remove_sub(self, value_filter, sub) -> None:
        raise mutability(f"members.{sub.name} is immutable: remove the member instead")
