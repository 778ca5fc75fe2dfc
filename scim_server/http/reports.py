"""The reports over the API, for finance and BI tools (scope ``audit:read``).

``GET /admin/v1/reports/billing?date=YYYY-MM-DD&format=json|csv|xlsx``
    Active users per effective EAN on a date (default: today, UTC) and per unit under each EAN
    (``reports.billing``). JSON: ``{"date", "totalUsers", "eans": [{"ean", "users", "units":
    [{"id", "unitCode", "displayName", "users"}]}]}``; CSV and XLSX: one row per (EAN, unit),
    ``ean,unitCode,unitName,users``, as a download named ``billing-<date>.<format>``.

``GET /admin/v1/reports/quality``
    Every data-quality check's count now (``reports.quality``): ``{"checks": [{"name", "count"}]}``
    in the console's order. With ``check=<name>`` one check's list instead, paged like SCIM lists
    (``startIndex``, ``count``): ``{"check", "totalResults", "startIndex", "itemsPerPage",
    "Resources": [{"resourceType", "id", "name", "displayName", "detail"}]}``.

The renderings are ``reports.billing``'s, the ones the console downloads: the two cannot differ.
Both read in the request's read-only session (``g.db``), a statement or two each.
"""
from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, Response, current_app, g, jsonify, request

from ..reports import quality
from ..reports.billing import DOWNLOADS, billing, billing_json
from ..scim.errors import invalid_value
from ..storage.models import utcnow
from .auth import require_token
from .params import MAX_START_INDEX, _integer

bp = Blueprint("reports", __name__)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date(raw: str | None) -> dt.date:
    """``date``: a calendar date, YYYY-MM-DD only (``fromisoformat`` would also take week dates
    and ``20240101``, which a typo could turn into another day); none: today in UTC."""
    if raw is None or raw == "":
        return utcnow().date()
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise invalid_value(f"'date' must be a date as YYYY-MM-DD, not {raw!r}") from exc


@bp.get("/admin/v1/reports/billing")
def billing_report():
    token = require_token("audit:read")
    on = _date(request.args.get("date"))
    kind = (request.args.get("format") or "json").lower()
    if kind != "json" and kind not in DOWNLOADS:
        raise invalid_value(f"'format' must be json, csv or xlsx, not {request.args.get('format')!r}")
    report = billing(g.db, token.tenant_id, on)
    if kind == "json":
        return jsonify(billing_json(report))
    render, mimetype = DOWNLOADS[kind]
    response = Response(render(report), content_type=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="billing-{on.isoformat()}.{kind}"'
    return response


@bp.get("/admin/v1/reports/quality")
def quality_report():
    token = require_token("audit:read")
    now = utcnow()
    check = request.args.get("check")
    if check is None:
        found = quality.counts(g.db, token.tenant_id, now)
        return jsonify({"checks": [{"name": name, "count": found[name]} for name in quality.CHECKS]})
    if check not in quality.CHECKS:
        raise invalid_value(f"'check' must be one of {', '.join(quality.CHECKS)}, not {check!r}")
    start = min(max(_integer(request.args.get("startIndex"), "startIndex") or 1, 1), MAX_START_INDEX)
    asked = _integer(request.args.get("count"), "count")
    count = min(max(50 if asked is None else asked, 0), current_app.config["SCIM"].max_page_size)
    total = quality.count(g.db, token.tenant_id, check, now)
    rows = quality.findings(g.db, token.tenant_id, check, now, offset=start - 1, limit=count) if count else []
    return jsonify({"check": check, "totalResults": total, "startIndex": start, "itemsPerPage": len(rows),
                    "Resources": [{"resourceType": f.resource_type, "id": f.id, "name": f.name,
                                   "displayName": f.display_name, "detail": f.detail} for f in rows]})
