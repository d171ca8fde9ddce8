"""orders: a finished order's customer name, address and phone are erased after a retention period

They are needed to deliver the order, not afterwards: the warehouse got its pseudonymised sale at delivery
(the outbox row holds no name, address or phone). orders.erase_customer_details(older_than) blanks them on
delivered and cancelled orders finished longer ago than `older_than`, records when, bumps the version (the
ETag changes) and deletes the orders' idempotency records (their request hash covers the erased body).
Beat runs it hourly with ORDERS_CUSTOMER_RETENTION_DAYS; the function keeps the rule in this schema.

Revision ID: 0003_customer_details_retention
Revises: 0002_reporting_reads_users
Create Date: 2026-11-22
"""
from alembic import op

revision = "0003_customer_details_retention"
down_revision = "0002_reporting_reads_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE orders.customer_order
        ALTER COLUMN customer_name DROP NOT NULL,
        ALTER COLUMN customer_address DROP NOT NULL,
        ALTER COLUMN customer_phone DROP NOT NULL,
        ALTER COLUMN phone_digits DROP NOT NULL,
        ADD COLUMN customer_details_erased_at timestamptz;
    ALTER TABLE orders.customer_order
        -- Only an erasure may leave them empty.
        ADD CONSTRAINT customer_details_present CHECK (
            customer_details_erased_at IS NOT NULL OR (customer_name IS NOT NULL AND customer_address IS NOT NULL
                                                       AND customer_phone IS NOT NULL AND phone_digits IS NOT NULL));
    -- Finished orders still holding customer details, by when they finished: what the erasure scans.
    CREATE INDEX customer_order_finished_unerased ON orders.customer_order (updated_at)
        WHERE status IN ('delivered', 'cancelled') AND customer_details_erased_at IS NULL;

    CREATE FUNCTION orders.erase_customer_details(older_than interval) RETURNS integer
    LANGUAGE sql VOLATILE AS $fn$
    WITH erased AS (
        UPDATE orders.customer_order
        SET customer_name = NULL, customer_address = NULL, customer_phone = NULL, phone_digits = NULL,
            customer_details_erased_at = now(), updated_at = now(), version = version + 1
        WHERE status IN ('delivered', 'cancelled') AND customer_details_erased_at IS NULL
          AND updated_at < now() - older_than
        RETURNING id
    ), forgotten AS (
        DELETE FROM orders.idempotency_key WHERE order_id IN (SELECT id FROM erased)
    )
    SELECT count(*)::integer FROM erased
    $fn$;
    """)


def downgrade() -> None:
    # Erased details cannot come back: revision 0002's NOT NULL columns get empty strings instead.
    op.execute("""
    DROP FUNCTION orders.erase_customer_details(interval);
    DROP INDEX orders.customer_order_finished_unerased;
    ALTER TABLE orders.customer_order DROP CONSTRAINT customer_details_present,
        DROP COLUMN customer_details_erased_at;
    UPDATE orders.customer_order SET customer_name = coalesce(customer_name, ''),
        customer_address = coalesce(customer_address, ''), customer_phone = coalesce(customer_phone, ''),
        phone_digits = coalesce(phone_digits, '')
    WHERE customer_name IS NULL OR customer_address IS NULL OR customer_phone IS NULL OR phone_digits IS NULL;
    ALTER TABLE orders.customer_order
        ALTER COLUMN customer_name SET NOT NULL, ALTER COLUMN customer_address SET NOT NULL,
        ALTER COLUMN customer_phone SET NOT NULL, ALTER COLUMN phone_digits SET NOT NULL;
    """)
