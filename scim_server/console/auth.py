"""Who is signed in to the console, and what they may see.

A session is a row of ``console_sessions`` named by a random cookie (HttpOnly, SameSite=Lax,
Secure when the request came over HTTPS), so signing out ends it on the server, not only in
the browser. Every form that changes something carries the session's CSRF token, checked
before the view runs; the sign-in form, which has no session yet, carries a token from a
short-lived cookie of its own (double submit), so no other site can sign a browser in.

A tenant admin sees their own tenant only: any page of another tenant, existing or not, is
404, so the console does not even tell which tenants exist. An operator sees every tenant.
"""
from __future__ import annotations

import functools
import hmac
import secrets
from dataclasses import dataclass

from flask import abort, current_app, g, redirect, request, url_for

from ..http.context import commit, server_url
from ..storage import admins, tenants
from ..storage.models import Tenant, utcnow

SESSION_COOKIE = "console_session"
SIGN_IN_COOKIE = "console_sign_in"


@dataclass(frozen=True)
class Admin:
    id: int
    email: str
    tenant_id: int | None
    csrf_token: str

    @property
    def is_operator(self) -> bool:
        return self.tenant_id is None


def current_admin() -> Admin | None:
    """The signed-in admin of this request (looked up once per request), or None."""
    if "console_admin" not in g:
        cookie = request.cookies.get(SESSION_COOKIE)
        found = admins.find_session(g.db, cookie, utcnow()) if cookie else None
        g.console_admin = None if found is None else Admin(
            found.admin.id, found.admin.email, found.admin.tenant_id, found.csrf_token)
    return g.console_admin


def signed_in(view):
    """The view needs a signed-in admin; anyone else is sent to the sign-in form (and back)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_admin() is None:
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapper


def tenant_or_404(name: str) -> Tenant:
    """The tenant named in the URL, if the signed-in admin may see it; 404 otherwise."""
    admin = current_admin()
    try:
        tenant = tenants.get_tenant(g.db, name)
    except tenants.TenantError:
        abort(404)
    if admin is None or not (admin.is_operator or admin.tenant_id == tenant.id):
        abort(404)
    return tenant


def check_csrf() -> None:
    """Refuse (400) a state-changing post whose form lacks the session's CSRF token."""
    admin = current_admin()
    sent = request.form.get("csrf_token", "")
    if admin is None or not sent or not hmac.compare_digest(sent, admin.csrf_token):
        abort(400, description="csrf")


def sign_in_token() -> str:
    """The sign-in form's CSRF token: the cookie's, or a new one the response sets."""
    token = request.cookies.get(SIGN_IN_COOKIE)
    if not token:
        token = g.new_sign_in_token = secrets.token_urlsafe(32)
    return token


def check_sign_in_token() -> bool:
    cookie, sent = request.cookies.get(SIGN_IN_COOKIE, ""), request.form.get("csrf_token", "")
    return bool(cookie and sent) and hmac.compare_digest(cookie, sent)


def set_cookie(response, name: str, value: str, max_age: int | None) -> None:
    """A console cookie: never readable by scripts, not sent on other sites' posts, and Secure
    whenever the browser reached us over HTTPS (directly, or through a proxy whose
    ``X-Forwarded-Proto`` we trust, as the server's other absolute URLs do)."""
    secure = request.is_secure or server_url().startswith("https:")
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Lax", secure=secure,
                        path="/console")


def sign_in(email: str, password: str) -> tuple[str | None, float]:
    """Check the credentials; on success start a session and return its cookie value. Failed
    attempts slow down the next ones for that e-mail address: (None, seconds still to wait)."""
    now = utcnow()
    if not email or len(email) > admins.MAX_EMAIL:  # no account has such an address: nothing to count
        return None, 0.0
    wait = admins.wait_before_sign_in(g.db, email, now)
    if wait > 0:
        return None, wait
    admin = admins.check_password(g.db, email, password)
    if admin is None:
        admins.record_failure(g.db, email, now)
        commit()
        return None, admins.wait_before_sign_in(g.db, email, now)
    admins.clear_failures(g.db, email)
    cookie, _csrf = admins.start_session(g.db, admin, now)
    commit()
    current_app.logger.info("console: %s signed in", admin.email)
    return cookie, 0.0


def sign_out() -> None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        admins.end_session(g.db, cookie)
        commit()
