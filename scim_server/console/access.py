"""Access: the tenant's bearer tokens and OAuth clients; create one (its secret is shown once,
on the page that answers the form, and never stored) or revoke one."""
from __future__ import annotations

import logging

from flask import Response, abort, g, redirect, render_template, request, url_for

from ..http.context import commit
from ..storage import clients, tenants
from . import auth
from .blueprint import bp
from .i18n import gettext

SCOPES = ("scim:read scim:write", "scim:read", "audit:read", "sync:write")
#: who made or revoked which credential: the same log the CLI's account and tenant changes go to
admin_log = logging.getLogger("scim_server.admin")


def _logged(event: str, tenant, **fields) -> None:
    admin = auth.current_admin()
    admin_log.warning("console: %s (tenant %s) by %s", event, tenant.name, admin.email,
                      extra={"fields": {"event": event, "tenant": tenant.name, "by": admin.email, **fields}})


def _page(tenant, shown: dict | None = None, status: int = 200) -> Response:
    body = render_template("console/access.html", tenant=tenant, shown=shown, scopes=SCOPES,
                           tokens=clients.long_lived_tokens(g.db, tenant.id),
                           oauth_clients=clients.clients_of(g.db, tenant.id))
    return Response(body, status=status, mimetype="text/html")


@bp.get("/t/<tenant>/access")
@auth.signed_in
def access(tenant: str) -> Response:
    return _page(auth.tenant_or_404(tenant))


def _scope() -> str:
    scope = request.form.get("scope", "")
    if scope not in SCOPES:
        abort(400)
    return scope


@bp.post("/t/<tenant>/access/tokens")
@auth.signed_in
def create_token(tenant: str) -> Response:
    found = auth.tenant_or_404(tenant)
    auth.check_csrf()
    description = request.form.get("description", "").strip()[:200]
    token = tenants.create_token(g.db, found, description, _scope())
    commit()
    _logged("token created", found, description=description)
    return _page(found, {"kind": "token", "secret": token,
                         "note": gettext("Copy the token now: it is not stored and cannot be shown again.")}, 201)


@bp.post("/t/<tenant>/access/clients")
@auth.signed_in
def create_client(tenant: str) -> Response:
    found = auth.tenant_or_404(tenant)
    auth.check_csrf()
    description = request.form.get("description", "").strip()[:200]
    client, secret = clients.create_client(g.db, found, _scope(), description)
    commit()
    _logged("client created", found, client_id=client.client_id)
    return _page(found, {"kind": "client", "client_id": client.client_id, "secret": secret,
                         "note": gettext("Copy the secret now: it is not stored and cannot be shown again.")}, 201)


def _revoked(tenant: str, row_of, revoke, event: str, **ids) -> Response:
    """Revoke the tenant's token or client that ``row_of(session, tenant_id, id)`` finds (404
    when it is not the tenant's), then back to the Access page."""
    found = auth.tenant_or_404(tenant)
    auth.check_csrf()
    row = row_of(g.db, found.id, *ids.values())
    if row is None:
        abort(404)
    revoke(g.db, row)
    commit()
    _logged(event, found, **ids)
    return redirect(url_for("console.access", tenant=found.name))


@bp.post("/t/<tenant>/access/tokens/<token_id>/revoke")
@auth.signed_in
def revoke_token(tenant: str, token_id: str) -> Response:
    return _revoked(tenant, clients.token_of, clients.revoke_token, "token revoked", token_id=token_id)


@bp.post("/t/<tenant>/access/clients/<client_id>/revoke")
@auth.signed_in
def revoke_client(tenant: str, client_id: str) -> Response:
    """Revoke a client and every access token issued to it."""
    return _revoked(tenant, clients.client_of, clients.revoke_client, "client revoked", client_id=client_id)
