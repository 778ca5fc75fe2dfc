"""The audit trail names the Bulk operation an event came from (its index and bulkId).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("bulk_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("bulk_id", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("bulk_id")
        batch.drop_column("bulk_index")
