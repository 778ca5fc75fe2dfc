"""``GET /metrics`` (Prometheus' text format) and the per-request counting behind it.

Every request is counted by method, route template and status, with its latency: the route is
Flask's URL rule, never the path, so no id or tenant data becomes a label; a part that can only
be one of a fixed list is filled in (``/scim/v2/Groups/<resource_id>``, not
``/scim/v2/<any(Users,Groups):endpoint>/<resource_id>``). A request that matched no route is
``<unmatched>``, and a method outside HTTP's usual ones is ``OTHER``. A SCIM error body is
counted by its status and ``scimType``.

Who may read it: with ``SCIM_METRICS_TOKEN`` set, a request carrying
``Authorization: Bearer <that token>``, from anywhere; without it, only clients on the loopback
interface (127.0.0.0/8, ::1) that came through no proxy (no ``Forwarded`` or
``X-Forwarded-For`` header). Anyone else gets 401 or 403.

The metrics themselves, the hooks other layers count with and the multi-process set-up for
gunicorn live in ``scim_server.telemetry``; the names gunicorn's master needs are re-exported
here.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import time

from flask import Blueprint, Flask, Response, current_app, g, request

from .. import jsontext
from ..telemetry import (
    child_exit,
    count_in_this_process,
    count_rate_limited,
    count_request,
    count_scim_error,
    prepare_multiprocess_dir,
    render,
    watch_pool,
)
from .errors import SCIM_JSON, error_response

__all__ = ["bp", "child_exit", "count_rate_limited", "init_app", "prepare_multiprocess_dir"]
bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"
_ANY_PART = re.compile(r"<any\([^)]*\):(\w+)>")
#: an error body is read for its scimType only when it is this small (they are a few hundred bytes)
_ERROR_BODY_LIMIT = 16 * 1024


def init_app(app: Flask) -> None:
    """Count every request of ``app``, watch its connection pool, and serve ``/metrics``."""
    count_in_this_process()
    app.register_blueprint(bp)
    watch_pool(app.extensions["scim_engine"])

    @app.before_request
    def _started() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        try:
            _count_response(response)
        except Exception:  # counting must never fail the request
            log.exception("could not count a request")
        return response


def _count_response(response: Response) -> None:
    # the access log's start (``requestlog`` runs first) covers the other before_request hooks;
    # a request that one of them answered early may not have passed ours
    started = g.get("started") or g.get("metrics_started")
    seconds = time.perf_counter() - started if started else None
    method = request.method if request.method in KNOWN_METHODS else "OTHER"
    route = _route(request.url_rule, request.view_args)
    count_request(method, route, response.status_code, seconds)
    if response.status_code >= 400 and response.mimetype == SCIM_JSON and not response.is_streamed:
        count_scim_error(response.status_code, _scim_type(response))


def _route(rule, view_args: dict | None) -> str:
    """The URL rule, with the values of its ``any(...)`` parts (a fixed list, such as Users or
    Groups) filled in and every other variable left as its name."""
    if rule is None:
        return UNMATCHED
    if "<any(" not in rule.rule:
        return rule.rule
    return _ANY_PART.sub(lambda m: str((view_args or {}).get(m.group(1), m.group(0))), rule.rule)


def _scim_type(response: Response) -> str:
    if (response.content_length or 0) > _ERROR_BODY_LIMIT:
        return "none"
    try:
        scim_type = jsontext.loads(response.get_data()).get("scimType")
    except Exception:  # not a SCIM error body after all
        return "none"
    # the server's own constants (RFC 7644 §3.12 and ours); anything else is not made a label
    if isinstance(scim_type, str) and scim_type.isascii() and scim_type.isalpha() and len(scim_type) <= 40:
        return scim_type
    return "none"


@bp.get("/metrics")
def scrape() -> Response:
    refusal = _refusal()
    if refusal is not None:
        return refusal
    body, content_type = render()
    response = Response(body, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def _refusal() -> Response | None:
    token = current_app.config["SCIM"].metrics_token
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return None
        return error_response(401, "The metrics need the bearer token of SCIM_METRICS_TOKEN", None,
                              {"WWW-Authenticate": 'Bearer realm="metrics"'})
    forwarded = "Forwarded" in request.headers or "X-Forwarded-For" in request.headers
    if _loopback(request.remote_addr) and not forwarded:
        return None
    return error_response(403, "The metrics answer loopback clients only, unless SCIM_METRICS_TOKEN is set")


def _loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return (mapped or ip).is_loopback
