"""orders: customer details of orders abandoned open are erased too

Revision 0003 erased the name, address and phone of delivered and cancelled orders only, so an order left in
`preparing` or `out_for_delivery` (never finished by staff) kept them for ever. The rule is now the order's
last change, whatever its status: no change for `older_than`, and whatever customer details it holds go.
That includes details staff entered again after an earlier erasure (the API lets an erased order in
`preparing` go out for delivery only once name, address and phone are back), so nothing entered is kept
longer than the period after its order's last change.

Rollout: old code calls the same function with the same argument. Until its pods are replaced, old orders
pods still offer `out_for_delivery` for an erased open order (one untouched for the whole retention
period); a downgrade to 0003 leaves erased open orders erased, with the same consequence under 0003's code.

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
        WHERE {which} AND updated_at < now() - older_than
        RETURNING id
    ), forgotten AS (
        DELETE FROM orders.idempotency_key WHERE order_id IN (SELECT id FROM erased)
    )
    SELECT count(*)::integer FROM erased
    $fn$;
"""


# Any customer detail still held (details entered again after an erasure included); the index below has
# the same predicate, so the hourly scan reads only such orders.
_HOLDS_DETAILS = ("(customer_name IS NOT NULL OR customer_address IS NOT NULL OR customer_phone IS NOT NULL "
                  "OR phone_digits IS NOT NULL)")


def upgrade() -> None:
    op.execute(f"""
    DROP INDEX orders.customer_order_finished_unerased;
    CREATE INDEX customer_order_holding_details ON orders.customer_order (updated_at) WHERE {_HOLDS_DETAILS};
    """ + _ERASE.format(which=_HOLDS_DETAILS))


def downgrade() -> None:
    # 0003's function and index, as they were.
    op.execute("""
    DROP INDEX orders.customer_order_holding_details;
    CREATE INDEX customer_order_finished_unerased ON orders.customer_order (updated_at)
        WHERE status IN ('delivered', 'cancelled') AND customer_details_erased_at IS NULL;
    """ + _ERASE.format(which="status IN ('delivered', 'cancelled') AND customer_details_erased_at IS NULL"))
