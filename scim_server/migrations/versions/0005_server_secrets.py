"""Secrets of the server's own: the key that signs cursors of cursor-based paging (RFC 9865).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    # made here so that no request has to write it (storage.secrets makes it if it goes missing)
    op.bulk_insert(table, [{"name": "cursor", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("server_secrets")
