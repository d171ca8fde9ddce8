"""The order status workflow: one table of allowed changes (the migration seeds the same rows into
orders.status_transition, which the history references; a test keeps the two equal)."""
from __future__ import annotations

STATUSES = ("preparing", "out_for_delivery", "delivered", "cancelled", "refunded")
INITIAL_STATUS = "preparing"
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "preparing": ("out_for_delivery", "cancelled"),
    "out_for_delivery": ("delivered", "cancelled"),
    # A refund takes the sale back out of the warehouse (through the outbox, like the delivery).
    "delivered": ("refunded",),
    "cancelled": (),
    "refunded": (),
}
# Moving an order here needs a reason (kept in the order's history); who may: services/orders/permissions.py.
NEEDS_REASON = frozenset({"refunded"})
# Moving to these states needs a courier assigned first.
NEEDS_COURIER = frozenset({"out_for_delivery"})
# ... and the customer's address, which an order abandoned open loses after the retention period.
NEEDS_CUSTOMER_DETAILS = frozenset({"out_for_delivery"})
# Details (customer, items, courier, payment) may change only while the order is being prepared.
EDITABLE_STATUSES = frozenset({"preparing"})


def allowed_next(status: str, *, details_erased: bool = False) -> tuple[str, ...]:
    allowed = TRANSITIONS.get(status, ())
    if details_erased:
        allowed = tuple(s for s in allowed if s not in NEEDS_CUSTOMER_DETAILS)
    return allowed


def etag(order_id: int, version: int) -> str:
    return f'"o{order_id}v{version}"'


def if_match_satisfied(header: str, order_id: int, version: int) -> bool:
    """RFC 9110 If-Match: '*' or a list of entity tags one of which is current (weak tags never match)."""
    if header.strip() == "*":
        return True
    current = etag(order_id, version)
    return any(tag.strip() == current for tag in header.split(","))
