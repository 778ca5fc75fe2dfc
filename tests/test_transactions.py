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
