"""When the database goes away: a lost connection costs the client nothing, an unreachable
database is a 503 the IdP retries.

The pool pings a connection as it hands it out (``pool_pre_ping``), so connections that a
database restart killed are replaced before a request uses them. Dropping the ping saved
nothing measurable (bench/README.md) and would leave a write whose response is read on a
dead connection answering 503 after it had committed.
"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from conftest import CORE_USER, ERROR, PATCH_OP
from scim_server import create_app
from scim_server.config import Settings


def _drop_connections(app) -> None:
    """What a PostgreSQL restart does to the app's pooled connections: end their backends."""
    url = app.extensions["scim_engine"].url
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            pids = conn.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")).all()
            assert pids, "the app holds no pooled connection to drop"
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 10
            while conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                              {"pids": list(pids)}) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        admin.dispose()


@pytest.fixture
def postgresql_only(app):
    if app.extensions["scim_engine"].dialect.name != "postgresql":
        pytest.skip("a SQLite file has no server to drop the connection")


def test_reads_and_writes_survive_dropped_connections(app, api, postgresql_only):
    user = api.create_user("survivor", title="Before")

    _drop_connections(app)
    assert api.get(f"/Users/{user['id']}").status_code == 200

    _drop_connections(app)
    patched = api.patch(f"/Users/{user['id']}", json={"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "title", "value": "After"}]})
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["title"] == "After"

    _drop_connections(app)
    created = api.post("/Users", json={"schemas": [CORE_USER], "userName": "newcomer"})
    assert created.status_code == 201, created.get_json()
    found = api.get('/Users?filter=userName eq "newcomer"').get_json()
    assert found["totalResults"] == 1  # created once, not once per run

    _drop_connections(app)
    group = api.post("/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                      "displayName": "Survivors", "members": [{"value": user["id"]}]})
    assert group.status_code == 201, group.get_json()


def test_an_unreachable_database_is_a_503_the_client_may_retry():
    app = create_app(Settings.from_env(database_url="postgresql://postgres@127.0.0.1:1/nowhere",
                                       token_cache_seconds=0))
    response = app.test_client().get("/scim/v2/Users", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.mimetype == "application/scim+json"
    body = response.get_json()
    assert body["schemas"] == [ERROR] and body["status"] == "503"
    assert "Traceback" not in response.get_data(as_text=True)
