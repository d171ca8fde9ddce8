"""reporting re-checks orders users on every request; the migrating user may assume the read-only role

Revision ID: 0002_reporting_reads_users
Revises: 0001_orders_live_orders
Create Date: 2026-11-22

Reporting accepts signed orders tokens, but a token outlives a deactivation, a demotion or a move to
another branch; reading the user's current row (four columns, never the password hash) closes that.
The role `cafeflow_reporting` is created by the warehouse history, which runs before this one.
`GRANT ... TO CURRENT_USER` lets a non-superuser owner (managed PostgreSQL) `SET ROLE` to it.
"""
from alembic import op

revision = "0002_reporting_reads_users"
down_revision = "0001_orders_live_orders"
branch_labels = None
depends_on = None

READ_ONLY_ROLE = "cafeflow_reporting"


def upgrade() -> None:
    op.execute(f"""
    GRANT USAGE ON SCHEMA orders TO {READ_ONLY_ROLE};
    GRANT SELECT (id, active, role, branch_key) ON orders.app_user TO {READ_ONLY_ROLE};
    DO $$ BEGIN
        IF NOT pg_has_role(current_user, '{READ_ONLY_ROLE}', 'MEMBER') THEN
            EXECUTE 'GRANT {READ_ONLY_ROLE} TO ' || quote_ident(current_user);
        END IF;
    END $$;
    """)


def downgrade() -> None:
    op.execute(f"""
    REVOKE SELECT (id, active, role, branch_key) ON orders.app_user FROM {READ_ONLY_ROLE};
    REVOKE USAGE ON SCHEMA orders FROM {READ_ONLY_ROLE};
    """)
