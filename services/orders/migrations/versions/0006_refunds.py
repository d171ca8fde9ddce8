"""orders: a delivered order can be refunded, and the refund reaches the warehouse through the outbox

- `delivered -> refunded` joins the transition table (services/orders/workflow.py holds the same rows);
- every status change can carry a reason (a refund must);
- the outbox holds one row per order and kind: `delivery` (the sale goes in) and `refund` (it comes out
  again). The transform settles a refund after its delivery, whichever message arrives first.

Revision ID: 0006_refunds
Revises: 0005_user_token_version
Create Date: 2026-12-03
"""
from alembic import op

revision = "0006_refunds"
down_revision = "0005_user_token_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    INSERT INTO orders.status_transition VALUES ('delivered', 'refunded') ON CONFLICT DO NOTHING;
    ALTER TABLE orders.customer_order DROP CONSTRAINT customer_order_status_check;
    ALTER TABLE orders.customer_order ADD CONSTRAINT customer_order_status_check
        CHECK (status IN ('preparing', 'out_for_delivery', 'delivered', 'cancelled', 'refunded'));
    ALTER TABLE orders.status_change ADD COLUMN reason text;
    ALTER TABLE orders.outbox ADD COLUMN kind text NOT NULL DEFAULT 'delivery'
        CONSTRAINT outbox_kind_known CHECK (kind IN ('delivery', 'refund'));
    ALTER TABLE orders.outbox DROP CONSTRAINT outbox_order_id_key;
    ALTER TABLE orders.outbox ADD CONSTRAINT outbox_order_kind_key UNIQUE (order_id, kind);
    """)


def downgrade() -> None:
    op.execute("""
    DELETE FROM orders.outbox WHERE kind = 'refund';
    ALTER TABLE orders.outbox DROP CONSTRAINT outbox_order_kind_key;
    ALTER TABLE orders.outbox ADD CONSTRAINT outbox_order_id_key UNIQUE (order_id);
    ALTER TABLE orders.outbox DROP COLUMN kind;
    ALTER TABLE orders.status_change DROP COLUMN reason;
    DELETE FROM orders.status_change WHERE to_status = 'refunded';
    UPDATE orders.customer_order SET status = 'delivered' WHERE status = 'refunded';
    ALTER TABLE orders.customer_order DROP CONSTRAINT customer_order_status_check;
    ALTER TABLE orders.customer_order ADD CONSTRAINT customer_order_status_check
        CHECK (status IN ('preparing', 'out_for_delivery', 'delivered', 'cancelled'));
    DELETE FROM orders.status_transition WHERE from_status = 'delivered' AND to_status = 'refunded';
    """)
