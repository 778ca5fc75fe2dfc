"""/ServiceProviderConfig, /Schemas and /ResourceTypes (RFC 7644 §4), generated from
the schema files and the settings, so they advertise exactly what the server does."""
from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, Response, current_app, g

from ..scim.errors import not_found
from ..scim.schemas import registry
from .auth import require_token
from .content import scim_response
from .context import base_url
from .resources import LIST_RESPONSE

bp = Blueprint("discovery", __name__)


def _list(resources: list[dict[str, Any]]) -> Response:
    return scim_response({"schemas": [LIST_RESPONSE], "totalResults": len(resources), "startIndex": 1,
                          "itemsPerPage": len(resources), "Resources": resources})


def _with_location(resource: dict[str, Any]) -> dict[str, Any]:
    resource = copy.deepcopy(resource)
    meta = resource.setdefault("meta", {})
    if meta.get("location", "").startswith("/"):
        meta["location"] = base_url() + meta["location"]
    return resource


def _resource_types():
    return registry().all_resource_types(without=g.token.disabled_extensions)


def _schema_resources() -> list[dict[str, Any]]:
    seen, out = set(), []
    for rt in _resource_types():
        for schema in [rt.core, *rt.extensions]:
            if schema.id not in seen:
                seen.add(schema.id)
                out.append(_with_location(schema.definition))
    return out


@bp.get("/ServiceProviderConfig", strict_slashes=False)
def service_provider_config() -> Response:
    require_token("scim:read")
    settings = current_app.config["SCIM"]
    return scim_response({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/plan2learn/scim-server#readme",
        "patch": {"supported": True},
        "bulk": {"supported": True, "maxOperations": settings.bulk_max_operations,
                 "maxPayloadSize": settings.bulk_max_payload_bytes},
        "filter": {"supported": True, "maxResults": settings.max_page_size},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        # RFC 9865 §4: both kinds of paging; index stays the default, so clients that send no
        # cursor see what they always saw
        "pagination": {"cursor": True, "index": True, "defaultPaginationMethod": "index",
                       "defaultPageSize": settings.default_page_size, "maxPageSize": settings.max_page_size,
                       "cursorTimeout": settings.cursor_timeout},
        "etag": {"supported": True},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued by the server operator",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": True,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": base_url() + "/ServiceProviderConfig"},
    })


@bp.get("/Schemas", strict_slashes=False)
def schemas() -> Response:
    require_token("scim:read")
    return _list(_schema_resources())


@bp.get("/Schemas/<path:schema_id>", strict_slashes=False)
def schema(schema_id: str) -> Response:
    require_token("scim:read")
    for resource in _schema_resources():
        if resource["id"].lower() == schema_id.lower():
            return scim_response(resource)
    raise not_found(f"No schema {schema_id}")


@bp.get("/ResourceTypes", strict_slashes=False)
def resource_types() -> Response:
    require_token("scim:read")
    return _list([_with_location(rt.definition) for rt in _resource_types()])


@bp.get("/ResourceTypes/<name>", strict_slashes=False)
def resource_type(name: str) -> Response:
    require_token("scim:read")
    rt = registry().resource_type(name, without=g.token.disabled_extensions)
    if rt is None:
        raise not_found(f"No resource type {name}")
    return scim_response(_with_location(rt.definition))
