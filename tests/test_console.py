"""The admin console at ``/console/`` through HTTP (Flask's test client): signing in and out,
the slow-down of failed sign-ins, CSRF on every form that changes something, one tenant's admin
never seeing another tenant, the Access page's secrets, and every page rendering the demo data.

Tenant "demo" holds a small Solbjerg Kommune (``scim-server demo``'s loader), tenant "other" a
smaller one of its own; each has a tenant admin, and an operator sees both. Everything a test
checks it reads back over HTTP: the console's pages and the SCIM and admin APIs."""
from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import secrets
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import openpyxl
import pytest
from sqlalchemy import select

from conftest import CORE_USER, ENTERPRISE, PATCH_OP, access_token, basic, make_client
from scim_server.cli import _load_demo
from scim_server.reports.quality import CHECKS
from scim_server.storage import admins, tenants
from scim_server.storage.models import BearerToken, utcnow

ON_POSTGRES = (os.environ.get("SCIM_TEST_DATABASE_URL") or "").startswith("postgres")

PASSWORD = "correct horse battery staple"
DEMO_ADMIN = "admin@demo.example"
OTHER_ADMIN = "admin@other.example"
OPERATOR = "operator@plan2learn.example"

SESSION_COOKIE = "console_session"
MEMBER_HEADER = ["externalId", "userName", "givenName", "familyName", "email", "userType", "managerExternalId"]


# ------------------------------------------------------------------ the world


@dataclass
class Tenant:
    """What a test needs of one tenant: a SCIM token (scim:read scim:write) and the ids of
    some of its resources (an org unit with units below it, a person, a manager, a sync run,
    an OAuth client)."""
    name: str
    token: str
    token_id: str
    unit_id: str = ""
    user_id: str = ""
    manager_id: str = ""
    run_id: str = ""
    client_id: str = ""
    client_secret: str = ""


@dataclass
class World:
    demo: Tenant
    other: Tenant


def token_row_id(app, token: str) -> str:
    with app.extensions["scim_sessions"]() as session:
        return session.scalar(select(BearerToken.id).where(BearerToken.token_hash == tenants.hash_token(token)))


def api(app, token: str, method: str, path: str, json=None, **kw):
    """The SCIM or admin API, with a bearer token."""
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    if json is not None:
        kw.update(json=json, content_type="application/scim+json")
    return app.test_client().open(path, method=method, headers=headers, **kw)


def api_json(app, token: str, path: str) -> dict:
    r = api(app, token, "GET", path)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def csv_body(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def run_sync(app, tenant: str, rows: list[list[str]]) -> dict:
    """A partial sync of source "hr" over ``POST /admin/v1/sources/hr/sync`` (scope sync:write)."""
    with app.extensions["scim_sessions"].begin() as session:
        token = tenants.create_token(session, tenants.get_tenant(session, tenant), "hr sync", "sync:write")
    r = api(app, token, "POST", "/admin/v1/sources/hr/sync?mode=partial", data=csv_body([MEMBER_HEADER, *rows]),
            content_type="text/csv")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def make_world(app) -> World:
    """Tenants "demo" (150 employees, 15 externals) and "other" (5 employees, 2 externals, and the
    loader's leader of every unit), a tenant admin of each and an operator, a sync run of two
    people and an OAuth client in each."""
    found = {}
    with app.extensions["scim_sessions"]() as session:
        for name, employees, externals, seed, email in (("demo", 150, 15, 2026, DEMO_ADMIN),
                                                         ("other", 5, 2, 7, OTHER_ADMIN)):
            tenant = tenants.create_tenant(session, name)
            _load_demo(session, tenant.id, employees=employees, externals=externals, seed=seed)
            admins.create_admin(session, email, PASSWORD, tenant.id)
            found[name] = tenants.create_token(session, tenant, f"{name} api", "scim:read scim:write")
        admins.create_admin(session, OPERATOR, PASSWORD, None)
        session.commit()
    world = World(*(Tenant(name, token, token_row_id(app, token)) for name, token in found.items()))
    for tenant, prefix in ((world.demo, "D"), (world.other, "O")):
        units = api_json(app, tenant.token, "/scim/v2/Groups?filter=" + quote('displayName eq "Solbjerg Kommune"'))
        tenant.unit_id = units["Resources"][0]["id"]
        people = api_json(app, tenant.token, "/scim/v2/Users?count=500")["Resources"]
        managed = [p for p in people if (p.get(ENTERPRISE) or {}).get("manager")]
        tenant.user_id = managed[0]["id"]
        tenant.manager_id = managed[0][ENTERPRISE]["manager"]["value"]
        tenant.run_id = run_sync(app, tenant.name, [
            [f"{prefix}001", f"{prefix.lower()}001@frivillig.dk", "Karen", "Konsol", f"{prefix.lower()}001@frivillig.dk",
             "External", ""],
            [f"{prefix}002", f"{prefix.lower()}002@frivillig.dk", "Kaj", "Konsol", f"{prefix.lower()}002@frivillig.dk",
             "External", f"{prefix}001"]])["id"]
        tenant.client_id, tenant.client_secret = make_client(app, tenant.name, "scim:read")
    return world


@pytest.fixture
def world(app) -> World:
    return make_world(app)


# ------------------------------------------------------------------ the browser


def html(response) -> str:
    return response.get_data(as_text=True)


def form_token(page: str) -> str:
    """The first hidden ``csrf_token`` of a page (the sign-in form's, or the session's)."""
    found = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert found, page
    return found.group(1)


def set_cookie(response, name: str) -> str | None:
    """The Set-Cookie header of the response for cookie ``name``, else None."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            return header
    return None


def attributes(cookie_header: str) -> set[str]:
    return {part.strip() for part in cookie_header.split(";")[1:]}


def post_sign_in(client, email: str, password: str, next_: str | None = None, base_url: str | None = None,
                 token: str | None = "from the form"):
    """GET the sign-in form, then POST it (with the form's csrf_token unless ``token`` says otherwise)."""
    kw = {"base_url": base_url} if base_url else {}
    form = client.get("/console/login", **kw)
    assert form.status_code == 200
    data = {"email": email, "password": password}
    if token == "from the form":
        data["csrf_token"] = form_token(html(form))
    elif token is not None:
        data["csrf_token"] = token
    url = "/console/login" + (f"?{urlencode({'next': next_})}" if next_ is not None else "")
    return client.post(url, data=data, **kw)


def signed_in(app, email: str, password: str = PASSWORD):
    """A test client with a console session."""
    client = app.test_client()
    r = post_sign_in(client, email, password)
    assert r.status_code == 302, html(r)
    return client


def session_csrf(client, tenant: str = "demo") -> str:
    """The session's CSRF token, as every page's sign-out form carries it."""
    page = client.get(f"/console/t/{tenant}/access") if tenant else client.get("/console/")
    assert page.status_code == 200, html(page)
    return form_token(html(page))


def ok(client, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 200, (url, r.status_code, html(r)[:2000])
    assert r.mimetype == "text/html", url
    return html(r)


def is_sign_in_redirect(response, path: str) -> bool:
    if response.status_code != 302:
        return False
    location = urlsplit(response.headers["Location"])
    return location.path == "/console/login" and parse_qs(location.query).get("next") == [path]


def tenant_pages(tenant: Tenant, ids: Tenant | None = None) -> list[str]:
    """Every GET page of ``tenant``'s console, naming the resources of ``ids`` (default: its own)."""
    ids = ids or tenant
    base = f"/console/t/{tenant.name}"
    return [f"{base}/", f"{base}/organisation", f"{base}/organisation/{ids.unit_id}",
            f"{base}/organisation/{ids.unit_id}/children", f"{base}/managers",
            f"{base}/managers/{ids.manager_id}/reports", f"{base}/people", f"{base}/people?q=Konsol",
            f"{base}/people/{ids.user_id}", f"{base}/log", f"{base}/sync", f"{base}/sync/{ids.run_id}",
            f"{base}/quality", *(f"{base}/quality/{check}" for check in CHECKS), f"{base}/billing",
            f"{base}/billing.csv", f"{base}/billing.xlsx", f"{base}/access"]


def assert_not_found(response, url: str) -> None:
    assert response.status_code == 404, (url, response.status_code, html(response)[:500])
    assert response.mimetype == "text/html", (url, response.mimetype)
    assert "<html" in html(response) and "Not found" in html(response), url


def scim_status(app, token: str) -> int:
    return api(app, token, "GET", "/scim/v2/Users?count=1").status_code


# ------------------------------------------------------------------ signing in


def test_wrong_password_is_401_with_the_form_again_and_no_session(app, world):
    client = app.test_client()
    r = post_sign_in(client, DEMO_ADMIN, "not the password at all")
    assert r.status_code == 401
    assert 'name="password"' in html(r) and "Wrong e-mail or password." in html(r)
    assert set_cookie(r, SESSION_COOKIE) is None
    assert client.get_cookie(SESSION_COOKIE, path="/console") is None
    assert is_sign_in_redirect(client.get("/console/t/demo/people"), "/console/t/demo/people")
    # an unknown e-mail answers the same
    r = post_sign_in(app.test_client(), "nobody@demo.example", PASSWORD)
    assert r.status_code == 401 and set_cookie(r, SESSION_COOKIE) is None


@pytest.mark.parametrize("next_, goes_to", [
    ("/console/t/demo/people?q=Jensen", "/console/t/demo/people?q=Jensen"),
    ("/console/t/demo/log", "/console/t/demo/log"),
    (None, "/console/"),
    ("https://evil.example/", "/console/"),
    ("//evil.example", "/console/"),
    ("//evil.example/console", "/console/"),
    ("/\\evil.example", "/console/"),
    ("https://evil.example/console/", "/console/"),
    ("javascript:alert(1)", "/console/"),
])
def test_right_password_redirects_to_next_on_this_site_only(app, world, next_, goes_to):
    client = app.test_client()
    r = post_sign_in(client, DEMO_ADMIN, PASSWORD, next_=next_)
    assert r.status_code == 302, html(r)
    location = urlsplit(r.headers["Location"])
    assert location.netloc in ("", "localhost"), r.headers["Location"]
    assert location.scheme in ("", "http")
    assert (location.path + (f"?{location.query}" if location.query else "")) == goes_to
    assert set_cookie(r, SESSION_COOKIE) is not None
    assert client.get("/console/t/demo/people").status_code == 200


@pytest.mark.parametrize("base_url, secure", [("https://localhost", True), ("http://localhost", False)])
def test_session_cookie_attributes(app, world, base_url, secure):
    client = app.test_client()
    r = post_sign_in(client, DEMO_ADMIN, PASSWORD, base_url=base_url)
    assert r.status_code == 302
    header = set_cookie(r, SESSION_COOKIE)
    assert header is not None
    found = attributes(header)
    assert "HttpOnly" in found
    assert "SameSite=Lax" in found
    assert "Path=/console" in found
    assert ("Secure" in found) is secure, header
    # the sign-in form's own cookie is as careful
    form_cookie = set_cookie(app.test_client().get("/console/login", base_url=base_url), "console_sign_in")
    assert form_cookie is not None
    assert {"HttpOnly", "SameSite=Lax", "Path=/console"} <= attributes(form_cookie)
    assert ("Secure" in attributes(form_cookie)) is secure
    # the session works over the same scheme
    assert client.get("/console/t/demo/people", base_url=base_url).status_code == 200


@pytest.mark.parametrize("token", [None, "", "forged-" + "x" * 40, "session"])
def test_sign_in_without_the_form_token_is_400_and_signs_nobody_in(app, world, token):
    client = app.test_client()
    if token == "session":  # a CSRF token of a real session is not the sign-in form's
        token = session_csrf(signed_in(app, OPERATOR), tenant="")
    r = post_sign_in(client, DEMO_ADMIN, PASSWORD, token=token)
    assert r.status_code == 400, html(r)
    assert r.mimetype == "text/html"
    assert set_cookie(r, SESSION_COOKIE) is None
    assert client.get_cookie(SESSION_COOKIE, path="/console") is None
    assert is_sign_in_redirect(client.get("/console/t/demo/people"), "/console/t/demo/people")


def test_sign_in_token_without_its_cookie_is_400(app, world):
    """Double submit: the form's token alone, from another browser's form, signs nobody in."""
    token = form_token(html(app.test_client().get("/console/login")))
    fresh = app.test_client()
    r = fresh.post("/console/login", data={"email": DEMO_ADMIN, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 400
    assert set_cookie(r, SESSION_COOKIE) is None


# ------------------------------------------------------------------ slowing down failed sign-ins


def test_failed_sign_ins_slow_down_that_e_mail_only(app, world, monkeypatch):
    client = app.test_client()
    for _ in range(3):
        r = post_sign_in(client, DEMO_ADMIN, "wrong password!!")
        assert r.status_code == 401, html(r)
    r = post_sign_in(client, DEMO_ADMIN.upper(), "wrong password!!")  # the same address in other case
    assert r.status_code == 429
    # the 5th and later attempts: 429, even with the right password, and nobody is signed in
    for email in (DEMO_ADMIN, f"  {DEMO_ADMIN}  "):
        r = post_sign_in(client, email, PASSWORD)
        assert r.status_code == 429, html(r)
        found = re.search(r"Try again in (\d+) seconds", html(r))
        assert found, html(r)
        assert 1 <= int(found.group(1)) <= admins.MAX_WAIT
        assert set_cookie(r, SESSION_COOKIE) is None
        assert 'name="password"' in html(r)
    assert client.get_cookie(SESSION_COOKIE, path="/console") is None
    # another address is not slowed down
    assert post_sign_in(app.test_client(), OTHER_ADMIN, PASSWORD).status_code == 302
    assert post_sign_in(app.test_client(), OPERATOR, "wrong password!!").status_code == 401
    # once the wait has passed, the right password signs in
    later = utcnow() + dt.timedelta(seconds=admins.MAX_WAIT + 1)
    monkeypatch.setattr("scim_server.console.auth.utcnow", lambda: later)
    r = post_sign_in(client, DEMO_ADMIN, PASSWORD)
    assert r.status_code == 302, html(r)
    assert client.get("/console/t/demo/people").status_code == 200


# ------------------------------------------------------------------ pages need a session


def test_every_page_redirects_to_sign_in_without_a_session(app, world):
    client = app.test_client()
    for url in ["/console/", *tenant_pages(world.demo), *tenant_pages(world.other),
                "/console/t/nope/people", "/console/t/demo/people?q=Jensen&page=2"]:
        r = client.get(url)
        assert is_sign_in_redirect(r, url), (url, r.status_code, r.headers.get("Location"))
    # and a forged session cookie is no session
    client.set_cookie(SESSION_COOKIE, secrets.token_urlsafe(32), path="/console")
    assert is_sign_in_redirect(client.get("/console/t/demo/people"), "/console/t/demo/people")
    # the forms too: nothing is created, revoked or signed out
    demo = "/console/t/demo/access"
    for url in (f"{demo}/tokens", f"{demo}/clients", f"{demo}/tokens/{world.demo.token_id}/revoke",
                f"{demo}/clients/{world.demo.client_id}/revoke", "/console/logout"):
        r = app.test_client().post(url, data={"csrf_token": "x", "scope": "scim:read"})
        assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/console/login", url
    assert scim_status(app, world.demo.token) == 200
    access_token(app, world.demo.client_id, world.demo.client_secret)


# ------------------------------------------------------------------ signing out


def test_sign_out_ends_the_session_on_the_server(app, world):
    client = signed_in(app, DEMO_ADMIN)
    cookie = client.get_cookie(SESSION_COOKIE, path="/console").value
    csrf = session_csrf(client)
    # without the token: 400, and the session still works
    r = client.post("/console/logout")
    assert r.status_code == 400 and r.mimetype == "text/html"
    r = client.post("/console/logout", data={"csrf_token": "not-the-token"})
    assert r.status_code == 400
    assert client.get("/console/t/demo/people").status_code == 200
    # with it: signed out, and the cookie is removed
    r = client.post("/console/logout", data={"csrf_token": csrf})
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/console/login"
    assert set_cookie(r, SESSION_COOKIE) is not None  # deleted (expired)
    assert is_sign_in_redirect(client.get("/console/t/demo/people"), "/console/t/demo/people")
    # the old cookie, sent again by hand, opens nothing: the session is gone on the server
    by_hand = app.test_client()
    for url in ("/console/t/demo/people", "/console/t/demo/access", "/console/"):
        r = by_hand.get(url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
        assert is_sign_in_redirect(r, url), (url, r.status_code)
    r = by_hand.post("/console/t/demo/access/tokens", data={"csrf_token": csrf, "scope": "scim:read"},
                     headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/console/login"


def test_signing_out_one_session_leaves_the_others(app, world):
    first, second = signed_in(app, DEMO_ADMIN), signed_in(app, DEMO_ADMIN)
    assert first.post("/console/logout", data={"csrf_token": session_csrf(first)}).status_code == 302
    assert second.get("/console/t/demo/people").status_code == 200


def test_a_session_ends_after_its_lifetime(app, world, monkeypatch):
    client = signed_in(app, DEMO_ADMIN)
    almost = utcnow() + admins.SESSION_LIFETIME - dt.timedelta(minutes=1)
    monkeypatch.setattr("scim_server.console.auth.utcnow", lambda: almost)
    assert client.get("/console/t/demo/people").status_code == 200
    later = utcnow() + admins.SESSION_LIFETIME + dt.timedelta(minutes=1)
    monkeypatch.setattr("scim_server.console.auth.utcnow", lambda: later)
    assert is_sign_in_redirect(client.get("/console/t/demo/people"), "/console/t/demo/people")


# ------------------------------------------------------------------ one tenant's admin, one tenant


def test_tenant_admin_gets_404_for_other_tenants(app, world):
    client = signed_in(app, DEMO_ADMIN)
    nope = Tenant("nope", "", "")
    urls = [*tenant_pages(world.other), *tenant_pages(nope, world.other), *tenant_pages(nope, world.demo),
            "/console/t/OTHER/people", "/console/t/other/quality/no_such_check"]
    for url in urls:
        assert_not_found(client.get(url), url)
    # the other way round too
    other = signed_in(app, OTHER_ADMIN)
    for url in tenant_pages(world.demo):
        assert_not_found(other.get(url), url)


def test_other_tenants_ids_are_not_found_under_ones_own_tenant(app, world):
    client = signed_in(app, DEMO_ADMIN)
    demo, other = "/console/t/demo", world.other
    for url in (f"{demo}/people/{other.user_id}", f"{demo}/people/{other.manager_id}",
                f"{demo}/organisation/{other.unit_id}", f"{demo}/sync/{other.run_id}",
                f"{demo}/people/no-such-person", f"{demo}/organisation/no-such-unit", f"{demo}/sync/no-such-run"):
        assert_not_found(client.get(url), url)
    # the lazy tree's fragments list nothing of the other tenant (as for an id that exists nowhere)
    for url, row in ((f"{demo}/organisation/{other.unit_id}/children", "data-unit"),
                     (f"{demo}/managers/{other.manager_id}/reports", "data-user")):
        r = client.get(url)
        assert r.status_code in (200, 404), url
        assert row not in html(r), url
    # the other tenant's credentials cannot be revoked through one's own tenant
    csrf = session_csrf(client)
    for url in (f"{demo}/access/tokens/{other.token_id}/revoke", f"{demo}/access/clients/{other.client_id}/revoke"):
        assert_not_found(client.post(url, data={"csrf_token": csrf}), url)
    assert scim_status(app, other.token) == 200
    access_token(app, other.client_id, other.client_secret)
    # nor created in the other tenant
    before = html(signed_in(app, OPERATOR).get("/console/t/other/access")).count("data-token=")
    for url in ("/console/t/other/access/tokens", "/console/t/other/access/clients"):
        assert_not_found(client.post(url, data={"csrf_token": csrf, "scope": "scim:read"}), url)
    after = html(signed_in(app, OPERATOR).get("/console/t/other/access"))
    assert after.count("data-token=") == before
    assert "new-secret" not in after


def test_demo_pages_show_nothing_of_the_other_tenant(app, world):
    client = signed_in(app, DEMO_ADMIN)
    other_names = {p["userName"] for p in api_json(app, world.other.token, "/scim/v2/Users?count=500")["Resources"]}
    shown = ok(client, "/console/t/demo/people?" + urlencode({"filter": 'userName co "frivillig.dk"'}))
    assert "d001@frivillig.dk" in shown and "d002@frivillig.dk" in shown
    assert "o001@frivillig.dk" not in shown
    assert not [name for name in other_names if name in shown]
    assert world.other.unit_id not in ok(client, "/console/t/demo/organisation")


def test_operator_sees_every_tenant(app, world):
    client = signed_in(app, OPERATOR)
    home = ok(client, "/console/")
    assert 'href="/console/t/demo/"' in home and 'href="/console/t/other/"' in home
    assert "(operator)" in home
    for tenant in (world.demo, world.other):
        for url in tenant_pages(tenant):
            assert client.get(url).status_code == 200, url
    assert_not_found(client.get("/console/t/nope/people"), "/console/t/nope/people")


def test_tenant_admins_front_door_is_their_tenant(app, world):
    r = signed_in(app, DEMO_ADMIN).get("/console/")
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/console/t/demo/"
    r = signed_in(app, OTHER_ADMIN).get("/console/")
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/console/t/other/"


# ------------------------------------------------------------------ CSRF on every form


def _forms(world: World) -> dict[str, tuple[str, dict]]:
    demo = "/console/t/demo/access"
    return {
        "create token": (f"{demo}/tokens", {"scope": "scim:read", "description": "csrf"}),
        "create client": (f"{demo}/clients", {"scope": "scim:read", "description": "csrf"}),
        "revoke token": (f"{demo}/tokens/{world.demo.token_id}/revoke", {}),
        "revoke client": (f"{demo}/clients/{world.demo.client_id}/revoke", {}),
        "sign out": ("/console/logout", {}),
    }


def _state(app, client, world: World) -> tuple:
    page = ok(client, "/console/t/demo/access")
    return (page.count("data-token="), page.count('class="danger revoke"'), page.count("badge off"),
            scim_status(app, world.demo.token))


@pytest.mark.parametrize("form", ["create token", "create client", "revoke token", "revoke client", "sign out"])
@pytest.mark.parametrize("sent", ["missing", "empty", "wrong", "another session's", "the sign-in form's"])
def test_forms_without_the_sessions_csrf_token_are_400_and_change_nothing(app, world, form, sent):
    client = signed_in(app, DEMO_ADMIN)
    before = _state(app, client, world)
    url, data = _forms(world)[form]
    data = dict(data)
    if sent == "empty":
        data["csrf_token"] = ""
    elif sent == "wrong":
        data["csrf_token"] = secrets.token_urlsafe(32)
    elif sent == "another session's":  # the same admin's other session
        data["csrf_token"] = session_csrf(signed_in(app, DEMO_ADMIN))
    elif sent == "the sign-in form's":  # the double-submit token of the sign-in form, in this browser
        client.get("/console/login")
        data["csrf_token"] = client.get_cookie("console_sign_in", path="/console").value
    r = client.post(url, data=data)
    assert r.status_code == 400, (r.status_code, html(r)[:500])
    assert r.mimetype == "text/html"
    assert "new-secret" not in html(r)
    assert _state(app, client, world) == before  # the session still works, and nothing changed
    assert scim_status(app, world.demo.token) == 200
    assert scim_status(app, access_token(app, world.demo.client_id, world.demo.client_secret)) == 200


# ------------------------------------------------------------------ the Access page


def test_a_new_token_is_shown_once_works_and_can_be_revoked(app, world):
    client = signed_in(app, DEMO_ADMIN)
    csrf = session_csrf(client)
    r = client.post("/console/t/demo/access/tokens",
                    data={"csrf_token": csrf, "scope": "scim:read scim:write", "description": "Microsoft Entra ID"})
    assert r.status_code in (200, 201), html(r)
    secret = unescape(re.search(r'<code id="new-secret-value">([^<]+)</code>', html(r)).group(1))
    assert scim_status(app, secret) == 200
    assert api(app, secret, "POST", "/scim/v2/Users", json={"schemas": [CORE_USER], "userName": "via.entra@x.dk"}
               ).status_code == 201
    page = ok(client, "/console/t/demo/access")
    assert secret not in page and "new-secret" not in page
    found = re.search(r'<tr data-token="([^"]+)"><td>Microsoft Entra ID</td>', page)
    assert found, page
    token_id = found.group(1)
    assert token_id == token_row_id(app, secret)
    # revoke it: the API refuses it at once (the test app caches no token)
    r = client.post(f"/console/t/demo/access/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/console/t/demo/access"
    assert scim_status(app, secret) == 401
    assert scim_status(app, world.demo.token) == 200  # the others still work
    page = ok(client, "/console/t/demo/access")
    row = re.search(rf'<tr data-token="{token_id}">.*?</tr>', page, re.S).group(0)
    assert "revoked" in row and "Revoke</button>" not in row


def test_a_new_oauth_client_is_shown_once_works_and_can_be_revoked(app, world):
    client = signed_in(app, DEMO_ADMIN)
    csrf = session_csrf(client)
    r = client.post("/console/t/demo/access/clients",
                    data={"csrf_token": csrf, "scope": "scim:read", "description": "Okta"})
    assert r.status_code in (200, 201), html(r)
    client_id = unescape(re.search(r'<code id="new-client-id">([^<]+)</code>', html(r)).group(1))
    secret = unescape(re.search(r'<code id="new-secret-value">([^<]+)</code>', html(r)).group(1))
    issued = access_token(app, client_id, secret)
    assert scim_status(app, issued) == 200
    assert api(app, issued, "POST", "/scim/v2/Users", json={"schemas": [CORE_USER], "userName": "x@x.dk"}
               ).status_code == 403  # scim:read only
    page = ok(client, "/console/t/demo/access")
    assert client_id in page and secret not in page and "new-secret" not in page
    r = client.post(f"/console/t/demo/access/clients/{client_id}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 302
    grant = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                   headers=basic(client_id, secret))
    assert grant.status_code in (400, 401), grant.get_data(as_text=True)
    assert scim_status(app, issued) == 401
    assert scim_status(app, access_token(app, world.demo.client_id, world.demo.client_secret)) == 200


def test_a_scope_the_form_does_not_offer_is_refused(app, world):
    client = signed_in(app, DEMO_ADMIN)
    before = _state(app, client, world)
    r = client.post("/console/t/demo/access/tokens", data={"csrf_token": session_csrf(client), "scope": "admin"})
    assert r.status_code == 400
    assert _state(app, client, world) == before


# ------------------------------------------------------------------ the pages, with the demo data


def test_overview(app, world):
    client = signed_in(app, DEMO_ADMIN)
    page = ok(client, "/console/t/demo/")
    assert 'id="counts"' in page
    assert "hr" in page and f"/console/t/demo/sync/{world.demo.run_id}" in page  # the last run of source "hr"
    assert "demo api" in page  # a caller
    assert "other api" not in page and world.other.run_id not in page


def test_organisation_tree_unit_page_and_children(app, world):
    client = signed_in(app, DEMO_ADMIN)
    tree = ok(client, "/console/t/demo/organisation")
    rows = re.findall(r'<tr data-unit="([^"]+)"', tree)
    assert rows == [world.demo.unit_id]  # one root: Solbjerg Kommune
    children_url = unescape(re.search(r'data-children="([^"]+)"', tree).group(1))
    fragment = ok(client, children_url)
    assert "<html" not in fragment
    children = re.findall(r'<tr data-unit="([^"]+)" data-depth="1"', fragment)
    assert len(children) == 5  # the five divisions
    unit = ok(client, f"/console/t/demo/organisation/{world.demo.unit_id}")
    assert '<h1 id="unit-name">Solbjerg Kommune</h1>' in unit
    assert all(child in unit for child in children)
    assert re.search(r"People in this unit and below \((\d+)\)", unit)
    # a unit further down: its breadcrumb leads back to the root
    grandchild_url = unescape(re.search(r'data-children="([^"]+)"', fragment).group(1))
    grandchildren = re.findall(r'<tr data-unit="([^"]+)"', ok(client, grandchild_url))
    assert grandchildren
    deeper = ok(client, f"/console/t/demo/organisation/{grandchildren[0]}")
    assert f'href="/console/t/demo/organisation/{world.demo.unit_id}">Solbjerg Kommune</a>' in deeper
    assert 'class="pager"' in unit or int(re.search(r"below \((\d+)\)", unit).group(1)) <= 50


def test_manager_tree_and_reports(app, world):
    client = signed_in(app, DEMO_ADMIN)
    tree = ok(client, "/console/t/demo/managers")
    top = re.findall(r'<tr data-user="([^"]+)"', tree)
    assert top
    reports_url = unescape(re.search(r'data-children="([^"]+)"', tree).group(1))
    fragment = ok(client, reports_url)
    assert "<html" not in fragment
    reports = re.findall(r'<tr data-user="([^"]+)"', fragment)
    assert reports
    manager = re.search(r"/managers/([^/]+)/reports", reports_url).group(1)
    for report in reports[:5]:
        user = api_json(app, world.demo.token, f"/scim/v2/Users/{report}")
        assert user[ENTERPRISE]["manager"]["value"] == manager
    ok(client, f"/console/t/demo/managers/{world.demo.manager_id}/reports")


def test_people_search_filter_and_bad_filter(app, world):
    client = signed_in(app, DEMO_ADMIN)
    everyone = ok(client, "/console/t/demo/people")
    assert "people" in everyone and 'class="pager"' in everyone
    person = api_json(app, world.demo.token, f"/scim/v2/Users/{world.demo.user_id}")
    found = ok(client, "/console/t/demo/people?" + urlencode({"q": person["displayName"]}))
    assert f'href="/console/t/demo/people/{person["id"]}"' in found
    by_filter = ok(client, "/console/t/demo/people?" + urlencode({"filter": f'userName eq "{person["userName"]}"'}))
    assert "1 person" in by_filter
    assert f'href="/console/t/demo/people/{person["id"]}"' in by_filter
    externals = ok(client, "/console/t/demo/people?" + urlencode({"filter": 'userType eq "External"'}))
    assert "d001@frivillig.dk" in externals and "1 person" not in externals
    for bad in ('userName eq', 'nosuch eq "x"', "((((", 'meta.created gt "yesterday"'):
        r = client.get("/console/t/demo/people?" + urlencode({"filter": bad}))
        assert r.status_code == 200, (bad, html(r)[:500])
        assert "The filter is not valid" in html(r), bad
    for odd in ('"', "\\", "a\"b\\c", "%", "_", "æøå"):
        assert client.get("/console/t/demo/people?" + urlencode({"q": odd})).status_code == 200, odd


def test_person_page_shows_the_history_of_a_change(app, world):
    client = signed_in(app, DEMO_ADMIN)
    person = api_json(app, world.demo.token, f"/scim/v2/Users/{world.demo.user_id}")
    old = person["displayName"]
    r = api(app, world.demo.token, "PATCH", f"/scim/v2/Users/{person['id']}", json={
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Konsol Omdøbt"}]})
    assert r.status_code in (200, 204), r.get_data(as_text=True)
    page = ok(client, f"/console/t/demo/people/{person['id']}")
    assert '<h1 id="person-name">Konsol Omdøbt' in page
    assert f"<del>{old}</del> → <ins>Konsol Omdøbt</ins>" in page
    assert f"<code>token:{world.demo.token_id}</code>" in page
    assert "patch" in page
    manager_chain = re.search(r'<ol class="chain" id="manager-chain">(.*?)</ol>', page, re.S).group(1)
    assert f"/console/t/demo/people/{world.demo.manager_id}" in manager_chain


def _events(page: str) -> int:
    found = re.search(r"<p>(\d+) events?</p>", page)
    assert found, page
    return int(found.group(1))


def test_provisioning_log_filters(app, world):
    client = signed_in(app, DEMO_ADMIN)
    user = world.demo.user_id
    r = api(app, world.demo.token, "PATCH", f"/scim/v2/Users/{user}", json={
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "Logfører"}]})
    assert r.status_code in (200, 204)
    created = api(app, world.demo.token, "POST", "/scim/v2/Users",
                  json={"schemas": [CORE_USER], "userName": "ny.medarbejder@solbjerg.dk"}).get_json()
    actor = f"token:{world.demo.token_id}"
    today = utcnow().date()
    log = "/console/t/demo/log?"
    everything = _events(ok(client, log))
    assert everything >= 4  # the sync's two creates, the patch, the create
    by_actor = ok(client, log + urlencode({"actor": actor}))
    assert _events(by_actor) == 2
    assert _events(ok(client, log + urlencode({"actor": "sync:"}))) == 2  # the sync's
    assert _events(ok(client, log + urlencode({"actor": "token:nobody"}))) == 0
    by_resource = ok(client, log + urlencode({"resource": user}))
    assert _events(by_resource) == 1 and "<del>" in by_resource and "<ins>Logfører</ins>" in by_resource
    assert f'href="/console/t/demo/people/{user}"' in by_resource
    assert _events(ok(client, log + urlencode({"resource": world.other.user_id}))) == 0
    assert _events(ok(client, log + urlencode({"operation": "patch"}))) == 1
    by_create = ok(client, log + urlencode({"operation": "create", "actor": actor}))
    assert _events(by_create) == 1 and f"/console/t/demo/people/{created['id']}" in by_create
    assert _events(ok(client, log + urlencode({"operation": "delete"}))) == 0
    assert "No events match." in ok(client, log + urlencode({"operation": "delete"}))
    assert _events(ok(client, log + urlencode({"operation": "nonsense"}))) == everything  # ignored
    assert _events(ok(client, log + urlencode({"since": today.isoformat(), "until": today.isoformat()}))) == everything
    assert _events(ok(client, log + urlencode({"since": (today + dt.timedelta(days=1)).isoformat()}))) == 0
    assert _events(ok(client, log + urlencode({"until": (today - dt.timedelta(days=1)).isoformat()}))) == 0
    assert _events(ok(client, log + urlencode({"since": "not a date", "until": "2020-02-30"}))) == everything
    combined = ok(client, log + urlencode({"actor": actor, "resource": user, "operation": "patch",
                                           "since": today.isoformat(), "until": today.isoformat()}))
    assert _events(combined) == 1
    # the form keeps what was asked for
    assert f'name="actor" value="{actor}"' in combined and "<option selected>patch</option>" in combined


def test_sync_runs_and_a_run(app, world):
    client = signed_in(app, DEMO_ADMIN)
    runs = ok(client, "/console/t/demo/sync")
    assert f'href="/console/t/demo/sync/{world.demo.run_id}"' in runs
    assert world.other.run_id not in runs
    run = ok(client, f"/console/t/demo/sync/{world.demo.run_id}")
    assert "Changes made (2)" in run
    assert "applied" in run
    assert run.count('href="/console/t/demo/people/') == 2


def test_data_quality_and_each_check(app, world):
    client = signed_in(app, DEMO_ADMIN)
    with app.extensions["scim_sessions"].begin() as session:
        auditor = tenants.create_token(session, tenants.get_tenant(session, "demo"), "quality", "audit:read")
    expected = {c["name"]: c["count"] for c in api_json(app, auditor, "/admin/v1/reports/quality")["checks"]}
    page = ok(client, "/console/t/demo/quality")
    for check in CHECKS:
        found = re.search(rf'id="check-{check}" href="([^"]+)">[^<]+</a></td>\s*<td class="num">([\d.,\s]+)</td>',
                          page)
        assert found, check
        count = int(re.sub(r"\D", "", found.group(2)))
        assert count == expected[check], check
        detail = ok(client, found.group(1))
        total = int(re.sub(r"\D", "", re.search(r"<h1>[^<(]+\(([\d.,\s]+)\)</h1>", detail).group(1)))
        assert total == count, check
        if count == 0:
            assert "Nothing to fix here." in detail
        else:
            assert "Nothing to fix here." not in detail
    assert int(re.sub(r"\D", "", re.search(r'id="check-without_org_unit"[^>]*>[^<]+</a></td>\s*<td class="num">([^<]+)',
                                             page).group(1))) >= 15  # the externals, at least


def test_billing_page_and_downloads_agree_with_the_api(app, world):
    client = signed_in(app, DEMO_ADMIN)
    today = utcnow().date().isoformat()
    with app.extensions["scim_sessions"].begin() as session:
        auditor = tenants.create_token(session, tenants.get_tenant(session, "demo"), "billing", "audit:read")
    expected = api_json(app, auditor, f"/admin/v1/reports/billing?format=json&date={today}")
    assert expected["totalUsers"] > 0
    page = ok(client, f"/console/t/demo/billing?date={today}")
    shown_total = re.search(r'id="billing-total">([^<]+)<', page).group(1)
    assert int(re.sub(r"\D", "", shown_total)) == expected["totalUsers"]
    r = client.get(f"/console/t/demo/billing.csv?date={today}")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == f'attachment; filename="billing-demo-{today}.csv"'
    rows = list(csv.reader(io.StringIO(r.get_data().decode("utf-8"))))
    assert rows[0] == ["ean", "unitCode", "unitName", "users"]
    assert sum(int(row[3]) for row in rows[1:]) == expected["totalUsers"]
    api_rows = sorted((line["ean"] or "", unit["unitCode"] or "", unit["users"])
                      for line in expected["eans"] for unit in line["units"])
    assert sorted((row[0], row[1], int(row[3])) for row in rows[1:]) == api_rows
    per_ean: dict[str, int] = {}
    for row in rows[1:]:
        per_ean[row[0]] = per_ean.get(row[0], 0) + int(row[3])
    assert per_ean == {line["ean"] or "": line["users"] for line in expected["eans"]}
    # the API's own CSV is the same file
    assert api(app, auditor, "GET", f"/admin/v1/reports/billing?format=csv&date={today}").get_data() == r.get_data()
    x = client.get(f"/console/t/demo/billing.xlsx?date={today}")
    assert x.status_code == 200
    assert x.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = openpyxl.load_workbook(io.BytesIO(x.get_data())).active
    cells = [[("" if v is None else v) for v in row] for row in sheet.iter_rows(values_only=True)]
    assert [str(v) for v in cells[0]] == rows[0]
    assert sum(int(row[3]) for row in cells[1:]) == expected["totalUsers"]
    # another date: the page and the download follow it
    long_ago = "1990-01-01"
    past = api_json(app, auditor, f"/admin/v1/reports/billing?format=json&date={long_ago}")
    csv_past = list(csv.reader(io.StringIO(client.get(f"/console/t/demo/billing.csv?date={long_ago}")
                                           .get_data().decode("utf-8"))))
    assert sum(int(row[3]) for row in csv_past[1:]) == past["totalUsers"]
    assert f'value="{long_ago}"' in ok(client, f"/console/t/demo/billing?date={long_ago}")


def test_what_the_data_and_the_url_hold_is_escaped(app, world):
    """Names, changed values, filter errors and the sign-in form's own URL are text, never markup."""
    evil = '<script>alert(1)</script>'
    token, client = world.demo.token, signed_in(app, DEMO_ADMIN)
    user = api(app, token, "POST", "/scim/v2/Users", json={
        "schemas": [CORE_USER], "userName": "evil@x.dk", "displayName": evil, "title": '"><img src=x onerror=1>'
    }).get_json()
    api(app, token, "PATCH", f"/scim/v2/Users/{user['id']}", json={
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": evil}]})
    pages = [ok(client, url) for url in (
        f"/console/t/demo/people/{user['id']}", "/console/t/demo/people?" + urlencode({"q": "evil"}),
        "/console/t/demo/log", "/console/t/demo/people?" + urlencode({"filter": f'userName eq "{evil}" and'}),
        "/console/t/demo/log?" + urlencode({"actor": evil, "resource": '"><b>x</b>'}))]
    pages.append(html(app.test_client().get("/console/login?" + urlencode({"next": '/console/"><script>x</script>'}))))
    for page in pages:
        assert "<script>" not in page and "<img" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]


# ------------------------------------------------------------------ headers


def test_pages_carry_no_store_no_framing_and_a_content_security_policy(app, world):
    client = signed_in(app, DEMO_ADMIN)
    responses = {url: client.get(url) for url in tenant_pages(world.demo)}
    responses["/console/t/other/people (404)"] = client.get("/console/t/other/people")
    responses["/console/ (302)"] = client.get("/console/")
    responses["POST /console/logout (400)"] = client.post("/console/logout")
    responses["/console/login"] = app.test_client().get("/console/login")
    responses["/console/t/demo/people (302, no session)"] = app.test_client().get("/console/t/demo/people")
    for url, r in responses.items():
        assert r.headers.get("Cache-Control") == "no-store", url
        assert r.headers.get("X-Frame-Options") == "DENY", url
        policy = r.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, url
        assert "unsafe-inline" not in policy, url


# ------------------------------------------------------------------ odd input: never a 500

@pytest.mark.parametrize("url, statuses", [
    pytest.param("/console/t/demo/log?until=9999-12-31", {200}),  # was a 500 (a day past the calendar)
    pytest.param("/console/t/demo/log?since=9999-12-31", {200}),
    pytest.param("/console/t/demo/log?since=0001-01-01&until=0001-01-01", {200}),
    pytest.param("/console/language/da?next=/console%0d%0aX-Evil:%201", {302}),  # was a 500 (CR/LF in a header)
    # a NUL byte (PostgreSQL refuses to compare text with one, which was a 500 there) is answered
    # before any query: 404 in the path, 400 in a parameter
    pytest.param("/console/t/demo/people?q=a%00b", {400}),
    pytest.param("/console/t/demo/people/a%00b", {404}),
    pytest.param("/console/t/demo/log?resource=a%00b", {400}),
    pytest.param("/console/t/demo/log?actor=a%00b", {400}),
    pytest.param("/console/t/demo/sync/a%00b", {404}),
    pytest.param("/console/t/demo/organisation/a%00b", {404}),
    pytest.param("/console/t/demo/organisation/a%00b/children", {404}),
    pytest.param("/console/t/demo/managers/a%00b/reports", {404}),
    pytest.param("/console/t/de%00mo/people", {404}),
    pytest.param("/console/t/demo/billing?date=9999-12-31", {200}),
    pytest.param("/console/t/demo/billing.csv?date=0001-01-01", {200}),
    pytest.param("/console/t/demo/people?page=99999999999999", {200}),
    pytest.param("/console/t/demo/quality/__class__", {404}),
])
def test_odd_urls_are_never_a_500(app, world, url, statuses):
    client = signed_in(app, DEMO_ADMIN)
    r = client.get(url)
    assert r.status_code in statuses, (r.status_code, html(r)[:300])
    assert r.mimetype in ("text/html", "text/csv"), r.mimetype
    assert "X-Evil" not in r.headers


@pytest.mark.parametrize("email, password, status", [
    # was a 500 on PostgreSQL: the address went into a varchar(320) column
    pytest.param("a" * 400 + "@demo.example", "wrong password!!", 401),
    # was a 500 on PostgreSQL (NUL in a query); now refused before any query
    pytest.param("ad\x00min@demo.example", "wrong password!!", 400),
    pytest.param(DEMO_ADMIN, "wrong\x00password", 400),
    pytest.param("", "", 401),
])
def test_odd_sign_ins_are_refused_not_a_500(app, world, email, password, status):
    r = post_sign_in(app.test_client(), email, password)
    assert r.status_code == status, (r.status_code, html(r)[:300])
    assert r.mimetype == "text/html"


def test_sign_in_with_a_newline_in_next_is_not_a_500(app, world):
    client = app.test_client()
    r = post_sign_in(client, DEMO_ADMIN, PASSWORD, next_="/console\r\nX-Evil: 1")
    assert r.status_code == 302, (r.status_code, html(r)[:300])
    assert "X-Evil" not in r.headers
    assert client.get("/console/t/demo/people").status_code == 200


def test_an_unexpected_fault_under_console_is_an_html_page(app, world, monkeypatch):
    """A fault of ours on a console page is logged and answered with the console's own 500 page,
    not the SCIM API's JSON error body."""
    from scim_server.reports import quality

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(quality, "counts", broken)
    r = signed_in(app, DEMO_ADMIN).get("/console/t/demo/quality")
    assert r.status_code == 500
    assert r.mimetype == "text/html"
    assert "a bug" not in html(r)
