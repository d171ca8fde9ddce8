"""orders: a token version per user, bumped by what should end the user's tokens and sessions

Signed user tokens carry the version they were issued at (services/common/auth.py) and every check compares
it with this column: orders' own (services/orders/auth.py) and reporting's, which reads it through the
read-only role (granted below, like the other columns of migration 0002). A trigger bumps it whenever the
password, the active flag, the role or the branch changes, whoever writes the row (the API, the CLI, an
operator's SQL), so no writer can forget; logging out bumps it explicitly (POST /v1/auth/logout).

Rollout: tokens issued before this revision carry no version and are refused: users sign in again once.

Revision ID: 0005_user_token_version
Revises: 0004_erase_abandoned_orders
Create Date: 2026-12-03
"""
from alembic import op

revision = "0005_user_token_version"
down_revision = "0004_erase_abandoned_orders"
branch_labels = None
depends_on = None

READ_ONLY_ROLE = "cafeflow_reporting"


def upgrade() -> None:
    op.execute(f"""
    ALTER TABLE orders.app_user ADD COLUMN token_version integer NOT NULL DEFAULT 1;
    COMMENT ON COLUMN orders.app_user.token_version IS
        'version carried by the user''s tokens and sessions; bumped by a password, active, role or branch change '
        '(trigger app_user_bump_token_version) and by logout; a token of another version is refused';

    CREATE OR REPLACE FUNCTION orders.bump_token_version() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
    BEGIN
        IF NEW.password_hash IS DISTINCT FROM OLD.password_hash OR NEW.active IS DISTINCT FROM OLD.active
           OR NEW.role IS DISTINCT FROM OLD.role OR NEW.branch_key IS DISTINCT FROM OLD.branch_key THEN
            NEW.token_version := OLD.token_version + 1;
        END IF;
        RETURN NEW;
    END
    $fn$;
    CREATE TRIGGER app_user_bump_token_version BEFORE UPDATE ON orders.app_user
        FOR EACH ROW EXECUTE FUNCTION orders.bump_token_version();

    GRANT SELECT (token_version) ON orders.app_user TO {READ_ONLY_ROLE};
    """)


def downgrade() -> None:
    op.execute(f"""
    REVOKE SELECT (token_version) ON orders.app_user FROM {READ_ONLY_ROLE};
    DROP TRIGGER app_user_bump_token_version ON orders.app_user;
    DROP FUNCTION orders.bump_token_version();
    ALTER TABLE orders.app_user DROP COLUMN token_version;
    """)
