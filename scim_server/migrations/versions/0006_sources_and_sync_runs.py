"""Sources of master data (HR, payroll, member registers), what each owns, and the sync run log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("uq_sources_tenant_name", "sources", ["tenant_id", "name"], unique=True)
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("source_id", sa.Integer(), sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("report", JSON, nullable=False),
        sa.Column("message", sa.String(2000), nullable=True),
    )
    op.create_index("ix_sync_runs_source_started", "sync_runs", ["tenant_id", "source_id", "started_at"])
    for table in ("users", "groups"):
        if op.get_bind().dialect.name == "sqlite":
            # SQLite adds a column with its reference in place; a batch copy of the table would
            # drop the old one, and with foreign keys on that deletes its memberships
            op.execute(f"ALTER TABLE {table} ADD COLUMN source_id INTEGER "
                       "REFERENCES sources (id) ON DELETE SET NULL")
        else:
            op.add_column(table, sa.Column("source_id", sa.Integer(), nullable=True))
            op.create_foreign_key(f"fk_{table}_source_id", table, "sources", ["source_id"], ["id"],
                                  ondelete="SET NULL")
    op.create_index("ix_users_source_external_id", "users", ["source_id", "external_id"])
    op.create_index("ix_groups_source", "groups", ["source_id"])
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("run_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("run_id")
    op.drop_index("ix_groups_source", "groups")
    op.drop_index("ix_users_source_external_id", "users")
    for table in ("users", "groups"):
        if op.get_bind().dialect.name != "sqlite":
            op.drop_constraint(f"fk_{table}_source_id", table, type_="foreignkey")
        op.drop_column(table, "source_id")
    op.drop_index("ix_sync_runs_source_started", "sync_runs")
    op.drop_table("sync_runs")
    op.drop_table("sources")
