"""A users or units file, streamed into rows keyed by our column names.

A payroll export can hold 100,000 people, so nothing here keeps the file or its rows: a CSV
is read line by line through ``csv`` and an XLSX through openpyxl's read-only mode, and
``read_table`` hands out one ``SourceRow`` at a time. The header is read at once, so a
file that cannot be read, or lacks a required column, is refused before the first row.

What the reader settles, so that ``records`` sees one shape whatever the file was:

* the format: ``.xlsx`` (by suffix or the zip magic), else CSV;
* a CSV's encoding (UTF-8 with or without BOM, else Windows-1252; checked over the whole
  file before the first row, so a wrong byte on line 90,000 refuses the run instead of
  turning up after rows were handed out) and delimiter (comma, semicolon or tab, from the
  header line);
* column names (case-insensitive, any order, renamed by the mapping) and fixed values;
* cell text: stripped, empty = None ("no value"), XLSX dates and numbers as text.

It does not judge values (dates, EANs, duplicates): that is ``records``' job, per row.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .mapping import COLUMNS, REQUIRED, SyncRefused, TableMapping

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # Excel 97-2003 .xls (and encrypted .xlsx)
_CHUNK = 1 << 20
_DELIMITERS = (",", ";", "\t")
_NL, _NUL = b"\n", b"\x00"


@dataclass(slots=True)
class SourceRow:
    """One data row. ``values``: our column name or attribute path -> text, None for an empty
    cell; only the columns the file has (and the mapping's fixed values) are keys.
    ``line``: the file's line where the row starts (header = 1). ``date_format``: the mapping's,
    for ``records`` to read dates with. ``problem``: why the row itself is malformed (a CSV row
    with the wrong number of fields), for ``records`` to report as a row error."""

    file: str
    line: int
    values: dict[str, str | None]
    date_format: str | None = None
    problem: str | None = None


class TableReader(Iterator[SourceRow]):
    """The rows of one file, read as they are asked for. The header has been read: ``columns``
    are the targets the file gives (with the fixed ones), ``warnings`` the columns it ignores.
    Iterating may still raise ``SyncRefused`` for a CSV that breaks down midway. Closes its
    file when exhausted; ``close()`` (or ``with``) for a reader left early.

    Besides ``SourceRow``s it hands out the rows as read (``raw()``: the line and the cells),
    for a reader that looks at a few cells of every row (``position``) and makes a
    ``SourceRow`` (``row``) only of the rows it wants: a sync that finds most people as they
    were last time reads them that way. ``layout`` says, as bytes, everything besides the
    cells that decides what a row becomes: equal layouts and equal cells are equal rows."""

    def __init__(self, file: str, kind: str, columns: tuple[str, ...], warnings: list[str],
                 cells: Iterator[tuple[int, list[Any]]], closers: list[Callable[[], Any]], *,
                 plan: list[tuple[int, tuple[str, ...]]], width: int, needed: int, strict: bool,
                 table: TableMapping):
        self.file = file
        self.kind = kind
        self.columns = columns
        self.warnings = warnings
        self._cells = cells
        self._closers = closers
        self._plan = plan
        self._width = width
        self._needed = needed
        self._strict = strict
        self._fixed = table.fixed
        self._date_format = table.date_format
        self._rows = (self.row(line, fields) for line, fields in self._raw())
        self.layout = repr((kind, plan, width, needed, strict, sorted(table.fixed.items()),
                            table.date_format)).encode()

    def __iter__(self) -> TableReader:
        return self

    def __next__(self) -> SourceRow:
        try:
            return next(self._rows)
        except BaseException:
            self.close()
            raise

    def raw(self) -> Iterator[tuple[int, list[Any]]]:
        """The rows that are not blank, as (line, cells): a cell is text or None (an empty XLSX
        cell), untrimmed. Closes the file when exhausted, as iterating does."""
        try:
            yield from self._raw()
        finally:
            self.close()

    def _raw(self) -> Iterator[tuple[int, list[Any]]]:
        for line, fields in self._cells:
            try:
                blank = not "".join(fields).strip()  # one C call (a generator over the cells: 5 us)
            except TypeError:  # an XLSX row has None for an empty cell
                blank = not any(f and f.strip() for f in fields)
            if not blank:
                yield line, fields

    def position(self, target: str) -> int | str | None:
        """Where a row's value of ``target`` is: its cell's index, the mapping's fixed value
        (a str), or None when the file does not give it. ``row`` reads the cell as stripped
        text, empty = None."""
        for index, targets in self._plan:
            if target in targets:
                return index
        return self._fixed.get(target)

    def row(self, line: int, fields: list[Any]) -> SourceRow:
        """The ``SourceRow`` of a row ``raw()`` gave: values under their targets, stripped,
        empty = None. A row with values beyond the header is malformed, and so (``strict``:
        CSV) is one that stops before the header's last named column: a cut or unbalanced
        line, whose missing cells would otherwise clear attributes."""
        values: dict[str, str | None] = dict(self._fixed)
        count = len(fields)
        for index, targets in self._plan:
            value = fields[index] if index < count else None
            value = (value.strip() or None) if value is not None else None
            for target in targets:
                values[target] = value
        problem = None
        width = self._width
        if self._strict and count < self._needed:
            problem = f"the row has {count} fields, the header {width}"
        elif count > width and any(f and f.strip() for f in fields[width:]):
            problem = f"the row has {count} fields, the header {width}"
        return SourceRow(self.file, line, values, self._date_format, problem)

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            close()

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_table(source: Source, name: str | None, table: TableMapping) -> TableReader:
    """Stream a users or units file (``table.kind``) as ``SourceRow``s.

    ``source``: a path, the file's bytes, or a binary stream (an upload). ``name``: the file's
    name in rows and messages (default: the path's name). ``SyncRefused`` when the file cannot
    be read, is neither CSV nor XLSX, has no header or lacks a required column."""
    closers: list[Callable[[], Any]] = []
    try:
        stream, file, suffix = _open(source, name, closers)
        head = stream.read(8)
        stream.seek(0)
        if head.startswith(_OLE_MAGIC):
            raise SyncRefused(f"{file}: an old Excel (.xls) or encrypted workbook cannot be read: "
                              "save it as .xlsx or CSV")
        if head.startswith(_ZIP_MAGIC) or suffix in (".xlsx", ".xlsm"):
            header, cells, strict = _xlsx(stream, file, closers)
        else:
            header, cells, strict = _csv(stream, file, table, closers)
        plan, columns, warnings = _plan(header, file, table)
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    named = [index for index, text in enumerate(header) if text and text.strip()]
    return TableReader(file, table.kind, columns, warnings, cells, closers, plan=plan, width=len(header),
                       needed=named[-1] + 1 if named else 0, strict=strict, table=table)


def _open(source: Source, name: str | None, closers: list[Callable[[], Any]]) -> tuple[IO[bytes], str, str]:
    """A seekable binary stream of the source, its name and its suffix."""
    if isinstance(source, bytes | bytearray | memoryview):
        file = name or "upload"
        return io.BytesIO(bytes(source)), file, Path(file).suffix.lower()
    if hasattr(source, "read"):
        stream: IO[bytes] = source  # type: ignore[assignment]
        file = name or Path(str(getattr(source, "name", "upload"))).name
        if not (getattr(stream, "seekable", lambda: False)()):
            spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # closed by the reader
            closers.append(spool.close)
            while chunk := stream.read(_CHUNK):
                spool.write(chunk)
            spool.seek(0)
            stream = spool  # type: ignore[assignment]
        return stream, file, Path(file).suffix.lower()
    path = Path(source)  # type: ignore[arg-type]
    file = name or path.name
    try:
        opened = open(path, "rb")  # closed by the reader
    except OSError as exc:
        raise SyncRefused(f"{file}: cannot read the file: {exc.strerror or exc}") from exc
    closers.append(opened.close)
    return opened, file, path.suffix.lower()


# --- CSV ---------------------------------------------------------------------------------------

def _csv(stream: IO[bytes], file: str, table: TableMapping, closers: list[Callable[[], Any]]
         ) -> tuple[list[str | None], Iterator[tuple[int, list[str]]], bool]:
    encoding = _encoding(stream, file, table.encoding)
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    # detach, not close: the stream is closed by whoever opened it (us, or the caller for an upload)
    closers.append(text.detach)
    first = text.readline()
    if not first.strip():
        raise SyncRefused(f"{file}: line 1 must be the header row, and it is empty")
    delimiter = table.delimiter or _sniff(first)
    reader = csv.reader(itertools.chain([first], text), delimiter=delimiter)
    try:
        header: list[str | None] = list(next(reader))
    except csv.Error as exc:
        raise SyncRefused(f"{file}: line 1: the header is not valid CSV: {exc}") from exc

    def records() -> Iterator[tuple[int, list[str]]]:
        done = reader.line_num
        try:
            for fields in reader:
                start, done = done + 1, reader.line_num
                yield start, fields
        except csv.Error as exc:
            raise SyncRefused(f"{file}: line {done + 1}: not valid CSV: {exc}") from exc

    return header, records(), True


def _encoding(stream: IO[bytes], file: str, wanted: str | None) -> str:
    """The encoding the whole file decodes in: the mapping's, else UTF-8 (a BOM is skipped),
    else Windows-1252. Checked here over every byte, in chunks, so that decoding never fails
    after rows were handed out."""
    head = stream.read(4)
    stream.seek(0)
    if wanted is not None:
        candidates, label = ["utf-8-sig" if wanted == "utf-8" else wanted], f"{wanted} text, as the mapping says"
    elif head.startswith(codecs.BOM_UTF8):
        candidates, label = ["utf-8-sig"], "UTF-8 text, as its byte order mark says"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not head.startswith(codecs.BOM_UTF32_LE):
        candidates, label = ["utf-16"], "UTF-16 text, as its byte order mark says"  # Excel's "Unicode text"
    else:
        candidates, label = ["utf-8", "cp1252"], "UTF-8 or Windows-1252 text"
    failure = ""
    for encoding in candidates:
        failure = _undecodable(stream, encoding)
        stream.seek(0)
        if not failure:
            return encoding
    raise SyncRefused(f"{file}: not {label} ({failure}): save it as UTF-8")


def _undecodable(stream: IO[bytes], encoding: str) -> str:
    """Where the stream fails to decode (empty when it decodes), read in chunks."""
    # utf-8-sig's decoder counts positions after the BOM; plain UTF-8 reads the BOM as U+FEFF
    decoder = codecs.getincrementaldecoder("utf-8" if encoding == "utf-8-sig" else encoding)()
    lines = 1
    wide = encoding.startswith(("utf-16", "utf-32"))
    while True:
        chunk = stream.read(_CHUNK)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            at = max(0, min(exc.start, len(chunk)))
            return f"byte 0x{chunk[at:at + 1].hex() or '?'} on line {lines + chunk.count(_NL, 0, at)}"
        if not chunk:
            return ""
        if not wide and _NUL in chunk:
            return f"a NUL byte on line {lines + chunk.count(_NL, 0, chunk.index(_NUL))}: not a text file"
        lines += chunk.count(_NL)


def _sniff(line: str) -> str:
    """The delimiter a header line uses most, outside quotes (comma if none)."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


# --- XLSX --------------------------------------------------------------------------------------

def _xlsx(stream: IO[bytes], file: str, closers: list[Callable[[], Any]]
          ) -> tuple[list[str | None], Iterator[tuple[int, list[str | None]]], bool]:
    import openpyxl  # only when a workbook comes: it takes a while to import

    try:
        book = openpyxl.load_workbook(stream, read_only=True, data_only=True)
    except Exception as exc:  # a damaged or foreign zip: openpyxl raises many kinds
        raise SyncRefused(f"{file}: not a readable .xlsx workbook: {exc}") from exc
    closers.append(book.close)
    if not book.worksheets:
        raise SyncRefused(f"{file}: the workbook has no worksheet")
    sheet = book.worksheets[0]
    sheet.reset_dimensions()  # some writers store wrong dimensions; read what is there
    rows = enumerate(sheet.iter_rows(values_only=True), start=1)
    try:
        _, first = next(rows)
    except StopIteration:
        first = ()
    except Exception as exc:
        raise SyncRefused(f"{file}: the first sheet cannot be read: {exc}") from exc
    header = [_cell_text(v) for v in first]
    if not any(header):
        raise SyncRefused(f"{file}: row 1 of the first sheet must be the header row, and it is empty")

    def records() -> Iterator[tuple[int, list[str | None]]]:
        try:
            for line, cells in rows:
                yield line, [_cell_text(v) for v in cells]
        except SyncRefused:
            raise
        except Exception as exc:
            raise SyncRefused(f"{file}: the first sheet cannot be read: {exc}") from exc

    return header, records(), False


def _cell_text(value: Any) -> str | None:
    """A cell as the text a CSV export would have: dates as YYYY-MM-DD, whole numbers without
    ``.0`` (an EAN or employee number typed as a number), booleans as true/false."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


# --- columns and rows --------------------------------------------------------------------------

def _plan(header: list[str | None], file: str, table: TableMapping
          ) -> tuple[list[tuple[int, tuple[str, ...]]], tuple[str, ...], list[str]]:
    """Which file column gives which targets; refuses a duplicate or missing required column."""
    canonical = {c.lower(): c for c in COLUMNS[table.kind]}
    seen: dict[str, int] = {}
    source_of: dict[str, str] = {}
    plan: list[tuple[int, tuple[str, ...]]] = []
    unknown: list[str] = []
    for index, cell in enumerate(header):
        name = (cell or "").strip().lstrip("\ufeff").strip()
        if not name:
            continue
        key = name.lower()
        if key in seen:
            raise SyncRefused(f"{file}: the column {name!r} appears twice (columns {seen[key] + 1} and {index + 1})")
        seen[key] = index
        targets = table.targets(name) or ((canonical[key],) if key in canonical else None)
        if targets is None:
            unknown.append(name)
            continue
        for target in targets:
            if target in source_of:
                raise SyncRefused(f"{file}: the columns {source_of[target]!r} and {name!r} both give {target}")
            if target in table.fixed:
                raise SyncRefused(f"{file}: the column {name!r} gives {target}, which the mapping fixes "
                                  f"to {table.fixed[target]!r}")
            source_of[target] = name
        plan.append((index, targets))
    missing = [c for c in REQUIRED[table.kind] if c not in source_of and c not in table.fixed]
    if missing:
        named = [f"{c!r}" + (f" (mapped from {' or '.join(map(repr, table.mapped_from(c)))})"
                             if table.mapped_from(c) else "") for c in missing]
        raise SyncRefused(f"{file}: the required column{'s' if len(missing) > 1 else ''} {', '.join(named)} "
                          f"{'are' if len(missing) > 1 else 'is'} missing")
    warnings = []
    if unknown:
        warnings.append(f"{file}: columns ignored (not {table.kind} columns"
                        f"{' and not mapped' if table.columns else ''}): {', '.join(unknown)}")
    absent = [c for c in table.columns if c.strip().lower() not in seen]
    if absent:
        warnings.append(f"{file}: mapped columns not in the file: {', '.join(absent)}")
    return plan, (*source_of, *table.fixed), warnings
