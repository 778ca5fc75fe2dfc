"""The sync over HTTP, for integrators: the same run as ``scim-server sync``.

``POST /admin/v1/sources/{source}/sync`` (scope ``sync:write``) takes the users file as a
``text/csv`` body, both files as a multipart upload (parts ``users`` and ``units``, CSV or
XLSX), or JSON (``{"users": [...], "units": [...]}`` of SCIM resources). The flags are query
parameters: ``mode=full|partial``, ``dryRun``, ``maxDeactivations``. An upload larger than
``SCIM_SYNC_INLINE_BYTES`` answers 202 with the run's URL and runs in the background.

``GET /admin/v1/sources/{source}/runs`` and ``.../runs/{id}`` (scope ``audit:read``) show the
run log, a run's changes linked to their audit events.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from ..scim.errors import ScimError, invalid_value, not_found
from ..storage import audit, sources
from ..storage.db import commit_write
from ..sync.engine import SnapshotSync, SyncOptions, SyncResult, parse_limit, run_json
from ..sync.mapping import SyncRefused
from ..sync.scim_input import records_from_json
from .auth import require_token
from .content import body_bytes, json_body, scim_response
from .context import base_url, server_url

log = logging.getLogger(__name__)
bp = Blueprint("sync", __name__)
PREFIX = "/admin/v1/sources/<source_name>"


@bp.post(f"{PREFIX}/sync")
def sync(source_name: str) -> Response:
    token = require_token("sync:write")
    request.max_content_length = current_app.config["SCIM"].sync_max_bytes  # files are larger than SCIM bodies
    options = _options(source_name)
    settings = dict(token.tenant_settings or {})
    source = _source(token.tenant_id, source_name, create=True)
    run_url = f"{server_url()}/admin/v1/sources/{source.name}/runs/"
    inline = current_app.config["SCIM"].sync_inline_bytes
    if (request.content_length or 0) > inline:  # in the background: the client polls the run
        run = sources.start_run(g.db, token.tenant_id, source.id, token.actor,
                                "partial" if options.partial else "full", options.dry_run)
        commit_write(g.db)
        _in_background(token.tenant_id, settings, options, base_url(), run.id, audit.current.get())
        response = jsonify(run_json(run, source.name, details=False))
        response.status_code, response.headers["Location"] = 202, run_url + run.id
        return response
    result = SnapshotSync(g.db, token.tenant_id, settings, options, base_url()).run()
    commit_write(g.db)
    return _answer(result, token.tenant_id, source.name, run_url)


def _options(source_name: str) -> SyncOptions:
    """The run's flags from the query string, and its input from the body."""
    mode = request.args.get("mode", "full")
    if mode not in ("full", "partial"):
        raise invalid_value("mode must be 'full' or 'partial'")
    dry_run = request.args.get("dryRun", "false").lower()
    if dry_run not in ("true", "false", "1", "0"):
        raise invalid_value("dryRun must be true or false")
    limit = request.args.get("maxDeactivations")
    if limit is not None:
        try:
            parse_limit(limit, 0)
        except SyncRefused as exc:
            raise invalid_value(str(exc)) from None
    options = SyncOptions(source=source_name, partial=mode == "partial", dry_run=dry_run in ("true", "1"),
                          max_deactivations=limit)
    kind = (request.mimetype or "").lower()
    if kind in ("text/csv", "application/csv"):
        options.users_file = body_bytes(cache=False) or b""
    elif kind == "multipart/form-data":
        files = {name: part.read() for name, part in request.files.items() if name in ("users", "units")}
        if not files:
            raise invalid_value("a multipart upload needs a 'users' part, a 'units' part, or both")
        options.users_file, options.units_file = files.get("users"), files.get("units")
    elif kind in ("application/json", "application/scim+json"):
        try:
            options.records = records_from_json(json_body())
        except SyncRefused as exc:
            raise invalid_value(str(exc)) from None
    else:
        raise ScimError(415, "Send the users file as text/csv, both files as multipart/form-data "
                             "(parts 'users' and 'units'), or JSON")
    return options


def _source(tenant_id: int, name: str, create: bool):
    try:
        found = sources.source(g.db, tenant_id, name, create=create)
    except sources.SourceError as exc:
        raise invalid_value(str(exc)) from None
    if found is None:
        raise not_found(f"No source '{name}'")
    return found


def _answer(result: SyncResult, tenant_id: int, source_name: str, run_url: str) -> Response:
    run = sources.run_by_id(g.db, tenant_id, result.run_id) if result.run_id else None
    body: dict[str, Any] = run_json(run, source_name) if run is not None else result.as_json()
    if result.status == "refused":  # nothing was written: the client's file or the guard said no
        return scim_response({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",
                              "detail": result.message or "the run was refused", "runId": result.run_id,
                              "rowErrors": body.get("rowErrors", [])}, 400,
                             {"Location": run_url + result.run_id} if result.run_id else None)
    response = jsonify(body)
    if result.run_id:
        response.headers["Location"] = run_url + result.run_id
    return response


def _in_background(tenant_id: int, settings: dict[str, Any], options: SyncOptions, base: str, run_id: str,
                   actor: audit.Actor) -> None:
    sessions = current_app.extensions["scim_sessions"]

    def work() -> None:
        audit.current.set(actor)
        try:
            with sessions.begin() as session:
                SnapshotSync(session, tenant_id, settings, options, base).run(run_id)
        except Exception:  # logged, and the run is marked failed for the client polling it
            log.exception("sync run %s failed", run_id)
            with sessions.begin() as session:
                run = sources.run_by_id(session, tenant_id, run_id)
                if run is not None:
                    sources.finish_run(run, "failed", {}, {}, "the run failed on the server; see its log")

    threading.Thread(target=work, name=f"sync-{run_id}", daemon=True).start()


@bp.get(f"{PREFIX}/runs")
def runs(source_name: str) -> Response:
    token = require_token("audit:read")
    source = _source(token.tenant_id, source_name, create=False)
    found = sources.runs(g.db, token.tenant_id, source.id, limit=100)
    return jsonify({"totalResults": len(found), "Resources": [run_json(r, source.name, details=False) for r in found]})


@bp.get(f"{PREFIX}/runs/<run_id>")
def run(source_name: str, run_id: str) -> Response:
    token = require_token("audit:read")
    source = _source(token.tenant_id, source_name, create=False)
    found = sources.run_by_id(g.db, token.tenant_id, run_id)
    if found is None or found.source_id != source.id:
        raise not_found(f"No run {run_id} of source '{source.name}'")
    total, events = audit.events_of_run(g.db, token.tenant_id, found.id)
    body = run_json(found, source.name)
    body["events"] = [{"id": e.id, "resourceType": e.resource_type, "resourceId": e.resource_id,
                       "operation": e.operation, "changes": e.changes} for e in events]
    body["eventsTotal"] = total
    return jsonify(body)
