"""Rows into validated people and org units: what a sync would write, before any database.

A person is every row with their ``externalId``: one employment per ``orgUnit``, the other
columns the same on each row. A person is either whole or left out: any row error (a bad
date or EAN, a userName another person has, rows that disagree) leaves the person out and
reports every error with its file and line, so a sync never half-applies a person. A left-out
person's ``externalId`` is on their errors (``RowError.key``): a full sync must not take them
for a leaver. Units likewise, keyed by ``unitCode``.

Checks that need only the file are made here (duplicates, parent cycles, manager cycles among
the file's people); checks that need the database (an unknown orgUnit or manager, a userName
held by another owner) are the diff's.

Memory: a person's rows may be anywhere in the file, so people are gathered in a dict until
the last row, as one compact entry each (the first row's values, the lines, the employments),
never as the rows themselves. Repeating values share one string. Measured: 100,000 people in
110,000 rows of 14 columns hold about 2.2 KB a person (some 220 MB) once read, in 1.6 s.
"""
from __future__ import annotations

import datetime as dt
import gc
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from stdnum import ean as gs1_ean
from stdnum.exceptions import ValidationError as StdnumError

from ..scim.schemas import CORE_USER, ENTERPRISE_USER
from ..scim.validators import P2L_USER
from .mapping import COLUMNS, UNITS, USERS, SyncRefused, leaf_attribute
from .readers import SourceRow

__all__ = ["EmploymentRecord", "PersonRecord", "RowError", "SyncRefused", "UnitRecord", "parse_date",
           "content_digest", "digest", "manager_cycles", "no_cyclic_gc", "read_people", "read_units", "shared_user_names"]

#: columns of a user row that belong to the employment, not the person: they may differ across
#: a person's rows (``title`` is the employment's title; the person's is the first row's)
EMPLOYMENT_COLUMNS = frozenset({"orgUnit", "startDate", "endDate", "title"})
_USER_COLUMNS = frozenset(COLUMNS[USERS])
_UNIT_COLUMNS = frozenset(COLUMNS[UNITS])
#: columns whose values repeat across people (units, titles, dates, common names): one string
#: object per distinct value instead of one per row, a few hundred bytes a person at 100,000
SHARED_COLUMNS = frozenset({"givenName", "familyName", "title", "userType", "locality", "postalCode", "country",
                            "orgUnit", "managerExternalId", "startDate", "endDate", "parentUnitCode", "unitType"})
_TRUE = {"true", "1", "yes", "y", "ja", "j", "x"}
_FALSE = {"false", "0", "no", "n", "nej"}


@dataclass(slots=True)
class RowError:
    """Why one line of a file is not applied. ``key``: the row's externalId (users) or unitCode
    (units) when it has one: that person or unit is left out, not absent."""

    file: str
    line: int
    reason: str
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}: {self.reason}"


@dataclass(slots=True)
class EmploymentRecord:
    """One employment: the person works in the unit with this unitCode. Dates are
    ``YYYY-MM-DDT00:00:00Z`` (the day as given; None when not given), an end date the end of its
    day (``T23:59:59Z``: the last day employed is still a working day). The first row's is primary."""

    unit_code: str
    start_date: str | None
    end_date: str | None
    title: str | None
    line: int
    primary: bool = False


@dataclass(slots=True)
class PersonRecord:
    """A valid person. ``resource``: the SCIM User as the file gives it, in canonical form, without
    the manager and the employments (those name other records: ``manager_external_id``,
    ``employments``); an empty cell is an absent attribute. ``provided``: the columns and attribute
    paths the file has (and the mapping fixes), for a diff that wants to leave others alone."""

    external_id: str
    lines: list[int]
    file: str
    user_name: str
    resource: dict[str, Any]
    employments: list[EmploymentRecord]
    manager_external_id: str | None
    provided: frozenset[str] = frozenset()
    #: what the person's rows were, hashed (``Roster``); empty for people not read from a file
    rows_digest: bytes = b""


#: part of every digest: raise it when a change of the code makes the same rows write something
#: else, so that the next sync of every source compares every person once again
DIGEST_FORM = 2


def digest(rows_digest: bytes, targets: str) -> str:
    """A person as a sync last saw them, as 32 hex digits: what their rows were (``rows_digest``:
    a ``Roster``'s hash of the rows as read, or ``content_digest``) and ``targets``, what their
    codes name in the database now (the units' and the manager's ids: a unitCode can come to
    name another unit without a write of the person). Equal digests mean the sync would want
    the same user (``storage.sources.SyncDigest``)."""
    return hashlib.blake2b(rows_digest + targets.encode(), digest_size=16).hexdigest()


def content_digest(person: PersonRecord) -> bytes:
    """What a person not read from a file (a sync's JSON) says: their resource, employments
    (lines left out), manager and the attributes provided, hashed."""
    jobs = [(j.unit_code, j.start_date, j.end_date, j.title, j.primary) for j in person.employments]
    text = orjson.dumps([DIGEST_FORM, person.resource, jobs, person.manager_external_id, sorted(person.provided)],
                        option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(text, digest_size=16).digest()


@dataclass(slots=True)
class UnitRecord:
    """A valid org unit. ``attributes``: further attribute paths a mapping set (canonical path ->
    value). ``read_units`` lists parents (that are in the file) before their children."""

    unit_code: str
    display_name: str
    parent_unit_code: str | None
    unit_type: str | None
    ean: str | None
    line: int
    file: str
    attributes: dict[str, Any] = field(default_factory=dict)
    provided: frozenset[str] = frozenset()


# --- values ------------------------------------------------------------------------------------

def parse_date(text: str, date_format: str | None = None) -> dt.date:
    """A date cell: the mapping's format (or YYYY-MM-DD, the form an XLSX date cell reads as), else
    YYYY-MM-DD or DD-MM-YYYY. ValueError otherwise."""
    formats = (date_format, "%Y-%m-%d") if date_format else ("%Y-%m-%d", "%d-%m-%Y")
    for fmt in formats:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    expected = f"{date_format!r} or YYYY-MM-DD" if date_format else "YYYY-MM-DD or DD-MM-YYYY"
    raise ValueError(f"is not a date ({expected})")


def _day(date: dt.date) -> str:
    return f"{date.isoformat()}T00:00:00Z"


@lru_cache(maxsize=65536)
def _iso_day(text: str, date_format: str | None) -> str:
    """A date cell as ``YYYY-MM-DDT00:00:00Z``: cached, as a file has few distinct dates (and
    strptime is slow); the cached string is shared by every employment with that date. The
    cache holds 65,536 (179 years of days; with 8,192 the 13,000 start dates of 35 years in
    a payroll file missed half the time)."""
    return _day(parse_date(text, date_format))


@lru_cache(maxsize=8192)
def _ean(text: str) -> str:
    """A 13-digit GS1 number with a valid check digit, compacted; ValueError otherwise."""
    compact = gs1_ean.compact(text)
    if len(compact) != 13 or not compact.isdigit():
        raise ValueError("is not a 13-digit EAN")
    try:
        return gs1_ean.validate(compact)
    except StdnumError as exc:
        raise ValueError(f"is not a valid EAN ({exc})") from exc


def _typed(kind: str, path: str, text: str, date_format: str | None) -> Any:
    """A mapped attribute's cell as the attribute's type."""
    attr = leaf_attribute(kind, path)
    if attr.type == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("is not a boolean (true/false)")
    if attr.type == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("is not a whole number") from None
    if attr.type == "decimal":
        try:
            return float(text.replace(",", "."))
        except ValueError:
            raise ValueError("is not a number") from None
    if attr.type == "dateTime":
        try:
            return _iso_day(text, date_format)
        except ValueError:
            pass
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("is not a date or an ISO 8601 date and time") from None
        moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
        return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    return text


def _clean(kind: str, values: dict[str, str | None], date_format: str | None, own: frozenset[str],
           shared: dict[Any, Any], reasons: list[str]) -> dict[str, Any]:
    """The row's values checked and normalised (EAN compacted, mapped attributes typed); a bad
    value is kept as text, with its reason added. Repeating values come out of ``shared``."""
    out: dict[str, Any] = {}
    for key, text in values.items():
        if text is None:
            out[key] = None
        elif key == "ean":
            try:
                out[key] = _ean(text)
            except ValueError as exc:
                reasons.append(f"ean {text!r} {exc}")
                out[key] = text
        elif key in own:
            out[key] = shared.setdefault(text, text) if key in SHARED_COLUMNS else text
        else:
            try:
                value = _typed(kind, key, text, date_format)
                out[key] = shared.setdefault(value, value) if isinstance(value, str) else value
            except ValueError as exc:
                reasons.append(f"{key} {text!r} {exc}")
                out[key] = text
    if out.get("email") is not None and out.get("email") == out.get("userName"):
        out["email"] = out["userName"]  # one string where the e-mail is the userName, as often
    return out


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while records are built: 100,000 people are a million
    small containers, none in a cycle, and the collections that walk them took half the time
    (100,000 people: 3.2 s with, 1.6 s without). Reference counting still frees as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _shown(value: Any) -> str:
    return "empty" if value is None else repr(value)


# --- people ------------------------------------------------------------------------------------

class _Person:
    """A person while their rows are read: the first row's values and what the rows added."""

    __slots__ = ("file", "lines", "values", "title", "jobs", "units", "no_unit_line", "errors", "provided")

    def __init__(self, file: str, line: int, values: dict[str, Any], provided: frozenset[str]):
        self.file = file
        self.lines = [line]
        self.values = values  # the person's columns (not EMPLOYMENT_COLUMNS) from the first row
        self.title: str | None = None
        self.jobs: list[EmploymentRecord] = []
        self.units: dict[str, int] = {}  # orgUnit (case-folded) -> line
        self.no_unit_line: int | None = None
        self.errors: list[RowError] = []
        self.provided = provided


def read_people(rows: Iterable[SourceRow]) -> tuple[list[PersonRecord], list[RowError]]:
    """The valid people of a users file (in the order they first appear) and the row errors."""
    with no_cyclic_gc():
        return _read_people(rows)


def _read_people(rows: Iterable[SourceRow]) -> tuple[list[PersonRecord], list[RowError]]:
    people: dict[str, _Person] = {}
    errors: list[RowError] = []
    provided_sets: dict[tuple[str, ...], frozenset[str]] = {}
    shared: dict[Any, Any] = {}
    for row in rows:
        external_id = row.values.get("externalId")
        if external_id is None:
            errors.append(RowError(row.file, row.line, "externalId is empty"))
            continue
        keys = tuple(row.values)
        provided = provided_sets.get(keys) or provided_sets.setdefault(keys, frozenset(keys))
        reasons = [row.problem] if row.problem else []
        values = _clean(USERS, row.values, row.date_format, _USER_COLUMNS, shared, reasons)
        if values.get("userName") is None:
            reasons.append("userName is empty")
        job = _employment(values, row, reasons)
        person_values = {k: v for k, v in values.items() if k not in EMPLOYMENT_COLUMNS}
        person = people.get(external_id)
        if person is None:
            person = people[external_id] = _Person(row.file, row.line, person_values, provided)
            person.title = values.get("title")
        else:
            person.lines.append(row.line)
            reasons += _disagreements(person, person_values)
        _add_employment(person, job, values.get("orgUnit"), row.line, reasons)
        person.errors += [RowError(row.file, row.line, reason, external_id) for reason in reasons]
    _duplicate_user_names(people)
    _manager_cycles(people)
    records = []
    for external_id in list(people):
        person = people.pop(external_id)
        if person.errors:
            errors += person.errors
        else:
            records.append(_person_record(external_id, person))
    errors.sort(key=lambda e: (e.file, e.line))
    return records, errors


def _employment(values: dict[str, Any], row: SourceRow, reasons: list[str]) -> EmploymentRecord | None:
    """The row's employment (None without orgUnit), its dates checked."""
    dates: dict[str, str | None] = {}
    for column in ("startDate", "endDate"):
        text = values.get(column)
        dates[column] = None
        if text is not None:
            try:
                dates[column] = _iso_day(text, row.date_format)
            except ValueError as exc:
                reasons.append(f"{column} {text!r} {exc}")
    start, end = dates["startDate"], dates["endDate"]
    if end is not None:  # the last day employed: the employment ends as that day does
        end = end.replace("T00:00:00Z", "T23:59:59Z")
    if start and end and end < start:  # ISO strings of four-digit years sort as the dates do
        reasons.append(f"endDate {values['endDate']!r} is before startDate {values['startDate']!r}")
    unit = values.get("orgUnit")
    if unit is None:
        return None
    return EmploymentRecord(unit, start, end, values.get("title"), row.line)


def _disagreements(person: _Person, values: dict[str, Any]) -> list[str]:
    """How a later row of a person contradicts their first row."""
    first = person.values
    out = []
    for key in dict.fromkeys([*first, *values]):
        old, new = first.get(key), values.get(key)
        same = old == new or (key == "userName" and isinstance(old, str) and isinstance(new, str)
                              and old.casefold() == new.casefold())
        if not same:
            out.append(f"{key} is {_shown(new)} here but {_shown(old)} on line {person.lines[0]} "
                       "(a person's rows must agree on everything but orgUnit, title, startDate and endDate)")
    return out


def _add_employment(person: _Person, job: EmploymentRecord | None, unit: str | None, line: int,
                    reasons: list[str]) -> None:
    """One employment per orgUnit; a person has either rows with an orgUnit or one row without."""
    if job is None:
        if person.units:
            reasons.append(f"orgUnit is empty here but given on line {next(iter(person.units.values()))}")
        elif person.no_unit_line is not None:
            reasons.append(f"a second row without orgUnit for this person (the first is line {person.no_unit_line})")
        else:
            person.no_unit_line = line
        return
    key = (unit or "").casefold()
    if person.no_unit_line is not None:
        reasons.append(f"orgUnit {unit!r} given here but empty on line {person.no_unit_line}")
    elif key in person.units:
        reasons.append(f"a second employment in orgUnit {unit!r} (the first is line {person.units[key]})")
    else:
        person.units[key] = line
        job.primary = not person.jobs
        person.jobs.append(job)


def _duplicate_user_names(people: dict[str, _Person]) -> None:
    """A userName (case-insensitive) given to several people: all of them are left out, as the
    file does not say which one it belongs to."""
    for holders in shared_user_names((ext, person.values.get("userName")) for ext, person in people.items()):
        for external_id in holders:
            person = people[external_id]
            others = ", ".join(f"{o!r} (line {people[o].lines[0]})" for o in holders if o != external_id)
            reason = f"userName {person.values['userName']!r} is also given to externalId {others}"
            person.errors += [RowError(person.file, line, reason, external_id) for line in person.lines]


def shared_user_names(names: Iterable[tuple[str, str | None]]) -> list[list[str]]:
    """The externalIds that give one userName (case-insensitively), a group per userName, from
    (externalId, userName) pairs."""
    first_holder: dict[str, str] = {}
    shared: dict[str, list[str]] = {}
    for external_id, name in names:
        if name is None:
            continue
        key = name.casefold()
        holder = first_holder.setdefault(key, external_id)
        if holder != external_id:
            shared.setdefault(key, [holder]).append(external_id)
    return list(shared.values())


def _manager_cycles(people: dict[str, _Person]) -> None:
    """Managers that lead back to the person within the file: a row error on each of their rows.
    (A cycle through people already in the database is the diff's to find.)"""
    for chain in manager_cycles({ext: person.values.get("managerExternalId") for ext, person in people.items()}):
        if len(chain) == 1:
            reason = "managerExternalId is the person themself"
        else:
            reason = "manager cycle: " + " -> ".join([*chain, chain[0]])
        for member in chain:
            person = people[member]
            person.errors += [RowError(person.file, line, reason, member) for line in person.lines]


def manager_cycles(managers: dict[str, str | None]) -> list[list[str]]:
    """The cycles that externalId -> managerExternalId makes among the keys of ``managers``,
    each from the person where it was found."""
    cycles = []
    done: set[str] = set()
    for start in managers:
        path: dict[str, int] = {}
        node: str | None = start
        while node is not None and node not in done and node not in path:
            path[node] = len(path)
            found = managers[node]
            node = found if found in managers else None
        if node is not None and node in path:
            cycles.append(list(path)[path[node]:])
        done.update(path)
    return cycles


def _person_record(external_id: str, person: _Person) -> PersonRecord:
    values = person.values
    return PersonRecord(
        external_id=external_id, lines=person.lines, file=person.file, user_name=values["userName"],
        resource=user_resource(values, person.title), employments=person.jobs,
        manager_external_id=values.get("managerExternalId"), provided=person.provided)


def user_resource(values: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    """The SCIM User a person's values give: canonical form, absent attributes left out."""
    get = values.get
    resource: dict[str, Any] = {"schemas": [CORE_USER], "externalId": get("externalId"), "userName": get("userName")}
    name = {k: get(k) for k in ("givenName", "familyName") if get(k) is not None}
    if name:
        resource["name"] = name
    for key, value in (("displayName", get("displayName")), ("title", title), ("userType", get("userType"))):
        if value is not None:
            resource[key] = value
    if get("email") is not None:
        resource["emails"] = [{"value": get("email"), "type": "work", "primary": True}]
    phones = [{"value": get(c), "type": t} for c, t in (("mobile", "mobile"), ("phone", "work")) if get(c) is not None]
    if phones:
        resource["phoneNumbers"] = phones
    address = {k: get(k) for k in ("streetAddress", "postalCode", "locality", "country") if get(k) is not None}
    if address:
        resource["addresses"] = [{"type": "work", **address}]
    if get("employeeNumber") is not None:
        resource[ENTERPRISE_USER] = {"employeeNumber": get("employeeNumber")}
    if get("ean") is not None:
        resource[P2L_USER] = {"ean": get("ean")}
    for path, value in values.items():
        if value is not None and path not in _USER_COLUMNS:
            set_path(resource, path, value)
    resource["schemas"] += [urn for urn in (ENTERPRISE_USER, P2L_USER) if urn in resource]
    return resource


def set_path(resource: dict[str, Any], path: str, value: Any) -> None:
    """Set a canonical attribute path (``attr``, ``attr.sub``, ``urn:...:attr[.sub]``)."""
    target = resource
    if path.startswith("urn:"):
        urn, _, path = path.rpartition(":")
        target = resource.setdefault(urn, {})
    head, _, sub = path.partition(".")
    if sub:
        target = target.setdefault(head, {})
        head = sub
    target[head] = value


# --- units -------------------------------------------------------------------------------------

def read_units(rows: Iterable[SourceRow]) -> tuple[list[UnitRecord], list[RowError]]:
    """The valid units of a units file, parents (in the file) before children, and the row errors."""
    units: dict[str, tuple[UnitRecord, list[str]]] = {}  # unitCode (case-folded) -> unit, its errors
    errors: list[RowError] = []
    provided_sets: dict[tuple[str, ...], frozenset[str]] = {}
    shared: dict[Any, Any] = {}
    for row in rows:
        code = row.values.get("unitCode")
        if code is None:
            errors.append(RowError(row.file, row.line, "unitCode is empty"))
            continue
        if code.casefold() in units:
            first = units[code.casefold()][0]
            errors.append(RowError(row.file, row.line, f"unitCode {code!r} is already given on line {first.line}", code))
            continue
        reasons = [row.problem] if row.problem else []
        values = _clean(UNITS, row.values, row.date_format, _UNIT_COLUMNS, shared, reasons)
        if values.get("displayName") is None:
            reasons.append("displayName is empty")
        keys = tuple(row.values)
        unit = UnitRecord(
            unit_code=code, display_name=values.get("displayName") or "", parent_unit_code=values.get("parentUnitCode"),
            unit_type=values.get("unitType"), ean=values.get("ean"), line=row.line, file=row.file,
            attributes={k: v for k, v in values.items() if k not in _UNIT_COLUMNS and v is not None},
            provided=provided_sets.get(keys) or provided_sets.setdefault(keys, frozenset(keys)))
        units[code.casefold()] = (unit, reasons)
    _parent_cycles(units)
    valid = {}
    for key, (unit, reasons) in units.items():
        if reasons:
            errors += [RowError(unit.file, unit.line, reason, unit.unit_code) for reason in reasons]
        else:
            valid[key] = unit
    errors.sort(key=lambda e: (e.file, e.line))
    return _parents_first(valid), errors


def _parent_cycles(units: dict[str, tuple[UnitRecord, list[str]]]) -> None:
    """A unit whose parents (within the file) lead back to it: an error on each unit of the cycle."""
    def parent(key: str) -> str | None:
        code = units[key][0].parent_unit_code
        return code.casefold() if code is not None and code.casefold() in units else None

    done: set[str] = set()
    for start in units:
        path: dict[str, int] = {}
        node: str | None = start
        while node is not None and node not in done and node not in path:
            path[node] = len(path)
            node = parent(node)
        if node is not None and node in path:
            chain = [units[k][0].unit_code for k in list(path)[path[node]:]]
            reason = ("parentUnitCode is the unit itself" if len(chain) == 1
                      else "parent cycle: " + " -> ".join([*chain, chain[0]]))
            for key in list(path)[path[node]:]:
                units[key][1].append(reason)
        done.update(path)


def _parents_first(units: dict[str, UnitRecord]) -> list[UnitRecord]:
    """The units ordered by depth within the file (a parent not in it counts as a root), then line."""
    depth: dict[str, int] = {}
    for start in units:
        chain = []
        node: str | None = start
        while node is not None and node not in depth:
            chain.append(node)
            code = units[node].parent_unit_code
            node = code.casefold() if code is not None and code.casefold() in units else None
        base = depth[node] + 1 if node is not None else 0
        for offset, key in enumerate(reversed(chain)):
            depth[key] = base + offset
    return sorted(units.values(), key=lambda u: (depth[u.unit_code.casefold()], u.line))
