"""The hand-off of delivered orders from the orders service to the warehouse (a cross-service contract).

When an order becomes delivered, orders writes one row into `orders.outbox` in the same transaction,
holding the sale already pseudonymised (no customer name, address or phone), and after the commit sends
`transform.load_live_order(outbox_id)` by name. Transform loads it into the warehouse and sets
`loaded_at` in the same transaction as the facts. Rows still unloaded after LIVE_ORDER_RESEND_SECONDS
(a broker outage, a lost message) are sent again by beat's `transform.sweep_live_orders`; the sale's
natural key comes from the order id, so a resend adds nothing.

A refund of a delivered order writes a second row (kind `refund`, payload `{"order_id": 12, "refunded_by":
"<username>"}`) and sends the same task: the sale leaves the warehouse (a resend is a no-op; a refund handled
before its delivery settles the delivery too, so the sale never enters).

Delivery payload (jsonb), all money as decimal strings:
    {"order_id": 12, "branch": "Leeds", "occurred_at": "2026-11-22T19:03:11.123456+00:00",
     "payment_method": "CARD", "total": "5.20", "customer_key": "<32 hex digits>" | null,
     "items": [{"name": "Latte", "size": "Large", "flavour": null, "quantity": 2, "unit_price": "2.60"}]}
"""
from __future__ import annotations

from services.common.crypto import CUSTOMER_PSEUDONYM_KEY, derive_key, keyed_hex
from services.common.naming import fold

OUTBOX_TABLE = "orders.outbox"
DELIVERY = "delivery"         # outbox row kinds
REFUND = "refund"


def customer_pseudonym(secret: str, customer_name: str | None) -> str | None:
    """The same keyed pseudonym the file path gives this name (services/transform/sale_builder.py), so a
    customer who orders live and buys at the till is one returning customer."""
    folded = fold(customer_name or "")
    if not folded:
        return None
    return keyed_hex(derive_key(secret, CUSTOMER_PSEUDONYM_KEY), folded)
