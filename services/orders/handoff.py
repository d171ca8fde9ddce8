"""Delivered orders into the warehouse (contract: services/common/live_orders.py).

The outbox row is written in the transaction that marks the order delivered, so the sale can neither
be lost (delivered but never handed off) nor invented (handed off but rolled back). The task is sent
only after the commit; if the broker is down the row waits and beat's sweeper sends it later."""
from __future__ import annotations

import logging
from datetime import datetime

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common import task_names
from services.common.live_orders import REFUND, customer_pseudonym
from services.common.metrics import LIVE_ORDER_HANDOFFS
from services.common.settings import Settings
from services.orders.models import CustomerOrder, OrderItem, Outbox, Product

log = logging.getLogger(__name__)


def write_outbox(session: Session, settings: Settings, order: CustomerOrder, delivered_at: datetime) -> Outbox:
    """The pseudonymised sale: no customer name, address or phone leaves the orders schema."""
    items = session.execute(
        select(OrderItem.quantity, OrderItem.unit_price, Product.name, Product.size, Product.flavour)
        .join(Product, Product.id == OrderItem.product_id)
        .where(OrderItem.order_id == order.id).order_by(OrderItem.line_no)).all()
    payload = {
        "order_id": order.id,
        "branch": order.branch,
        "occurred_at": delivered_at.isoformat(),
        "payment_method": order.payment_method,
        "total": f"{order.total:.2f}",
        "customer_key": customer_pseudonym(settings.secret_key.get_secret_value(), order.customer_name),
        "items": [{"name": i.name, "size": i.size, "flavour": i.flavour, "quantity": i.quantity,
                   "unit_price": f"{i.unit_price:.2f}"} for i in items],
    }
    # sent_at is set now, optimistically: if the send after the commit fails, the sweeper's timeout
    # counts from here, and the row is resent.
    outbox = Outbox(order_id=order.id, payload=payload, sent_at=delivered_at, send_count=1)
    session.add(outbox)
    session.flush()
    return outbox


def write_refund_outbox(session: Session, order: CustomerOrder, refunded_by: str, refunded_at: datetime) -> Outbox:
    """The refund's hand-off: the warehouse takes the order's live sale out again."""
    outbox = Outbox(order_id=order.id, kind=REFUND, payload={"order_id": order.id, "refunded_by": refunded_by},
                    sent_at=refunded_at, send_count=1)
    session.add(outbox)
    session.flush()
    return outbox


def send_outbox(celery: Celery, settings: Settings, outbox_id: int) -> bool:
    try:
        celery.send_task(task_names.LOAD_LIVE_ORDER, args=[outbox_id], queue=settings.transform_queue)
        LIVE_ORDER_HANDOFFS.labels("sent").inc()
        return True
    except Exception as exc:  # noqa: BLE001 - the row is committed; the sweeper sends it later
        LIVE_ORDER_HANDOFFS.labels("broker_unavailable").inc()
        log.warning("broker unavailable; the sweeper will hand the delivered order to the warehouse",
                    extra={"error": type(exc).__name__, "outbox_id": outbox_id})
        return False
