"""OAuth 2.0 clients and their access tokens, used client assertions, and the audit trail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("secret_hash", sa.String(200), nullable=True),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("auth_method", sa.String(40), nullable=False),
        sa.Column("jwks", JSON, nullable=True),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_oauth_clients_tenant_id", "oauth_clients", ["tenant_id"])
    with op.batch_alter_table("bearer_tokens") as batch:
        batch.add_column(sa.Column("client_id", sa.String(64), nullable=True))
        batch.create_foreign_key("fk_bearer_tokens_client_id", "oauth_clients", ["client_id"], ["client_id"],
                                 ondelete="CASCADE")
        batch.create_index("ix_bearer_tokens_client_id", ["client_id"])
    op.create_table(
        "oauth_used_assertions",
        sa.Column("jti", sa.String(200), primary_key=True),
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("resource_type", sa.String(20), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("operation", sa.String(20), nullable=False),
        sa.Column("changes", JSON, nullable=False),
    )
    op.create_index("ix_audit_tenant_at", "audit_events", ["tenant_id", "at", "id"])
    op.create_index("ix_audit_tenant_resource", "audit_events", ["tenant_id", "resource_id", "at"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("oauth_used_assertions")
    with op.batch_alter_table("bearer_tokens") as batch:
        batch.drop_index("ix_bearer_tokens_client_id")
        batch.drop_constraint("fk_bearer_tokens_client_id", type_="foreignkey")
        batch.drop_column("client_id")
    op.drop_index("ix_oauth_clients_tenant_id", table_name="oauth_clients")
    op.drop_table("oauth_clients")
