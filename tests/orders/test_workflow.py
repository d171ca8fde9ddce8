"""The whole order workflow over HTTP, every illegal transition, and the hand-off to the warehouse."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from services.common import task_names
from services.orders.workflow import STATUSES, TRANSITIONS
from tests.orders.conftest import change_status, order_body
from tests.signin import add_user, form_sign_in


def test_take_assign_send_and_deliver_an_order(api, admin, menu, clean, run_task, redis_client, settings):
    created = api.post("/v1/orders", json=order_body(menu), headers=admin)
    assert created.status_code == 201, created.get_json()
    order = created.get_json()
    assert created.headers["Location"] == f"/v1/orders/{order['id']}"
    assert created.headers["ETag"]
    assert order["status"] == "preparing" and order["allowed_next"] == ["out_for_delivery", "cancelled"]
    assert order["total"] == "7.00"                      # 2 x 2.85 + 1.30, computed by the server
    assert [(i["name"], i["quantity"], i["unit_price"]) for i in order["items"]] == [
        ("Flavoured latte", 2, "2.85"), ("Speciality Tea", 1, "1.30")]
    assert [(h["from_status"], h["to_status"], h["changed_by"]) for h in order["history"]] == [
        (None, "preparing", "admin")]

    # Going out needs a courier.
    refused = change_status(api, admin, order["id"], "out_for_delivery", created.headers["ETag"])
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "courier_required"

    assigned = api.patch(f"/v1/orders/{order['id']}", json={"courier_id": menu.leeds_courier["id"]},
                         headers={**admin, "If-Match": created.headers["ETag"]})
    assert assigned.status_code == 200, assigned.get_json()
    assert assigned.get_json()["courier_name"] == "Cora Courier"
    out = change_status(api, admin, order["id"], "out_for_delivery", assigned.headers["ETag"])
    assert out.status_code == 200 and out.get_json()["status"] == "out_for_delivery"
    # Details are frozen once the order has left.
    frozen = api.patch(f"/v1/orders/{order['id']}", json={"customer_name": "Someone Else"},
                       headers={**admin, "If-Match": out.headers["ETag"]})
    assert frozen.status_code == 409 and frozen.get_json()["error"]["code"] == "not_editable"

    delivered = change_status(api, admin, order["id"], "delivered", out.headers["ETag"])
    assert delivered.status_code == 200
    body = delivered.get_json()
    assert body["status"] == "delivered" and body["allowed_next"] == ["refunded"] and body["delivered_at"]
    assert [h["to_status"] for h in body["history"]] == ["preparing", "out_for_delivery", "delivered"]

    # The hand-off waits in the outbox and its message is on the transform queue.
    with clean.connect() as conn:
        outbox = conn.execute(text("SELECT id, payload, loaded_at FROM orders.outbox")).one()
    assert outbox.loaded_at is None
    payload_text = str(outbox.payload)
    for personal in ("Zoë", "Quarterly", "Test Street", "900123"):
        assert personal not in payload_text
    queued = [m for m in redis_client.lrange(settings.transform_queue, 0, -1)
              if task_names.LOAD_LIVE_ORDER.encode() in m]
    assert len(queued) == 1

    # A worker loads it; the same message delivered again adds nothing.
    assert run_task(task_names.LOAD_LIVE_ORDER, outbox.id) == "loaded"
    assert run_task(task_names.LOAD_LIVE_ORDER, outbox.id) == "duplicate"
    with clean.connect() as conn:
        facts = conn.execute(text("""
            SELECT t.total, t.source, t.payment_method, t.customer_key, b.name AS branch, t.occurred_at
            FROM warehouse.fact_transaction t JOIN warehouse.dim_branch b ON b.id = t.branch_id""")).all()
        items = conn.execute(text("""
            SELECT p.name, p.size, p.flavour, i.quantity, i.unit_price FROM warehouse.fact_transaction_item i
            JOIN warehouse.dim_product p ON p.id = i.product_id ORDER BY i.line_no""")).all()
        rollup = conn.execute(text(
            "SELECT transactions, items, revenue, source FROM warehouse.rollup_sales_hour")).all()
        product_rollup = conn.execute(text(
            "SELECT sum(quantity), sum(revenue) FROM warehouse.rollup_product_hour WHERE source = 'live'")).one()
        version = conn.execute(text("SELECT version FROM warehouse.version")).scalar()
        loaded_at = conn.execute(text("SELECT loaded_at FROM orders.outbox")).scalar()
    assert len(facts) == 1
    fact = facts[0]
    assert (fact.total, fact.source, fact.payment_method, fact.branch) == (Decimal("7.00"), "live", "CARD", "Leeds")
    assert fact.customer_key is not None and fact.occurred_at.isoformat() == body["delivered_at"].replace("Z", "+00:00")
    assert [tuple(i) for i in items] == [("Flavoured latte", "Large", "Hazelnut", 2, Decimal("2.85")),
                                         ("Speciality Tea", None, "Peppermint", 1, Decimal("1.30"))]
    assert [tuple(r) for r in rollup] == [(1, 3, Decimal("7.00"), "live")]
    assert tuple(product_rollup) == (3, Decimal("7.00"))
    assert version == 1 and loaded_at is not None


def test_live_customer_key_matches_the_file_pseudonym(settings):
    """A customer who orders live and buys at the till is one (returning) customer in the warehouse."""
    from services.common.live_orders import customer_pseudonym
    from services.transform.sale_builder import SaleBuilder

    builder = SaleBuilder(settings.secret_key.get_secret_value(), expected_branch_key=None)
    assert customer_pseudonym(settings.secret_key.get_secret_value(), "  zoë  QUARTERLY ") == \
        builder.customer("Zoë Quarterly")


def _order_in(api, admin, menu, status: str) -> tuple[int, str]:
    order = api.post("/v1/orders", json=order_body(menu, courier_id=menu.leeds_courier["id"]), headers=admin)
    order_id, etag = order.get_json()["id"], order.headers["ETag"]
    path = {"preparing": [], "out_for_delivery": ["out_for_delivery"], "delivered": ["out_for_delivery", "delivered"],
            "cancelled": ["cancelled"], "refunded": ["out_for_delivery", "delivered", "refunded"]}[status]
    for step in path:
        moved = change_status(api, admin, order_id, step, etag)
        assert moved.status_code == 200, moved.get_json()
        etag = moved.headers["ETag"]
    return order_id, etag


@pytest.mark.parametrize("current", STATUSES)
def test_every_illegal_transition_is_refused_naming_the_allowed_ones(api, admin, menu, current):
    order_id, etag = _order_in(api, admin, menu, current)
    for target in STATUSES:
        if target in TRANSITIONS[current]:
            continue
        refused = change_status(api, admin, order_id, target, etag)
        assert refused.status_code == 409, (current, target)
        error = refused.get_json()["error"]
        assert error["code"] == "illegal_transition"
        assert error["details"] == {"status": current, "allowed_next": list(TRANSITIONS[current])}
    assert api.get(f"/v1/orders/{order_id}", headers=admin).get_json()["status"] == current


def test_the_database_transition_table_is_the_workflow_table(clean):
    with clean.connect() as conn:
        rows = set(conn.execute(text("SELECT from_status, to_status FROM orders.status_transition")).all())
    assert rows == {(a, b) for a, targets in TRANSITIONS.items() for b in targets}


def test_cancel_and_a_cancelled_order_never_reaches_the_warehouse(api, admin, menu, clean):
    order_id, _etag = _order_in(api, admin, menu, "cancelled")
    with clean.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM orders.outbox")).scalar() == 0
    assert api.get(f"/v1/orders/{order_id}", headers=admin).get_json()["status"] == "cancelled"


def test_editing_items_recomputes_the_total_with_captured_prices(api, admin, menu):
    created = api.post("/v1/orders", json=order_body(menu), headers=admin)
    order_id = created.get_json()["id"]
    # A later price change does not alter the order already taken.
    assert api.patch(f"/v1/products/{menu.latte['id']}", json={"price": "3.10"}, headers=admin).status_code == 200
    assert api.get(f"/v1/orders/{order_id}", headers=admin).get_json()["total"] == "7.00"
    edited = api.patch(f"/v1/orders/{order_id}", json={"items": [{"product_id": menu.latte["id"], "quantity": 3}]},
                       headers={**admin, "If-Match": created.headers["ETag"]})
    assert edited.status_code == 200
    assert edited.get_json()["total"] == "9.30" and edited.get_json()["version"] == 2


def test_service_probes_docs_and_metrics(api):
    assert api.get("/healthz").get_json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"database": "ok", "redis": "ok"}
    assert api.get("/openapi.json").get_json()["info"]["title"] == "cafeflow orders"
    assert api.get("/docs").status_code == 200
    api.get("/v1/orders")
    assert b'route="/v1/orders"' in api.get("/metrics").data
    assert api.get("/app").status_code == 303           # to /signin and back (tests/common/test_signin.py)
    add_user("sam")
    assert form_sign_in(api, "sam").status_code == 303
    page = api.get("/app")
    assert page.status_code == 200 and b'<form id="order-form"' in page.data
    policy = page.headers["Content-Security-Policy"]
    assert "connect-src 'self'" in policy and "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert b'<script src="/app/app.js"></script>' in page.data and b"<script>" not in page.data
    assert api.get("/app/app.js").status_code == 200 and api.get("/app/app.css").status_code == 200
