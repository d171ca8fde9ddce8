"""orders: the manager role, which runs one branch (services/orders/permissions.py)

A manager is always tied to a branch: the row says so too, whoever writes it (the API, the CLI, an
operator's SQL). Downgrading turns managers into staff of the same branch (the closest older role); the
role change bumps their token version (migration 0005's trigger), so their sessions and tokens end.

Revision ID: 0007_manager_role
Revises: 0006_refunds
Create Date: 2026-12-04
"""
from alembic import op

revision = "0007_manager_role"
down_revision = "0006_refunds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE orders.app_user DROP CONSTRAINT app_user_role_check;
    ALTER TABLE orders.app_user ADD CONSTRAINT app_user_role_check CHECK (role IN ('admin', 'manager', 'staff'));
    ALTER TABLE orders.app_user ADD CONSTRAINT app_user_manager_has_branch
        CHECK (role <> 'manager' OR branch_key IS NOT NULL);
    """)


def downgrade() -> None:
    op.execute("""
    UPDATE orders.app_user SET role = 'staff' WHERE role = 'manager';
    ALTER TABLE orders.app_user DROP CONSTRAINT app_user_manager_has_branch;
    ALTER TABLE orders.app_user DROP CONSTRAINT app_user_role_check;
    ALTER TABLE orders.app_user ADD CONSTRAINT app_user_role_check CHECK (role IN ('admin', 'staff'));
    """)
