"""The organisation as plan2learn sees it: the org tree (each level fetched when it is
opened) with headcounts and EANs, a unit's page with the people in and below it, and the
manager tree."""
from __future__ import annotations

from flask import abort, g, render_template

from ..reports import organisation
from ..storage.models import utcnow
from . import auth
from .blueprint import bp, page_param


@bp.get("/t/<tenant>/organisation")
@auth.signed_in
def org_tree(tenant: str) -> str:
    found = auth.tenant_or_404(tenant)
    return render_template("console/organisation.html", tenant=found,
                           units=organisation.units(g.db, found.id, None, utcnow()))


@bp.get("/t/<tenant>/organisation/<unit_id>/children")
@auth.signed_in
def unit_children(tenant: str, unit_id: str) -> str:
    """One more level of the tree, as HTML rows for the page's script to insert."""
    found = auth.tenant_or_404(tenant)
    return render_template("console/unit_rows.html", tenant=found,
                           units=organisation.units(g.db, found.id, unit_id, utcnow()))


@bp.get("/t/<tenant>/organisation/<unit_id>")
@auth.signed_in
def unit(tenant: str, unit_id: str) -> str:
    found = auth.tenant_or_404(tenant)
    now = utcnow()
    found_unit = organisation.unit_with_children(g.db, found.id, unit_id, now)
    if found_unit is None:
        abort(404)
    node, children = found_unit
    page = page_param()
    # the people listed are those the unit's headcount counts: their total is that headcount
    total, people = organisation.people_in(g.db, found.id, unit_id, now, offset=page.offset, limit=page.size,
                                           total=node.subtree_headcount)
    return render_template("console/unit.html", tenant=found, unit=node, page=page.with_total(total),
                           breadcrumb=organisation.ancestors(g.db, found.id, unit_id),
                           children=children, people=people)


@bp.get("/t/<tenant>/managers")
@auth.signed_in
def manager_tree(tenant: str) -> str:
    found = auth.tenant_or_404(tenant)
    return render_template("console/managers.html", tenant=found,
                           managers=organisation.managers(g.db, found.id, None))


@bp.get("/t/<tenant>/managers/<user_id>/reports")
@auth.signed_in
def manager_reports(tenant: str, user_id: str) -> str:
    found = auth.tenant_or_404(tenant)
    return render_template("console/manager_rows.html", tenant=found,
                           managers=organisation.managers(g.db, found.id, user_id))
