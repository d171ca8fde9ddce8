"""Live sales from the orders service count in the reports when `source` includes them, and a delivery
changes the next answer (the cache follows the warehouse version)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import text

from services.common.live_orders import LOAD_LIVE_ORDER_TASK
from tests.realdata import real_files
from tests.reporting.conftest import ADMIN, get_json, load_files


def _deliver_order(orders, engine, celery_app) -> dict:
    def post(path, body):
        response = orders.post(path, json=body, headers=ADMIN)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    latte = post("/v1/products", {"name": "Latte", "size": "Large", "flavour": None, "price": "2.45"})
    courier = post("/v1/couriers", {"name": "Cora Courier", "phone": "07700 900001", "branch": "Leeds"})
    order = post("/v1/orders", {"branch": "Leeds", "customer_name": "Zoë Livewire", "customer_address": "1 Road",
                                "customer_phone": "07700 900123", "payment_method": "CASH",
                                "courier_id": courier["id"], "items": [{"product_id": latte["id"], "quantity": 3}]})
    for status in ("out_for_delivery", "delivered"):
        etag = orders.get(f"/v1/orders/{order['id']}", headers=ADMIN).headers["ETag"]
        moved = orders.post(f"/v1/orders/{order['id']}/status", json={"status": status},
                            headers={**ADMIN, "If-Match": etag})
        assert moved.status_code == 200, moved.get_json()
    with engine.connect() as conn:
        outbox_id = conn.execute(text("SELECT id FROM orders.outbox WHERE order_id = :o"), {"o": order["id"]}).scalar()
    assert celery_app.tasks[LOAD_LIVE_ORDER_TASK].apply(args=[outbox_id]).result == "loaded"
    return order


def test_live_sales_count_when_source_includes_them(reporting_app, clean, settings, celery_app):
    from services.orders.app import create_app as create_orders_app

    leeds = [p for p in real_files() if p.name.startswith("leeds_")]
    load_files(settings, celery_app, leeds[:2])
    reports = reporting_app.test_client()
    today = dt.datetime.now(ZoneInfo("Europe/London")).date()
    window = {"from": (today - dt.timedelta(days=1)).isoformat(), "to": today.isoformat(), "group_by": "branch"}

    before = get_json(reports, "/v1/reports/sales", window)        # cached now: no sale in this window yet
    assert before["rows"] == []

    order = _deliver_order(create_orders_app(settings).test_client(), clean, celery_app)
    assert Decimal(order["total"]) == Decimal("7.35")

    both = get_json(reports, "/v1/reports/sales", window)          # the delivery bumped the version
    live = get_json(reports, "/v1/reports/sales", {**window, "source": "live"})
    files = get_json(reports, "/v1/reports/sales", {**window, "source": "file"})
    expected = [{"branch": "Leeds", "transactions": 1, "items": 3, "revenue": "7.35"}]
    for body in (both, live):
        assert [{k: row[k] for k in ("branch", "transactions", "items", "revenue")} for row in body["rows"]] == expected
    assert files["rows"] == []

    by_payment = get_json(reports, "/v1/reports/sales", {**window, "group_by": "payment_method", "source": "live"})
    assert [(row["payment_method"], row["revenue"]) for row in by_payment["rows"]] == [("CASH", "7.35")]
    products = get_json(reports, "/v1/reports/sales", {**window, "group_by": "product"})
    assert [(row["items"], row["revenue"]) for row in products["rows"]] == [(3, "7.35")]

    customers = get_json(reports, "/v1/reports/customers", {"from": window["from"], "to": window["to"],
                                                            "granularity": "day", "source": "live"})
    assert [(p["customers"], p["new_customers"]) for p in customers["series"] if p["customers"]] == [(1, 1)]
    # Through customer_period_branch too (record_new_sales runs for the live sale as for a load).
    leeds_live = get_json(reports, "/v1/reports/customers", {"from": window["from"], "to": window["to"],
                                                             "granularity": "day", "source": "live", "branch": "Leeds"})
    assert leeds_live["answered_from"] == "customer_period_branch"
    assert [(p["customers"], p["new_customers"]) for p in leeds_live["series"] if p["customers"]] == [(1, 1)]

    # All-time, both sources: the file revenue plus the live order, as plain SQL says.
    with clean.connect() as conn:
        total = conn.execute(text("SELECT sum(total) FROM warehouse.fact_transaction f JOIN warehouse.dim_branch b "
                                  "ON b.id = f.branch_id WHERE b.name = 'Leeds'")).scalar()
        live_total = conn.execute(
            text("SELECT sum(total) FROM warehouse.fact_transaction WHERE source = 'live'")).scalar()
    assert live_total == Decimal("7.35") and total > live_total
