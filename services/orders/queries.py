"""Reads shared by the handlers: branch lookup, order search, and orders as the API shows them.
Query helpers never commit."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable

from sqlalchemy import Select, exists, func, select, text
from sqlalchemy.orm import Session

from services.common.errors import ApiError
from services.common.naming import branch_key
from services.common.uploads import Branch
from services.orders.auth import Principal
from services.orders.models import CustomerOrder, OrderItem
from services.orders.schemas import INT32_MAX
from services.orders.workflow import allowed_next

BIGINT_MAX = 2 ** 63 - 1
_SORTS = {
    "created_at": (CustomerOrder.created_at, CustomerOrder.id),
    "id": (CustomerOrder.id,),
    "total": (CustomerOrder.total, CustomerOrder.id),
    "status": (CustomerOrder.status, CustomerOrder.id),
}


def field_error(path: list[str | int], message: str, status: int = 422) -> ApiError:
    """A validation error naming the field the way webargs does ({"json": {"items": {"0": {...}}}})."""
    details: Any = [message]
    for part in reversed(path):
        details = {str(part): details}
    name = ".".join(str(p) for p in path)
    return ApiError(status, "validation_error", f"request validation failed: {name}", {"json": details})


def resolve_branch(session: Session, name: str, path: list[str | int]) -> tuple[str, str]:
    """(registered name, branch key) of a branch of the registry (`cafeflow branch add`), so a typo
    cannot become a new branch in the warehouse; the registry is the one the branch files use."""
    key = branch_key(name)
    found = session.execute(select(Branch.name).where(Branch.branch_key == key)).scalar_one_or_none() if key else None
    if found is None:
        raise field_error(path, "unknown branch; an admin registers it with `cafeflow branch add`")
    return found, key


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


def get_or_404(session: Session, model, item_id: int, what: str):
    """A row by its serial id; ids past int4 (which PostgreSQL would refuse) are simply not found."""
    found = session.get(model, item_id) if item_id <= INT32_MAX else None
    if found is None:
        raise not_found(what)
    return found


def page_of(session: Session, query: Select, args: dict, public) -> dict:
    """`{items, page, page_size, total}` of an ordered query, each row made public by `public`."""
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.offset((args["page"] - 1) * args["page_size"]).limit(args["page_size"])).scalars()
    return {"items": [public(r) for r in rows], "page": args["page"], "page_size": args["page_size"], "total": total}


def order_for_change(session: Session, principal: Principal, order_id: int) -> CustomerOrder:
    """The order, locked until the transaction ends; another branch's order is 'not found' for a staff
    user tied to a branch (its existence is not revealed)."""
    if order_id > BIGINT_MAX:
        raise not_found("order")
    order = session.execute(select(CustomerOrder).where(CustomerOrder.id == order_id).with_for_update()).scalar()
    if order is None or not principal.sees_branch(order.branch_key):
        raise not_found("order")
    return order


def visible_order(session: Session, principal: Principal, order_id: int) -> CustomerOrder:
    if order_id > BIGINT_MAX:
        raise not_found("order")
    order = session.get(CustomerOrder, order_id)
    if order is None or not principal.sees_branch(order.branch_key):
        raise not_found("order")
    return order


def search_orders(session: Session, principal: Principal, args: dict) -> tuple[list[CustomerOrder], int]:
    query: Select = select(CustomerOrder)
    if principal.branch_key is not None:
        query = query.where(CustomerOrder.branch_key == principal.branch_key)
    if "id" in args:
        query = query.where(CustomerOrder.id == args["id"])
    if "status" in args:
        query = query.where(CustomerOrder.status == args["status"])
    if "courier_id" in args:
        query = query.where(CustomerOrder.courier_id == args["courier_id"])
    if "branch" in args:
        query = query.where(CustomerOrder.branch_key == branch_key(args["branch"]))
    if "customer_phone" in args:
        query = query.where(CustomerOrder.phone_digits == phone_digits(args["customer_phone"]))
    if "created_from" in args:
        query = query.where(CustomerOrder.created_at >= args["created_from"])
    if "created_to" in args:
        query = query.where(CustomerOrder.created_at < args["created_to"])
    if "product_id" in args:
        query = query.where(exists().where(OrderItem.order_id == CustomerOrder.id,
                                           OrderItem.product_id == args["product_id"]))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    sort = args["sort"]
    columns = _SORTS[sort.lstrip("-")]
    order_by = [c.desc() for c in columns] if sort.startswith("-") else list(columns)
    page, size = args["page"], args["page_size"]
    rows = session.execute(query.order_by(*order_by).offset((page - 1) * size).limit(size)).scalars().all()
    return list(rows), total


def phone_digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())


# Items, history and courier name of many orders in one round trip (the profile showed the request
# time going to database round trips, not Python: three queries here were three round trips).
_DETAILS = text("""
SELECT o.id,
       (SELECT coalesce(json_agg(json_build_object(
                   'line_no', i.line_no, 'product_id', i.product_id, 'name', p.name, 'size', p.size,
                   'flavour', p.flavour, 'quantity', i.quantity, 'unit_price', i.unit_price::text)
                   ORDER BY i.line_no), '[]')
        FROM orders.order_item i JOIN orders.product p ON p.id = i.product_id WHERE i.order_id = o.id) AS items,
       (SELECT coalesce(json_agg(json_build_object(
                   'from_status', h.from_status, 'to_status', h.to_status, 'changed_by', h.changed_by,
                   'changed_at', h.changed_at, 'reason', h.reason) ORDER BY h.id), '[]')
        FROM orders.status_change h WHERE h.order_id = o.id) AS history,
       (SELECT c.name FROM orders.courier c WHERE c.id = o.courier_id) AS courier_name
FROM orders.customer_order o WHERE o.id = ANY(:ids)
""")


def orders_public(session: Session, orders: Iterable[CustomerOrder]) -> list[dict]:
    """Orders with their items, courier name and status history, in one query whatever the count."""
    orders = list(orders)
    if not orders:
        return []
    details = {row.id: row for row in session.execute(_DETAILS, {"ids": [o.id for o in orders]})}
    result = []
    for order in orders:
        row = details[order.id]
        items = [{**item, "unit_price": Decimal(item["unit_price"]),
                  "line_total": Decimal(item["unit_price"]) * item["quantity"]} for item in row.items]
        history = [{**change, "changed_at": datetime.fromisoformat(change["changed_at"])} for change in row.history]
        result.append(order_public(order, items, history, row.courier_name))
    return result


def order_public(order: CustomerOrder, items: list[dict], history: list[dict], courier_name: str | None) -> dict:
    next_statuses = allowed_next(order.status, details_erased=order.customer_details_erased_at is not None)
    return {
        "id": order.id, "branch": order.branch, "customer_name": order.customer_name,
        "customer_address": order.customer_address, "customer_phone": order.customer_phone,
        "courier_id": order.courier_id, "courier_name": courier_name, "payment_method": order.payment_method,
        "status": order.status, "allowed_next": list(next_statuses), "total": order.total,
        "version": order.version, "items": items, "history": history, "created_by": order.created_by,
        "created_at": order.created_at, "updated_at": order.updated_at, "delivered_at": order.delivered_at,
        "customer_details_erased_at": order.customer_details_erased_at,
    }


def money(value: Decimal) -> str:
    return f"{value:.2f}"
