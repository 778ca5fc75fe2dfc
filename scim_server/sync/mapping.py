"""How a customer's file is laid out: column names, delimiter, encoding, date format, fixed values.

Few HR, payroll or member systems can export our default columns, so a small TOML file
renames theirs to ours, or to any writable attribute path of the schemas (the enterprise
``department``, ``costCenter``), and can give every row a fixed value (``userType =
"External"`` for a member register)::

    delimiter = ";"                 # top level: both files; a table may override
    date_format = "%d.%m.%Y"

    [users.columns]
    Medarbejdernummer = ["externalId", "employeeNumber"]   # one column may feed several targets
    Afdeling = "orgUnit"
    Omkostningssted = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"

    [users.fixed]
    userType = "Employee"

Everything is checked when the mapping is loaded, never per row: a typo in a target
would silently drop that column from every person, and a full sync would then clear the
attribute for everyone. So an unknown target, a read-only or multi-valued attribute, or one
the sync sets itself refuses the whole run (``SyncRefused``, exit status 2).
"""
from __future__ import annotations

import codecs
import datetime as dt
import os
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..scim.schemas import CORE_GROUP, CORE_USER, ENTERPRISE_USER, Attribute, registry
from ..scim.validators import P2L_GROUP, P2L_USER


class SyncRefused(Exception):
    """The run is refused as a whole and nothing is written (exit status 2).

    The message names the file (or mapping) and says why: an unreadable file, a wrong
    encoding, a missing required column, an unknown column target in a mapping."""


USERS, UNITS = "users", "units"

#: our column names for each file, canonical spelling (files match them case-insensitively)
COLUMNS: dict[str, tuple[str, ...]] = {
    USERS: ("externalId", "userName", "givenName", "familyName", "displayName", "email", "mobile", "phone",
            "title", "streetAddress", "postalCode", "locality", "country", "ean", "employeeNumber", "userType",
            "orgUnit", "managerExternalId", "startDate", "endDate"),
    UNITS: ("unitCode", "displayName", "parentUnitCode", "unitType", "ean"),
}
REQUIRED: dict[str, tuple[str, ...]] = {USERS: ("externalId", "userName"), UNITS: ("unitCode", "displayName")}
RESOURCE_TYPE = {USERS: "User", UNITS: "Group"}

#: attribute paths (lower-cased) that one of our columns fills: a mapping naming the path gets
#: the column, so the record has one source for the attribute, not two that could disagree
PATH_COLUMNS: dict[str, dict[str, str]] = {
    USERS: {"externalid": "externalId", "username": "userName", "name.givenname": "givenName",
            "name.familyname": "familyName", "displayname": "displayName", "title": "title", "usertype": "userType",
            f"{ENTERPRISE_USER}:employeeNumber".lower(): "employeeNumber", f"{P2L_USER}:ean".lower(): "ean"},
    UNITS: {"displayname": "displayName", f"{P2L_GROUP}:unitCode".lower(): "unitCode",
            f"{P2L_GROUP}:unitType".lower(): "unitType", f"{P2L_GROUP}:ean".lower(): "ean"},
}

#: attributes (``Attribute.key``) a sync sets itself or never sets, with what to use instead
MANAGED: dict[str, dict[str, str]] = {
    USERS: {"active": "active follows the source (absence from a full snapshot, employment dates)",
            "password": "a sync never sets passwords",
            f"{ENTERPRISE_USER}:manager".lower(): "use the managerExternalId column",
            f"{P2L_USER}:employments".lower(): "use the orgUnit, title, startDate and endDate columns"},
    UNITS: {f"{P2L_GROUP}:parent".lower(): "use the parentUnitCode column",
            "members": "people are placed in units by the users file's orgUnit column"},
}
_CORE_URNS = {CORE_USER.lower(), CORE_GROUP.lower()}
_SETTINGS = ("delimiter", "encoding", "date_format")
_DELIMITER_WORDS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}


def _canonical(kind: str) -> dict[str, str]:
    return {c.lower(): c for c in COLUMNS[kind]}


def resolve_target(kind: str, target: str, where: str = "mapping") -> str:
    """Our column name or the canonical attribute path for a mapping target; ``SyncRefused``
    when it names nothing a sync can write."""
    if not isinstance(target, str) or not target.strip():
        raise SyncRefused(f"{where}: a column target must be a column name or an attribute path, not {target!r}")
    text = target.strip()
    column = _canonical(kind).get(text.lower())
    if column:
        return column
    found = registry().resource_type(RESOURCE_TYPE[kind]).resolve(text)
    if found is None:
        raise SyncRefused(f"{where}: unknown column or attribute path {target!r}; the {kind} columns are "
                          f"{', '.join(COLUMNS[kind])}, or an attribute path of the {RESOURCE_TYPE[kind]} schemas")
    attr, sub = found
    name = attr.name + (f".{sub.name}" if sub else "")
    path = name if attr.schema.lower() in _CORE_URNS else f"{attr.schema}:{name}"
    if path.lower() in PATH_COLUMNS[kind]:
        return PATH_COLUMNS[kind][path.lower()]
    leaf = sub or attr
    why = MANAGED[kind].get(attr.key)
    if why is None and (attr.read_only or leaf.read_only):
        why = "it is read-only"
    elif why is None and attr.multi_valued:
        why = "multi-valued attributes cannot be mapped (use the email, mobile and phone columns)"
    elif why is None and leaf.is_complex:
        why = "it is complex: name one of its sub-attributes, e.g. name.middleName"
    elif why is None and leaf.type == "binary":
        why = "binary attributes cannot be mapped"
    if why:
        raise SyncRefused(f"{where}: {target!r} cannot be a column target: {why}")
    return path


@cache
def leaf_attribute(kind: str, path: str) -> Attribute:
    """The attribute definition a canonical path (from ``resolve_target``) names, for its type."""
    found = registry().resource_type(RESOURCE_TYPE[kind]).resolve(path)
    if found is None:
        raise KeyError(path)
    return found[1] or found[0]


def _text(value: Any, where: str) -> str:
    """A fixed value as the cell text it stands for (TOML has numbers, booleans and dates)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float | dt.date):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    raise SyncRefused(f"{where}: a fixed value must be a string, number, boolean or date, not {value!r}")


@dataclass
class TableMapping:
    """The layout of one file (users or units). Built without arguments it is the default format.

    ``columns``: file column name (case-insensitive) -> our column name or attribute path, or a list
    of them for a column that feeds several targets. ``fixed``: target -> the value every row gets.
    ``delimiter``/``encoding``: None = detected. ``date_format``: None = ``YYYY-MM-DD`` or
    ``DD-MM-YYYY``; else a ``strptime`` format (``YYYY-MM-DD`` is accepted besides, which is how
    an XLSX date cell reads). Targets are checked and put in canonical spelling on construction.
    """

    kind: str = USERS
    columns: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)
    delimiter: str | None = None
    encoding: str | None = None
    date_format: str | None = None
    #: where the mapping came from, for messages: ``payroll.toml [users]``
    source: str = "mapping"
    _by_lower: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = self.source
        if self.kind not in COLUMNS:
            raise SyncRefused(f"{where}: unknown table {self.kind!r} (users or units)")
        self.delimiter = _delimiter(self.delimiter, where)
        self.encoding = _encoding(self.encoding, where)
        self.date_format = _date_format(self.date_format, where)
        if not isinstance(self.columns, dict) or not isinstance(self.fixed, dict):
            raise SyncRefused(f"{where}: 'columns' and 'fixed' must be tables")
        columns: dict[str, str | tuple[str, ...]] = {}
        for column, target in self.columns.items():
            key = column.strip().lower()
            if not key:
                raise SyncRefused(f"{where}: an empty file column name")
            if key in self._by_lower:
                raise SyncRefused(f"{where}: the file column {column!r} is mapped twice")
            raw = [target] if isinstance(target, str) else list(target) if isinstance(target, list | tuple) else [target]
            targets = tuple(dict.fromkeys(resolve_target(self.kind, t, f"{where} column {column!r}") for t in raw))
            if not targets:
                raise SyncRefused(f"{where}: the file column {column!r} has no target")
            self._by_lower[key] = targets
            columns[column] = targets[0] if len(targets) == 1 else targets
        self.columns = columns
        self.fixed = {resolve_target(self.kind, target, f"{where} fixed"): _text(value, f"{where} fixed {target!r}")
                      for target, value in self.fixed.items()}

    def targets(self, file_column: str) -> tuple[str, ...] | None:
        """The targets a file column is mapped to (case-insensitive), None when it is not mapped."""
        return self._by_lower.get(file_column.strip().lower())

    def mapped_from(self, target: str) -> list[str]:
        """The file columns mapped to a target: for a message about a missing column."""
        return [c for c, t in self.columns.items() if target == t or (isinstance(t, tuple) and target in t)]


@dataclass
class Mapping:
    """How both files of a source are laid out. ``Mapping()`` is the default format."""

    users: TableMapping = field(default_factory=lambda: TableMapping(USERS))
    units: TableMapping = field(default_factory=lambda: TableMapping(UNITS))
    source: str | None = None

    def table(self, kind: str) -> TableMapping:
        return self.users if kind == USERS else self.units


def load_mapping(path: str | os.PathLike[str] | None) -> Mapping:
    """The mapping in a TOML file (None: the default format). ``SyncRefused`` when the file cannot
    be read, is not TOML, or names anything unknown."""
    if path is None:
        return Mapping()
    try:
        with open(path, "rb") as file:
            raw = tomllib.load(file)
    except OSError as exc:
        raise SyncRefused(f"{path}: cannot read the mapping: {exc.strerror or exc}") from exc
    except ValueError as exc:  # TOMLDecodeError, or bytes that are not UTF-8
        raise SyncRefused(f"{path}: not a valid TOML mapping: {exc}") from exc
    return mapping_from_dict(raw, Path(path).name)


def mapping_from_dict(raw: dict[str, Any], source: str = "mapping") -> Mapping:
    """A mapping from parsed TOML (or the same shape from JSON)."""
    unknown = sorted(set(raw) - {*_SETTINGS, USERS, UNITS})
    if unknown:
        raise SyncRefused(f"{source}: unknown mapping settings: {', '.join(unknown)} "
                          f"(known: {', '.join(_SETTINGS)}, [users], [units])")
    tables = {}
    for kind in (USERS, UNITS):
        table = raw.get(kind, {})
        where = f"{source} [{kind}]"
        if not isinstance(table, dict):
            raise SyncRefused(f"{where}: must be a table")
        unknown = sorted(set(table) - {*_SETTINGS, "columns", "fixed"})
        if unknown:
            raise SyncRefused(f"{where}: unknown settings: {', '.join(unknown)} "
                              f"(known: columns, fixed, {', '.join(_SETTINGS)})")
        settings = {name: table.get(name, raw.get(name)) for name in _SETTINGS}
        tables[kind] = TableMapping(kind, columns=table.get("columns", {}), fixed=table.get("fixed", {}),
                                    source=where, **settings)
    return Mapping(users=tables[USERS], units=tables[UNITS], source=source)


def _delimiter(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = _DELIMITER_WORDS.get(value.lower(), value)
    if not isinstance(value, str) or len(value) != 1 or value in "\"\r\n":
        raise SyncRefused(f"{where}: delimiter must be one character (e.g. \";\" or \",\"), not {value!r}")
    return value


def _encoding(value: Any, where: str) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise LookupError(value)
        return codecs.lookup(value).name
    except LookupError as exc:
        raise SyncRefused(f"{where}: unknown encoding {value!r} (e.g. \"utf-8\", \"windows-1252\")") from exc


def _date_format(value: Any, where: str) -> str | None:
    """A strptime format that reads back the day, month and year it writes."""
    if value is None:
        return None
    sample = dt.date(2001, 2, 3)
    try:
        ok = isinstance(value, str) and dt.datetime.strptime(sample.strftime(value), value).date() == sample
    except ValueError:
        ok = False
    if not ok:
        raise SyncRefused(f"{where}: date_format {value!r} is not a strptime format with day, month and year "
                          "(e.g. \"%d.%m.%Y\")")
    return value
