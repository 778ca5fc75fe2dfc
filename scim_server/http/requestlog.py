"""Request ids and the structured access log.

Every request gets an id: the caller's ``X-Request-ID`` when it is a sensible
token (so an IdP's or a proxy's id follows the request through), else a new one.
It is returned in the ``X-Request-ID`` response header, written to the audit
trail with every change, and logged as one JSON line per request. The line names
the tenant and actor but never a token, a secret, an Authorization header or a
request body.

A request of an authenticated caller (``g.token``) answered with an error (4xx but 429, or
5xx) is also kept for the console's overview (``storage.usage.record_error``): written once
the response is sent, in a transaction of its own, with the SCIM error's scimType and detail.
"""
from __future__ import annotations

import logging
import re
import sys
import time
import uuid

from flask import Flask, Response, current_app, g, request

from .. import jsontext
from ..storage import audit, usage

log = logging.getLogger("scim_server.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
                "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        return jsontext.dumps_text(line, default=str)


class LineHandler(logging.StreamHandler):
    """A stream handler that writes each record with one ``write`` and takes no lock.

    Every request logs a line, so the handler's lock would be contended by every worker
    thread; one write of a whole line does not interleave with another (the stream's
    buffer serialises writes), so the lock buys nothing here.
    """

    def handle(self, record: logging.LogRecord) -> bool:
        if self.filter(record):
            self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
        except Exception:  # a logging failure must not fail the request
            self.handleError(record)


def configure_logging() -> None:
    """JSON lines on stderr for the access log (idempotent)."""
    if any(isinstance(h.formatter, JsonFormatter) for h in log.handlers):
        return
    handler = LineHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = True


def register(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()
        g.audit_token = audit.current.set(audit.Actor("anonymous", g.request_id))

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if response.status_code >= 400 and response.status_code != 429 and g.get("token") is not None:
            _keep_error(response)
        if not log.isEnabledFor(logging.INFO):
            return response
        actor = audit.current.get()
        # makeRecord + handle, not log.info: info() walks the stack for a caller nobody reads
        log.handle(log.makeRecord(log.name, logging.INFO, "", 0, "request", (), None, extra={"fields": {
            "request_id": g.get("request_id"),
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
            "tenant_id": getattr(g.get("token"), "tenant_id", None),
            "actor": actor.actor,
            "remote_addr": request.remote_addr,
        }}))
        return response

    @app.teardown_request
    def _reset(_exc) -> None:
        token = g.pop("audit_token", None)
        if token is not None:
            audit.current.reset(token)


def _keep_error(response: Response) -> None:
    """Have the failed request kept (``storage.usage.record_error``) once the response is sent:
    by then the request's own session is closed, so the write waits for no lock of its own
    request. scimType and detail come from the body when it is a SCIM error."""
    scim_type = detail = None
    if response.is_json and not response.is_streamed:
        body = response.get_json(silent=True)
        if isinstance(body, dict):
            scim_type = body.get("scimType") if isinstance(body.get("scimType"), str) else None
            detail = body.get("detail") if isinstance(body.get("detail"), str) else None
    token = g.token
    fields = (current_app.extensions["scim_sessions"], token.tenant_id, token.actor, g.get("request_id"),
              request.method, request.path, response.status_code, scim_type, detail)
    response.call_on_close(lambda: usage.record_error(*fields))
