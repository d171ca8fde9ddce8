"""Live sales from the orders service count in the reports when `source` includes them, and a delivery
changes the next answer (the cache follows the warehouse version)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import text

from tests.realdata import real_files
from tests.reporting.conftest import deliver_order, get_json, load_files


def test_live_sales_count_when_source_includes_them(reporting_app, clean, settings, celery_app):
    from services.orders.app import create_app as create_orders_app

    leeds = [p for p in real_files() if p.name.startswith("leeds_")]
    load_files(settings, celery_app, leeds[:2])
    reports = reporting_app.test_client()
    today = dt.datetime.now(ZoneInfo("Europe/London")).date()
    window = {"from": (today - dt.timedelta(days=1)).isoformat(), "to": today.isoformat(), "group_by": "branch"}

    before = get_json(reports, "/v1/reports/sales", window)        # cached now: no sale in this window yet
    assert before["rows"] == []

    order = deliver_order(create_orders_app(settings).test_client(), clean, celery_app,
                          [({"name": "Latte", "size": "Large", "flavour": None, "price": "2.45"}, 3)])
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
