"""RFC 7644 §3.7 Bulk: many writes in one request, on the one write service.

A BulkRequest is read whole first (``parse``): a malformed envelope, too many
operations or a bulkId used twice refuse the request before anything is written.
Then every operation runs as a savepoint of the request's transaction
(``Provisioning.in_savepoint``): it succeeds or fails alone, and a failed one
leaves nothing behind. The request commits once, with the audit events of all
successful operations in one INSERT.

``bulkId:<id>`` references: any string value of an operation's ``data`` (a group's
member, the enterprise manager, an employment's org unit, an org unit's parent, a
PATCH value) and its ``path`` may name a resource that a POST of the same request
creates, before or after it. An operation runs once everything it names exists;
one that names an unknown bulkId, a failed operation, or waits in a cycle fails
with 409, as §3.7.1 says.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import OperationalError

from ..scim.errors import ScimError, invalid_syntax, invalid_value
from ..storage.stores import ENDPOINTS
from .service import Provisioning, WriteItem, Written, users_added

log = logging.getLogger(__name__)

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
METHODS = ("POST", "PUT", "PATCH", "DELETE")
BULK_ID = "bulkId:"
#: ``/Users``, ``/Groups/<id>``, ``/Users/bulkId:<id>`` (a leading slash is optional)
_PATH = re.compile(r"^/?(?P<endpoint>Users|Groups)(?:/(?P<id>[^/]+))?/?$")


@dataclass
class Operation:
    """One operation of a BulkRequest, as read."""

    index: int
    method: str
    bulk_id: str | None = None
    resource_type: str | None = None
    #: the target of PUT, PATCH and DELETE: an id, or ``bulkId:<id>``
    target: str | None = None
    version: str | None = None
    data: Any = None
    #: what made the operation unreadable (it fails with this, and nothing else happens)
    error: ScimError | None = None
    #: bulkIds this operation names (in ``data`` or ``path``)
    references: set[str] = field(default_factory=set)
    #: the run of operations written together it can join (see ``_kind``), if any
    kind: str | None = None

    @property
    def provenance(self) -> dict[str, Any]:
        """How the audit trail names this operation."""
        return {"bulk_index": self.index, "bulk_id": self.bulk_id}


@dataclass(frozen=True)
class BulkRequest:
    operations: list[Operation]
    #: stop after this many failed operations (None: never)
    fail_on_errors: int | None


def parse(body: Any, max_operations: int) -> BulkRequest:
    """Read a BulkRequest; whole-request mistakes are ScimErrors (400, or 413 over the limit)."""
    if not isinstance(body, dict):
        raise invalid_syntax("A BulkRequest must be a JSON object")
    lowered = {str(k).lower(): v for k, v in body.items()}
    schemas = lowered.get("schemas")
    if not isinstance(schemas, list) or BULK_REQUEST.lower() not in {str(s).lower() for s in schemas}:
        raise invalid_syntax(f"A BulkRequest must list the schema {BULK_REQUEST}")
    raw_operations = lowered.get("operations")
    if not isinstance(raw_operations, list):
        raise invalid_syntax("A BulkRequest needs 'Operations', a list of operations")
    if len(raw_operations) > max_operations:
        raise ScimError(413, f"A BulkRequest may hold at most {max_operations} operations, not "
                             f"{len(raw_operations)} (maxOperations in /ServiceProviderConfig)")
    fail_on_errors = lowered.get("failonerrors")
    if fail_on_errors is not None and (isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int)
                                       or fail_on_errors < 1):
        raise invalid_value("failOnErrors must be a whole number of at least 1")
    operations = [_operation(i, raw) for i, raw in enumerate(raw_operations)]
    seen: set[str] = set()
    for op in operations:
        if op.bulk_id is not None:
            if op.bulk_id in seen:
                raise invalid_value(f"bulkId '{op.bulk_id}' is used by more than one operation")
            seen.add(op.bulk_id)
    return BulkRequest(operations, fail_on_errors)


def _operation(index: int, raw: Any) -> Operation:
    if not isinstance(raw, dict):
        return Operation(index, "", error=invalid_syntax("Each operation must be a JSON object"))
    lowered = {str(k).lower(): v for k, v in raw.items()}
    method = str(lowered.get("method") or "").upper()
    bulk_id = lowered.get("bulkid")
    op = Operation(index, method, bulk_id=bulk_id if isinstance(bulk_id, str) and bulk_id else None,
                   data=lowered.get("data"))
    try:
        _read(op, lowered)
    except ScimError as exc:
        op.error = exc
    return op


def _read(op: Operation, raw: dict[str, Any]) -> None:
    if op.method not in METHODS:
        raise invalid_value(f"Unknown method {raw.get('method')!r}: use one of {', '.join(METHODS)}")
    if raw.get("bulkid") is not None and op.bulk_id is None:
        raise invalid_value("bulkId must be a non-empty string")
    path = raw.get("path")
    match = _PATH.match(path) if isinstance(path, str) else None
    if match is None:
        raise invalid_value(f"Unknown path {path!r}: use /Users, /Groups, /Users/<id> or /Groups/<id>")
    op.resource_type, op.target = ENDPOINTS[match["endpoint"]], match["id"]
    if op.method == "POST" and op.target is not None:
        raise invalid_value("A POST operation's path names the resource type only (/Users or /Groups)")
    if op.method != "POST" and op.target is None:
        raise invalid_value(f"A {op.method} operation's path must name the resource (/Users/<id>)")
    if op.method != "DELETE" and not isinstance(op.data, dict):
        raise invalid_syntax(f"A {op.method} operation needs 'data', a JSON object")
    version = raw.get("version")
    if version is not None and not isinstance(version, str):
        raise invalid_value("version must be an ETag string")
    op.version = version
    if op.target and op.target.startswith(BULK_ID):
        op.references.add(op.target[len(BULK_ID):])
    op.references.update(_references(op.data))
    op.kind = _kind(op)


def _references(value: Any, found: set[str] | None = None) -> set[str]:
    """Every ``bulkId:<id>`` string in a value, at any depth (collected into one set, not
    yielded: every operation's whole data is walked, and generators cost three times more)."""
    found = set() if found is None else found
    if isinstance(value, str):
        if value.startswith(BULK_ID):
            found.add(value[len(BULK_ID):])
    elif isinstance(value, dict):
        for inner in value.values():
            _references(inner, found)
    elif isinstance(value, list):
        for inner in value:
            _references(inner, found)
    return found


def _resolved(value: Any, ids: dict[str, str]) -> Any:
    """The value with every ``bulkId:<id>`` replaced by the id of the resource made for it."""
    if isinstance(value, str):
        return ids[value[len(BULK_ID):]] if value.startswith(BULK_ID) else value
    if isinstance(value, dict):
        return {k: _resolved(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, ids) for v in value]
    return value


# ---------------------------------------------------------------------- running


@dataclass
class Outcome:
    """An operation's entry in the BulkResponse."""

    op: Operation
    status: int
    written: Written | None = None
    error: ScimError | None = None
    location: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.op.method or None}
        if self.op.bulk_id is not None:
            out["bulkId"] = self.op.bulk_id
        if self.written is not None:
            out["location"] = self.written.location
            if self.written.version is not None:
                out["version"] = self.written.version
        elif self.location:
            out["location"] = self.location
        out["status"] = str(self.status)
        if self.error is not None:
            body = {"schemas": [ERROR], "status": str(self.error.status), "detail": self.error.detail}
            if self.error.scim_type:
                body["scimType"] = self.error.scim_type
            out["response"] = body
        return {k: v for k, v in out.items() if v is not None}


class BulkRun:
    """Runs a parsed BulkRequest on a write service, in dependency order (the caller commits)."""

    def __init__(self, service: Provisioning, request: BulkRequest):
        self.service = service
        self.request = request
        #: bulkId -> id of the resource its POST made
        self.ids: dict[str, str] = {}
        #: bulkIds whose operation failed (or can never run)
        self.failed: set[str] = set()
        self.outcomes: dict[int, Outcome] = {}
        self.errors = 0

    def run(self) -> dict[str, Any]:
        defined = {op.bulk_id for op in self.request.operations if op.bulk_id and op.error is None}
        waiting = list(self.request.operations)
        while waiting and not self._stopped():
            still: list[Operation] = []
            together: list[Operation] = []  # a run of user creates, PUTs or PATCHes, written together at its end
            for op in waiting:
                if self._stopped():
                    break
                missing = op.references - self.ids.keys()
                if missing and together and missing <= {o.bulk_id for o in together}:
                    # it names resources of the run waiting to be written: that run is written
                    # now, so the operation keeps its place (deferred, a later operation on the
                    # same resource, a DELETE say, would overtake it)
                    self._run_together(together)
                    missing = op.references - self.ids.keys()
                if op.error is not None:
                    self._fail(op, op.error)
                elif missing & self.failed or missing - defined:
                    self._fail(op, _conflict(op, sorted(missing & self.failed or missing - defined)))
                elif missing:
                    still.append(op)  # names a resource an operation further on (or in ``creates``) makes
                elif self._together(op):
                    if together and (together[0].kind != op.kind or op.resource_type == "User"
                                     and op.method in ("PATCH", "PUT") and op.target in {o.target for o in together}):
                        self._run_together(together)  # a new kind of run, or the same user again
                    together.append(op)
                else:
                    self._run_together(together)
                    self._run(op)
            self._run_together(together)
            if len(still) == len(waiting):  # nothing could run: every one waits in a cycle
                for op in still:
                    self._fail(op, ScimError(409, "The operation's bulkId references form a cycle that cannot be "
                                                  f"resolved: {', '.join(sorted(op.references - self.ids.keys()))}",
                                             "invalidValue"))
                break
            waiting = still
        ordered = [self.outcomes[i] for i in sorted(self.outcomes)]
        return {"schemas": [BULK_RESPONSE], "Operations": [o.as_json() for o in ordered]}

    def _stopped(self) -> bool:
        limit = self.request.fail_on_errors
        return limit is not None and self.errors >= limit

    def _run(self, op: Operation) -> None:
        target, data = self._target(op), self._data(op)
        service, kind = self.service, op.resource_type
        try:
            written = service.in_savepoint(lambda: _write(service, op, kind, target, data))
        except ScimError as exc:
            location = service.store(kind).location(target) if target else None
            self._fail(op, exc, location)
            return
        except OperationalError:
            raise  # the database is gone: the whole request is 503, as any other
        except Exception:  # a fault of ours: this operation fails (and is logged), the request goes on
            log.exception("bulk operation %s failed", op.index)
            self._fail(op, ScimError(500, "Internal server error"))
            return
        if op.method == "POST" and op.bulk_id:
            self.ids[op.bulk_id] = written.row.id
        self.outcomes[op.index] = Outcome(op, written.status, written)

    def _together(self, op: Operation) -> bool:
        """Creates, PUTs and PATCHes of users, and PATCHes that add users to groups, are written
        in multi-row statements, as long as nothing asks the request to stop after a number of
        errors (which needs one operation at a time)."""
        return self.request.fail_on_errors is None and op.kind is not None

    def _run_together(self, run: list[Operation]) -> None:
        if not run:
            return
        items = [WriteItem(self._target(op), self._data(op), op.version, op.provenance) for op in run]
        kind = run[0].kind
        if kind == "create users":
            results = self.service.create_many("User", [(item.body, item.provenance) for item in items])
        elif kind == "patch users":
            results = self.service.patch_many("User", items)
        elif kind == "replace users":
            results = self.service.replace_many("User", items)
        else:
            results = self.service.add_members_many(items)
        for op, result in zip(run, results):
            if isinstance(result, ScimError):
                target = self._target(op)
                self._fail(op, result, self.service.store(op.resource_type).location(target) if target else None)
                continue
            if op.method == "POST" and op.bulk_id:
                self.ids[op.bulk_id] = result.row.id
            self.outcomes[op.index] = Outcome(op, result.status, result)
        run.clear()

    def _target(self, op: Operation) -> str | None:
        return self.ids[op.target[len(BULK_ID):]] if op.target and op.target.startswith(BULK_ID) else op.target

    def _data(self, op: Operation) -> Any:
        return _resolved(op.data, self.ids) if op.references else op.data

    def _fail(self, op: Operation, error: ScimError, location: str | None = None) -> None:
        if op.bulk_id:
            self.failed.add(op.bulk_id)
        self.errors += 1
        self.outcomes[op.index] = Outcome(op, error.status, error=error, location=location)


def _kind(op: Operation) -> str | None:
    """Which run of operations written together ``op`` can join, if any."""
    if op.resource_type == "User" and op.method == "POST":
        return "create users"
    if op.resource_type == "User" and op.method == "PATCH":
        return "patch users"
    if op.resource_type == "User" and op.method == "PUT":
        return "replace users"
    if op.resource_type == "Group" and op.method == "PATCH" and users_added(op.data) is not None:
        return "add users to groups"
    return None


def _write(service: Provisioning, op: Operation, resource_type: str, target: str | None, data: Any) -> Written:
    provenance = op.provenance
    if op.method == "POST":
        return service.create(resource_type, data, provenance=provenance)
    if op.method == "PUT":
        return service.replace(resource_type, target, data, if_match=op.version, provenance=provenance)
    if op.method == "PATCH":
        return service.patch(resource_type, target, data, if_match=op.version, provenance=provenance)
    return service.delete(resource_type, target, if_match=op.version, provenance=provenance)


def _conflict(op: Operation, names: list[str]) -> ScimError:
    return ScimError(409, f"bulkId reference(s) that cannot be resolved (unknown, or their operation failed): "
                          f"{', '.join(names)}", "invalidValue")


def run(service: Provisioning, body: Any, max_operations: int) -> dict[str, Any]:
    """Parse and run a BulkRequest as the request's transaction; the BulkResponse.

    On SQLite the batches validate before the write lock is taken (it is taken at their first
    write, as a single user write's is): the rows they read are version-checked when written,
    and if another writer changed one meanwhile the whole request runs once more with the
    lock up front (``Provisioning.commit_one``)."""
    request = parse(body, max_operations)
    return service.commit_one(lambda: BulkRun(service, request).run(), read_first=True)
