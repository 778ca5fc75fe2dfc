"""The console's blueprint, and what every page shares: the tenant's layout and paging."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, abort, g, render_template, request
from werkzeug.exceptions import HTTPException

from .. import jsontext
from .auth import current_admin, sign_in_token
from .i18n import LANGUAGES, language

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

PAGE_SIZE = 50


@dataclass(frozen=True)
class Page:
    """Which page of a long list a request asks for (``?page=``, from 1), and what is around it."""
    number: int
    size: int
    total: int | None = None

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def last(self) -> int | None:
        return None if self.total is None else max(1, -(-self.total // self.size))

    def with_total(self, total: int) -> Page:
        return Page(self.number, self.size, total)


def page_param(size: int = PAGE_SIZE) -> Page:
    try:
        number = int(request.args.get("page", "1"))
    except ValueError:
        number = 1
    return Page(min(max(number, 1), 100_000), size)


@bp.before_request
def _no_nul() -> None:
    """No id, name or e-mail holds a NUL, and PostgreSQL refuses to compare text with one: a
    request carrying one is answered before any query (404 in the path, 400 elsewhere)."""
    if "\x00" in request.path:
        abort(404)
    if any("\x00" in key or "\x00" in value for key, value in
           [*request.args.items(multi=True), *request.form.items(multi=True)]):
        abort(400)


@bp.app_context_processor
def _layout() -> dict:
    if not request.path.startswith("/console"):
        return {}
    return {"admin": current_admin(), "languages": LANGUAGES, "language": language()}


@bp.app_template_global("page_url")
def page_url(number: int) -> str:
    """This page's URL with another ``page``: what the pager links to."""
    args = request.args.to_dict()
    args["page"] = str(number)
    from urllib.parse import urlencode
    return f"{request.path}?{urlencode(args)}"


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def render_error(error: HTTPException) -> Response:
    """An HTML error page for the console's paths (the SCIM API answers with SCIM errors)."""
    status = error.code or 500
    if status >= 500:
        g.console_admin = None  # the database may be what failed: the page asks it nothing
    csrf = status == 400 and error.description == "csrf"
    body = render_template("console/error.html", status=status, csrf=csrf, sign_in_token=sign_in_token)
    return Response(body, status=status, mimetype="text/html")


@bp.app_template_filter("attribute")
def attribute_label(name: str) -> str:
    """An audit key as a person reads it: ``...:enterprise:2.0:User:manager`` is ``manager``."""
    return name.rsplit(":", 1)[-1] if name.startswith("urn:") else name


@bp.app_template_filter("value")
def value_text(value) -> str:
    """A changed value: text as it is, a list or an object as compact JSON, nothing as a dash."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, (dict, list)):
        return jsontext.dumps_text(value)
    return str(value)
