"""Alembic environment: migrations run from ``scim_server.storage.migrate`` (no alembic.ini needed)."""
from __future__ import annotations

import warnings

from alembic import context
from sqlalchemy.exc import SAWarning

from scim_server.storage.db import make_engine
from scim_server.storage.models import Base

# SQLite cannot reflect expression indexes; the migrations recreate them explicitly.
warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index", SAWarning)

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
