"""What a source's last sync wrote of each person (``sync_digests``): a hash of the person's
rows and the user's version after the write, so that a nightly sync of a file in which 1 % of
the people changed compares only the people whose rows or whose user changed (see
``storage.sources`` and ``sync.engine``). Starts empty: the next sync of each source compares
every person once, as before, and fills it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_digests",
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("source_id", sa.Integer(), sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_sync_digests_source_id", "sync_digests", ["source_id"])


def downgrade() -> None:
    op.drop_index("ix_sync_digests_source_id", "sync_digests")
    op.drop_table("sync_digests")
