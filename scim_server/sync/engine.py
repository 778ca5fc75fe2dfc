"""A sync run: a source's snapshot compared with what the source owns, then applied.

The client hands over the current state (a users file and a units file); the engine
decides per person and per unit whether to create, update, deactivate (delete, for an
empty unit) or do nothing, and reports each decision. Every write goes through the write
service (``provisioning``) with actor ``sync:<source>`` and the run's id on its audit
event; creates of people are batched (``create_many``).

Rules (issue 13, README "Syncing from HR, payroll and member registers"):

* a sync creates, changes and deactivates only what belongs to its source; a userName or
  unitCode held by another owner is a *conflict*, reported and not applied;
* full mode: the source's people missing from the file are leavers (their open employments
  end today, so the leaver rule makes them inactive; external users are deactivated), and
  its units missing from the file are deleted when empty and kept (reported) otherwise;
  ``partial`` applies the rows given and nothing else;
* the deactivation guard refuses a full sync that would deactivate more than the limit;
* only the attributes the file provides (its columns) are compared and written: what an IdP
  added to a person is left alone;
* a run that changes nothing writes nothing (no audit event): running the same files again
  is idempotent;
* a person is compared only when their rows changed since the source last wrote them, or
  someone else has written their user since (``records.digest``, ``sources.SyncDigest``): a
  nightly file in which 1 % of the people changed reads, checks and compares those 1 %
  (``roster``: the file is gone through lightly first, then only those people are read).
"""
from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from ..provisioning import Provisioning
from ..provisioning.service import WriteItem, load_resource
from ..scim.errors import ScimError
from ..scim.marshal import format_datetime
from ..scim.schemas import CORE_GROUP, ENTERPRISE_USER
from ..scim.validators import P2L_GROUP, P2L_USER
from ..storage import audit, sources
from ..storage.employments import parse_datetime
from ..storage.stores import TenantScope
from .mapping import Mapping, SyncRefused, load_mapping
from .readers import read_table
from .records import PersonRecord, RowError, UnitRecord, content_digest, digest, read_units
from .roster import Roster

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#: a column of the users file -> the top-level attribute it writes (extension ones as (urn, name))
_TOP_LEVEL = {
    "externalId": "externalId", "userName": "userName", "givenName": "name", "familyName": "name",
    "displayName": "displayName", "email": "emails", "mobile": "phoneNumbers", "phone": "phoneNumbers",
    "title": "title", "streetAddress": "addresses", "postalCode": "addresses", "locality": "addresses",
    "country": "addresses", "userType": "userType", "ean": (P2L_USER, "ean"),
    "employeeNumber": (ENTERPRISE_USER, "employeeNumber"), "orgUnit": (P2L_USER, "employments"),
    "startDate": (P2L_USER, "employments"), "endDate": (P2L_USER, "employments"),
    "managerExternalId": (ENTERPRISE_USER, "manager"),
}
#: the plan2learn employments as ``audit.diff`` names them: a change of them is written by a PUT
EMPLOYMENTS_KEY = f"{P2L_USER}:employments"
#: the summary line's keys, in its order
SUMMARY_KEYS = ("created", "updated", "unchanged", "deactivated", "conflicts", "errors")


@dataclass
class SyncOptions:
    source: str
    users_file: str | bytes | None = None
    units_file: str | bytes | None = None
    mapping: Mapping | None = None
    partial: bool = False
    dry_run: bool = False
    #: "N" or "P%" (None: the tenant's setting, else 10 users or 5 %, whichever is larger)
    max_deactivations: str | None = None
    #: names for files given as bytes (an HTTP upload)
    users_name: str = "users"
    units_name: str = "units"
    #: records already read (JSON over HTTP): (units, people, row errors), instead of files
    records: tuple[list[UnitRecord] | None, list[PersonRecord] | None, list[RowError]] | None = None


@dataclass
class SyncResult:
    run_id: str | None
    #: "applied", "dry-run" or "refused"
    status: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMMARY_KEYS, 0))
    errors: list[RowError] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    #: the diff, one line per decision (a dry run's output; kept for applied runs too)
    changes: list[str] = field(default_factory=list)
    message: str | None = None

    @property
    def summary(self) -> str:
        return ", ".join(f"{key} {self.counts[key]}" for key in SUMMARY_KEYS)

    @property
    def exit_status(self) -> int:
        if self.status == "refused":
            return 2
        return 1 if self.errors else 0

    def as_json(self) -> dict[str, Any]:
        return {"runId": self.run_id, "status": self.status, **self.counts,
                "rowErrors": [{"file": e.file, "line": e.line, "reason": e.reason} for e in self.errors],
                "conflictList": self.conflicts, "message": self.message}


class Refused(Exception):
    """The run is refused as a whole (nothing written): the deactivation guard."""


class SnapshotSync:
    """One run of one source. ``run()`` reads, plans and (unless a dry run) applies."""

    def __init__(self, session: Session, tenant_id: int, settings: dict[str, Any], options: SyncOptions,
                 base_url: str, progress: Callable[[int, int], None] | None = None):
        self.session = session
        self.tenant_id = tenant_id
        self.settings = settings
        self.options = options
        self.base_url = base_url
        self.progress = progress or (lambda done, total: None)
        self.result = SyncResult(None, "dry-run" if options.dry_run else "applied")
        self._frozen = False  # the cyclic collector leaves the roster alone (``_read``)

    # ---------------------------------------------------------------- the run
    def run(self, run_id: str | None = None) -> SyncResult:
        """Read, plan, apply (or, for a dry run, undo), and log the run. ``run_id``: a run logged
        already (``start``), for a run in the background that a client is polling."""
        options = self.options
        source = sources.source(self.session, self.tenant_id, options.source)
        started_by = audit.current.get()
        run = sources.run_by_id(self.session, self.tenant_id, run_id) if run_id else None
        if run is None:
            run = sources.start_run(self.session, self.tenant_id, source.id, started_by.actor,
                                    "partial" if options.partial else "full", options.dry_run)
        # every change of the run, the leaver rule's included, is the source's, with the run's id
        token = audit.current.set(audit.Actor(f"sync:{source.name}", started_by.request_id, run.id))
        self.result.run_id = run.id
        self.service = Provisioning(self.session, TenantScope(self.tenant_id, self.settings, source_id=source.id),
                                    self.base_url, max_patch_operations=1000)
        self.source_id = source.id
        self.provenance: dict[str, Any] = {}
        try:
            units, people = self._read()
            savepoint = self.session.begin_nested()
            try:
                self._analyzed_at = 500
                self._sync_units(units)
                if self.result.counts["created"]:  # the people's statements see the new units
                    sources.refresh_statistics(self.session)  # (0.65 s at 100,000 users: not nightly)
                self._sync_people(people)
                if not options.partial:
                    self._leavers(self._in_file | self._left_out_people)
                    self._drop_units({u.unit_code.lower() for u in units} | self._left_out_units)
                self.service.record_events()
            except BaseException:
                savepoint.rollback()
                raise
            if options.dry_run:
                savepoint.rollback()  # everything was done to count and report it, then undone
            else:
                savepoint.commit()
        except (SyncRefused, Refused) as exc:  # nothing was written: nothing is counted but the errors
            self.result.status, self.result.message = "refused", str(exc)
            self.result.changes = []
            self.result.counts = dict.fromkeys(SUMMARY_KEYS, 0)
        finally:
            self._thaw()  # (a run that stopped before ``_sync_people`` did)
            audit.current.reset(token)
        result = self.result
        result.counts["errors"] = len(result.errors)
        result.counts["conflicts"] = len(result.conflicts)
        sources.finish_run(run, result.status, dict(result.counts), {
            "errors": [{"file": e.file, "line": e.line, "reason": e.reason} for e in result.errors],
            "conflicts": result.conflicts, "changes": result.changes[:10000]}, result.message)
        self.session.flush()
        return result

    def _read(self) -> tuple[list[UnitRecord], list[PersonRecord] | Roster]:
        """Both files, read and checked before anything is written (a refusal writes nothing):
        the units in full, the people as a ``Roster`` (``_sync_people`` reads in full only the
        people it has to compare). People and units with a row error are left out of the run,
        but are not absent from the file: a leaver is someone the file does not name at all."""
        options = self.options
        mapping = options.mapping or load_mapping(None)
        units: list[UnitRecord] = []
        people: list[PersonRecord] | Roster = []
        self._left_out_people: set[str] = set()
        self._left_out_units: set[str] = set()
        if options.records is not None:
            given_units, given_people, errors = options.records
            self.result.errors += errors
            self._left_out_people = {e.key for e in errors if e.key and e.file == options.users_name}
            self._left_out_units = {e.key.lower() for e in errors if e.key and e.file == options.units_name}
            return given_units or [], given_people or []
        if options.units_file is not None:
            name = options.units_name if isinstance(options.units_file, bytes) else None
            units, errors = read_units(read_table(options.units_file, name, mapping.table("units")))
            self.result.errors += errors
            self._left_out_units = {e.key.lower() for e in errors if e.key}
        if options.users_file is not None:
            name = options.users_name if isinstance(options.users_file, bytes) else None
            people = Roster.read_from(read_table(options.users_file, name, mapping.table("users")))
            # a large roster's few hundred thousand objects hold no cycles: the cyclic collector
            # leaves them alone until ``_sync_people`` has let them go (``gc.unfreeze``), where
            # its full collections walked them over and over (0.5 s of a 1 %-changed run). It
            # is the whole process's: a small upload to a web worker does without it.
            self._frozen = len(people.people) >= 10_000
            if self._frozen:
                gc.freeze()
        return units, people

    def _thaw(self) -> None:
        if self._frozen:
            gc.unfreeze()
            self._frozen = False

    def _has(self, table: str) -> bool:
        """Did the run get this table (a file, or a list over HTTP)? A full sync only judges
        absence from a table it was given."""
        options = self.options
        if options.records is not None:
            return options.records[0 if table == "units" else 1] is not None
        return (options.units_file if table == "units" else options.users_file) is not None

    def _change(self, line: str) -> None:
        self.result.changes.append(line)

    def _count(self, key: str) -> None:
        self.result.counts[key] += 1

    def _write(self, write: Callable[[], Any], what: str, file: str = "(stored data)", line: int = 0,
               key: str | None = None) -> Any | None:
        """One write, alone in a savepoint: a refusal is the error of the row it came from (a
        cycle through stored people or units, say), named by its file and line."""
        try:
            return self.service.in_savepoint(write)
        except ScimError as exc:
            self.result.errors.append(RowError(file, line, f"{what}: {exc.detail}", key))
            return None

    # ------------------------------------------------------------------ units
    def _sync_units(self, units: list[UnitRecord]) -> None:
        self.units = sources.units_by_code(self.session, self.tenant_id)
        new: dict[str, tuple[UnitRecord, str | None, dict[str, Any]]] = {}  # by key: created together
        for record in units:  # parents before children (read_units' order)
            key = record.unit_code.lower()
            current = self.units.get(key)
            if current is not None and current.source_id != self.source_id:
                self.result.conflicts.append(f"unit {record.unit_code}: unitCode held by another owner")
                continue
            parent_id = None
            if record.parent_unit_code:
                if record.parent_unit_code.lower() in new:
                    self._create_units(new)  # the parent is new too: the units waiting are made first
                parent = self.units.get(record.parent_unit_code.lower())
                if parent is None:
                    self.result.errors.append(RowError(record.file, record.line,
                                                       f"unknown parentUnitCode '{record.parent_unit_code}'"))
                    continue
                parent_id = parent.id
            body = _unit_body(record, parent_id)
            if current is None:
                new[key] = (record, parent_id, body)
                continue
            changed = _unit_changes(current, record, parent_id)
            if not changed:
                self._count("unchanged")
                continue
            operations = [{"op": "replace", "path": path, "value": new_value} if new_value is not None else
                          {"op": "remove", "path": path} for path, (_, new_value) in changed.items()]
            written = self._write(lambda current=current, operations=operations: self.service.patch(
                "Group", current.id, {"schemas": [PATCH_OP], "Operations": operations}, provenance=self.provenance),
                f"unit {record.unit_code}", record.file, record.line, record.unit_code)
            if written is not None:
                self._count("updated")
                self._change(f"unit {record.unit_code}: updated " + "; ".join(
                    f"{path.rsplit(':', 1)[-1]}: {old!r} -> {new_value!r}" for path, (old, new_value) in changed.items()))
        self._create_units(new)

    def _create_units(self, new: dict[str, tuple[UnitRecord, str | None, dict[str, Any]]]) -> None:
        """The new units waiting (none the parent of another), created together (``create_many``,
        a thousand at a time: a first sync's 5,000 units one by one took 1.7 ms each); cleared."""
        waiting = list(new.values())
        new.clear()
        for start in range(0, len(waiting), 1000):
            chunk = waiting[start:start + 1000]
            results = self.service.create_many("Group", [(body, self.provenance) for _, _, body in chunk])
            for (record, parent_id, _), written in zip(chunk, results):
                if isinstance(written, ScimError):
                    self.result.errors.append(RowError(record.file, record.line, f"unit {record.unit_code}: "
                                                       f"{written.detail}", record.unit_code))
                    continue
                self.units[record.unit_code.lower()] = sources.OwnedUnit(
                    written.row.id, record.unit_code, record.display_name, parent_id, record.unit_type, record.ean,
                    self.source_id)
                self._count("created")
                self._change(f"unit {record.unit_code}: created")
            self._as_tables_grow()

    def _drop_units(self, in_file: set[str]) -> None:
        """Full mode: the source's units missing from the file are deleted if no one is employed in
        them and they have no child units; else kept and reported. Units without a units file
        are not the file's business: nothing is dropped."""
        if not self._has("units"):
            return
        gone = [u for key, u in self.units.items() if u.source_id == self.source_id and key not in in_file]
        usage = sources.unit_usage(self.session, [u.id for u in gone])
        by_id = {u.id: u for u in self.units.values()}
        for unit in sorted(gone, key=lambda u: -_depth(u, by_id)):  # children first
            people, children = usage[unit.id]
            if people or children:
                self._change(f"unit {unit.unit_code}: kept (not in the file, but {people} employed and "
                             f"{children} child units)")
                continue
            if self._write(lambda unit=unit: self.service.delete("Group", unit.id, provenance=self.provenance),
                           f"unit {unit.unit_code}") is not None:
                self._count("deactivated")
                self._change(f"unit {unit.unit_code}: deleted")
                if unit.parent_id in usage:  # its parent may be empty now
                    p, c = usage[unit.parent_id]
                    usage[unit.parent_id] = (p, c - 1)

    # ----------------------------------------------------------------- people
    def _sync_people(self, people: list[PersonRecord] | Roster) -> None:
        self.owned: dict[str, str] = {}  # externalId -> user id, of the source's users
        written_before: dict[str, str] = {}  # externalId -> digest, of users no one wrote since
        kept = sources.kept_digests(self.session, self.source_id)
        for page in sources.owned_users(self.session, self.source_id):
            for user_id, external_id in page:
                if external_id is not None:
                    self.owned[external_id] = user_id
                    if user_id in kept:
                        written_before[external_id] = kept[user_id]
        del kept
        # a person whose rows hash as they did when this source last wrote them (their codes
        # naming the same units and manager), and whose user no one has written since, is
        # unchanged: nothing of them is read, checked or compared
        compared: list[PersonRecord] = []
        if isinstance(people, Roster):
            self._in_file = set(people.people)
            unchanged = {external_id for external_id, seen in people.people.items()
                         if external_id in written_before and external_id not in people.implicated
                         and written_before[external_id] == self._digest_of(seen.rows_digest, seen.unit_codes,
                                                                            seen.manager_external_id)}
            self.result.counts["unchanged"] += len(unchanged)
            compared, errors = people.records(leave_out=unchanged)
            del people, unchanged
            self._thaw()
            self.result.errors += errors
            self._left_out_people = {e.key for e in errors if e.key}
        else:
            self._in_file = {p.external_id for p in people}
            for person in people:
                if written_before.get(person.external_id) == self._digest(person):
                    self._count("unchanged")
                    continue
                compared.append(person)
        del written_before
        holders = sources.user_name_owners(self.session, self.tenant_id, [p.user_name for p in compared])
        valid: list[PersonRecord] = []
        for person in compared:
            holder = holders.get(person.user_name.lower())
            mine = self.owned.get(person.external_id)
            if holder is not None and holder[0] != mine:
                whose = "another source" if holder[1] not in (None, self.source_id) else \
                    "a user this source does not own" if holder[1] is None else "another person of this source"
                self.result.conflicts.append(f"user {person.external_id}: userName '{person.user_name}' is held "
                                             f"by {whose}")
                continue
            valid.append(person)
        in_file = {p.external_id for p in valid}
        # managers first: a person whose manager is new in this file waits for the manager's create
        waves: list[list[PersonRecord]] = []
        placed = set(self.owned)
        pending = valid
        while pending:
            wave = [p for p in pending if p.manager_external_id is None or p.manager_external_id in placed
                    or p.manager_external_id not in in_file]
            if not wave:  # records.py reports manager cycles; anything left is one
                for p in pending:
                    self.result.errors.append(RowError(p.file, p.lines[0], "manager cycle", p.external_id))
                break
            waves.append(wave)
            placed.update(p.external_id for p in wave)
            pending = [p for p in pending if p.external_id not in placed]
        total = len(valid)
        done = 0
        for wave in waves:
            creates = [p for p in wave if p.external_id not in self.owned]
            updates = [p for p in wave if p.external_id in self.owned]
            self._create_people(creates)
            self._update_people(updates)
            done += len(wave)
            self.progress(done, total)

    def _digest(self, person: PersonRecord) -> str:
        """The person's rows as ``records.digest`` hashes them, with what their codes name now."""
        return self._digest_of(person.rows_digest or content_digest(person),
                               [job.unit_code for job in person.employments], person.manager_external_id)

    def _digest_of(self, rows_digest: bytes, unit_codes: list[str], manager_external_id: str | None) -> str:
        units = self.units
        targets = [unit.id if (unit := units.get(code.lower())) else "-" for code in unit_codes]
        targets.append(self.owned.get(manager_external_id, "-") if manager_external_id else "-")
        return digest(rows_digest, " ".join(targets))

    def _desired(self, person: PersonRecord) -> dict[str, Any] | RowError:
        """The person's resource with the manager and employments resolved to ids."""
        resource = dict(person.resource)
        provided = _provided_keys(person.provided)
        if person.manager_external_id is not None:
            manager = self.owned.get(person.manager_external_id)
            if manager is None:
                return RowError(person.file, person.lines[0],
                                f"unknown managerExternalId '{person.manager_external_id}'", person.external_id)
            resource[ENTERPRISE_USER] = {**resource.get(ENTERPRISE_USER, {}), "manager": {"value": manager}}
        if (P2L_USER, "employments") in provided:
            jobs = []
            for job in person.employments:
                unit = self.units.get(job.unit_code.lower())
                if unit is None:
                    return RowError(person.file, job.line, f"unknown orgUnit '{job.unit_code}'", person.external_id)
                jobs.append({k: v for k, v in {"value": unit.id, "title": job.title, "startDate": job.start_date,
                                               "endDate": job.end_date, "primary": job.primary}.items()
                             if v is not None})
            if jobs:
                resource[P2L_USER] = {**resource.get(P2L_USER, {}), "employments": jobs}
        for urn in (ENTERPRISE_USER, P2L_USER):
            if resource.get(urn) and urn not in resource["schemas"]:
                resource["schemas"] = [*resource["schemas"], urn]
        return resource

    def _create_people(self, people: list[PersonRecord]) -> None:
        for start in range(0, len(people), 1000):  # a thousand at a time: memory stays flat
            bodies, who = [], []
            for person in people[start:start + 1000]:
                desired = self._desired(person)
                if isinstance(desired, RowError):
                    self.result.errors.append(desired)
                    continue
                bodies.append((desired, self.provenance))
                who.append(person)
            written_now: list[tuple[str, str, int]] = []
            for person, written in zip(who, self.service.create_many("User", bodies)):
                if isinstance(written, ScimError):
                    self.result.errors.append(RowError(person.file, person.lines[0], written.detail,
                                                       person.external_id))
                    continue
                self.owned[person.external_id] = written.row.id
                written_now.append((written.row.id, self._digest(person), written.row.version))
                self._count("created")
                self._change(f"user {person.external_id} ({person.user_name}): created")
            sources.store_digests(self.session, self.source_id, written_now, created=True)
            _done_with(people[start:start + 1000])
            self._checkpoint()

    def _checkpoint(self) -> None:
        """After a chunk: its audit events written (not kept for the end), the stores' caches
        dropped, and on PostgreSQL the statistics refreshed while the tables grow: a first sync
        fills them inside one transaction, where autovacuum cannot see the rows, and plans made
        for empty tables (sequential scans) would make the run quadratic."""
        self.service.record_events()
        self.service.release()
        self._as_tables_grow()

    def _as_tables_grow(self) -> None:
        """Statistics refreshed each time the rows this run created have doubled (see
        ``_checkpoint``): for units too, whose unitCode check otherwise kept a plan made for an
        empty table (1.7 ms a unit, 8.5 s of a first sync of 5,000 units on PostgreSQL)."""
        grown = self.result.counts["created"]
        if grown >= self._analyzed_at * 2:
            sources.refresh_statistics(self.session)
            self._analyzed_at = max(grown, 1)

    def _update_people(self, people: list[PersonRecord]) -> None:
        store = self.service.store("User")
        for start in range(0, len(people), 1000):
            chunk = people[start:start + 1000]
            rows = store.get_many([self.owned[p.external_id] for p in chunk], rows=True)
            as_in_file: list[tuple[str, str, int]] = []  # the people now as their rows say
            patches: list[tuple[PersonRecord, dict[str, Any], WriteItem]] = []
            replaces: list[tuple[PersonRecord, dict[str, Any], WriteItem]] = []
            for person in chunk:
                row = rows.get(self.owned[person.external_id])
                desired = self._desired(person)
                if isinstance(desired, RowError):
                    self.result.errors.append(desired)
                    continue
                if row is None:
                    continue
                current = store.audit_state(row)
                body = _merged(current, desired, _provided_keys(person.provided), row.active)
                stored = _comparable(current)
                if stored == _comparable(body):  # the file's values are already canonical: no
                    self._count("unchanged")      # validation needed to see that nothing changed
                    as_in_file.append((row.id, self._digest(person), row.version))
                    continue
                try:
                    changes = audit.diff(stored, _comparable(load_resource(store, body)))
                except ScimError as exc:
                    self.result.errors.append(RowError(person.file, person.lines[0], exc.detail, person.external_id))
                    continue
                if not changes:
                    self._count("unchanged")
                    as_in_file.append((row.id, self._digest(person), row.version))
                    continue
                if EMPLOYMENTS_KEY not in changes:  # written together, below
                    patches.append((person, changes, WriteItem(row.id, _patch_of(body, changes), None,
                                                               self.provenance)))
                    continue
                replaces.append((person, changes, WriteItem(row.id, body, None, self.provenance)))
            # people whose employments stay as they are: their attributes in one multi-row write,
            # by PATCH; the others by PUT, together as well (``replace_many``)
            for writes, write_many in ((patches, self.service.patch_many), (replaces, self.service.replace_many)):
                results = write_many("User", [item for *_, item in writes]) if writes else []
                for (person, changes, _), result in zip(writes, results):
                    if isinstance(result, ScimError):
                        self.result.errors.append(RowError(person.file, person.lines[0],
                                                           f"user {person.external_id}: {result.detail}",
                                                           person.external_id))
                    else:
                        self._updated(person, changes, result.row.version, as_in_file)
            sources.store_digests(self.session, self.source_id, as_in_file)
            _done_with(chunk)
            self._checkpoint()

    def _updated(self, person: PersonRecord, changes: dict[str, Any], version: int,
                 as_in_file: list[tuple[str, str, int]]) -> None:
        as_in_file.append((self.owned[person.external_id], self._digest(person), version))
        self._count("updated")
        self._change(f"user {person.external_id} ({person.user_name}): updated " + "; ".join(
            f"{key.rsplit(':', 1)[-1] if key.startswith('urn:') else key}: "
            f"{change.get('old')!r} -> {change.get('new')!r}" for key, change in changes.items()))

    def _leavers(self, in_file: set[str]) -> None:
        """Full mode: the source's people missing from the file. Their open employments end today
        (the leaver rule then makes them inactive); one without employments is deactivated."""
        if not self._has("users"):
            return
        gone = [uid for ext, uid in self.owned.items() if ext not in in_file]
        store = self.service.store("User")
        today = sources.today()
        plans: list[tuple[Any, list[dict[str, Any]]]] = []
        for start in range(0, len(gone), 1000):
            for row in store.get_many(gone[start:start + 1000]).values():
                state = store.audit_state(row)
                jobs = (state.get(P2L_USER) or {}).get("employments") or []
                open_jobs = [j for j in jobs if not j.get("endDate") or parse_datetime(j["endDate"]) > today]
                if open_jobs:
                    plans.append((row, _ending(open_jobs, today, len(open_jobs) == len(jobs) and row.active)))
                elif not jobs and row.active:
                    plans.append((row, [{"op": "replace", "path": "active", "value": False}]))
        would = sum(1 for row, _ in plans if row.active)
        limit = self._deactivation_limit() if would else 0  # (a count of the active users)
        if would > limit and self.options.dry_run:
            self.result.message = (f"the deactivation guard would refuse this run: it deactivates {would} users, "
                                   f"more than the limit of {limit} (see --max-deactivations)")
        elif would > limit:
            raise Refused(f"this full sync would deactivate {would} users, more than the limit of {limit}: "
                          "check that the file is complete, then run again with --max-deactivations "
                          f"{would} (or a percentage, e.g. --max-deactivations 20%), or use --partial")
        for row, operations in plans:
            name = row.user_name
            if self._write(lambda row=row, operations=operations: self.service.patch(
                    "User", row.id, {"schemas": [PATCH_OP], "Operations": operations}, provenance=self.provenance),
                    f"user {row.external_id}") is None:
                continue
            if row.active:
                self._count("deactivated")
                self._change(f"user {row.external_id} ({name}): deactivated (not in the file)")

    def _deactivation_limit(self) -> int:
        """--max-deactivations (N or P%), else the tenant's setting, else 10 users or 5 % of the
        source's active users, whichever is larger."""
        text = self.options.max_deactivations or self.settings.get("sync_max_deactivations")
        active = sources.active_users(self.session, self.source_id)
        if text is None:
            return max(10, active * 5 // 100)
        return parse_limit(str(text), active)


def _patch_of(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A PATCH that makes a user what ``body`` (the PUT a sync would send) says, for the
    attributes ``changes`` names (keys as ``audit.diff`` gives them: ``title``, or
    ``<urn>:<name>`` for an extension's): each replaced, a complex one (``name``) removed and
    added, or removed when ``body`` has none. Unlike a PUT, a PATCH that leaves the row-backed
    employments alone can be written together with others (``Provisioning.patch_many``)."""
    operations = []
    for key, change in changes.items():
        if key.startswith("urn:"):
            urn, _, name = key.rpartition(":")
            value = (body.get(urn) or {}).get(name)
        else:
            value = body.get(key)
        if value is None:
            operations.append({"op": "remove", "path": key})
        elif isinstance(value, dict):  # a replace would merge into the stored value (RFC 7644
            if change.get("old") is not None:  # §3.5.2.3): the sub-attributes the file left
                operations.append({"op": "remove", "path": key})  # empty would stay
            operations.append({"op": "add", "path": key, "value": value})
        else:
            operations.append({"op": "replace", "path": key, "value": value})
    return {"schemas": [PATCH_OP], "Operations": operations}


def _done_with(people: list[PersonRecord]) -> None:
    """A chunk's people are written: their documents are freed for the next chunk's (only the
    externalId is read after this, to find the leavers), so memory does not hold a whole file
    of documents and a chunk's work on top."""
    for person in people:
        person.resource, person.employments = {}, []


def _ending(jobs: list[dict[str, Any]], today: dt.datetime, deactivate: bool) -> list[dict[str, Any]]:
    """PATCH operations that end a leaver's open employments today. One that has not started
    yet cannot end before it starts: it is removed; a leaver left with no employment at all is
    deactivated as an external user is."""
    started = [j for j in jobs if not j.get("startDate") or parse_datetime(j["startDate"]) <= today]
    operations: list[dict[str, Any]] = [
        {"op": "remove", "path": f'{P2L_USER}:employments[value eq "{j["value"]}"]'}
        for j in jobs if j not in started]
    operations += [{"op": "replace", "value": format_datetime(today),
                    "path": f'{P2L_USER}:employments[value eq "{j["value"]}"].endDate'} for j in started]
    if deactivate and not started:
        operations.append({"op": "replace", "path": "active", "value": False})
    return operations


def parse_limit(text: str, active: int) -> int:
    """'25' or '5%' of ``active``; anything else is a refusal naming the value."""
    text = text.strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return int(active * percent / 100)
        count = int(text)
        if count < 0:
            raise ValueError
        return count
    except ValueError:
        raise SyncRefused(f"--max-deactivations takes a count or a percentage (25, 5%), not {text!r}") from None


def _unit_body(record: UnitRecord, parent_id: str | None) -> dict[str, Any]:
    unit: dict[str, Any] = {"unitCode": record.unit_code}
    if record.unit_type:
        unit["unitType"] = record.unit_type
    if record.ean:
        unit["ean"] = record.ean
    if parent_id:
        unit["parent"] = {"value": parent_id}
    return {"schemas": [CORE_GROUP, P2L_GROUP], "displayName": record.display_name, P2L_GROUP: unit}


def _unit_changes(current: sources.OwnedUnit, record: UnitRecord, parent_id: str | None
                  ) -> dict[str, tuple[Any, Any]]:
    """PATCH path -> (old, new) of what the file changes in a unit."""
    pairs = {"displayName": (current.display_name, record.display_name),
             f"{P2L_GROUP}:unitType": (current.unit_type, record.unit_type),
             f"{P2L_GROUP}:ean": (current.ean, record.ean),
             f"{P2L_GROUP}:parent.value": (current.parent_id, parent_id),
             f"{P2L_GROUP}:unitCode": (current.unit_code, record.unit_code)}
    return {path: pair for path, pair in pairs.items() if pair[0] != pair[1]}


def _depth(unit: sources.OwnedUnit, by_id: dict[str, sources.OwnedUnit]) -> int:
    """How deep a unit lies below its root (``by_id``: the units by id)."""
    depth, seen = 0, set()
    while unit.parent_id and unit.parent_id in by_id and unit.id not in seen:
        seen.add(unit.id)
        unit, depth = by_id[unit.parent_id], depth + 1
    return depth


@lru_cache(maxsize=256)
def _provided_keys(provided: frozenset[str]) -> frozenset[Any]:
    """The top-level attributes (extension ones as (urn, name)) the file's columns write."""
    keys: set[Any] = set()
    for column in provided:
        if column in _TOP_LEVEL:
            keys.add(_TOP_LEVEL[column])
        elif column.startswith("urn:"):
            urn, _, name = column.rpartition(":")
            keys.add((urn, name.split(".")[0]))
        else:
            keys.add(column.split(".")[0])
    return frozenset(keys)


def _merged(current: dict[str, Any], desired: dict[str, Any], provided: frozenset[Any], active: bool | None
            ) -> dict[str, Any]:
    """A PUT body: the current resource with the provided attributes as the file has them (an
    attribute the file provides but leaves empty is removed)."""
    body: dict[str, Any] = {k: v for k, v in current.items() if not k.startswith("urn:") and k != "password"}
    for urn in (ENTERPRISE_USER, P2L_USER):
        if isinstance(current.get(urn), dict):
            body[urn] = dict(current[urn])
    for key in provided:
        if isinstance(key, tuple):
            urn, name = key
            value = (desired.get(urn) or {}).get(name)
            extension = body.setdefault(urn, {})
            if value is None:
                extension.pop(name, None)
            else:
                extension[name] = value
        elif desired.get(key) is None:
            body.pop(key, None)
        else:
            body[key] = desired[key]
    body["active"] = active if (body.get(P2L_USER) or {}).get("employments") else True
    body["schemas"] = [desired["schemas"][0]] + [u for u in (ENTERPRISE_USER, P2L_USER) if body.get(u)]
    return {k: v for k, v in body.items() if v not in ({}, None)}


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A user document in the audit trail's form (what ``audit_state`` gives), to compare a
    stored user with the one a file wants: the manager as its id, employments sorted by unit,
    their dates in one format."""
    out = {k: v for k, v in doc.items() if k not in ("schemas", "id", "meta", "groups", "password")}
    enterprise = dict(out.get(ENTERPRISE_USER) or {})
    if isinstance(enterprise.get("manager"), dict):
        enterprise["manager"] = {"value": enterprise["manager"].get("value")}
    if enterprise:
        out[ENTERPRISE_USER] = enterprise
    plan2learn = {k: v for k, v in (out.get(P2L_USER) or {}).items() if k in ("ean", "employments")}
    if plan2learn.get("employments"):
        plan2learn["employments"] = sorted(({
            "value": j["value"], "title": j.get("title"), "startDate": _day(j.get("startDate")),
            "endDate": _day(j.get("endDate")), "primary": bool(j.get("primary"))} for j in plan2learn["employments"]),
            key=lambda j: j["value"])
    out.pop(P2L_USER, None)
    if plan2learn:
        out[P2L_USER] = plan2learn
    return out


def _day(value: str | None) -> str | None:
    if value is None:
        return None
    moment = parse_datetime(value)
    return format_datetime(moment.astimezone(dt.UTC)) if moment else None


def run_json(run, source_name: str | None, details: bool = True) -> dict:
    """A run as the CLI and the admin API show it."""
    out = {"id": run.id, "source": source_name, "startedBy": run.actor,
           "startedAt": run.started_at.isoformat(), "finishedAt": run.finished_at and run.finished_at.isoformat(),
           "mode": run.mode, "dryRun": run.dry_run, "status": run.status, **(run.summary or {})}
    if run.message:
        out["message"] = run.message
    if details:
        out["rowErrors"] = (run.report or {}).get("errors", [])
        out["conflictList"] = (run.report or {}).get("conflicts", [])
        out["changes"] = (run.report or {}).get("changes", [])
    return out
