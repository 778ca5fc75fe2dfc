"""Schema migrations with Alembic, run in code so that no alembic.ini is needed.

``scim-server serve`` migrates before starting workers; ``scim-server db upgrade``
does it on its own (for deployments that migrate as a separate step). Every other command
upgrades first too, and finds the database at the newest revision almost always: that is
checked with one SELECT, without importing or running Alembic (0.1 s of a nightly sync).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from .db import normalise_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class MigrationRefused(RuntimeError):
    """A migration cannot apply to the data as it is; the message says what to change
    first. It changed nothing (its checks run before its first change)."""


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    if revision == "head" and current_revision(url) == newest_revision():
        return
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def newest_revision() -> str:
    """The newest migration, as the scripts' names number them (``0012_...py``: revision
    ``0012``, revising the one numbered before it; ``tests/test_hardening_inputs.py`` checks that this
    is Alembic's one head)."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def current_revision(url: str) -> str | None:
    """The database's revision, None when it has none (a new database) or cannot say."""
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        return found[0] if len(found) == 1 else None
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
