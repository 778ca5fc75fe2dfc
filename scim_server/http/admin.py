"""The admin API: ``GET /admin/v1/audit`` (scope ``audit:read``), the tenant's audit trail as JSON.

Paged like SCIM lists (``startIndex``, ``count``), newest first, optionally for one
resource (``resource``) and a time window (``since``, ``until``: ISO 8601).
"""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, g, jsonify, request

from ..scim.errors import invalid_value
from ..scim.marshal import format_datetime
from ..storage import audit
from ..storage.models import AuditEvent
from .auth import require_token
from .params import MAX_START_INDEX, _integer

bp = Blueprint("admin", __name__)


def _moment(name: str) -> dt.datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
        # in UTC, as stored: a moment whose UTC falls outside years 1-9999 is no date-time
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise invalid_value(f"'{name}' must be an ISO 8601 date-time, not {raw!r}") from exc


def event_json(event: AuditEvent) -> dict:
    return {"id": event.id, "at": format_datetime(event.at), "actor": event.actor,
            "requestId": event.request_id, "resourceType": event.resource_type,
            "resourceId": event.resource_id, "operation": event.operation, "changes": event.changes,
            **({"runId": event.run_id} if event.run_id else {}),
            **({"bulkOperation": {"index": event.bulk_index, **({"bulkId": event.bulk_id} if event.bulk_id else {})}}
               if event.bulk_index is not None else {})}


@bp.get("/admin/v1/audit")
def audit_trail():
    token = require_token("audit:read")
    start = min(max(_integer(request.args.get("startIndex"), "startIndex") or 1, 1), MAX_START_INDEX)
    count = min(max(_integer(request.args.get("count"), "count") or 100, 0),
                current_app.config["SCIM"].max_page_size)
    which = (token.tenant_id, request.args.get("resource"), _moment("since"), _moment("until"))
    total = audit.count_events(g.db, *which)
    rows = audit.page_of_events(g.db, *which, offset=start - 1, limit=count) if count else []
    return jsonify({"totalResults": total, "startIndex": start, "itemsPerPage": len(rows),
                    "Resources": [event_json(e) for e in rows]})
