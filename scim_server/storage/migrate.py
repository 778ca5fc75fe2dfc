"""Schema migrations with Alembic, run in code so that no alembic.ini is needed.

``scim-server serve`` migrates before starting workers; ``scim-server db upgrade``
does it on its own (for deployments that migrate as a separate step).
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from .db import normalise_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class MigrationRefused(RuntimeError):
    """A migration cannot apply to the data as it is; the message says what to change
    first. It changed nothing (its checks run before its first change)."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
