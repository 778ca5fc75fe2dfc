"""A tenant's overview: the first page an admin sees."""
from __future__ import annotations

from flask import g, render_template

from ..reports import overview as overview_report
from ..storage.models import utcnow
from . import auth
from .blueprint import bp


@bp.get("/t/<tenant>/")
@auth.signed_in
def overview(tenant: str) -> str:
    found = auth.tenant_or_404(tenant)
    return render_template("console/overview.html", tenant=found,
                           overview=overview_report.overview(g.db, found.id, utcnow()))
