"""/v1/orders: take orders, change details while preparing, move them through the status workflow.

Changes need `If-Match` with the order's ETag: a missing one is refused with 428 (a client that never
read the order cannot overwrite someone else's change by accident; `If-Match: *` states "whatever it is
now" explicitly), a stale one is 412.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timezone
from decimal import Decimal

from flask import current_app, request, url_for
from flask_smorest import Blueprint
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from services.common.errors import ApiError
from services.orders.auth import Principal, authenticate
from services.orders.handoff import send_outbox, write_outbox, write_refund_outbox
from services.orders.models import Courier, CustomerOrder, OrderItem, Product, StatusChange
from services.orders.permissions import WORK_ORDERS, require, status_action
from services.orders.queries import (
    field_error,
    order_for_change,
    orders_public,
    phone_digits,
    resolve_branch,
    search_orders,
    visible_order,
)
from services.orders.schemas import (
    OrderCreate,
    OrderListArgs,
    OrderPage,
    OrderPublic,
    OrderUpdate,
    StatusChangeIn,
)
from services.orders.workflow import (
    EDITABLE_STATUSES,
    INITIAL_STATUS,
    NEEDS_COURIER,
    NEEDS_CUSTOMER_DETAILS,
    NEEDS_REASON,
    allowed_next,
    etag,
    if_match_satisfied,
)

bp = Blueprint("orders", __name__, url_prefix="/v1/orders", description="Live delivery orders")
log = logging.getLogger(__name__)

_IF_MATCH = {"name": "If-Match", "in": "header", "required": True, "schema": {"type": "string"},
             "description": "the order's ETag (or *); missing: 428, stale: 412"}
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "a retried create with the same key returns the first order"}


def _ctx():
    return (current_app.extensions["cafeflow.db"], current_app.extensions["cafeflow.settings"],
            current_app.extensions["cafeflow.celery"])


def _one(session: Session, order: CustomerOrder):
    body = orders_public(session, [order])[0]
    return body, {"ETag": etag(order.id, order.version)}


def _check_if_match(order: CustomerOrder) -> None:
    header = request.headers.get("If-Match")
    if header is None:
        raise ApiError(428, "precondition_required", "send If-Match with the order's ETag (read it with GET first)",
                       {"etag": etag(order.id, order.version)})
    if not if_match_satisfied(header, order.id, order.version):
        raise ApiError(412, "precondition_failed", "the order was changed by someone else; read it again",
                       {"etag": etag(order.id, order.version)})


def _priced_items(session: Session, items: list[dict]) -> tuple[list[tuple[int, int, Decimal]], Decimal]:
    """(product_id, quantity, unit_price) per line, with the price as of now, and the total."""
    ids = {item["product_id"] for item in items}
    products = {p.id: p for p in session.execute(select(Product).where(Product.id.in_(ids))).scalars()}
    lines, total = [], Decimal("0.00")
    for number, item in enumerate(items):
        product = products.get(item["product_id"])
        if product is None:
            raise field_error(["items", number, "product_id"], "unknown product")
        if not product.active:
            raise field_error(["items", number, "product_id"], "the product is not sold any more (inactive)")
        lines.append((product.id, item["quantity"], product.price))
        total += product.price * item["quantity"]
    return lines, total


def _check_courier(session: Session, courier_id: int | None, branch_key: str) -> None:
    if courier_id is None:
        return
    courier = session.get(Courier, courier_id)
    if courier is None:
        raise field_error(["courier_id"], "unknown courier")
    if not courier.active:
        raise field_error(["courier_id"], "the courier is inactive")
    if courier.branch_key != branch_key:
        raise field_error(["courier_id"], "the courier works for another branch")


def _add_items(session: Session, order_id: int, lines: list[tuple[int, int, Decimal]]) -> None:
    session.add_all(OrderItem(order_id=order_id, line_no=number, product_id=product_id, quantity=quantity,
                              unit_price=price) for number, (product_id, quantity, price) in enumerate(lines, 1))


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not (1 <= len(key) <= 200) or not key.isprintable():
        raise ApiError(422, "validation_error", "request validation failed: Idempotency-Key",
                       {"headers": {"Idempotency-Key": ["1-200 printable characters"]}})
    return key


def _replay(session: Session, principal: Principal, key: str, request_hash: str):
    """The order first created with this key, or None. The advisory lock (held until commit) makes a
    concurrent request with the same key wait for the first one to commit, then find its order."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7))"), {"k": f"{principal.key}\x1f{key}"})
    row = session.execute(text("SELECT order_id, request_hash FROM orders.idempotency_key "
                               "WHERE principal = :p AND key = :k"), {"p": principal.key, "k": key}).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different order")
    return session.get(CustomerOrder, row.order_id)


@bp.route("", methods=["POST"])
@bp.doc(operationId="orders-create", summary="Take an order", security=[{"bearer": []}],
        parameters=[_IDEMPOTENCY])
@bp.arguments(OrderCreate)
@bp.response(201, OrderPublic, description="Created (also the answer to a retry with the same Idempotency-Key)")
def create_order(data: dict):
    db, settings, _celery = _ctx()
    key = _idempotency_key()
    with db.session() as session:
        principal = authenticate(session, settings)
        require(principal, WORK_ORDERS)
        branch, branch_key = resolve_branch(session, data["branch"], ["branch"])
        if not principal.sees_branch(branch_key):
            raise ApiError(403, "forbidden", "you take orders for your own branch only")
        if key is not None:
            request_hash = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
            first = _replay(session, principal, key, request_hash)
            if first is not None:
                body, headers = _one(session, first)
                return body, 201, {**headers, "Location": url_for("orders.get_order", order_id=first.id),
                                   "Idempotent-Replayed": "true"}
        _check_courier(session, data["courier_id"], branch_key)
        lines, total = _priced_items(session, data["items"])
        order = CustomerOrder(branch=branch, branch_key=branch_key, customer_name=data["customer_name"],
                              customer_address=data["customer_address"], customer_phone=data["customer_phone"],
                              phone_digits=phone_digits(data["customer_phone"]), courier_id=data["courier_id"],
                              payment_method=data["payment_method"], status=INITIAL_STATUS, total=total,
                              created_by=principal.username)
        session.add(order)
        session.flush()
        _add_items(session, order.id, lines)
        session.add(StatusChange(order_id=order.id, from_status=None, to_status=INITIAL_STATUS,
                                 changed_by=principal.username))
        if key is not None:
            session.execute(text("INSERT INTO orders.idempotency_key (principal, key, request_hash, order_id) "
                                 "VALUES (:p, :k, :h, :o)"),
                            {"p": principal.key, "k": key, "h": request_hash, "o": order.id})
        session.flush()
        body, headers = _one(session, order)
        session.commit()
    log.info("order created", extra={"order_id": order.id, "branch": branch})
    return body, 201, {**headers, "Location": url_for("orders.get_order", order_id=order.id)}


@bp.route("", methods=["GET"])
@bp.doc(operationId="orders-list", summary="Find orders", security=[{"bearer": []}])
@bp.arguments(OrderListArgs, location="query")
@bp.response(200, OrderPage)
def list_orders(args: dict):
    db, settings, _celery = _ctx()
    with db.session() as session:
        principal = authenticate(session, settings)
        require(principal, WORK_ORDERS)
        orders, total = search_orders(session, principal, args)
        return {"items": orders_public(session, orders), "page": args["page"], "page_size": args["page_size"],
                "total": total}


@bp.route("/<int:order_id>", methods=["GET"])
@bp.doc(operationId="orders-get", summary="One order with its items and history", security=[{"bearer": []}])
@bp.response(200, OrderPublic)
def get_order(order_id: int):
    db, settings, _celery = _ctx()
    with db.session() as session:
        principal = authenticate(session, settings)
        require(principal, WORK_ORDERS)
        return _one(session, visible_order(session, principal, order_id))


@bp.route("/<int:order_id>", methods=["PATCH"])
@bp.doc(operationId="orders-update", summary="Change an order's details while it is being prepared",
        security=[{"bearer": []}], parameters=[_IF_MATCH])
@bp.arguments(OrderUpdate)
@bp.response(200, OrderPublic)
def update_order(data: dict, order_id: int):
    db, settings, _celery = _ctx()
    with db.session() as session:
        principal = authenticate(session, settings)
        require(principal, WORK_ORDERS)
        order = order_for_change(session, principal, order_id)
        _check_if_match(order)
        if order.status not in EDITABLE_STATUSES:
            raise ApiError(409, "not_editable", f"an order that is {order.status} can no longer be changed",
                           {"status": order.status})
        if "courier_id" in data:
            _check_courier(session, data["courier_id"], order.branch_key)
            order.courier_id = data["courier_id"]
        for name in ("customer_name", "customer_address", "payment_method"):
            if name in data:
                setattr(order, name, data[name])
        if "customer_phone" in data:
            order.customer_phone = data["customer_phone"]
            order.phone_digits = phone_digits(data["customer_phone"])
        if order.customer_details_erased_at is not None and None not in (
                order.customer_name, order.customer_address, order.customer_phone):
            order.customer_details_erased_at = None     # staff entered them again: an ordinary order once more
        if "items" in data:
            lines, order.total = _priced_items(session, data["items"])
            session.execute(delete(OrderItem).where(OrderItem.order_id == order.id))
            _add_items(session, order.id, lines)
        order.version += 1
        order.updated_at = datetime.now(timezone.utc)
        session.flush()
        body, headers = _one(session, order)
        session.commit()
    return body, 200, headers


@bp.route("/<int:order_id>/status", methods=["POST"])
@bp.doc(operationId="orders-change-status", summary="Move an order along the status workflow",
        security=[{"bearer": []}], parameters=[_IF_MATCH])
@bp.arguments(StatusChangeIn)
@bp.response(200, OrderPublic)
def change_status(data: dict, order_id: int):
    db, settings, celery = _ctx()
    target = data["status"]
    outbox_id = None
    with db.session() as session:
        principal = authenticate(session, settings)
        require(principal, WORK_ORDERS)
        order = order_for_change(session, principal, order_id)
        _check_if_match(order)
        allowed = allowed_next(order.status, details_erased=order.customer_details_erased_at is not None)
        if target not in allowed and target in NEEDS_CUSTOMER_DETAILS and target in allowed_next(order.status):
            raise ApiError(409, "customer_details_erased",
                           "this order's customer name, address and phone were erased after "
                           f"{settings.orders_customer_retention_days:g} days without a change: enter them again "
                           "(PATCH) before it goes out, or cancel it",
                           {"status": order.status, "allowed_next": list(allowed)})
        if target not in allowed:
            raise ApiError(409, "illegal_transition",
                           f"an order that is {order.status} cannot become {target}; allowed next: "
                           f"{', '.join(allowed) or 'none (final state)'}",
                           {"status": order.status, "allowed_next": list(allowed)})
        if target in NEEDS_COURIER and order.courier_id is None:
            raise ApiError(409, "courier_required", "assign a courier to the order before it goes out for delivery",
                           {"status": order.status, "allowed_next": list(allowed)})
        require(principal, status_action(target))
        reason = (data.get("reason") or "").strip() or None
        if target in NEEDS_REASON and reason is None:
            raise ApiError(422, "validation_error", f"say why the order is {target} (field 'reason')",
                           {"reason": ["Missing data for required field."]})
        if reason is not None and not reason.isprintable():
            raise ApiError(422, "validation_error", "the reason must be printable text", {"reason": ["not printable"]})
        now = datetime.now(timezone.utc)
        session.add(StatusChange(order_id=order.id, from_status=order.status, to_status=target,
                                 changed_by=principal.username, changed_at=now, reason=reason))
        order.status, order.version, order.updated_at = target, order.version + 1, now
        if target == "delivered":
            order.delivered_at = now
            outbox_id = write_outbox(session, settings, order, now).id
        elif target == "refunded":
            outbox_id = write_refund_outbox(session, order, principal.username, now).id
        session.flush()
        body, headers = _one(session, order)
        session.commit()
    if outbox_id is not None:
        send_outbox(celery, settings, outbox_id)
    log.info("order status changed", extra={"order_id": order_id, "status": target})
    return body, 200, headers
