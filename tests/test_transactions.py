"""Outside HTTP requests (the CLI, cron jobs) a session's writes are one transaction too.

Read-only HTTP requests run without a transaction on SQLite; nothing else may: a CLI
command that fails half-way must leave nothing behind.
"""
from __future__ import annotations

from sqlalchemy import select

from scim_server.storage import tenants
from scim_server.storage.models import Tenant


def test_a_rolled_back_session_leaves_nothing(app):
    sessions = app.extensions["scim_sessions"]
    session = sessions()
    try:
        tenant = tenants.create_tenant(session, "half-way")
        session.flush()  # the INSERT has run
        tenants.create_token(session, tenant, "half-way token")
        session.flush()
        session.rollback()  # as when a CLI command fails
    finally:
        session.close()
    with sessions() as check:
        assert check.scalar(select(Tenant).where(Tenant.name == "half-way")) is None


def test_a_user_write_checks_the_version_it_read(app, api):
    """A user's UPDATE says "WHERE version = <the version read>": a write that read the user
    before another request changed it fails (and the HTTP layer runs it again) instead of
    overwriting that change."""
    import pytest
    from sqlalchemy.orm.exc import StaleDataError

    from scim_server.scim.schemas import registry
    from scim_server.storage.db import defer_write_lock, write_intent
    from scim_server.storage.models import User
    from scim_server.storage.users import UserStore

    user = api.create_user("versioned", title="First")
    # as an HTTP user write runs: it reads without SQLite's write lock, then takes it to write
    tokens = write_intent.set(True), defer_write_lock.set(True)
    session = app.extensions["scim_sessions"]()
    try:
        row = session.get(User, user["id"])
        store = UserStore(session, row.tenant_id, registry().resource_type("User"), "http://localhost/scim/v2")
        doc = {**store.stored_document(row), "title": "Mine"}
        changed = api.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Theirs"})
        assert changed.status_code == 200
        with pytest.raises(StaleDataError):
            store.update(row, doc)
        session.rollback()
    finally:
        session.close()
        write_intent.reset(tokens[0])
        defer_write_lock.reset(tokens[1])
    after = api.get(f"/Users/{user['id']}").get_json()
    assert after["title"] == "Theirs" and after["meta"]["version"] == 'W/"2"'
