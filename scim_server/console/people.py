"""People: search, and a person's page with the history of every change to them.

The search box becomes a SCIM filter, run through the same store and filter compiler as
``GET /Users?filter=``, so the console finds exactly whom the API finds; an admin who knows SCIM
can type a filter of their own. What the box means depends on what was typed, so that a search
scans only the attributes it can match (each one is a pass over the tenant's users, and the
e-mails and the employee number live in each user's JSON document):

* an e-mail address (it has an ``@``): the userName or an e-mail address starting with it;
* anything else: a name containing it, or a userName starting with it; and when it has a digit,
  also an externalId or employee number equal to it.
"""
from __future__ import annotations

from flask import abort, g, render_template, request

from ..scim import marshal
from ..scim.errors import ScimError
from ..scim.projection import Projection
from ..storage import audit
from ..storage.stores import TenantScope, open_store
from . import auth
from .blueprint import bp, page_param

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_filter(query: str) -> str:
    """The SCIM filter the search box means (see the module's docstring)."""
    value = _quoted(query)
    if "@" in query:
        return f"userName sw {value} or emails.value sw {value}"
    terms = [f"displayName co {value}", f"userName sw {value}"]
    if any(c.isdigit() for c in query):
        terms += [f"externalId eq {value}", f"{ENTERPRISE}:employeeNumber eq {value}"]
    return " or ".join(terms)


def _store(tenant):
    return open_store(g.db, TenantScope(tenant.id, tenant.settings), "User", request.host_url.rstrip("/"))


@bp.get("/t/<tenant>/people")
@auth.signed_in
def people(tenant: str) -> str:
    found = auth.tenant_or_404(tenant)
    query, scim_filter = request.args.get("q", "").strip(), request.args.get("filter", "").strip()
    page, error, total, rows = page_param(), None, 0, []
    expression = scim_filter or (search_filter(query) if query else None)
    try:
        total, rows = _store(found).search(expression, "displayName" if expression else "userName", False,
                                           page.offset + 1, page.size)
    except ScimError as exc:
        error = exc.detail
    return render_template("console/people.html", tenant=found, q=query, filter=scim_filter, error=error,
                           page=page.with_total(total), people=rows)


@bp.get("/t/<tenant>/people/<user_id>")
@auth.signed_in
def person(tenant: str, user_id: str) -> str:
    found = auth.tenant_or_404(tenant)
    store = _store(found)
    row = store.get(user_id) if "\x00" not in user_id else None
    if row is None:
        abort(404)
    doc = marshal.dump(store.rt, store.documents([row], Projection(store.rt, None, None))[0])
    page = page_param(25)
    total = audit.count_events(g.db, found.id, user_id)
    events = audit.page_of_events(g.db, found.id, user_id, offset=page.offset, limit=page.size)
    return render_template("console/person.html", tenant=found, user=doc, row=row, enterprise=ENTERPRISE,
                           page=page.with_total(total), events=events)
