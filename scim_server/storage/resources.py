"""Reading and writing Users and Groups: rows in, SCIM documents out.

A store is made per request for one tenant. Every query it runs carries the
tenant condition, so another tenant's id is simply "not found". Lists load a
page of ids with the filter and sort in SQL, then the page's rows, then one
query each for the page's groups and managers: the number of queries does not
grow with the page size (no N+1).
"""
from __future__ import annotations

import uuid
from typing import Any, Iterable

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, aliased

from ..scim.errors import ScimError, invalid_value, uniqueness
from ..scim.filters import FilterCompiler, compile_filter
from ..scim.marshal import format_datetime
from ..scim.projection import Projection
from ..scim.schemas import ENTERPRISE_USER, ResourceType
from .models import Group, Membership, User, utcnow
from .resolvers import GroupResolver, UserResolver, member_element
from . import passwords


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

    # ------------------------------------------------------------------ reads
    def get(self, resource_id: str, *, for_update: bool = False):
        query = select(self.model).where(self.model.id == resource_id, self.model.tenant_id == self.tenant_id)
        if for_update and self.dialect == "postgresql":
            query = query.with_for_update()
        return self.session.scalars(query).first()

    def search(self, filter_text: str | None, sort_by: str | None, descending: bool,
               start_index: int, count: int) -> tuple[int, list[Any]]:
        m = self.model
        condition = [m.tenant_id == self.tenant_id]
        if filter_text:
            condition.append(compile_filter(self.rt, filter_text, self.resolver))
        total = self.session.scalar(select(func.count()).select_from(m).where(*condition))
        if count <= 0 or total == 0:
            return total, []
        order = self._order(sort_by, descending)
        page = (select(m.id).where(*condition).order_by(*order)
                .offset(start_index - 1).limit(count).subquery())
        rows = self.session.scalars(select(m).join(page, m.id == page.c.id).order_by(*order)).all()
        return total, list(rows)

    def _order(self, sort_by: str | None, descending: bool) -> list[Any]:
        m = self.model
        if not sort_by:
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


def etag(row) -> str:
    return f'W/"{row.version}"'


class UserStore(ResourceStore):
    model = User
    resolver_class = UserResolver
    column_attributes = {"externalId": "external_id", "userName": "user_name",
                         "displayName": "display_name", "active": "active"}

    def stored_document(self, row: User) -> dict[str, Any]:
        doc = super().stored_document(row)
        if row.manager_id:
            doc.setdefault(ENTERPRISE_USER, {})
            doc[ENTERPRISE_USER] = {**doc[ENTERPRISE_USER], "manager": {"value": row.manager_id}}
        return doc

    def documents(self, rows: list[User], projection: Projection) -> list[dict[str, Any]]:
        ids = [r.id for r in rows]
        groups: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        if ids and projection.wants_name("groups"):
            query = (select(Membership.user_id, Group.id, Group.display_name)
                     .join(Group, Group.id == Membership.group_id)
                     .where(Membership.user_id.in_(ids)).order_by(Group.display_name))
            for user_id, group_id, name in self.session.execute(query):
                groups[user_id].append({"value": group_id, "$ref": f"{self.base_url}/Groups/{group_id}",
                                        "display": name, "type": "direct"})
        managers: dict[str, str | None] = {}
        manager_ids = {r.manager_id for r in rows if r.manager_id}
        if manager_ids:
            query = select(User.id, User.display_name).where(User.id.in_(manager_ids))
            managers = dict(self.session.execute(query).all())
        out = []
        for row in rows:
            doc = super().stored_document(row)
            doc["id"] = row.id
            if row.manager_id:
                ext = dict(doc.get(ENTERPRISE_USER) or {})
                ext["manager"] = {"value": row.manager_id, "$ref": self.location(row.manager_id),
                                  "displayName": managers.get(row.manager_id)}
                doc[ENTERPRISE_USER] = ext
            if groups.get(row.id):
                doc["groups"] = groups[row.id]
            doc["meta"] = self.meta(row)
            doc["schemas"] = self.schemas_of(doc)
            out.append(doc)
        return out

    def _manager_id(self, doc: dict[str, Any], own_id: str | None) -> str | None:
        manager = (doc.get(ENTERPRISE_USER) or {}).get("manager") or {}
        manager_id = manager.get("value")
        if not manager_id:
            return None
        if manager_id == own_id:
            raise invalid_value("A user cannot be their own manager")
        exists = self.session.scalar(select(User.id).where(User.id == manager_id, User.tenant_id == self.tenant_id))
        if exists is None:
            raise invalid_value(f"manager.value '{manager_id}' is not a user of this tenant")
        return manager_id

    def _write(self, row: User, doc: dict[str, Any]) -> None:
        self._check_user_name(doc["userName"], row.id)
        columns, rest = self._split(doc)
        password = rest.pop("password", None)
        ext = dict(rest.get(ENTERPRISE_USER) or {})
        ext.pop("manager", None)
        if ext:
            rest[ENTERPRISE_USER] = ext
        else:
            rest.pop(ENTERPRISE_USER, None)
        rest.pop("groups", None)
        row.manager_id = self._manager_id(doc, row.id)
        for column, value in columns.items():
            setattr(row, column, value)
        if password is not None:
            row.password_hash = passwords.hash_password(password)
        row.attributes = rest

    def _check_user_name(self, user_name: str, own_id: str) -> None:
        clash = self.session.scalar(select(User.id).where(
            User.tenant_id == self.tenant_id, func.lower(User.user_name) == user_name.lower(), User.id != own_id))
        if clash is not None:
            raise uniqueness(f"userName '{user_name}' is already taken")

    def create(self, doc: dict[str, Any]) -> User:
        now = utcnow()
        row = User(id=str(uuid.uuid4()), tenant_id=self.tenant_id, created=now, last_modified=now, version=1)
        doc = {"active": True, **doc}  # a new account is active unless the client says otherwise
        self._write(row, doc)
        self.session.add(row)
        self._flush()
        return row

    def replace(self, row: User, doc: dict[str, Any]) -> None:
        self.update(row, doc)

    def _integrity_error(self, exc: IntegrityError) -> ScimError:
        return uniqueness("userName is already taken")


class GroupStore(ResourceStore):
    model = Group
    resolver_class = GroupResolver
    column_attributes = {"externalId": "external_id", "displayName": "display_name"}

    def documents(self, rows: list[Group], projection: Projection) -> list[dict[str, Any]]:
        members: dict[str, list[dict[str, Any]]] = {r.id: [] for r in rows}
        if rows and projection.wants_name("members"):
            members = self.members_of([r.id for r in rows])
        out = []
        for row in rows:
            doc = self.stored_document(row)
            doc["id"] = row.id
            if members.get(row.id):
                doc["members"] = members[row.id]
            doc["meta"] = self.meta(row)
            doc["schemas"] = self.schemas_of(doc)
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
        for column, value in columns.items():
            setattr(row, column, value)
        row.attributes = rest

    def create(self, doc: dict[str, Any]) -> Group:
        now = utcnow()
        row = Group(id=str(uuid.uuid4()), tenant_id=self.tenant_id, created=now, last_modified=now, version=1)
        self._write(row, doc)
        self.session.add(row)
        self._flush()
        if doc.get("members"):
            MemberRows(self, row).add(doc["members"])
        return row

    def replace(self, row: Group, doc: dict[str, Any]) -> None:
        MemberRows(self, row).replace(doc.get("members") or [])
        self.update(row, doc)

    def collections(self, row: Group) -> dict[str, "MemberRows"]:
        return {"members": MemberRows(self, row)}


class MemberRows:
    """A group's ``members`` as membership rows: each change touches only the rows it names."""

    def __init__(self, store: GroupStore, group: Group):
        self.store = store
        self.session = store.session
        self.group = group

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

    def remove(self, value_filter) -> None:
        query = delete(Membership).where(Membership.group_id == self.group.id)
        if value_filter is not None:
            attr = self.store.rt.top_level("members")
            compiler = FilterCompiler(self.store.rt, self.store.resolver)
            query = query.where(compiler.compile(value_filter, (attr, member_element())))
        self.session.execute(query.execution_options(synchronize_session=False))

    def replace(self, values: Iterable[dict[str, Any]]) -> None:
        self.remove(None)
        self.add(values)


def bump_versions(session: Session, model: Any, ids: list[str]) -> None:
    """Mark resources changed by a side effect (e.g. a membership) as modified."""
    if ids:
        session.execute(update(model).where(model.id.in_(ids))
                        .values(version=model.version + 1, last_modified=utcnow()))
