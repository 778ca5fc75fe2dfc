"""Signing in and out, the language switch, and the console's front door."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, g, redirect, render_template, request, url_for

from ..storage import tenants
from . import auth
from .blueprint import bp
from .i18n import COOKIE as LANGUAGE_COOKIE
from .i18n import LANGUAGES, gettext

ONE_YEAR = 365 * 24 * 3600


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path of this site, never another site."""
    if (target and target.startswith("/console") and not urlsplit(target).netloc and "\\" not in target
            and target.isprintable()):  # no line break or other control character for a header
        return target
    return url_for("console.home")


@bp.route("/login", methods=["GET", "POST"])
def sign_in() -> Response:
    error, status = None, 200
    email = request.form.get("email", "").strip()
    if request.method == "POST":
        if not auth.check_sign_in_token():
            error, status = gettext("The form has expired. Please try again."), 400
        else:
            cookie, wait = auth.sign_in(email, request.form.get("password", ""))
            if cookie is not None:
                response = redirect(_safe_next(request.args.get("next")))
                auth.set_cookie(response, auth.SESSION_COOKIE, cookie, max_age=None)
                response.delete_cookie(auth.SIGN_IN_COOKIE, path="/console")
                return response
            error, status = gettext("Wrong e-mail or password."), 401
            if wait > 0:
                error = gettext("Too many failed attempts. Try again in %(seconds)d seconds.", seconds=int(wait) + 1)
                status = 429
    token = auth.sign_in_token()
    response = Response(render_template("console/sign_in.html", error=error, email=email, csrf_token=token),
                        status=status, mimetype="text/html")
    if g.get("new_sign_in_token"):
        auth.set_cookie(response, auth.SIGN_IN_COOKIE, token, max_age=3600)
    return response


@bp.post("/logout")
@auth.signed_in
def sign_out() -> Response:
    auth.check_csrf()
    auth.sign_out()
    response = redirect(url_for("console.sign_in"))
    response.delete_cookie(auth.SESSION_COOKIE, path="/console")
    return response


@bp.get("/language/<code>")
def choose_language(code: str) -> Response:
    """The language switch: a preference cookie, then back to the page it was clicked on."""
    response = redirect(_safe_next(request.args.get("next")))
    if code in LANGUAGES:
        auth.set_cookie(response, LANGUAGE_COOKIE, code, max_age=ONE_YEAR)
    return response


@bp.get("/")
@auth.signed_in
def home() -> Response:
    """An operator chooses a tenant; a tenant admin goes straight to their own."""
    admin = auth.current_admin()
    if not admin.is_operator:
        name = tenants.tenant_name(g.db, admin.tenant_id)
        return redirect(url_for("console.overview", tenant=name))
    return render_template("console/tenants.html", tenants=tenants.tenant_names(g.db))
