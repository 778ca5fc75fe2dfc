"""``/healthz`` (liveness) and ``/readyz`` (readiness), for load balancers and orchestrators.

``/healthz`` answers 200 whenever the process can answer at all: it touches no database, so a
database outage does not get healthy workers restarted. ``/readyz`` answers 200 only when the
database answers and its schema is at the newest migration this code ships (the row of
``alembic_version`` equals the migration scripts' head), else 503 with a small JSON body saying
why. A database migrated by a newer release than this one is not ready either: this code does
not know that schema. Neither needs a token; neither tells anything about tenants.
"""
from __future__ import annotations

import logging

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, Response, current_app, jsonify

from ..storage.migrate import alembic_config

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/healthz")
def healthz() -> Response:
    return _answer(200, {"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    expected = _expected_revisions()
    try:
        with current_app.extensions["scim_read_engine"].connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except Exception as exc:  # whatever the driver raises, the database is not answering
        log.warning("readiness: database unavailable: %s", getattr(exc, "orig", None) or type(exc).__name__)
        return _answer(503, {"status": "unavailable", "reason": "database unavailable"})
    if current != expected:
        reason = "database not migrated" if not current else "database schema is not at the newest migration"
        return _answer(503, {"status": "unavailable", "reason": reason,
                             "database_revision": ",".join(sorted(current)) or None,
                             "expected_revision": ",".join(sorted(expected))})
    return _answer(200, {"status": "ready"})


def _expected_revisions() -> set[str]:
    """The migration scripts' head(s), read once per app."""
    heads = current_app.extensions.get("scim_migration_heads")
    if heads is None:
        config = alembic_config(current_app.config["SCIM"].database_url)
        heads = current_app.extensions["scim_migration_heads"] = frozenset(ScriptDirectory.from_config(config).get_heads())
    return set(heads)


def _answer(status: int, body: dict) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
