"""A users file read once, lightly: who is in it, and what each person's rows were, hashed.

The nightly file of a payroll names 100,000 people, of whom a few hundred changed. Reading
every row into a checked ``PersonRecord`` (``records.read_people``: dates, EANs, the SCIM
document) took three times as long as the rest of such a run. So a sync reads the file in two
steps:

1. ``Roster.read_from`` goes through the file once and keeps, per person, their rows as read
   (the cells, joined), the few cells that other people or the database are looked up by
   (userName, managerExternalId, the orgUnits) and a hash of the rows with the file's layout
   (``TableReader.layout``: the columns' targets, the mapping's fixed values and date format,
   ``records.DIGEST_FORM``). The checks that span people (a userName given twice, a manager
   cycle) are made here on those cells, as ``records`` makes them.
2. The sync compares each person's hash, with the ids their codes name now, to the one it kept
   when it last wrote them (``records.digest``). ``Roster.records`` then reads, through
   ``records.read_people``, only the others: the changed, the new, and anyone a check that
   spans people concerns, so that such a row error is reported on every row it concerns.

Equal rows under an equal layout read as equal records, so a person left out of step 2 is one
step 2 would have found as it was. A row without externalId is always read (it is an error).

Memory: the rows are kept as one string each (the cells joined with NUL, which a text file
cannot hold: a decoded NUL is refused), about 300 bytes a row, and let go as step 2 reads them.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from .readers import TableReader
from .records import (
    DIGEST_FORM,
    PersonRecord,
    RowError,
    SyncRefused,
    manager_cycles,
    no_cyclic_gc,
    read_people,
    shared_user_names,
)

__all__ = ["Roster", "Seen"]

_SEP = "\x00"  # between the cells of a row (a text file holds no NUL: ``readers`` refuses one)


@dataclass(slots=True)
class Seen:
    """One person as the light read saw them: their rows (line, cells joined), the first row's
    userName and managerExternalId, and the orgUnit of each row that has one."""

    rows: list[tuple[int, str]]
    user_name: str | None
    manager_external_id: str | None
    unit_codes: list[str] = field(default_factory=list)
    rows_digest: bytes = b""


class Roster:
    """The people of one users file (``read_from``); see the module's docstring."""

    def __init__(self, reader: TableReader, people: dict[str, Seen], loose: list[tuple[int, str]]):
        self._reader = reader
        self.people = people  # externalId -> Seen, in the order people first appear
        self._loose = loose  # rows without an externalId: errors that ``records`` words
        #: people a check that spans people concerns: always read in full
        self.implicated: set[str] = set()
        for group in shared_user_names((ext, seen.user_name) for ext, seen in people.items()):
            self.implicated.update(group)
        for chain in manager_cycles({ext: seen.manager_external_id for ext, seen in people.items()}):
            self.implicated.update(chain)

    @classmethod
    def read_from(cls, reader: TableReader) -> Roster:
        """Go through the file once (a ``SyncRefused`` for a file that breaks down midway)."""
        with no_cyclic_gc():  # (as ``records.read_people``: 100,000 people, 1.6 s with, 0.9 s without)
            return cls._read_from(reader)

    @classmethod
    def _read_from(cls, reader: TableReader) -> Roster:
        # where the four cells are: an index (-1 for none) and the mapping's fixed value, read
        # inline as ``readers.cell`` reads them (a call per cell cost a third of the pass)
        (ext_at, ext_fixed), (name_at, name_fixed), (boss_at, boss_fixed), (unit_at, unit_fixed) = (
            _where(reader.position(target)) for target in ("externalId", "userName", "managerExternalId", "orgUnit"))
        people: dict[str, Seen] = {}
        loose: list[tuple[int, str]] = []
        for line, fields in reader.raw():
            try:
                joined = _SEP.join(fields)
            except TypeError:  # an empty XLSX cell is None; a row reads it as it reads ""
                joined = _SEP.join(f or "" for f in fields)
            count = len(fields)
            if joined.count(_SEP) != count - 1:
                raise SyncRefused(f"{reader.file}: line {line}: a NUL character: not a text file")
            value = fields[ext_at] if -1 < ext_at < count else None
            external_id = (value.strip() or None) if value else ext_fixed
            if external_id is None:
                loose.append((line, joined))
                continue
            seen = people.get(external_id)
            if seen is None:
                value = fields[name_at] if -1 < name_at < count else None
                name = (value.strip() or None) if value else name_fixed
                value = fields[boss_at] if -1 < boss_at < count else None
                boss = (value.strip() or None) if value else boss_fixed
                seen = people[external_id] = Seen([], name, boss)
            seen.rows.append((line, joined))
            value = fields[unit_at] if -1 < unit_at < count else None
            unit = (value.strip() or None) if value else unit_fixed
            if unit is not None:
                seen.unit_codes.append(unit)
        layout = b"%d\x1e%s\x1e" % (DIGEST_FORM, reader.layout)
        blake2b = hashlib.blake2b
        for seen in people.values():  # each row after its length: one row holding a separator is not two rows
            text = "".join([f"{len(joined)}\x1e{joined}" for _, joined in seen.rows])
            seen.rows_digest = blake2b(layout + text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        return cls(reader, people, loose)

    def records(self, leave_out: set[str]) -> tuple[list[PersonRecord], list[RowError]]:
        """``records.read_people`` of everyone but ``leave_out`` (never of the implicated), each
        record with its ``rows_digest``. Once only: the people read leave ``people``, and their
        rows are let go as they are read."""
        digests: dict[str, bytes] = {}
        pending: list[tuple[int, str] | None] = []
        for external_id in [e for e in self.people if e not in leave_out or e in self.implicated]:
            seen = self.people.pop(external_id)  # (when everyone is read: 25 MB less at the peak)
            digests[external_id] = seen.rows_digest
            pending += seen.rows
        pending += self._loose
        self._loose = []
        pending.sort(key=_line)
        people, errors = read_people(self._rows(pending))
        for person in people:
            person.rows_digest = digests[person.external_id]
        return people, errors

    def _rows(self, pending: list[tuple[int, str] | None]) -> Iterator:
        row = self._reader.row
        for i, item in enumerate(pending):
            line, joined = item  # type: ignore[misc]
            pending[i] = None
            yield row(line, joined.split(_SEP))


def _where(position: int | str | None) -> tuple[int, str | None]:
    """A ``TableReader.position`` as (the cell's index or -1, the fixed value or None)."""
    return (position, None) if isinstance(position, int) else (-1, position)


def _line(item: tuple[int, str] | None) -> int:
    return item[0]  # type: ignore[index]
