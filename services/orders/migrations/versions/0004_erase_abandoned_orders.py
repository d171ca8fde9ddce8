"""orders: customer details of orders abandoned open are erased too

Revision 0003 erased the name, address and phone of delivered and cancelled orders only, so an order left in
`preparing` or `out_for_delivery` (never finished by staff) kept them for ever. The rule is now the order's
last change, whatever its status: no change for `older_than`, and its customer details go. An order
abandoned open and erased cannot go out for delivery (there is no address) until staff enter the details
again; it can still be cancelled, or delivered if it was already out.

Old code calls the same function with the same argument, so this can run before every pod has the new code.

Revision ID: 0004_erase_abandoned_orders
Revises: 0003_customer_details_retention
Create Date: 2026-11-23
"""
from alembic import op

revision = "0004_erase_abandoned_orders"
down_revision = "0003_customer_details_retention"
branch_labels = None
depends_on = None

_ERASE = """
    CREATE OR REPLACE FUNCTION orders.erase_customer_details(older_than interval) RETURNS integer
    LANGUAGE sql VOLATILE AS $fn$
    WITH erased AS (
        UPDATE orders.customer_order
        SET customer_name = NULL, customer_address = NULL, customer_phone = NULL, phone_digits = NULL,
            customer_details_erased_at = now(), updated_at = now(), version = version + 1
        WHERE {which} customer_details_erased_at IS NULL AND updated_at < now() - older_than
        RETURNING id
    ), forgotten AS (
        DELETE FROM orders.idempotency_key WHERE order_id IN (SELECT id FROM erased)
    )
    SELECT count(*)::integer FROM erased
    $fn$;
"""


def upgrade() -> None:
    op.execute("""
    DROP INDEX orders.customer_order_finished_unerased;
    -- Orders still holding customer details, by their last change: what the erasure scans.
    CREATE INDEX customer_order_unerased ON orders.customer_order (updated_at)
        WHERE customer_details_erased_at IS NULL;
    """ + _ERASE.format(which=""))


def downgrade() -> None:
    op.execute("""
    DROP INDEX orders.customer_order_unerased;
    CREATE INDEX customer_order_finished_unerased ON orders.customer_order (updated_at)
        WHERE status IN ('delivered', 'cancelled') AND customer_details_erased_at IS NULL;
    """ + _ERASE.format(which="status IN ('delivered', 'cancelled') AND"))
