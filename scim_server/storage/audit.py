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

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from .models import AuditEvent, utcnow

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


# Reading the trail: ``GET /admin/v1/audit`` and ``scim-server audit`` ask the same questions.

def query_events(tenant_id: int, resource: str | None, since, until) -> list:
    """The conditions selecting a tenant's events: of one resource (``resource``), at or after
    ``since``, before ``until`` (each optional)."""
    condition = [AuditEvent.tenant_id == tenant_id]
    if resource:
        condition.append(AuditEvent.resource_id == resource)
    if since:
        condition.append(AuditEvent.at >= since)
    if until:
        condition.append(AuditEvent.at < until)
    return condition


def count_events(session: Session, tenant_id: int, resource: str | None = None, since=None, until=None) -> int:
    """How many of a tenant's events ``query_events`` selects."""
    return session.scalar(select(func.count()).select_from(AuditEvent)
                          .where(*query_events(tenant_id, resource, since, until)))


def page_of_events(session: Session, tenant_id: int, resource: str | None = None, since=None, until=None, *,
                   offset: int = 0, limit: int) -> list[AuditEvent]:
    """A page of the events ``query_events`` selects, newest first: ``limit`` of them after
    skipping ``offset``."""
    statement = (select(AuditEvent).where(*query_events(tenant_id, resource, since, until))
                 .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()))
    if offset:
        statement = statement.offset(offset)
    return list(session.scalars(statement.limit(limit)).all())


def events_of_run(session: Session, tenant_id: int, run_id: str, limit: int = 1000) -> tuple[int, list[AuditEvent]]:
    """The events a sync run wrote (its changes), oldest first: (how many in all, the first ``limit``)."""
    condition = (AuditEvent.tenant_id == tenant_id, AuditEvent.run_id == run_id)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*condition)) or 0
    return total, list(session.scalars(select(AuditEvent).where(*condition).order_by(AuditEvent.id).limit(limit)))
