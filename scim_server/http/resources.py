"""The /Users and /Groups endpoints, and POST /.search (RFC 7644 §3.3–§3.6).

Each view authenticates, runs one transaction, and answers once:
HTTP → SCIM semantics (quirks, PATCH engine, validation, projection) → storage.
"""
from __future__ import annotations

from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy.orm.exc import StaleDataError

from ..scim import marshal, patch, quirks
from ..scim.errors import ScimError, invalid_syntax, not_found
from ..scim.projection import Projection
from ..scim.schemas import registry
from ..storage.db import defer_write_lock
from ..storage.groups import GroupStore
from ..storage.resources import ResourceStore, etag
from ..storage.users import UserStore
from .auth import require_token
from .content import json_body, scim_response
from .context import base_url, commit
from .params import SEARCH_REQUEST, list_query

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
STORES = {"Users": ("User", UserStore), "Groups": ("Group", GroupStore)}

bp = Blueprint("resources", __name__)


def _store(endpoint: str, scope: str) -> ResourceStore:
    rt_name, store_class = STORES[endpoint]
    token = require_token(scope)
    rt = registry().resource_type(rt_name, without=token.disabled_extensions)
    return store_class(g.db, token.tenant_id, rt, base_url(), token.tenant_settings)


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


def _find(store: ResourceStore, resource_id: str, for_update: bool = False):
    if "\x00" in resource_id:  # no id has one, and PostgreSQL refuses to compare with it
        raise not_found(f"{store.rt.name} not found")
    row = store.get(resource_id, for_update=for_update)
    if row is None:
        raise not_found(f"{store.rt.name} {resource_id} not found")
    return row


def _check_if_match(row) -> None:
    header = request.headers.get("If-Match")
    if not header or header.strip() == "*":
        return
    wanted = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    if etag(row).removeprefix("W/") not in wanted:
        raise ScimError(412, f"The resource has changed: its version is now {etag(row)}")


def _resource_body(store: ResourceStore) -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise invalid_syntax("The body must be a JSON object")
    body = quirks.normalise_resource(store.rt, body)
    marshal.check_schemas(store.rt, body)
    return marshal.load(store.rt, marshal.canonicalise(store.rt, body))


def _user_writes_read_first(view):
    """Run a User write with SQLite's write lock taken at its first write, not before its reads.

    Reading, the PATCH engine, validation and the audit diff then run while other writers
    write; the write itself checks the user's version (``UserStore.update``). If another
    request changed the user meanwhile, the request runs once more, from an empty session
    and with the lock up front. Groups keep the lock up front: a member change reads and
    writes many rows.
    """
    @wraps(view)
    def run(endpoint: str, *args, **kwargs):
        if endpoint != "Users":
            return view(endpoint, *args, **kwargs)
        token = defer_write_lock.set(True)
        try:
            return view(endpoint, *args, **kwargs)
        except StaleDataError:
            g.db.rollback()
            g.db.expunge_all()  # the second run reads everything afresh
        finally:
            defer_write_lock.reset(token)
        return view(endpoint, *args, **kwargs)

    return run


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
@_user_writes_read_first
def create_resource(endpoint: str) -> Response:
    store = _store(endpoint, "scim:write")
    doc = _resource_body(store)
    row = store.create(doc)
    store.audit(row, "create", None, store.audit_state(row), store.collection_changes())
    commit()
    return _one(store, row, _projection(store), status=201, location=True)


# -------------------------------------------------------------------- one item


@bp.route("/<any(Users,Groups):endpoint>/<resource_id>", methods=["GET"], strict_slashes=False)
def get_resource(endpoint: str, resource_id: str) -> Response:
    store = _store(endpoint, "scim:read")
    row = _find(store, resource_id)
    inm = request.headers.get("If-None-Match")
    if inm and etag(row).removeprefix("W/") in {t.strip().removeprefix("W/") for t in inm.split(",")}:
        return Response(status=304, headers={"ETag": etag(row)})
    return _one(store, row, _projection(store))


@bp.route("/<any(Users,Groups):endpoint>/<resource_id>", methods=["PUT"], strict_slashes=False)
def replace_resource(endpoint: str, resource_id: str) -> Response:
    store = _store(endpoint, "scim:write")
    row = _find(store, resource_id, for_update=True)
    _check_if_match(row)
    doc = _resource_body(store)
    stored = store.stored_document(row)
    marshal.check_immutable(store.rt, stored, doc)
    audit_before = store.audit_state(row, stored)
    store.replace(row, doc)
    store.audit(row, "replace", audit_before, store.audit_state(row), store.collection_changes())
    commit()
    return _one(store, row, _projection(store))


@bp.route("/<any(Users,Groups):endpoint>/<resource_id>", methods=["PATCH"], strict_slashes=False)
@_user_writes_read_first
def patch_resource(endpoint: str, resource_id: str) -> Response:
    store = _store(endpoint, "scim:write")
    row = _find(store, resource_id, for_update=True)
    _check_if_match(row)
    raw_ops = patch.parse_operations(json_body(), current_app.config["SCIM"].max_patch_operations)
    before = store.stored_document(row)
    audit_before = store.audit_state(row, before)
    collections = store.collections(row)
    after = before
    for raw in raw_ops:  # each quirk sees the resource as the earlier operations left it
        operations = [patch.to_operation(op) for op in quirks.normalise_patch(store.rt, [raw], after)]
        after = patch.apply(store.rt, after, operations, collections)
    doc = marshal.load(store.rt, after, stored=before)
    marshal.check_immutable(store.rt, before, doc)
    store.update(row, doc)
    store.after_patch(row, doc)
    store.audit(row, "patch", audit_before, store.audit_state(row), store.collection_changes())
    commit()
    params = {k.lower() for k in request.args}
    if endpoint == "Groups" and not params & {"attributes", "excludedattributes"}:
        return Response(status=204, headers={"ETag": etag(row)})
    return _one(store, row, _projection(store))


@bp.route("/<any(Users,Groups):endpoint>/<resource_id>", methods=["DELETE"], strict_slashes=False)
def delete_resource(endpoint: str, resource_id: str) -> Response:
    store = _store(endpoint, "scim:write")
    row = _find(store, resource_id, for_update=True)
    _check_if_match(row)
    store.audit(row, "delete", store.audit_state(row), None)
    store.delete(row)
    commit()
    return Response(status=204)


# ------------------------------------------------------------- root and stubs


@bp.route("/.search", methods=["POST"])
def search_all() -> Response:
    """Search every resource type at once (RFC 7644 §3.4.3): Users first, then Groups."""
    body = _search_body()
    settings = current_app.config["SCIM"]
    query = list_query(body, settings)
    stores = [_store(name, "scim:read") for name in STORES]
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


@bp.route("/Bulk", methods=["POST"])
@bp.route("/Me", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_implemented() -> Response:
    require_token("scim:read")
    raise ScimError(501, "Not implemented by this service provider (see /ServiceProviderConfig)")
