"""Where each SCIM attribute lives in the database, for the filter compiler and sortBy.

Columns answer for the attributes the tables index; ``groups`` and ``members``
are EXISTS over membership rows; everything else is read from the JSON
document through ``jsonsql``. Returning None means "storage cannot query
this", which the compiler reports as 400 invalidFilter.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import String, case, exists, func, literal, select, union_all
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from ..scim.schemas import ENTERPRISE_USER, Attribute, ResourceType
from ..scim.validators import P2L_GROUP, P2L_USER
from .derived import effective_ean
from .hierarchy import direct_groups, employed_below, indirect_groups_of, report_tree, unit_subtree
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


def employment_element(membership=Membership) -> _Columns:
    """A user's employment, as sub-attributes over a membership row in an org unit."""
    unit = aliased(Group)
    return _Columns({
        "value": membership.group_id,
        "display": select(unit.display_name).where(unit.id == membership.group_id).scalar_subquery(),
        "title": membership.title,
        "startdate": membership.start_date,
        "enddate": membership.end_date,
        "primary": membership.is_primary,
    })


def _group_element(rows) -> _Columns:
    """One of a user's ``groups``, over the columns of ``hierarchy.direct_groups`` or
    ``hierarchy.indirect_groups_of``."""
    return _Columns({"value": rows.c.group_id, "display": rows.c.display, "type": rows.c.type})


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


_COLUMN_MAPS: dict[type, dict[tuple[str, str], Any]] = {}


class DocumentResolver:
    """Base: attributes in the JSON document, keyed by canonical names."""

    model: Any

    def __init__(self, rt: ResourceType, dialect_name: str):
        self.rt = rt
        self.json = JsonDialect(dialect_name)

    def _keys(self, attr: Attribute, sub: Attribute | None = None) -> tuple[str, ...]:
        keys: tuple[str, ...] = (attr.name,) if attr.schema == self.rt.core.id else (attr.schema, attr.name)
        return keys + ((sub.name,) if sub is not None else ())

    def _column(self, attr: Attribute, sub: Attribute | None) -> SQL | None:
        key = (attr.name.lower() if attr.schema == self.rt.core.id else f"{attr.schema}:{attr.name}".lower(),
               sub.name.lower() if sub is not None else "")
        columns = _COLUMN_MAPS.get(type(self))
        if columns is None:  # built once per resolver class: some entries are subqueries
            columns = _COLUMN_MAPS[type(self)] = self.column_map()
        return columns.get(key)

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
        return {
            **super().column_map(),
            ("username", ""): User.user_name,
            ("displayname", ""): User.display_name,
            ("active", ""): User.active,
            (f"{ENTERPRISE_USER}:manager".lower(), "value"): User.manager_id,
            (f"{P2L_USER}:ean".lower(), ""): User.ean,
            (f"{P2L_USER}:effectiveean".lower(), ""): effective_ean(),
        }

    def scalar(self, attr: Attribute, sub: Attribute | None) -> SQL | None:
        if attr.schema in (ENTERPRISE_USER, P2L_USER) and (attr.name == "manager" or attr.schema == P2L_USER):
            return self._column(attr, sub)  # manager.value, ean and effectiveEan are columns
        return super().scalar(attr, sub)

    def present(self, attr: Attribute) -> SQL | None:
        if attr.name == "manager" and attr.schema != self.rt.core.id:
            return User.manager_id.isnot(None)
        return super().present(attr)

    def exists(self, attr: Attribute, condition: Callable[[Any], SQL]) -> SQL | None:
        if attr.key == "groups":
            # the rows a user's ``groups`` are read from, direct and indirect, each narrowed by the
            # condition: one IN, which the database answers as a semi-join from the matching groups
            direct, indirect = direct_groups().subquery(), indirect_groups_of().subquery()
            return User.id.in_(union_all(select(direct.c.user_id).where(condition(_group_element(direct))),
                                         select(indirect.c.user_id).where(condition(_group_element(indirect)))))
        if attr.key == f"{P2L_USER}:employments".lower():
            membership = aliased(Membership)
            unit = aliased(Group)
            return exists().where(membership.user_id == User.id, unit.id == membership.group_id,
                                  unit.is_org_unit, condition(employment_element(membership)))
        if attr.key == f"{P2L_USER}:orgunits".lower():
            # An element's sub-attributes are the unit's own, so "some org unit of the user matches"
            # is "the user is employed somewhere below a matching unit": seeds, then the subtree.
            seed = aliased(Group)
            return User.id.in_(employed_below(seed, condition(_Columns({"value": seed.id,
                                                                        "display": seed.display_name}))))
        if attr.key == f"{P2L_USER}:managerchain".lower():
            seed = aliased(User)
            return User.id.in_(report_tree(seed, condition(_Columns({"value": seed.id,
                                                                      "display": seed.display_name}))))
        return super().exists(attr, condition)


class GroupResolver(DocumentResolver):
    model = Group

    def column_map(self) -> dict[tuple[str, str], SQL]:
        p2l = P2L_GROUP.lower()
        return {**super().column_map(), ("displayname", ""): Group.display_name,
                (f"{p2l}:unitcode", ""): Group.unit_code,
                (f"{p2l}:unittype", ""): Group.unit_type,
                (f"{p2l}:ean", ""): Group.ean,
                (f"{p2l}:parent", "value"): Group.parent_id}

    def scalar(self, attr: Attribute, sub: Attribute | None) -> SQL | None:
        if attr.schema == P2L_GROUP:
            return self._column(attr, sub)
        return super().scalar(attr, sub)

    def present(self, attr: Attribute) -> SQL | None:
        if attr.key == f"{P2L_GROUP}:parent".lower():
            return Group.parent_id.isnot(None)
        return super().present(attr)

    def exists(self, attr: Attribute, condition: Callable[[Any], SQL]) -> SQL | None:
        if attr.key == "members":
            return exists().where(Membership.group_id == Group.id, condition(member_element()))
        if attr.key == f"{P2L_GROUP}:ancestors".lower():
            seed = aliased(Group)
            below = unit_subtree(seed, condition(_Columns({"value": seed.id, "display": seed.display_name})),
                                 include_seed=False)
            return Group.id.in_(below)
        return super().exists(attr, condition)

