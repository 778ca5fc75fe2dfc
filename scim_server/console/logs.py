"""The provisioning log (the audit trail, filtered and paged) and the sync runs."""
from __future__ import annotations

import datetime as dt

from flask import abort, g, render_template, request

from ..storage import audit, sources
from . import auth
from .blueprint import bp, page_param

#: the operations an audit event can record ("system": the leaver rule and other rules of the server)
OPERATIONS = ("create", "replace", "patch", "delete", "system")


def _day(name: str, end: bool = False) -> dt.datetime | None:
    """A date field of the filter form (YYYY-MM-DD) as a moment: its start, or the next day's."""
    try:
        day = dt.date.fromisoformat(request.args.get(name, ""))
        moment = dt.datetime.combine(day, dt.time(), dt.UTC)
        return moment + dt.timedelta(days=1) if end else moment
    except (ValueError, OverflowError):  # no date, or the end of the calendar: no bound
        return None


@bp.get("/t/<tenant>/log")
@auth.signed_in
def provisioning_log(tenant: str) -> str:
    found = auth.tenant_or_404(tenant)
    args = request.args
    which = {"resource": args.get("resource", "").strip() or None, "since": _day("since"),
             "until": _day("until", end=True), "actor": args.get("actor", "").strip() or None,
             "operation": args.get("operation") if args.get("operation") in OPERATIONS else None}
    page = page_param()
    total = audit.count_events(g.db, found.id, **which)
    events = audit.page_of_events(g.db, found.id, offset=page.offset, limit=page.size, **which)
    return render_template("console/log.html", tenant=found, events=events, page=page.with_total(total),
                           operations=OPERATIONS, args=args)


@bp.get("/t/<tenant>/sync")
@auth.signed_in
def sync_runs(tenant: str) -> str:
    found = auth.tenant_or_404(tenant)
    names = {s.id: s.name for s in sources.sources(g.db, found.id)}
    return render_template("console/sync_runs.html", tenant=found, runs=sources.runs(g.db, found.id, limit=100),
                           source_names=names)


@bp.get("/t/<tenant>/sync/<run_id>")
@auth.signed_in
def sync_run(tenant: str, run_id: str) -> str:
    found = auth.tenant_or_404(tenant)
    run = sources.run_by_id(g.db, found.id, run_id)
    if run is None:
        abort(404)
    names = {s.id: s.name for s in sources.sources(g.db, found.id)}
    total, events = audit.events_of_run(g.db, found.id, run_id, limit=500)
    return render_template("console/sync_run.html", tenant=found, run=run, source=names.get(run.source_id),
                           events=events, total_events=total)
