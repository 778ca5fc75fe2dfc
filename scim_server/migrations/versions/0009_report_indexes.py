"""Indexes for the console's reports at 100,000 users: headcounts and people lists of the org
tree, and the manager tree. (Indexes of employments by start or end date were tried for the
data-quality checks and left out: with them SQLite, which keeps no statistics here, chose them
for the billing report's pass over all employments and took minutes instead of a second.)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PLAIN = {
    # active and inactive users of a tenant (headcounts leave the inactive out)
    "ix_users_tenant_active": ("users", ["tenant_id", "active"]),
    # everyone's manager, read once per tenant for the manager tree's report counts
    "ix_users_tenant_manager": ("users", ["tenant_id", "manager_id"]),
    # a tenant's employments per user (people employed more than once are counted apart)
    "ix_memberships_tenant_user": ("memberships", ["tenant_id", "user_id"]),
    # a unit's current employments counted from the index alone
    "ix_memberships_group_cover": ("memberships", ["group_id", "user_id", "start_date", "end_date"]),
}


def upgrade() -> None:
    for name, (table, columns) in PLAIN.items():
        op.create_index(name, table, columns)
    # people listed by name, as reports.organisation sorts them: SQLite folds case with NOCASE
    # (its lower() here is a Python function), PostgreSQL with lower()
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE INDEX ix_users_tenant_sort ON users "
                   "(tenant_id, coalesce(display_name, user_name) COLLATE NOCASE, id)")
    else:
        op.execute("CREATE INDEX ix_users_tenant_sort ON users "
                   "(tenant_id, lower(coalesce(display_name, user_name)), id)")


def downgrade() -> None:
    op.drop_index("ix_users_tenant_sort", "users")
    for name, (table, _columns) in reversed(PLAIN.items()):
        op.drop_index(name, table)
