"""The API's use as the console's overview shows it: a token's last request and the requests
answered with an error (storage/usage.py, written by http/auth.py and http/requestlog.py).

Both are written once the response has been sent (``call_on_close``), as a WSGI server does
when it has written the body and closes the response; the requests here are ``buffered=True``,
which makes the test client consume and close the response the same way.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import sessionmaker

from conftest import CORE_USER, access_token, bearer, make_client
from scim_server.http.auth import token_touches
from scim_server.http.ratelimit import EXTENSION, RateLimiter, local_table
from scim_server.reports import overview
from scim_server.storage import tenants, usage
from scim_server.storage.models import BearerToken, RequestError, utcnow


def _token_row(app, tenant_name: str = "acme") -> BearerToken:
    with app.extensions["scim_sessions"]() as session:
        tenant = tenants.get_tenant(session, tenant_name)
        return session.scalars(select(BearerToken).where(BearerToken.tenant_id == tenant.id,
                                                    BearerToken.client_id.is_(None))).one()


def _errors(app, tenant_name: str | None = None) -> list[RequestError]:
    with app.extensions["scim_sessions"]() as session:
        query = select(RequestError).order_by(RequestError.id)
        if tenant_name is not None:
            query = query.where(RequestError.tenant_id == tenants.get_tenant(session, tenant_name).id)
        return list(session.scalars(query))


def _tenant_id(app, name: str) -> int:
    with app.extensions["scim_sessions"]() as session:
        return tenants.get_tenant(session, name).id


# ------------------------------------------------------------------ last use of a token


def test_a_request_stamps_its_tokens_last_use(app, api):
    assert _token_row(app).last_used_at is None
    before = utcnow()
    assert api.get("/Users", buffered=True).status_code == 200
    stamped = _token_row(app).last_used_at
    assert stamped is not None and before - dt.timedelta(seconds=1) <= stamped <= utcnow()


def test_the_stamp_is_written_once_a_minute_per_token(app, api):
    assert api.get("/Users", buffered=True).status_code == 200
    with app.extensions["scim_sessions"].begin() as session:
        session.execute(update(BearerToken).values(last_used_at=None))
    # within the minute this worker does not write again, however many requests come
    for _ in range(3):
        assert api.get("/Users", buffered=True).status_code == 200
    assert _token_row(app).last_used_at is None
    token_touches.clear()  # a minute later
    assert api.get("/Users", buffered=True).status_code == 200
    assert _token_row(app).last_used_at is not None


def test_a_failed_request_still_counts_as_a_use(app, api):
    assert api.get("/Users/no-such-user", buffered=True).status_code == 404
    assert _token_row(app).last_used_at is not None


def test_touch_keeps_a_stamp_of_the_last_minute(app, api):
    """Another worker's stamp of the last minute stands; an older one is replaced."""
    token_id = _token_row(app).id
    sessions = app.extensions["scim_sessions"]
    first = utcnow() - dt.timedelta(seconds=30)
    usage.touch_token(sessions, token_id, first)
    usage.touch_token(sessions, token_id, first + dt.timedelta(seconds=20))
    assert _token_row(app).last_used_at == first
    later = first + dt.timedelta(seconds=61)
    usage.touch_token(sessions, token_id, later)
    assert _token_row(app).last_used_at == later


def test_an_oauth_clients_access_token_is_stamped_and_the_overview_shows_the_client(app, api):
    client_id, secret = make_client(app, "acme")
    client = bearer(app, access_token(app, client_id, secret))
    assert client.get("/Users", buffered=True).status_code == 200
    with app.extensions["scim_sessions"]() as session:
        found = {c.id: c for c in overview.callers(session, _tenant_id(app, "acme"))}
    assert found[client_id].kind == "client" and found[client_id].last_used_at is not None
    token = _token_row(app)  # the long-lived token: no request yet
    assert found[token.id].kind == "token" and found[token.id].last_used_at is None
    assert list(found)[0] == client_id  # the most recently used first


def test_a_database_failure_is_logged_not_raised(caplog):
    broken = sessionmaker(create_engine("sqlite:////nonexistent-folder/x.db"))
    with caplog.at_level(logging.WARNING, logger="scim_server.storage.usage"):
        usage.touch_token(broken, "some-token", utcnow())
        usage.record_error(broken, 1, "token:x", None, "GET", "/Users", 500, None, "boom")
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


# ------------------------------------------------------------------ failed requests


def test_a_404_is_kept_with_status_and_detail(app, api):
    response = api.get("/Users/no-such-user", headers={"X-Request-ID": "req-404"}, buffered=True)
    assert response.status_code == 404
    [error] = _errors(app, "acme")
    assert (error.method, error.path, error.status) == ("GET", "/scim/v2/Users/no-such-user", 404)
    assert error.detail == response.get_json()["detail"]
    assert error.request_id == "req-404"
    assert error.actor == f"token:{_token_row(app).id}"


def test_a_409_is_kept_with_its_scim_type(app, api):
    api.create_user("anna@example.dk")
    response = api.post("/Users", json={"schemas": [CORE_USER], "userName": "anna@example.dk"}, buffered=True)
    assert response.status_code == 409
    [error] = _errors(app, "acme")
    assert (error.method, error.status, error.scim_type) == ("POST", 409, "uniqueness")
    assert error.detail == response.get_json()["detail"]


def test_successes_are_not_kept(app, api):
    api.create_user("anna@example.dk")
    assert api.get("/Users", buffered=True).status_code == 200
    assert api.get("/Users?filter=userName%20eq%20%22anna@example.dk%22", buffered=True).status_code == 200
    assert _errors(app) == []


def test_unauthenticated_requests_are_not_kept(app, anonymous):
    assert anonymous.get("/Users", buffered=True).status_code == 401
    assert bearer(app, "not-a-token").get("/Users", buffered=True).status_code == 401
    assert _errors(app) == []


def test_429_is_not_kept(app, api, monkeypatch):
    monkeypatch.setitem(app.extensions, EXTENSION, RateLimiter(local_table(), lambda: 1000.0))  # a clock that stops
    settings = dataclasses.replace(app.config["SCIM"], rate_limit_per_second=1, rate_limit_burst=1)
    monkeypatch.setitem(app.config, "SCIM", settings)
    statuses = [api.get("/Users", buffered=True).status_code for _ in range(3)]
    assert 429 in statuses
    assert _errors(app) == []


def test_each_tenant_has_its_own_errors(app, api, other_api):
    assert api.get("/Users/a", buffered=True).status_code == 404
    assert api.get("/Groups/b", buffered=True).status_code == 404
    assert other_api.get("/Users/c", buffered=True).status_code == 404
    assert [e.path for e in _errors(app, "acme")] == ["/scim/v2/Users/a", "/scim/v2/Groups/b"]
    assert [e.path for e in _errors(app, "globex")] == ["/scim/v2/Users/c"]
    with app.extensions["scim_sessions"]() as session:
        acme = overview.overview(session, _tenant_id(app, "acme"), utcnow())
        globex = overview.overview(session, _tenant_id(app, "globex"), utcnow())
    assert (acme.errors_24h, globex.errors_24h) == (2, 1)
    assert [e.path for e in acme.recent_errors] == ["/scim/v2/Groups/b", "/scim/v2/Users/a"]  # newest first
    assert [e.status for e in globex.recent_errors] == [404]


def test_strings_are_cut_to_their_columns(app, api):
    tenant_id = _tenant_id(app, "acme")
    usage.record_error(app.extensions["scim_sessions"], tenant_id, "a" * 400, "r" * 200, "PROPFINDXXL",
                       "/" + "p" * 600, 400, "s" * 60, "d\x00" * 700)
    [error] = _errors(app, "acme")
    assert (len(error.actor), len(error.request_id), len(error.method), len(error.path)) == (300, 128, 10, 500)
    assert len(error.scim_type) == 50 and len(error.detail) == 1000 and "\x00" not in error.detail


def test_old_errors_are_pruned_now_and_then_per_tenant(app, api, other_api, monkeypatch):
    sessions = app.extensions["scim_sessions"]
    acme, globex = _tenant_id(app, "acme"), _tenant_id(app, "globex")
    now = utcnow()
    old = now - dt.timedelta(days=8)
    for tenant_id in (acme, globex):
        usage.record_error(sessions, tenant_id, "token:x", None, "GET", "/old", 404, None, None, now=old)
    usage.record_error(sessions, acme, "token:x", None, "GET", "/recent", 404, None, None,
                       now=now - dt.timedelta(days=6))
    monkeypatch.setattr(usage, "PRUNE_EVERY", 1)  # this call prunes
    usage.record_error(sessions, acme, "token:x", None, "GET", "/new", 404, None, None, now=now)
    assert [e.path for e in _errors(app, "acme")] == ["/recent", "/new"]
    assert [e.path for e in _errors(app, "globex")] == ["/old"]  # another tenant's are left to its own calls
    with sessions() as session:
        assert overview.overview(session, acme, now).errors_24h == 1


def test_a_server_error_is_kept(app, api, monkeypatch):
    from scim_server.storage import users

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(users.UserStore, "search", broken)
    assert api.get("/Users", buffered=True).status_code == 500
    [error] = _errors(app, "acme")
    assert (error.status, error.scim_type, error.detail) == (500, None, "Internal server error")
