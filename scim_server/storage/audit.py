"""The audit trail: every successful write, in the same transaction as the write.

Who (``actor``) and which request (``request_id``) come from ``current``, which
the HTTP layer sets per request and the CLI jobs set to ``system:<job>``. The
changes are the attributes that differ between the resource before and after,
with old and new values; a password is recorded as changed, never with a value.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, bindparam, cast, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from .. import telemetry
from .models import AuditEvent, SyncRun, utcnow

REDACTED = {"password"}


@dataclass(frozen=True)
class Actor:
    actor: str
    request_id: str | None = None
    #: the sync run (``SyncRun.id``) the writes belong to, if any
    run_id: str | None = None


UNKNOWN = Actor("system:unknown")
current: contextvars.ContextVar[Actor] = contextvars.ContextVar("audit_actor", default=UNKNOWN)


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """Attribute-level differences; extension attributes are keyed ``<urn>:<name>``."""
    old, new = _flatten(before or {}), _flatten(after or {})
    changes: dict[str, Any] = {}
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) != new.get(key):
            if key.split(":")[-1].lower() in REDACTED:
                changes[key] = {"changed": True}
            else:
                changes[key] = {"old": old.get(key), "new": new.get(key)}
    return changes


def _flatten(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("schemas", "meta", "id"):
            continue
        if key.startswith("urn:") and isinstance(value, dict):
            for name, inner in value.items():
                out[f"{key}:{name}"] = inner
        else:
            out[key] = value
    return out


#: built once: every write records an event, and building a statement costs more than running it
_INSERT_EVENT = insert(AuditEvent.__table__)


def record(session: Session, tenant_id: int, resource_type: str, resource_id: str, operation: str,
           changes: dict[str, Any]) -> None:
    record_many(session, [{"tenant_id": tenant_id, "resource_type": resource_type, "resource_id": resource_id,
                           "operation": operation, "changes": changes}])


def record_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Events in one multi-row INSERT (a Bulk request, a job that changed many users): each row
    names tenant_id, resource_type, resource_id, operation and changes, and may name the Bulk
    operation it came from (bulk_index, bulk_id). Core, on the session's connection: no ORM
    bookkeeping."""
    if not rows:
        return
    who = current.get()
    now = utcnow()
    session.connection().execute(_INSERT_EVENT, [
        {"at": now, "actor": who.actor, "request_id": who.request_id, "run_id": who.run_id, "bulk_index": None,
         "bulk_id": None, **r}
        for r in rows])
    telemetry.count_audit_events(len(rows))


# Reading the trail: ``GET /admin/v1/audit`` and ``scim-server audit`` ask the same questions.

def query_events(tenant_id: int, resource: str | None, since, until, *, actor: str | None = None,
                 operation: str | None = None) -> list:
    """The conditions selecting a tenant's events: of one resource (``resource``), at or after
    ``since``, before ``until``, by one ``actor`` (``token:<id>``, ``sync:payroll``; a prefix
    such as ``sync:`` ends with a colon), of one ``operation`` (each optional)."""
    condition = [AuditEvent.tenant_id == tenant_id]
    if actor:
        condition.append(AuditEvent.actor.startswith(actor, autoescape=True) if actor.endswith(":")
                         else AuditEvent.actor == actor)
    if operation:
        condition.append(AuditEvent.operation == operation)
    if resource:
        condition.append(AuditEvent.resource_id == resource)
    if since:
        condition.append(AuditEvent.at >= since)
    if until:
        condition.append(AuditEvent.at < until)
    return condition


def count_events(session: Session, tenant_id: int, resource: str | None = None, since=None, until=None,
                 **which) -> int:
    """How many of a tenant's events ``query_events`` selects."""
    return session.scalar(select(func.count()).select_from(AuditEvent)
                          .where(*query_events(tenant_id, resource, since, until, **which)))


def page_of_events(session: Session, tenant_id: int, resource: str | None = None, since=None, until=None, *,
                   offset: int = 0, limit: int, **which) -> list[AuditEvent]:
    """A page of the events ``query_events`` selects, newest first: ``limit`` of them after
    skipping ``offset``."""
    statement = (select(AuditEvent).where(*query_events(tenant_id, resource, since, until, **which))
                 .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()))
    if offset:
        statement = statement.offset(offset)
    return list(session.scalars(statement.limit(limit)).all())


def events_of_run(session: Session, tenant_id: int, run_id: str, limit: int = 1000) -> tuple[int, list[AuditEvent]]:
    """The events a sync run wrote (its changes), oldest first: (how many in all, the first ``limit``)."""
    condition = (AuditEvent.tenant_id == tenant_id, AuditEvent.run_id == run_id)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*condition)) or 0
    return total, list(session.scalars(select(AuditEvent).where(*condition).order_by(AuditEvent.id).limit(limit)))


# Keeping personal data no longer than needed (GDPR): ``scim-server audit purge`` deletes what is
# older than a tenant's retention period, ``scim-server audit erase`` removes one person's values
# from the events while keeping the events (who, when, which operation, which attributes).

#: what an erased value reads
ERASED = "[erased]"
#: keys of an event's changes that hold the server's own words, never a person's data
_OWN_WORDS = frozenset({"rule", "erased", "purged"})


def purge(session: Session, tenant_id: int, before, rule: str) -> tuple[int, int]:
    """Delete a tenant's audit events from before ``before``, and its sync runs (the run log,
    whose reports name people) that finished before it. When anything went, the purge is itself
    recorded: an event of operation ``system`` saying how many rows, up to when and why
    (``rule``). Returns (audit events, sync runs) deleted."""
    connection = session.connection()
    events = connection.execute(delete(AuditEvent.__table__).where(
        AuditEvent.tenant_id == tenant_id, AuditEvent.at < before)).rowcount or 0
    runs = connection.execute(delete(SyncRun.__table__).where(
        SyncRun.tenant_id == tenant_id, SyncRun.status != "running",
        func.coalesce(SyncRun.finished_at, SyncRun.started_at) < before)).rowcount or 0
    if events or runs:
        record(session, tenant_id, "Audit", "purge", "system", {
            "purged": {"auditEvents": events, "syncRuns": runs, "before": before.isoformat()}, "rule": rule})
    return events, runs


def erase_user(session: Session, tenant_id: int, user_id: str) -> tuple[int, int, int]:
    """Erase one user's personal data from a tenant's audit trail, keeping the events.

    In the user's own events every old and new value becomes ``ERASED`` (an absent value stays
    absent, so a create still reads as one); in other events, a value naming the user (a
    manager, a group's members added or removed) becomes ``ERASED`` and the rest of the event
    stays. Who, when, the request, the operation and the names of the attributes changed are
    kept. When anything changed, the erasure is recorded as an event of operation ``system`` on
    the user. Returns (events that name the user in all, own events erased, other events erased);
    running it again erases nothing more.
    """
    table = AuditEvent.__table__
    own_event = (table.c.resource_type == "User") & (table.c.resource_id == user_id)
    own = _rows(session, select(table.c.id, table.c.changes).where(table.c.tenant_id == tenant_id, own_event))
    others = _rows(session, select(table.c.id, table.c.changes).where(
        table.c.tenant_id == tenant_id, or_(table.c.resource_type != "User", table.c.resource_id != user_id),
        cast(table.c.changes, Text).contains(user_id, autoescape=True)))
    updates, own_erased, others_erased = [], 0, 0
    for event_id, changes in own:
        erased = _erase_values(changes or {})
        if erased != changes:
            updates.append({"event_id": event_id, "erased": erased})
            own_erased += 1
    for event_id, changes in others:
        erased = _erase_mentions(changes or {}, user_id)
        if erased != changes:
            updates.append({"event_id": event_id, "erased": erased})
            others_erased += 1
    if updates:
        session.connection().execute(update(table).where(table.c.id == bindparam("event_id"))
                                     .values(changes=bindparam("erased")), updates)
        record(session, tenant_id, "User", user_id, "system", {
            "erased": {"ownEvents": own_erased, "otherEvents": others_erased},
            "rule": "personal data erased from the audit trail"})
    return len(own) + len(others), own_erased, others_erased


def _rows(session: Session, statement) -> list[tuple]:
    """The rows of a Core statement, on the session's connection."""
    return [tuple(row) for row in session.connection().execute(statement)]


def _erase_values(changes: dict[str, Any]) -> dict[str, Any]:
    """An event of the user's own with every value erased (absent ones stay absent)."""
    out: dict[str, Any] = {}
    for key, change in changes.items():
        if key in _OWN_WORDS or change == {"changed": True}:  # a password is recorded as changed only
            out[key] = change
        elif isinstance(change, dict) and ("old" in change or "new" in change):
            out[key] = {k: (ERASED if k in ("old", "new") and v is not None else v) for k, v in change.items()}
        else:
            out[key] = ERASED
    return out


def _erase_mentions(changes: dict[str, Any], user_id: str) -> dict[str, Any]:
    """Another resource's event with every value that names the user erased."""
    out: dict[str, Any] = {}
    for key, change in changes.items():
        try:
            out[key] = _without(change, user_id)
        except RecursionError:  # a document nested beyond reason: erase the attribute's values whole
            out[key] = ERASED
    return out


def _without(value: Any, user_id: str) -> Any:
    if value == user_id:
        return ERASED
    if isinstance(value, dict):
        if value.get("value") == user_id:  # a reference: {"value": id, "display": name, "$ref": ...}
            return ERASED
        return {k: _without(v, user_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_without(v, user_id) for v in value]
    return value
