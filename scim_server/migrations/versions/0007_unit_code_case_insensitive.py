"""unitCode is unique per tenant case-insensitively, as userName is: the unique index on
(tenant_id, unit_code) becomes one on (tenant_id, lower(unit_code)).

Org units whose unitCodes differ only in case (``x-1`` and ``X-1`` in one tenant) cannot
both stay: the migration then refuses, changing nothing, and names them; give all but one of
each set another unitCode (``PATCH /Groups/{id}``) and run it again.

SQLite's batch mode (a copy of the table) cannot carry an expression index over: a later
migration that rebuilds ``groups`` must create this index again, as 0002 does for its own.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from scim_server.storage.migrate import MigrationRefused

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# the database's lower() on both sides, as the index folds
CLASHES = sa.text("""
    SELECT t.name AS tenant, g.id, g.unit_code
    FROM groups g JOIN tenants t ON t.id = g.tenant_id
    WHERE g.unit_code IS NOT NULL AND EXISTS (
        SELECT 1 FROM groups o
        WHERE o.tenant_id = g.tenant_id AND o.id <> g.id AND lower(o.unit_code) = lower(g.unit_code))
    ORDER BY t.name, lower(g.unit_code), g.unit_code, g.id
""")


def upgrade() -> None:
    clashes = op.get_bind().execute(CLASHES).all()
    if clashes:
        listed = "; ".join(f"tenant '{c.tenant}': unitCode '{c.unit_code}' (org unit {c.id})" for c in clashes)
        raise MigrationRefused(
            "unitCode becomes unique case-insensitively per tenant, and these org units have unitCodes "
            f"that differ only in case: {listed}. Give all but one of each another unitCode "
            "(PATCH /Groups/{id}) and migrate again; nothing was changed.")
    op.drop_index("uq_groups_tenant_unit_code", table_name="groups")
    op.create_index("uq_groups_tenant_unit_code", "groups", ["tenant_id", sa.text("lower(unit_code)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_groups_tenant_unit_code", table_name="groups")
    op.create_index("uq_groups_tenant_unit_code", "groups", ["tenant_id", "unit_code"], unique=True)
