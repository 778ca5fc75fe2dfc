"""Content types in and out.

Requests with a body must be ``application/scim+json`` or ``application/json``
(any parameters, e.g. ``charset=utf-8``); GET and DELETE need no header at all
(Entra ID's GETs carry none). Every response is ``application/scim+json``.
"""
from __future__ import annotations

from typing import Any

from flask import Response, request

from .. import jsontext
from ..scim.errors import ScimError, invalid_syntax
from .errors import SCIM_JSON

ACCEPTED = ("application/scim+json", "application/json")


def json_body() -> Any:
    mimetype = (request.mimetype or "").lower()
    if mimetype not in ACCEPTED:
        raise ScimError(415, f"Send the body as {SCIM_JSON} (or application/json), not {mimetype or 'nothing'}")
    raw = request.get_data(cache=True)
    if not raw:
        raise invalid_syntax("The request body is empty")
    try:
        return jsontext.loads(raw)
    except jsontext.JSONDecodeError as exc:
        raise invalid_syntax(f"The body is not valid JSON: {exc}") from exc


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A SCIM body is made of JSON types only (``marshal.dump``), encoded directly with
    ``jsontext`` (a page of 100 users several times faster than the standard library) rather
    than through the app's JSON provider."""
    response = Response(jsontext.dumps(body), status=status, mimetype=SCIM_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response
