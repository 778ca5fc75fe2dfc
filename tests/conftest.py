"""Test fixtures: a real database (SQLite by default, PostgreSQL when
``SCIM_TEST_DATABASE_URL`` says so), migrated once, emptied between tests, and
an HTTP client per tenant that speaks to the app through its public API."""
from __future__ import annotations

import base64
import os
import tempfile
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from scim_server import create_app
from scim_server.config import Settings
from scim_server.http.auth import token_cache
from scim_server.storage import clients, tenants
from scim_server.storage.db import make_engine
from scim_server.storage.migrate import upgrade
from scim_server.storage.models import Base

BASE = "/scim/v2"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
P2L_USER = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:User"
P2L_GROUP = "urn:ietf:params:scim:schemas:extension:plan2learn:2.0:Group"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def _database_url() -> str:
    url = os.environ.get("SCIM_TEST_DATABASE_URL")
    if url:
        return url
    folder = tempfile.mkdtemp(prefix="scim-test-")
    return f"sqlite:///{folder}/test.db"


@pytest.fixture(scope="session")
def app():
    url = _database_url()
    if not url.startswith("sqlite"):
        from scim_server.storage.db import make_engine
        engine = make_engine(url)
        with engine.begin() as conn:  # a clean schema every session
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
    upgrade(url)
    # no default rate limit: the suite sends far more than 200 requests/s per tenant (tenant ids
    # recur from test to test); tests/test_rate_limits.py turns limits on where it tests them
    application = create_app(Settings.from_env(database_url=url, public_base_url=None,
                                               token_cache_seconds=0, rate_limit_per_second=0))
    application.config["TESTING"] = True
    yield application
    application.extensions["scim_engine"].dispose()


@pytest.fixture(autouse=True)
def clean_database(app):
    yield
    engine = app.extensions["scim_engine"]
    with engine.begin() as conn:
        conn.execute(text("UPDATE groups SET parent_id = NULL"))  # org-unit parents RESTRICT deletes
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    token_cache.clear()


class ScimClient:
    """Requests relative to the SCIM base path, authenticated as one tenant."""

    def __init__(self, flask_client, token: str | None):
        self.http = flask_client
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None,
                content_type: str = "application/scim+json", data: Any = None, **kwargs):
        hdrs = self.headers(headers)
        if json is not None:
            import json as _json
            data = _json.dumps(json)
        if data is not None and content_type:
            hdrs.setdefault("Content-Type", content_type)
        url = path if path.startswith("/scim") or path.startswith("http") else BASE + path
        return self.http.open(url, method=method, data=data, headers=hdrs, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # helpers -------------------------------------------------------------
    def create_user(self, user_name: str, **attrs) -> dict:
        body = {"schemas": [CORE_USER], "userName": user_name, **attrs}
        response = self.post("/Users", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def create_group(self, display_name: str, members: list[str] | None = None, **attrs) -> dict:
        body = {"schemas": [CORE_GROUP], "displayName": display_name, **attrs}
        if members is not None:
            body["members"] = [{"value": m} for m in members]
        response = self.post("/Groups", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def patch_ops(self, path: str, *operations: dict, **kw):
        return self.patch(path, json={"schemas": [PATCH_OP], "Operations": list(operations)}, **kw)


def bearer(app, token: str | None) -> ScimClient:
    """A client of the API that authenticates with this bearer token."""
    return ScimClient(app.test_client(), token)


def _tenant_client(app, name: str) -> ScimClient:
    with app.extensions["scim_sessions"].begin() as session:
        tenant = tenants.create_tenant(session, name)
        token = tenants.create_token(session, tenant, "test")
    return bearer(app, token)


# ------------------------------------------------------------------ OAuth clients


def tenant_of(session, name: str):
    """The tenant called ``name``, created if it does not exist yet."""
    try:
        return tenants.get_tenant(session, name)
    except tenants.TenantError:
        return tenants.create_tenant(session, name)


def make_client(app, tenant="acme", scope="scim:read scim:write", jwks=None) -> tuple[str, str]:
    """A registered OAuth client of ``tenant``: (client_id, secret)."""
    with app.extensions["scim_sessions"].begin() as session:
        row, secret = clients.create_client(session, tenant_of(session, tenant), scope, "test", jwks)
        return row.client_id, secret


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def access_token(app, client_id: str, secret: str, **extra) -> str:
    """An access token from the client credentials grant (client_secret_basic)."""
    r = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials", **extra},
                               headers=basic(client_id, secret),
                               content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()["access_token"]


@pytest.fixture
def api(app) -> ScimClient:
    """A client for tenant 'acme'."""
    return _tenant_client(app, "acme")


@pytest.fixture
def other_api(app) -> ScimClient:
    """A client for a second tenant, 'globex'."""
    return _tenant_client(app, "globex")


@pytest.fixture
def cli(app):
    """Run ``scim-server`` commands against the test database: ``cli("tenant", "list")``."""
    from click.testing import CliRunner

    from scim_server.cli import main

    env = {"SCIM_DATABASE_URL": app.config["SCIM"].database_url}

    def run(*args):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return run


@pytest.fixture
def empty_database(app):
    """A database of its own, migrated by the test (a migration's own test): a new SQLite file,
    or on PostgreSQL a schema of its own in the test database."""
    url = app.config["SCIM"].database_url
    if url.startswith("sqlite"):
        yield f"sqlite:///{tempfile.mkdtemp(prefix='scim-mig-')}/migrate.db"
        return
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in url else "?"
    yield f"{url}{separator}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def anonymous(app) -> ScimClient:
    return bearer(app, None)


def assert_scim_error(response, status: int, scim_type: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/scim+json"
    body = response.get_json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("detail")
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


def another_writer_renames(app, user_id: str, display_name: str) -> None:
    """Another writer (a connection of its own, outside any request) changes a user and commits:
    for tests of a write that read the user before this happened (SQLite's deferred write lock)."""
    raw = app.extensions["scim_engine"].raw_connection()
    try:
        raw.execute("UPDATE users SET version = version + 1, display_name = ? WHERE id = ?", (display_name, user_id))
        raw.commit()
    finally:
        raw.close()


def get_json(api: ScimClient, path: str) -> dict:
    """GET that must succeed; the parsed body."""
    response = api.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def unit_body(name: str, parent: str | None = None, code: str | None = None, unit_type: str = "department",
              **ext) -> dict:
    """An org-unit group (plan2learn Group extension); unitCode defaults to the upper-cased name."""
    body_ext = {"unitCode": code or name.upper().replace(" ", "-"), "unitType": unit_type, **ext}
    if parent:
        body_ext["parent"] = {"value": parent}
    return {"schemas": [CORE_GROUP, P2L_GROUP], "displayName": name, P2L_GROUP: body_ext}


def create_unit(api: ScimClient, name: str, parent: str | None = None, **ext) -> dict:
    response = api.post("/Groups", json=unit_body(name, parent, **ext))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def filter_list(api: ScimClient, resource: str, expression: str, extra: str = "") -> dict:
    """GET /<resource>?filter=... (URL-encoded), which must answer a ListResponse."""
    from urllib.parse import quote
    body = get_json(api, f"/{resource}?filter={quote(expression)}{extra}")
    assert LIST in body["schemas"]
    return body


def ids(body: dict) -> set[str]:
    return {r["id"] for r in body["Resources"]}
