"""Content types in and out.

Requests with a body must be ``application/scim+json`` or ``application/json``
(any parameters, e.g. ``charset=utf-8``); GET and DELETE need no header at all
(Entra ID's GETs carry none). Every response is ``application/scim+json``.
"""
from __future__ import annotations

from typing import Any

from flask import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from .. import jsontext
from ..scim.errors import ScimError, invalid_syntax
from .errors import SCIM_JSON

ACCEPTED = ("application/scim+json", "application/json")


def json_body() -> Any:
    mimetype = (request.mimetype or "").lower()
    if mimetype not in ACCEPTED:
        raise ScimError(415, f"Send the body as {SCIM_JSON} (or application/json), not {mimetype or 'nothing'}")
    raw = body_bytes()
    if not raw:
        raise invalid_syntax("The request body is empty")
    try:
        return jsontext.loads_bounded(raw)
    except jsontext.TooDeep as exc:
        raise invalid_syntax(f"The body is too deeply nested: {exc}") from exc
    except jsontext.JSONDecodeError as exc:
        raise invalid_syntax(f"The body is not valid JSON: {exc}") from exc


def body_bytes(cache: bool = True) -> bytes:
    """The whole request body, or 413 when it is larger than ``request.max_content_length``
    (``SCIM_MAX_BODY_BYTES``, or what the view set).

    A body with a Content-Length over the limit is refused by werkzeug before it is read. A
    chunked one (``Transfer-Encoding: chunked``, no Content-Length) is read through a stream
    that stops at the limit and ends there as if the body did: one more byte from the
    server's stream tells a body cut at the limit from one that ended at it."""
    raw = request.get_data(cache=cache)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit \
            and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return raw


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A SCIM body is made of JSON types only (``marshal.dump``), encoded directly with
    ``jsontext`` (a page of 100 users several times faster than the standard library) rather
    than through the app's JSON provider."""
    response = Response(jsontext.dumps(body), status=status, mimetype=SCIM_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response
