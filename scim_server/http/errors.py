"""Every error leaves as an RFC 7644 §3.12 error body with ``application/scim+json``.

Client mistakes are raised as ``ScimError`` anywhere below; werkzeug's own
HTTP errors (404 route, 405 method, 413 body) are rendered the same way; a database
that cannot be reached (or stays locked) is a 503 with ``Retry-After``, which IdPs
retry; and anything unexpected is logged and answered with a bare 500 body that
carries no stack trace.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, InternalServerError

from .. import jsontext
from ..scim.errors import ScimError
from ..storage.db import DatabaseRefusal, DatabaseUnavailable

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_JSON = "application/scim+json"
RETRY_AFTER_SECONDS = 5
log = logging.getLogger(__name__)


def error_response(status: int, detail: str, scim_type: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    body = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    response = Response(jsontext.dumps(body), status=status, mimetype=SCIM_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ScimError)
    def _scim_error(error: ScimError) -> Response:
        return error_response(error.status, error.detail, error.scim_type, error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        console_page = current_app.extensions.get("console_error_page")
        if console_page is not None and request.path.startswith("/console/"):
            return console_page(error)  # the console is for people: an HTML page
        status = error.code or 500
        detail = {
            404: "No such endpoint",
            405: "Method not allowed on this endpoint",
            413: "Request body too large",
        }.get(status, error.description or error.name)
        headers = {}
        if status == 405 and error.get_response().headers.get("Allow"):
            headers["Allow"] = error.get_response().headers["Allow"]
        scim_type = "tooMany" if status == 413 else None
        return error_response(status, detail, scim_type, headers)

    @app.errorhandler(DatabaseRefusal)
    def _conflict(error: DatabaseRefusal) -> Response:
        # Stores check constraints first and name the attribute; this is the race both checks
        # passed (two requests creating the same thing at once): the database said no.
        log.info("integrity conflict: %s", type(error.orig).__name__)
        return error_response(409, "The change conflicts with a concurrent change; retry the request",
                              "uniqueness")

    @app.errorhandler(DatabaseUnavailable)
    def _unavailable(error: DatabaseUnavailable) -> Response:
        # the database refused the connection, lost it during the request, or kept
        # SQLite's write lock past the busy timeout: nothing the client did, and worth a retry
        log.error("database unavailable: %s", error.orig)
        return error_response(503, "The database is unavailable; retry the request", None,
                              {"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        console_page = current_app.extensions.get("console_error_page")
        if console_page is not None and request.path.startswith("/console/"):
            return console_page(InternalServerError())
        return error_response(500, "Internal server error")
