"""The /Users and /Groups endpoints, and POST /.search (RFC 7644 §3.3–§3.6).

Each view authenticates, parses, calls once and renders: reads call a store, writes call
the write service (``provisioning``), which runs the whole write and its transaction.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, request

from ..provisioning import Provisioning, Written
from ..scim import marshal
from ..scim.errors import ScimError, invalid_syntax
from ..scim.projection import Projection
from ..storage.resources import ResourceStore, etag
from ..storage.stores import ENDPOINTS, TenantScope, find, open_store
from .auth import AuthenticatedToken, require_token
from .content import json_body, scim_response
from .context import base_url
from .paging import cursor_page
from .params import SEARCH_REQUEST, list_query

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

bp = Blueprint("resources", __name__)


def tenant_scope(token: AuthenticatedToken) -> TenantScope:
    return TenantScope(token.tenant_id, token.tenant_settings, token.disabled_extensions)


def _store(endpoint: str, scope: str) -> ResourceStore:
    """The store a read uses."""
    return open_store(g.db, tenant_scope(require_token(scope)), ENDPOINTS[endpoint], base_url())


def provisioning() -> Provisioning:
    """The write service for this request's tenant (authenticated for scim:write)."""
    token = require_token("scim:write")
    return Provisioning(g.db, tenant_scope(token), base_url(),
                        max_patch_operations=current_app.config["SCIM"].max_patch_operations)


def _projection(store: ResourceStore, source=None) -> Projection:
    source = request.args if source is None else source
    lowered = {k.lower(): v for k, v in source.items()}
    return Projection(store.rt, lowered.get("attributes"), lowered.get("excludedattributes"))


def _one(store: ResourceStore, row, projection: Projection, status: int = 200, location: bool = False) -> Response:
    doc = projection.apply(marshal.dump(store.rt, store.documents([row], projection)[0]))
    headers = {"ETag": etag(row)}
    if location:
        headers["Location"] = store.location(row.id)
    return scim_response(doc, status, headers)


def _written(written: Written) -> Response:
    return _one(written.store, written.row, _projection(written.store), written.status,
                location=written.status == 201)


# ------------------------------------------------------------------ collection


@bp.route("/<any(Users,Groups):endpoint>", methods=["GET"], strict_slashes=False)
def list_resources(endpoint: str) -> Response:
    store = _store(endpoint, "scim:read")
    return _list(store, request.args)


@bp.route("/<any(Users,Groups):endpoint>/.search", methods=["POST"])
def search_resources(endpoint: str) -> Response:
    store = _store(endpoint, "scim:read")
    return _list(store, _search_body())


def _search_body() -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise invalid_syntax("A search body must be a JSON object")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or SEARCH_REQUEST.lower() not in {str(s).lower() for s in schemas}:
        raise invalid_syntax(f"A search body must list the schema {SEARCH_REQUEST}")
    return body


def _list(store: ResourceStore, source) -> Response:
    settings = current_app.config["SCIM"]
    query = list_query(source, settings)
    if query.cursor is not None:  # RFC 9865
        return scim_response({"schemas": [LIST_RESPONSE], **cursor_page([store], query, settings.cursor_timeout)})
    projection = Projection(store.rt, query.attributes, query.excluded_attributes)
    total, rows = store.search(query.filter, query.sort_by, query.descending, query.start_index, query.count)
    docs = store.documents(rows, projection) if rows else []
    resources = [projection.apply(marshal.dump(store.rt, d)) for d in docs]
    return scim_response({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": query.start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    })


@bp.route("/<any(Users,Groups):endpoint>", methods=["POST"], strict_slashes=False)
def create_resource(endpoint: str) -> Response:
    service = provisioning()
    body = json_body()
    written = service.commit_one(lambda: service.create(ENDPOINTS[endpoint], body), read_first=endpoint == "Users")
    return _written(written)


# -------------------------------------------------------------------- one item


@bp.route("/<any(Users,Groups):endpoint>/<resource_id>", methods=["GET"], strict_slashes=False)
def get_resource(endpoint: str, resource_id: str) -> Response:
    store = _store(endpoint, "scim:read")
    row = find(store, resource_id)
    inm = request.headers.get("If-None-Match")
    if inm and etag(row).removeprefix("W/") in {t.strip().removeprefix("W/") for t in inm.split(",")}:
        return Response(status=304, headers={"ETag": etag(row)})
    return _one(store, row, _projection(store))


@bp.route("/<any(Users,Groups):endpoint>/<resource_id>", methods=["PUT"], strict_slashes=False)
def replace_resource(endpoint: str, resource_id: str) -> Response:
    service = provisioning()
    body, if_match = json_body(), request.headers.get("If-Match")
    written = service.commit_one(lambda: service.replace(ENDPOINTS[endpoint], resource_id, body, if_match=if_match))
    return _written(written)


@bp.route("/<any(Users,Groups):endpoint>/<resource_id>", methods=["PATCH"], strict_slashes=False)
def patch_resource(endpoint: str, resource_id: str) -> Response:
    service = provisioning()
    body, if_match = json_body(), request.headers.get("If-Match")
    written = service.commit_one(lambda: service.patch(ENDPOINTS[endpoint], resource_id, body, if_match=if_match),
                                 read_first=endpoint == "Users")
    params = {k.lower() for k in request.args}
    if endpoint == "Groups" and not params & {"attributes", "excludedattributes"}:
        return Response(status=204, headers={"ETag": etag(written.row)})  # no member list unless asked for
    return _written(written)


@bp.route("/<any(Users,Groups):endpoint>/<resource_id>", methods=["DELETE"], strict_slashes=False)
def delete_resource(endpoint: str, resource_id: str) -> Response:
    service = provisioning()
    if_match = request.headers.get("If-Match")
    service.commit_one(lambda: service.delete(ENDPOINTS[endpoint], resource_id, if_match=if_match))
    return Response(status=204)


# ------------------------------------------------------------- root and stubs


@bp.route("/.search", methods=["POST"])
def search_all() -> Response:
    """Search every resource type at once (RFC 7644 §3.4.3): Users first, then Groups."""
    body = _search_body()
    settings = current_app.config["SCIM"]
    query = list_query(body, settings)
    stores = [_store(name, "scim:read") for name in ENDPOINTS]
    if query.cursor is not None:  # RFC 9865: one list, Users then Groups, as below
        return scim_response({"schemas": [LIST_RESPONSE], **cursor_page(stores, query, settings.cursor_timeout)})
    totals, pages, errors = [], [], []
    skip, wanted = query.start_index - 1, query.count
    for store in stores:
        try:
            total, _ = store.search(query.filter, None, False, 1, 0)
        except ScimError as exc:  # an attribute this type lacks: no match of this type
            errors.append(exc)
            totals.append(0)
            continue
        totals.append(total)
        if wanted > 0 and skip < total:
            _, rows = store.search(query.filter, query.sort_by, query.descending, skip + 1, wanted)
            projection = Projection(store.rt, query.attributes, query.excluded_attributes)
            docs = store.documents(rows, projection) if rows else []
            pages += [projection.apply(marshal.dump(store.rt, d)) for d in docs]
            wanted -= len(rows)
            skip = 0
        else:
            skip -= min(skip, total)
    if len(errors) == len(stores):
        raise errors[0]
    return scim_response({"schemas": [LIST_RESPONSE], "totalResults": sum(totals),
                          "startIndex": query.start_index, "itemsPerPage": len(pages), "Resources": pages})


@bp.route("/Me", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_implemented() -> Response:
    require_token("scim:read")
    raise ScimError(501, "Not implemented by this service provider (see /ServiceProviderConfig)")
