"""Delivered live orders into the warehouse (contract: services/common/live_orders.py).

`transform.load_live_order(outbox_id)` loads one outbox row in one transaction: branch and product
dimensions (transform's own normalisation), the fact with source 'live' and a natural key derived from
the order id (a resend adds nothing), its items, every derived table through the definitions a file
load uses (services/transform/rollups.py), the warehouse version, and the row's loaded_at. A refund's
row (kind 'refund', written when an admin refunds a delivered order) takes the sale out again the same
way (services/transform/corrections.py). `transform.sweep_live_orders` (beat) resends rows not loaded within
LIVE_ORDER_RESEND_SECONDS, so a broker outage at delivery time only delays the sale.
"""
from __future__ import annotations

import logging
import time

from celery import shared_task
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from services.common import task_names
from services.common.crypto import SALE_IDENTITY_KEY, derive_key, keyed_hex
from services.common.live_orders import REFUND
from services.common.metrics import LIVE_ORDERS_RESENT, TASK_DURATION, TASK_FAILURES
from services.common.naming import branch_key, product_key
from services.transform import corrections, rollups
from services.transform.tasks import failure_kind

log = logging.getLogger(__name__)

# SKIP LOCKED: a second delivery of the same message while the first is loading simply gives up.
_CLAIM = text("SELECT id, kind, payload, loaded_at FROM orders.outbox WHERE id = :id FOR UPDATE SKIP LOCKED")
_DELIVERY_OF = text("SELECT id, loaded_at FROM orders.outbox WHERE order_id = :order_id AND kind = 'delivery' "
                    "FOR UPDATE")
_LIVE_FACT = text("SELECT id, branch_id FROM warehouse.fact_transaction WHERE natural_key = CAST(:natural_key AS uuid)")

_BRANCH = text("""
INSERT INTO warehouse.dim_branch (branch_key, name) VALUES (:key, :name) ON CONFLICT (branch_key) DO NOTHING;
""")
_BRANCH_ID = text("SELECT id FROM warehouse.dim_branch WHERE branch_key = :key")
_PRODUCT = text("""
INSERT INTO warehouse.dim_product (product_key, name, size, flavour) VALUES (:key, :name, :size, :flavour)
ON CONFLICT (product_key) DO NOTHING
""")
_PRODUCT_ID = text("SELECT id FROM warehouse.dim_product WHERE product_key = :key")
_FACT = text("""
INSERT INTO warehouse.fact_transaction (natural_key, branch_id, occurred_at, total, payment_method, customer_key,
                                        source, source_line)
VALUES (CAST(:natural_key AS uuid), :branch_id, CAST(:occurred_at AS timestamptz), CAST(:total AS numeric),
        :payment_method, CAST(:customer_key AS uuid), 'live', NULL)
ON CONFLICT (natural_key) DO NOTHING
RETURNING id, occurred_at
""")
_ITEM = text("""
INSERT INTO warehouse.fact_transaction_item (transaction_id, line_no, product_id, quantity, unit_price)
VALUES (:transaction_id, :line_no, :product_id, :quantity, CAST(:unit_price AS numeric))
""")
STUCK_AFTER_SENDS = 8     # with the doubling wait, about four hours of failed sends at the defaults
_LOADED = text("UPDATE orders.outbox SET loaded_at = now() WHERE id = :id")


def live_natural_key(secret: str, order_id: int) -> str:
    """A keyed hash of the order id, in the uuid form of the file sales' keys (which never collide with
    it: theirs hash the sale's content)."""
    return keyed_hex(derive_key(secret, SALE_IDENTITY_KEY), f"live-order\x1f{order_id}")


def load_outbox_row(session, secret: str, outbox_id: int) -> str:
    """Loads one outbox row (a delivery or a refund) inside the caller's transaction; the caller commits.
    Returns the outcome."""
    row = session.execute(_CLAIM, {"id": outbox_id}).first()
    if row is None:
        return "skipped"            # unknown, or being loaded by another worker right now
    if row.loaded_at is not None:
        return "duplicate"
    if row.kind == REFUND:
        outcome = _refund(session, secret, row)
    else:
        outcome = _deliver(session, secret, row.payload)
    session.execute(_LOADED, {"id": outbox_id})
    return outcome


def _deliver(session, secret: str, sale: dict) -> str:
    key = branch_key(sale["branch"])
    session.execute(_BRANCH, {"key": key, "name": sale["branch"]})
    branch_id = session.execute(_BRANCH_ID, {"key": key}).scalar_one()
    corrections.lock_branches(session, "SELECT CAST(:branch_id AS integer)", {"branch_id": branch_id},
                              exclusive=False)
    inserted = session.execute(_FACT, {
        "natural_key": live_natural_key(secret, sale["order_id"]), "branch_id": branch_id,
        "occurred_at": sale["occurred_at"], "total": sale["total"], "payment_method": sale["payment_method"],
        "customer_key": sale.get("customer_key")}).first()
    if inserted is None:
        return "duplicate"
    for line_no, item in enumerate(sale["items"], 1):
        pkey = product_key(item["name"], item.get("size"), item.get("flavour"))
        session.execute(_PRODUCT, {"key": pkey, "name": item["name"], "size": item.get("size"),
                                   "flavour": item.get("flavour")})
        session.execute(_ITEM, {"transaction_id": inserted.id, "line_no": line_no,
                                "product_id": session.execute(_PRODUCT_ID, {"key": pkey}).scalar_one(),
                                "quantity": item["quantity"], "unit_price": item["unit_price"]})
    # Every derived table, through the same definitions a file load uses.
    rollups.create_temp_tables(session)
    rollups.add_stored_sales(session, "SELECT CAST(:id AS bigint)", {"id": inserted.id}, sign=1)
    rollups.apply_delta(session)
    corrections.bump_version(session)
    return "loaded"


def _refund(session, secret: str, row) -> str:
    """The refunded order's sale leaves the warehouse. Its delivery hand-off is settled first: one still
    waiting (a lost or late message) is marked loaded without loading, so the sale never enters."""
    order_id = row.payload["order_id"]
    delivery = session.execute(_DELIVERY_OF, {"order_id": order_id}).first()
    if delivery is not None and delivery.loaded_at is None:
        session.execute(_LOADED, {"id": delivery.id})
        log.info("refund settled a delivery not yet loaded", extra={"outbox_id": row.id})
    fact = session.execute(_LIVE_FACT, {"natural_key": live_natural_key(secret, order_id)}).first()
    if fact is None:
        return "duplicate"
    corrections.lock_branches(session, "SELECT CAST(:branch_id AS integer)", {"branch_id": fact.branch_id},
                              exclusive=True)
    removed = corrections.take_away(session, "SELECT CAST(:id AS bigint)", {"id": fact.id})
    rollups.apply_delta(session)
    corrections.bump_version(session)
    corrections.log_correction(session, "refund", actor=row.payload.get("refunded_by") or "orders",
                               order_id=order_id, sales_removed=removed)
    return "refunded"


@shared_task(bind=True, name=task_names.LOAD_LIVE_ORDER, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=2, retry_backoff_max=120, retry_jitter=True, max_retries=8)
def load_live_order(self, outbox_id: int) -> str:
    ctx = self.app.cafeflow
    started = time.perf_counter()
    outcome = "failed"
    try:
        with ctx.db.session() as session:
            outcome = load_outbox_row(session, ctx.settings.secret_key.get_secret_value(), outbox_id)
            session.commit()
        log.info("live order handed to the warehouse", extra={"outbox_id": outbox_id, "outcome": outcome})
        return outcome
    except Exception as exc:
        # Not loaded: the row stays pending and the sweeper sends it again.
        TASK_FAILURES.labels(task_names.LOAD_LIVE_ORDER, failure_kind(exc)).inc()
        raise
    finally:
        TASK_DURATION.labels(task_names.LOAD_LIVE_ORDER, outcome).observe(time.perf_counter() - started)


@shared_task(bind=True, name=task_names.SWEEP_LIVE_ORDERS, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3)
def sweep_live_orders(self) -> int:
    """Resends delivered orders whose hand-off was not loaded within LIVE_ORDER_RESEND_SECONDS of the
    last send (a broker outage at delivery time, a lost message, a failed load).

    The wait doubles with every send (up to 64x), so a row that fails to load for good costs a resend an
    hour, not one a minute, and is never given up: a long broker outage must only delay a sale. Rows
    resent that often are logged as an error for an operator to look at."""
    ctx = self.app.cafeflow
    with ctx.db.session() as session:
        ids = session.execute(text("""
            UPDATE orders.outbox SET sent_at = now(), send_count = send_count + 1
            WHERE id IN (SELECT id FROM orders.outbox
                         WHERE loaded_at IS NULL
                           AND coalesce(sent_at, created_at) < now() - make_interval(
                               secs => :resend * power(2, least(greatest(send_count, 1), 7) - 1))
                         ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED)
            RETURNING id, send_count"""), {"resend": ctx.settings.live_order_resend_seconds}).all()
        session.commit()
    stuck = [row.id for row in ids if row.send_count > STUCK_AFTER_SENDS]
    ids = [row.id for row in ids]
    if stuck:
        log.error("delivered orders still not in the warehouse after many sends", extra={
            "outbox_ids": stuck[:20], "count": len(stuck), "sends_over": STUCK_AFTER_SENDS})
    for outbox_id in sorted(ids):
        self.app.send_task(task_names.LOAD_LIVE_ORDER, args=[outbox_id], queue=ctx.settings.transform_queue)
    if ids:
        LIVE_ORDERS_RESENT.inc(len(ids))
        log.warning("resent delivered orders to the warehouse", extra={"count": len(ids)})
    return len(ids)
