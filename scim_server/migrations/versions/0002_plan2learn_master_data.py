"""plan2learn master data: org units (parent, unit code and type, EAN), employments on
membership rows, the user's EAN and the employment state behind ``active``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("ean", sa.String(13), nullable=True))
        batch.add_column(sa.Column("employment_state", sa.String(10), nullable=True))
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("is_org_unit", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("unit_code", sa.String(100), nullable=True))
        batch.add_column(sa.Column("unit_type", sa.String(50), nullable=True))
        batch.add_column(sa.Column("parent_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("ean", sa.String(13), nullable=True))
        batch.add_column(sa.Column("effective_ean", sa.String(13), nullable=True))
        batch.create_foreign_key("fk_groups_parent_id", "groups", ["parent_id"], ["id"], ondelete="RESTRICT")
        batch.create_index("ix_groups_parent_id", ["parent_id"])
        batch.create_index("uq_groups_tenant_unit_code", ["tenant_id", "unit_code"], unique=True)
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(sa.Column("title", sa.String(300), nullable=True))
        batch.add_column(sa.Column("start_date", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("end_date", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("is_primary", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("source", sa.String(20), nullable=True))
    # SQLite's batch mode rebuilds "groups" and cannot carry expression indexes over: restore them.
    op.execute("CREATE INDEX IF NOT EXISTS ix_groups_tenant_display_name ON groups (tenant_id, lower(display_name))")
    op.execute("CREATE UNIQUE INDEX IF NOT EXISTS uq_users_tenant_username ON users (tenant_id, lower(user_name))")


def downgrade() -> None:
    with op.batch_alter_table("memberships") as batch:
        for column in ("source", "is_primary", "end_date", "start_date", "title"):
            batch.drop_column(column)
    with op.batch_alter_table("groups") as batch:
        batch.drop_index("uq_groups_tenant_unit_code")
        batch.drop_index("ix_groups_parent_id")
        batch.drop_constraint("fk_groups_parent_id", type_="foreignkey")
        for column in ("effective_ean", "ean", "parent_id", "unit_type", "unit_code", "is_org_unit"):
            batch.drop_column(column)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("employment_state")
        batch.drop_column("ean")
