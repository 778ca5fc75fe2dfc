"""A sync reads its source's users from an index alone, and a user's digest goes when the user's
version moves.

A nightly sync starts by reading every user of its source (externalId -> id) and the digest it
kept of each (``sync_digests``), to see whom it need not compare. It also needed each user's
version, to know that no one wrote the user since: that read every user's row (the rows are
wide: their JSON document), a third of a 1 %-changed sync of 100,000 people on SQLite.

Now the users' (source_id, external_id) index also holds ``id``, so the first read is the
index's alone, and the second question is answered by the digest's existence: a trigger
deletes a user's digest when the user's version moves to another than the digest was kept at.
Every write of a user moves the version (a PUT, a PATCH, the leaver rule, an org unit's members,
a manager deleted), so a digest that is still there was kept at the version the user has.
``id`` never changes, so the wider index costs updates nothing (PostgreSQL's HOT updates stay
possible: no indexed column of a plain PATCH changes).

Digests kept at another version than their user's are deleted here: their people are compared
by the next sync, as they would have been. A later migration that rebuilds ``users`` on SQLite
(``batch_alter_table``) drops the trigger with the old table and must create it again
(``tests/test_sync_digests.py`` fails without it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TRIGGER = "users_version_forgets_sync_digest"


def upgrade() -> None:
    op.drop_index("ix_users_source_external_id", "users")
    op.create_index("ix_users_source_external_id", "users", ["source_id", "external_id", "id"])
    op.execute("DELETE FROM sync_digests WHERE version <> (SELECT users.version FROM users "
               "WHERE users.id = sync_digests.user_id)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                DELETE FROM sync_digests WHERE user_id = NEW.id AND version IS DISTINCT FROM NEW.version;
                RETURN NULL;
            END $$""")
        op.execute(f"""
            CREATE TRIGGER {TRIGGER} AFTER UPDATE OF version ON users FOR EACH ROW
            WHEN (NEW.version IS DISTINCT FROM OLD.version) EXECUTE FUNCTION {TRIGGER}()""")
    else:
        op.execute(f"""
            CREATE TRIGGER {TRIGGER} AFTER UPDATE OF version ON users FOR EACH ROW
            WHEN NEW.version IS NOT OLD.version
            BEGIN
                DELETE FROM sync_digests WHERE user_id = NEW.id AND version IS NOT NEW.version;
            END""")


def downgrade() -> None:
    op.execute(f"DROP TRIGGER {TRIGGER}" + (" ON users" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {TRIGGER}()")
    op.drop_index("ix_users_source_external_id", "users")
    op.create_index("ix_users_source_external_id", "users", ["source_id", "external_id"])
