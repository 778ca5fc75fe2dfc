"""Per-request plumbing: the database session, the write lock intent and the public base URL."""
from __future__ import annotations

from flask import Flask, current_app, g, request

from ..storage.db import read_only, write_intent

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def register(app: Flask) -> None:
    @app.before_request
    def _open_session() -> None:
        writes = request.method in WRITE_METHODS and not request.path.endswith("/.search")
        g.write_token = write_intent.set(writes)
        g.read_token = read_only.set(not writes)
        g.db = current_app.extensions["scim_sessions" if writes else "scim_read_sessions"]()

    @app.teardown_request
    def _close_session(_exc) -> None:
        session = g.pop("db", None)
        if session is not None:
            session.close()  # anything not committed by the view is rolled back
        token = g.pop("write_token", None)
        if token is not None:
            write_intent.reset(token)
        token = g.pop("read_token", None)
        if token is not None:
            read_only.reset(token)


def commit() -> None:
    """Commit the request's transaction. Whatever the view reads afterwards (the response
    body) runs as a read-only request, so SQLite's write lock is not held while rendering."""
    g.db.commit()
    write_intent.set(False)
    read_only.set(True)


def base_url() -> str:
    """The absolute URL of the SCIM base path, for ``meta.location`` and ``$ref``."""
    settings = current_app.config["SCIM"]
    if settings.public_base_url:
        return settings.public_base_url
    return server_url() + settings.base_path


def server_url() -> str:
    """The server's absolute URL (no path), as its clients reach it: from SCIM_PUBLIC_BASE_URL,
    else from the request and, behind a proxy, its X-Forwarded-Proto and X-Forwarded-Host."""
    settings = current_app.config["SCIM"]
    if settings.public_base_url:
        return settings.public_base_url.removesuffix(settings.base_path) if settings.base_path else \
            settings.public_base_url
    scheme, host = request.scheme, request.host
    if settings.trust_forwarded_headers:
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip() or scheme
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip() or host
    return f"{scheme}://{host}"
