"""Data quality and billing: the reports of ``scim_server.reports``, as pages and downloads.
The API (``/admin/v1/reports/...``) serves the same functions, so the numbers agree."""
from __future__ import annotations

import datetime as dt

from flask import Response, abort, g, render_template, request

from ..reports import billing as billing_report
from ..reports import quality as quality_report
from ..storage.models import utcnow
from . import auth
from .blueprint import bp, page_param


@bp.get("/t/<tenant>/quality")
@auth.signed_in
def quality(tenant: str) -> str:
    found = auth.tenant_or_404(tenant)
    return render_template("console/quality.html", tenant=found, checks=quality_report.CHECKS,
                           counts=quality_report.counts(g.db, found.id, utcnow()))


@bp.get("/t/<tenant>/quality/<check>")
@auth.signed_in
def quality_check(tenant: str, check: str) -> str:
    found = auth.tenant_or_404(tenant)
    if check not in quality_report.CHECKS:
        abort(404)
    now, page = utcnow(), page_param()
    total = quality_report.count(g.db, found.id, check, now)
    rows = quality_report.findings(g.db, found.id, check, now, offset=page.offset, limit=page.size)
    return render_template("console/quality_check.html", tenant=found, check=check, findings=rows,
                           page=page.with_total(total))


def _date() -> dt.date:
    try:
        return dt.date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        return utcnow().date()


@bp.get("/t/<tenant>/billing")
@auth.signed_in
def billing(tenant: str) -> str:
    found = auth.tenant_or_404(tenant)
    report = billing_report.billing(g.db, found.id, _date())
    return render_template("console/billing.html", tenant=found, report=report)


@bp.get("/t/<tenant>/billing.<any(csv,xlsx):kind>")
@auth.signed_in
def billing_download(tenant: str, kind: str) -> Response:
    found = auth.tenant_or_404(tenant)
    report = billing_report.billing(g.db, found.id, _date())
    render, mimetype = billing_report.DOWNLOADS[kind]
    response = Response(render(report), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="billing-{found.name}-{report.date}.{kind}"'
    return response
