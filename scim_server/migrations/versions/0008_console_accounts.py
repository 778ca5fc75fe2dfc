"""The console: admin accounts, their sessions, failed sign-ins, when each token was last used,
and the requests answered with an error.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_admins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("admin_id", sa.Integer(), sa.ForeignKey("console_admins.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_console_sessions_admin_id", "console_sessions", ["admin_id"])
    op.create_table(
        "console_sign_in_failures",
        sa.Column("email", sa.String(320), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "request_errors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("scim_type", sa.String(50), nullable=True),
        sa.Column("detail", sa.String(1000), nullable=True),
    )
    op.create_index("ix_request_errors_tenant_at", "request_errors", ["tenant_id", "at"])
    with op.batch_alter_table("bearer_tokens") as batch:
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bearer_tokens") as batch:
        batch.drop_column("last_used_at")
    op.drop_index("ix_request_errors_tenant_at", "request_errors")
    op.drop_table("request_errors")
    op.drop_table("console_sign_in_failures")
    op.drop_index("ix_console_sessions_admin_id", "console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("console_admins")
