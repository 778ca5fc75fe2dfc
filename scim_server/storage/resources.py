"""Reading and writing Users and Groups: rows in, SCIM documents out.

A store is made per request for one tenant. Every query it runs carries the
tenant condition, so another tenant's id is simply "not found". Lists load a
page of ids with the filter and sort in SQL, then the page's rows, then one
query each for the page's groups and managers: the number of queries does not
grow with the page size (no N+1).
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, aliased

from ..scim.errors import ScimError, invalid_value, mutability, uniqueness
from ..scim.filters import FilterCompiler, compile_filter
from ..scim.marshal import format_datetime
from ..scim.projection import Projection
from ..scim.schemas import ENTERPRISE_USER, ResourceType
from ..scim.validators import P2L_GROUP, P2L_USER
from . import audit, hierarchy, leavers, passwords, placement
from .employments import EmploymentRows
from .models import Group, Membership, User, utcnow
from .resolvers import GroupResolver, UserResolver, member_element


class ResourceStore:
    model: Any
    resolver_class: Any
    #: attribute name (canonical) -> column attribute name on the model
    column_attributes: dict[str, str] = {"externalId": "external_id"}

    def __init__(self, session: Session, tenant_id: int, rt: ResourceType, base_url: str):
        self.session = session
        self.tenant_id = tenant_id
        self.rt = rt
        self.base_url = base_url
        self.dialect = session.get_bind().dialect.name
        self.resolver = self.resolver_class(rt, self.dialect)
        #: plan2learn's master-data extension is offered to this tenant (see ``tenant set --no-master-data``)
        self.master_data = any(e.id in (P2L_USER, P2L_GROUP) for e in rt.extensions)

    # ------------------------------------------------------------------ reads
    def get(self, resource_id: str, *, for_update: bool = False):
        statements = _by_id(self.model)
        query = statements[1] if for_update and self.dialect == "postgresql" else statements[0]
        return self.session.scalars(query, {"rid": resource_id, "tid": self.tenant_id}).first()

    def search(self, filter_text: str | None, sort_by: str | None, descending: bool,
               start_index: int, count: int) -> tuple[int, list[Any]]:
        """One page and the exact total. A short page tells the total by itself (the usual
        answer to an IdP's matching query), so the count query runs only when it must."""
        m = self.model
        condition = [m.tenant_id == self.tenant_id]
        if filter_text:
            condition.append(compile_filter(self.rt, filter_text, self.resolver))
        rows: list[Any] = []
        if count > 0:
            order = self._order(sort_by, descending, filtered=bool(filter_text))
            page = (select(m.id).where(*condition).order_by(*order)
                    .offset(start_index - 1).limit(count).subquery())
            rows = list(self.session.scalars(select(m).join(page, m.id == page.c.id).order_by(*order)))
            if 0 < len(rows) < count or (not rows and start_index == 1):
                return start_index - 1 + len(rows), rows
        total = self.session.scalar(select(func.count()).select_from(m).where(*condition))
        return total, rows

    def _order(self, sort_by: str | None, descending: bool, filtered: bool = False) -> list[Any]:
        m = self.model
        if not sort_by:
            if filtered and self.dialect == "sqlite":
                # Without statistics SQLite prefers the (tenant, created) index to avoid a sort and
                # then scans every row for the filter; an expression keeps it on the filter's index
                # (userName, externalId eq ...). The order is the same.
                return [func.coalesce(m.created, m.created), m.id]
            return [m.created, m.id]
        resolved = self.rt.resolve(sort_by)
        if resolved is None:
            raise invalid_value(f"Unknown sortBy attribute '{sort_by}'")
        attr, sub = resolved
        target = sub or attr
        if attr.multi_valued or target.is_complex or not target.filterable:
            raise invalid_value(f"sortBy must name a singular attribute, not '{sort_by}'")
        expr = self.resolver.scalar(attr, sub)
        if expr is None:
            raise invalid_value(f"Cannot sort by '{sort_by}'")
        if target.type in ("string", "reference") and not target.case_exact:
            expr = func.lower(expr)
        expr = expr.desc().nulls_first() if descending else expr.asc().nulls_last()
        return [expr, m.id.desc() if descending else m.id]

    # --------------------------------------------------------------- documents
    def location(self, resource_id: str) -> str:
        return f"{self.base_url}{self.rt.endpoint}/{resource_id}"

    def meta(self, row) -> dict[str, Any]:
        return {
            "resourceType": self.rt.name,
            "created": format_datetime(row.created),
            "lastModified": format_datetime(row.last_modified),
            "location": self.location(row.id),
            "version": etag(row),
        }

    def stored_document(self, row) -> dict[str, Any]:
        """The client-writable state of a resource, as PATCH and PUT start from."""
        doc = dict(row.attributes or {})
        for name, column in self.column_attributes.items():
            value = getattr(row, column)
            if value is not None:
                doc[name] = value
        return doc

    def documents(self, rows: list[Any], projection: Projection) -> list[dict[str, Any]]:
        raise NotImplementedError

    def schemas_of(self, doc: dict[str, Any]) -> list[str]:
        return [self.rt.core.id] + [e.id for e in self.rt.extensions if doc.get(e.id)]

    # ------------------------------------------------------------------ writes
    def _split(self, doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split a validated document into column values and the JSON document."""
        columns = {column: doc.get(name) for name, column in self.column_attributes.items()}
        for name, column in self.column_attributes.items():
            limit = getattr(self.model.__table__.c[column].type, "length", None)
            if isinstance(columns[column], str) and limit and len(columns[column]) > limit:
                raise invalid_value(f"'{name}' is longer than {limit} characters")
        rest = {k: v for k, v in doc.items() if k not in self.column_attributes and k not in ("schemas", "id", "meta")}
        return columns, rest

    def _touch(self, row) -> None:
        row.last_modified = utcnow()
        row.version = (row.version or 0) + 1

    def update(self, row, doc: dict[str, Any]) -> None:
        """Write a validated document (attributes kept as rows are changed separately)."""
        self._write(row, doc)
        self._touch(row)
        self._flush()

    def collections(self, row) -> dict[str, Any]:
        """Multi-valued attributes kept as rows, for the PATCH engine."""
        return {}

    def after_patch(self, row, doc: dict[str, Any]) -> None:
        """Rules that follow a PATCH (once all its operations are applied)."""

    def collection_changes(self) -> dict[str, Any]:
        """Changes to row-backed attributes made through ``collections`` (for the audit trail)."""
        return {}

    def audit_state(self, row) -> dict[str, Any]:
        """The resource as the audit trail compares it before and after a write."""
        return self.stored_document(row)

    def audit(self, row, operation: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
              extra: dict[str, Any] | None = None) -> None:
        changes = audit.diff(before, after)
        changes.update(extra or {})
        audit.record(self.session, self.tenant_id, self.rt.name, row.id, operation, changes)

    def delete(self, row) -> None:
        self.session.delete(row)
        self.session.flush()

    def _flush(self) -> None:
        try:
            self.session.flush()
        except IntegrityError as exc:
            raise self._integrity_error(exc) from exc
        except DataError as exc:  # a value the column type cannot hold
            raise invalid_value("A value does not fit its attribute (too long or malformed)") from exc

    def _integrity_error(self, exc: IntegrityError) -> ScimError:
        return ScimError(409, "The change conflicts with an existing resource", "uniqueness")


@cache
def _by_id(model):
    query = select(model).where(model.id == bindparam("rid"), model.tenant_id == bindparam("tid"))
    return query, query.with_for_update()


def etag(row) -> str:
    return f'W/"{row.version}"'


class UserStore(ResourceStore):
    model = User
    resolver_class = UserResolver
    column_attributes = {"externalId": "external_id", "userName": "user_name",
                         "displayName": "display_name", "active": "active"}
    #: plan2learn attributes computed on read, never stored from input
    computed = ("orgUnits", "managerChain", "effectiveEan")

    def stored_document(self, row: User) -> dict[str, Any]:
        doc = super().stored_document(row)
        if row.manager_id:
            doc[ENTERPRISE_USER] = {**(doc.get(ENTERPRISE_USER) or {}), "manager": {"value": row.manager_id}}
        if row.ean:
            doc[P2L_USER] = {**(doc.get(P2L_USER) or {}), "ean": row.ean}
        return doc

    def _wants(self, projection: Projection, name: str) -> bool:
        attr = self.rt.resolve(name)
        return attr is not None and projection.wants(attr[0])

    def documents(self, rows: list[User], projection: Projection) -> list[dict[str, Any]]:
        ids = [r.id for r in rows]
        want_groups = projection.wants_name("groups")
        want_employments = self._wants(projection, f"{P2L_USER}:employments")
        want_units = self._wants(projection, f"{P2L_USER}:orgUnits")
        want_ean = self._wants(projection, f"{P2L_USER}:effectiveEan")
        want_chain = self._wants(projection, f"{P2L_USER}:managerChain")
        groups: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        jobs: dict[str, list[Membership]] = {i: [] for i in ids}
        unit_eans: dict[str, str | None] = {}
        if ids and (want_groups or want_employments or want_units or want_ean):
            for membership in self.session.execute(MEMBERSHIPS_OF_USERS, {"ids": ids}):
                name, is_unit, unit_ean = membership.display_name, membership.is_org_unit, membership.effective_ean
                groups[membership.user_id].append({"value": membership.group_id, "display": name,
                                                   "$ref": f"{self.base_url}/Groups/{membership.group_id}",
                                                   "type": "direct"})
                if is_unit:
                    jobs[membership.user_id].append((membership, name))
                    unit_eans[membership.group_id] = unit_ean
        ancestors = {}
        if want_units:
            ancestors = hierarchy.unit_ancestors(self.session, {m.group_id for js in jobs.values() for m, _ in js})
        manager_ids = {r.manager_id for r in rows if r.manager_id}
        chains = hierarchy.manager_chains(self.session, manager_ids) if want_chain else {}
        managers: dict[str, str | None] = {}
        if manager_ids and not want_chain:
            managers = dict(self.session.execute(DISPLAY_NAMES, {"ids": list(manager_ids)}).all())
        for chain in chains.values():
            managers.update({chain[0][0]: chain[0][1]} if chain else {})
        out = []
        for row in rows:
            doc = super().stored_document(row)
            doc["id"] = row.id
            if row.manager_id:
                doc[ENTERPRISE_USER] = {**(doc.get(ENTERPRISE_USER) or {}), "manager": {
                    "value": row.manager_id, "$ref": self.location(row.manager_id),
                    "displayName": managers.get(row.manager_id)}}
            if groups.get(row.id):
                doc["groups"] = groups[row.id]
            p2l = self._plan2learn(row, jobs[row.id], ancestors, chains, unit_eans)
            if p2l:
                doc[P2L_USER] = p2l
            doc["meta"] = self.meta(row)
            doc["schemas"] = self.schemas_of(doc)
            out.append(doc)
        return out

    def _plan2learn(self, row: User, jobs, ancestors, chains, unit_eans) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if row.ean:
            out["ean"] = row.ean
        if jobs:
            out["employments"] = [{
                "value": m.group_id, "$ref": f"{self.base_url}/Groups/{m.group_id}", "display": name,
                "title": m.title, "startDate": _iso(m.start_date), "endDate": _iso(m.end_date),
                "primary": bool(m.is_primary),
            } for m, name in jobs]
            units: dict[str, str] = {}
            for m, name in jobs:
                units.setdefault(m.group_id, name)
                for unit_id, unit_name, _ in ancestors.get(m.group_id, ()):
                    units.setdefault(unit_id, unit_name)
            if ancestors:
                out["orgUnits"] = [{"value": i, "display": n} for i, n in units.items()]
        if row.manager_id and chains.get(row.manager_id):
            out["managerChain"] = [{"value": i, "display": n} for i, n in chains[row.manager_id]]
        effective = row.ean
        if effective is None and jobs:
            primary = sorted(jobs, key=lambda j: (not j[0].is_primary, j[0].start_date or _EPOCH, j[0].id))[0]
            effective = unit_eans.get(primary[0].group_id)
        if effective:
            out["effectiveEan"] = effective
        return out

    def _write(self, row: User, doc: dict[str, Any]) -> None:
        self._check_user_name(doc["userName"], row.id)
        columns, rest = self._split(doc)
        password = rest.pop("password", None)
        ext = dict(rest.pop(ENTERPRISE_USER, None) or {})
        manager_id = (ext.pop("manager", None) or {}).get("value") or None
        if ext:
            rest[ENTERPRISE_USER] = ext
        p2l = dict(rest.pop(P2L_USER, None) or {})
        if self.master_data:
            row.ean = p2l.get("ean")
        rest.pop("groups", None)
        if manager_id != row.manager_id:
            hierarchy.check_manager(self.session, self.tenant_id, row, manager_id, new=row.version == 1
                                    and row not in self.session)
        row.manager_id = manager_id
        for column, value in columns.items():
            setattr(row, column, value)
        if password is not None:
            row.password_hash = passwords.hash_password(password)
        row.attributes = rest

    def _check_user_name(self, user_name: str, own_id: str) -> None:
        clash = self.session.scalar(USER_NAME_TAKEN, {"tid": self.tenant_id, "name": user_name.lower(),
                                                      "own": own_id})
        if clash is not None:
            raise uniqueness(f"userName '{user_name}' is already taken")

    def create(self, doc: dict[str, Any]) -> User:
        now = utcnow()
        row = User(id=str(uuid.uuid4()), tenant_id=self.tenant_id, created=now, last_modified=now, version=1)
        doc = {"active": True, **doc}  # a new account is active unless the client says otherwise
        self._write(row, doc)
        self.session.add(row)
        self._flush()
        jobs = (doc.get(P2L_USER) or {}).get("employments")
        if jobs:
            self.employments(row).replace(jobs)
        self._after_write(row, doc, employments_changed=bool(jobs))
        return row

    def replace(self, row: User, doc: dict[str, Any]) -> None:
        self.update(row, doc)
        if self.master_data:
            self.employments(row).replace((doc.get(P2L_USER) or {}).get("employments") or [])
        self._after_write(row, doc, employments_changed=self.master_data)

    def audit_state(self, row: User) -> dict[str, Any]:
        state = self.stored_document(row)
        if row.password_hash:
            state["password"] = row.password_hash  # compared, then recorded only as "changed"
        jobs = self.session.execute(EMPLOYMENTS_OF_USER, {"uid": row.id}).all()
        if jobs:
            state[f"{P2L_USER}"] = {**(state.get(P2L_USER) or {}), "employments": [
                {"value": j.group_id, "title": j.title, "startDate": _iso(j.start_date),
                 "endDate": _iso(j.end_date), "primary": bool(j.is_primary)} for j in jobs]}
        return state

    def employments(self, row: User) -> EmploymentRows:
        return EmploymentRows(self.session, self.tenant_id, self.rt, row)

    def collections(self, row: User) -> dict[str, Any]:
        if not self.master_data:
            return {}
        rows = self.employments(row)
        self._patched_employments = rows
        return {f"{P2L_USER}:employments".lower(): rows}

    def after_patch(self, row: User, doc: dict[str, Any]) -> None:
        rows = getattr(self, "_patched_employments", None)
        self._after_write(row, doc, employments_changed=bool(rows and rows.changed))

    def _after_write(self, row: User, doc: dict[str, Any], employments_changed: bool) -> None:
        """Rules that follow a write: placement by department, then active from employments."""
        if self.master_data:
            placement.place(self.session, self.tenant_id, row, doc)
        if employments_changed:
            leavers.evaluate(self.session, user_ids=[row.id], force=True)
            self.session.refresh(row)

    def delete(self, row: User) -> None:
        reports = hierarchy.clear_manager_of_reports(self.session, row.id)
        key = f"{ENTERPRISE_USER}:manager"
        audit.record_many(self.session, [
            {"tenant_id": self.tenant_id, "resource_type": "User", "resource_id": report, "operation": "system",
             "changes": {key: {"old": {"value": row.id}, "new": None}, "rule": "manager deleted"}}
            for report in reports])
        super().delete(row)

    def _integrity_error(self, exc: IntegrityError) -> ScimError:
        return uniqueness("userName is already taken")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Statements run on every read are built once (building costs more than running them).
MEMBERSHIPS_OF_USERS = (select(Membership.id, Membership.user_id, Membership.group_id, Membership.title,
                               Membership.start_date, Membership.end_date, Membership.is_primary,
                               Group.display_name, Group.is_org_unit, Group.effective_ean)
                        .join(Group, Group.id == Membership.group_id)
                        .where(Membership.user_id.in_(bindparam("ids", expanding=True)))
                        .order_by(Group.display_name, Group.id))
EMPLOYMENTS_OF_USER = (select(Membership.group_id, Membership.title, Membership.start_date, Membership.end_date,
                              Membership.is_primary)
                       .join(Group, Group.id == Membership.group_id)
                       .where(Membership.user_id == bindparam("uid"), Group.is_org_unit)
                       .order_by(Membership.group_id))
USER_NAME_TAKEN = select(User.id).where(User.tenant_id == bindparam("tid"),
                                        func.lower(User.user_name) == bindparam("name"), User.id != bindparam("own"))
DISPLAY_NAMES = select(User.id, User.display_name).where(User.id.in_(bindparam("ids", expanding=True)))


def _iso(value: dt.datetime | None) -> str | None:
    return format_datetime(value) if value is not None else None


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
        for group_id, user_id, sub_group_id, user_display, group_display in self.session.execute(query):
            if user_id:
                out[group_id].append({"value": user_id, "$ref": f"{self.base_url}/Users/{user_id}",
                                      "display": user_display, "type": "User"})
            else:
                out[group_id].append({"value": sub_group_id, "$ref": f"{self.base_url}/Groups/{sub_group_id}",
                                      "display": group_display, "type": "Group"})
        return out

    def _write(self, row: Group, doc: dict[str, Any]) -> None:
        columns, rest = self._split(doc)
        rest.pop("members", None)
        unit = rest.pop(P2L_GROUP, None)
        declared = P2L_GROUP.lower() in {str(s).lower() for s in doc.get("schemas") or []}
        if self.master_data and (unit is not None or declared):
            row.is_org_unit = True  # an org unit stays one: its employments and subtree depend on it
        if row.is_org_unit and self.master_data:
            unit = unit or {}
            before = (row.ean, row.parent_id)
            row.unit_code = unit.get("unitCode")
            row.unit_type = unit.get("unitType")
            row.ean = unit.get("ean")
            parent_id = (unit.get("parent") or {}).get("value") or None
            if parent_id != row.parent_id:
                hierarchy.check_parent(self.session, self.tenant_id, row, parent_id)
            row.parent_id = parent_id
            self._check_unit_code(row)
            self._tree_changed = before != (row.ean, row.parent_id) or row.effective_ean is None
        for column, value in columns.items():
            setattr(row, column, value)
        row.attributes = rest

    def _check_unit_code(self, row: Group) -> None:
        if row.unit_code is None:
            return
        clash = self.session.scalar(select(Group.id).where(
            Group.tenant_id == self.tenant_id, Group.unit_code == row.unit_code, Group.id != row.id))
        if clash is not None:
            raise uniqueness(f"unitCode '{row.unit_code}' is already used by another org unit")

    def _after_write(self, row: Group) -> None:
        if row.is_org_unit and getattr(self, "_tree_changed", False):
            hierarchy.refresh_effective_ean(self.session, row.id)

    def update(self, row: Group, doc: dict[str, Any]) -> None:
        super().update(row, doc)
        self._after_write(row)

    def create(self, doc: dict[str, Any]) -> Group:
        now = utcnow()
        row = Group(id=str(uuid.uuid4()), tenant_id=self.tenant_id, created=now, last_modified=now, version=1,
                    is_org_unit=False)
        self._write(row, doc)
        self.session.add(row)
        self._flush()
        self._after_write(row)
        if doc.get("members"):
            self.collections(row)["members"].add(doc["members"])
        return row

    def replace(self, row: Group, doc: dict[str, Any]) -> None:
        self.collections(row)["members"].replace(doc.get("members") or [])
        self.update(row, doc)

    def collections(self, row: Group) -> dict[str, MemberRows]:
        self._patched_members = MemberRows(self, row)
        return {"members": self._patched_members}

    def collection_changes(self) -> dict[str, Any]:
        rows = getattr(self, "_patched_members", None)
        return rows.changes() if rows else {}

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
            leavers.evaluate(self.session, user_ids=employees, force=True)

    def _integrity_error(self, exc: IntegrityError) -> ScimError:
        return uniqueness("unitCode is already used by another org unit")


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
        for value in values:
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
        users = set(self.session.scalars(select(User.id).where(User.tenant_id == tenant, User.id.in_(wanted))))
        groups = set(self.session.scalars(select(Group.id).where(Group.tenant_id == tenant, Group.id.in_(wanted))))
        unknown = [w for w in wanted if w not in users and w not in groups]
        if unknown:
            raise invalid_value(f"Unknown member id(s): {', '.join(unknown[:10])}")
        existing = set(self.session.scalars(select(func.coalesce(Membership.user_id, Membership.member_group_id))
                                            .where(Membership.group_id == self.group.id,
                                                   (Membership.user_id.in_(wanted)) |
                                                   (Membership.member_group_id.in_(wanted)))))
        rows = [{"tenant_id": tenant, "group_id": self.group.id,
                 "user_id": w if w in users else None, "member_group_id": w if w in groups else None,
                 "created": utcnow()}
                for w in wanted if w not in existing]
        if rows:
            self.session.execute(insert(Membership), rows)
            self.added += [r["user_id"] or r["member_group_id"] for r in rows]
            if self.group.is_org_unit:  # new employments may (re)activate their users
                leavers.evaluate(self.session, user_ids=[r["user_id"] for r in rows if r["user_id"]], force=True)

    def remove(self, value_filter) -> None:
        condition = Membership.group_id == self.group.id
        if value_filter is not None:
            attr = self.store.rt.top_level("members")
            compiler = FilterCompiler(self.store.rt, self.store.resolver)
            condition = condition & compiler.compile(value_filter, (attr, member_element()))
        removed = self.session.execute(select(Membership.user_id, Membership.member_group_id).where(condition)).all()
        self.removed += [u or g for u, g in removed]
        affected = [u for u, _ in removed if u] if self.group.is_org_unit else []
        self.session.execute(delete(Membership).where(condition).execution_options(synchronize_session=False))
        if affected:  # ended employments may deactivate their users
            leavers.evaluate(self.session, user_ids=affected, force=True)

    def replace(self, values: Iterable[dict[str, Any]]) -> None:
        self.remove(None)
        self.add(values)

    def set_sub(self, value_filter, sub, value) -> None:
        raise mutability(f"members.{sub.name} is immutable: remove the member and add it again")

    def remove_sub(self, value_filter, sub) -> None:
        raise mutability(f"members.{sub.name} is immutable: remove the member instead")


def bump_versions(session: Session, model: Any, ids: list[str]) -> None:
    """Mark resources changed by a side effect (e.g. a membership) as modified."""
    if ids:
        session.execute(update(model).where(model.id.in_(ids))
                        .values(version=model.version + 1, last_modified=utcnow()))
