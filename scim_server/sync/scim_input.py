"""A sync's input as JSON: ``{"users": [...], "units": [...]}`` of SCIM resources.

An integrator that speaks SCIM sends the current state as resources instead of a file.
Each resource becomes the rows a file would have (one per employment), so the same checks
apply to both (``records``), and a row error names the list and the item's place in it
(``users``, line 3 = the third user).

Users are SCIM Users carrying ``externalId`` (the source's key); the enterprise
``manager.value`` names the manager's externalId, and plan2learn ``employments[].value`` the
unitCode of the org unit. Units are SCIM Groups with the plan2learn Group extension; their
``parent.value`` is the parent's unitCode.
"""
from __future__ import annotations

from typing import Any

from ..scim.schemas import ENTERPRISE_USER
from ..scim.validators import P2L_GROUP, P2L_USER
from .mapping import SyncRefused
from .readers import SourceRow
from .records import PersonRecord, RowError, UnitRecord, read_people, read_units

#: enterprise attributes with columns of their own (the others are carried as attribute paths)
_ENTERPRISE_COLUMNS = {"employeeNumber": "employeeNumber"}


def records_from_json(body: Any, users_name: str = "users", units_name: str = "units"
                      ) -> tuple[list[UnitRecord] | None, list[PersonRecord] | None, list[RowError]]:
    """(units, people, row errors); a list that is not given is None (nothing judged absent)."""
    if not isinstance(body, dict) or not ({"users", "units"} & set(body)):
        raise SyncRefused('the JSON body must be an object with "users" and/or "units", lists of SCIM resources')
    errors: list[RowError] = []
    units = people = None
    if "units" in body:
        units, found = read_units(_rows(body["units"], units_name, _unit_values))
        errors += found
    if "users" in body:
        people, found = read_people(_rows(body["users"], users_name, _user_rows))
        errors += found
    return units, people, errors


def _rows(items: Any, name: str, convert) -> list[SourceRow]:
    if not isinstance(items, list):
        raise SyncRefused(f'"{name}" must be a list of SCIM resources')
    rows: list[SourceRow] = []
    for line, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            rows.append(SourceRow(name, line, {}, problem="not a JSON object"))
            continue
        for values in convert(item):
            rows.append(SourceRow(name, line, values))
    return rows


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _day(value: Any) -> str | None:
    """A SCIM dateTime as the day the file format takes (``2026-08-01T00:00:00Z`` -> 2026-08-01)."""
    text = _text(value)
    return text[:10] if text else None


def _typed(items: Any, wanted: str) -> dict[str, Any]:
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and str(item.get("type", "")).lower() == wanted:
            return item
    return {}


def _user_rows(user: dict[str, Any]) -> list[dict[str, str | None]]:
    name = user.get("name") if isinstance(user.get("name"), dict) else {}
    address = _typed(user.get("addresses"), "work")
    enterprise = user.get(ENTERPRISE_USER) if isinstance(user.get(ENTERPRISE_USER), dict) else {}
    plan2learn = user.get(P2L_USER) if isinstance(user.get(P2L_USER), dict) else {}
    manager = enterprise.get("manager")
    values: dict[str, str | None] = {
        "externalId": _text(user.get("externalId")), "userName": _text(user.get("userName")),
        "givenName": _text(name.get("givenName")), "familyName": _text(name.get("familyName")),
        "displayName": _text(user.get("displayName")), "email": _text(_typed(user.get("emails"), "work").get("value")),
        "mobile": _text(_typed(user.get("phoneNumbers"), "mobile").get("value")),
        "phone": _text(_typed(user.get("phoneNumbers"), "work").get("value")),
        "streetAddress": _text(address.get("streetAddress")), "postalCode": _text(address.get("postalCode")),
        "locality": _text(address.get("locality")), "country": _text(address.get("country")),
        "userType": _text(user.get("userType")), "ean": _text(plan2learn.get("ean")),
        "managerExternalId": _text(manager.get("value") if isinstance(manager, dict) else manager),
    }
    for key, column in _ENTERPRISE_COLUMNS.items():
        values[column] = _text(enterprise.get(key))
    for key, value in enterprise.items():  # department, costCenter, ...: as attribute paths
        if key not in _ENTERPRISE_COLUMNS and key != "manager" and isinstance(value, str | int):
            values[f"{ENTERPRISE_USER}:{key}"] = _text(value)
    jobs = plan2learn.get("employments") if isinstance(plan2learn.get("employments"), list) else []
    if not jobs:
        return [{**values, "title": _text(user.get("title"))}]
    return [{**values, "orgUnit": _text(job.get("value")) if isinstance(job, dict) else None,
             "title": _text(job.get("title") if isinstance(job, dict) and job.get("title") else user.get("title")),
             "startDate": _day(job.get("startDate")) if isinstance(job, dict) else None,
             "endDate": _day(job.get("endDate")) if isinstance(job, dict) else None}
            for job in jobs]


def _unit_values(group: dict[str, Any]) -> list[dict[str, str | None]]:
    unit = group.get(P2L_GROUP) if isinstance(group.get(P2L_GROUP), dict) else {}
    parent = unit.get("parent")
    return [{"unitCode": _text(unit.get("unitCode")), "displayName": _text(group.get("displayName")),
             "parentUnitCode": _text(parent.get("value") if isinstance(parent, dict) else parent),
             "unitType": _text(unit.get("unitType")), "ean": _text(unit.get("ean"))}]
