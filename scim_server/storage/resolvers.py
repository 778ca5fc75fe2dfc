"""Where each SCIM attribute lives in the database, for the filter compiler and sortBy.

Columns answer for the attributes the tables index; ``groups`` and ``members``
are EXISTS over membership rows; everything else is read from the JSON
document through ``jsonsql``. Returning None means "storage cannot query
this", which the compiler reports as 400 invalidFilter.
"""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import String, case, exists, func, literal, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from ..scim.schemas import Attribute, ResourceType
from .jsonsql import JsonDialect
from .models import Group, Membership, User

SQL = ColumnElement[Any]


class _JsonElement:
    """One element of a JSON array, inside EXISTS."""

    def __init__(self, json: JsonDialect, value: SQL):
        self.json = json
        self.value = value

    def sub(self, sub: Attribute) -> SQL | None:
        if sub.type == "boolean":
            return self.json.element_boolean(self.value, sub.name)
        if sub.type in ("integer", "decimal"):
            return self.json.element_number(self.value, sub.name)
        if sub.is_complex:
            return None
        return self.json.element_text(self.value, sub.name)

    def whole(self) -> SQL:
        return self.json.element_text(self.value, None)


class _Columns:
    """An element made of plain SQL expressions (a membership row)."""

    def __init__(self, columns: dict[str, SQL]):
        self.columns = columns

    def sub(self, sub: Attribute) -> SQL | None:
        return self.columns.get(sub.name.lower())

    def whole(self) -> SQL:
        return self.columns["value"]


def member_element(membership=Membership) -> _Columns:
    """A group's member, as sub-attributes over a membership row."""
    member_user, member_group = aliased(User), aliased(Group)
    display = func.coalesce(
        select(member_user.display_name)
        .where(member_user.id == membership.user_id).scalar_subquery(),
        select(member_group.display_name).where(member_group.id == membership.member_group_id).scalar_subquery(),
    )
    return _Columns({
        "value": func.coalesce(membership.user_id, membership.member_group_id),
        "type": case((membership.user_id.isnot(None), literal("User")), else_=literal("Group")),
        "display": display,
    })


class DocumentResolver:
    """Base: attributes in the JSON document, keyed by canonical names."""

    model: Any
    columns: dict[tuple[str, str], SQL] = {}

    def __init__(self, rt: ResourceType, dialect_name: str):
        self.rt = rt
        self.json = JsonDialect(dialect_name)

    def _keys(self, attr: Attribute, sub: Attribute | None = None) -> tuple[str, ...]:
        keys: tuple[str, ...] = (attr.name,) if attr.schema == self.rt.core.id else (attr.schema, attr.name)
        return keys + ((sub.name,) if sub is not None else ())

    def _column(self, attr: Attribute, sub: Attribute | None) -> SQL | None:
        key = (attr.name.lower() if attr.schema == self.rt.core.id else f"{attr.schema}:{attr.name}".lower(),
               sub.name.lower() if sub is not None else "")
        return self.column_map().get(key)

    def column_map(self) -> dict[tuple[str, str], SQL]:
        m = self.model
        return {
            ("id", ""): m.id,
            ("externalid", ""): m.external_id,
            ("meta", "created"): m.created,
            ("meta", "lastmodified"): m.last_modified,
            ("meta", "resourcetype"): literal(self.rt.name, String()),
        }

    def scalar(self, attr: Attribute, sub: Attribute | None) -> SQL | None:
        column = self._column(attr, sub)
        if column is not None:
            return column
        if attr.name.lower() in ("meta", "id") and attr.schema == self.rt.core.id:
            return None
        target = sub or attr
        keys = self._keys(attr, sub)
        if target.type == "boolean":
            return self.json.boolean(self.model.attributes, keys)
        if target.type in ("integer", "decimal"):
            return self.json.number(self.model.attributes, keys)
        if target.is_complex:
            return None
        return self.json.text(self.model.attributes, keys)

    def present(self, attr: Attribute) -> SQL | None:
        return self.json.present(self.model.attributes, self._keys(attr))

    def exists(self, attr: Attribute, condition: Callable[[Any], SQL]) -> SQL | None:
        elements = self.json.elements(self.model.attributes, self._keys(attr))
        return select(literal(1)).select_from(elements).where(
            condition(_JsonElement(self.json, elements.c.value))).exists()


class UserResolver(DocumentResolver):
    model = User

    def column_map(self) -> dict[tuple[str, str], SQL]:
        from ..scim.schemas import ENTERPRISE_USER
        return {
            **super().column_map(),
            ("username", ""): User.user_name,
            ("displayname", ""): User.display_name,
            ("active", ""): User.active,
            (f"{ENTERPRISE_USER}:manager".lower(), "value"): User.manager_id,
        }

    def scalar(self, attr: Attribute, sub: Attribute | None) -> SQL | None:
        if attr.name == "manager" and attr.schema != self.rt.core.id:
            return self._column(attr, sub)  # only manager.value is queryable
        return super().scalar(attr, sub)

    def present(self, attr: Attribute) -> SQL | None:
        if attr.name == "manager" and attr.schema != self.rt.core.id:
            return User.manager_id.isnot(None)
        return super().present(attr)

    def exists(self, attr: Attribute, condition: Callable[[Any], SQL]) -> SQL | None:
        if attr.name == "groups" and attr.schema == self.rt.core.id:
            group = aliased(Group)
            element = _Columns({"value": Membership.group_id, "display": group.display_name,
                                "type": literal("direct", String())})
            return exists().where(Membership.user_id == User.id, group.id == Membership.group_id,
                                  condition(element))
        return super().exists(attr, condition)


class GroupResolver(DocumentResolver):
    model = Group

    def column_map(self) -> dict[tuple[str, str], SQL]:
        return {**super().column_map(), ("displayname", ""): Group.display_name}

    def exists(self, attr: Attribute, condition: Callable[[Any], SQL]) -> SQL | None:
        if attr.name == "members" and attr.schema == self.rt.core.id:
            return exists().where(Membership.group_id == Group.id, condition(member_element()))
        return super().exists(attr, condition)

