"""The dashboard's two questions as API answers, on the 65 real files: the headline figures (and the period
before) equal plain SQL over the fact tables; the options offer every registered branch and product and open
on the files' complete week; customers per period carry revenue per customer; a long range is refused only
where the sales themselves are read."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import text

from services.common.auth import issue_user_token
from services.reporting.queries.choices import default_range
from tests.reporting.conftest import ADMIN, get_json
from tests.support import REAL_BRANCHES, SECRET_KEY

WEEK = {"from": "2021-08-25", "to": "2021-08-31"}
WINDOW = ("f.occurred_at >= CAST(:lo AS timestamp) AT TIME ZONE 'Europe/London' "
          "AND f.occurred_at < (CAST(:hi AS timestamp) + interval '1 day') AT TIME ZONE 'Europe/London'")


def plain_totals(engine, lo: str, hi: str, branch: str | None = None, product: str | None = None) -> dict:
    """Written apart from the service's SQL: what a BI tool would ask the raw tables."""
    with engine.connect() as conn:
        if product is None:
            row = conn.execute(text(f"""
                SELECT count(*), coalesce(sum((SELECT sum(quantity) FROM warehouse.fact_transaction_item i
                                               WHERE i.transaction_id = f.id)), 0), coalesce(sum(f.total), 0)
                FROM warehouse.fact_transaction f JOIN warehouse.dim_branch b ON b.id = f.branch_id
                WHERE {WINDOW} AND (b.name = :branch OR CAST(:branch AS text) IS NULL)"""),
                {"lo": lo, "hi": hi, "branch": branch}).one()
        else:
            row = conn.execute(text(f"""
                SELECT count(DISTINCT f.id), coalesce(sum(i.quantity), 0), coalesce(sum(i.quantity * i.unit_price), 0)
                FROM warehouse.fact_transaction f JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id
                JOIN warehouse.dim_product p ON p.id = i.product_id JOIN warehouse.dim_branch b ON b.id = f.branch_id
                WHERE {WINDOW} AND lower(p.name) = lower(:product)
                  AND (b.name = :branch OR CAST(:branch AS text) IS NULL)"""),
                {"lo": lo, "hi": hi, "branch": branch, "product": product}).one()
    sales, items, revenue = int(row[0]), int(row[1]), Decimal(row[2])
    two = Decimal("0.01")
    return {"transactions": sales, "items": items, "revenue": f"{revenue:.2f}",
            "average_spend": f"{(revenue / sales if sales else 0):.2f}",
            "items_per_sale": str((Decimal(items) / sales if sales else Decimal(0)).quantize(two, ROUND_HALF_UP))}


@pytest.mark.parametrize("filters", [{}, {"branch": "Leeds"}, {"product": "Latte"},
                                     {"branch": "Chesterfield", "product": "Latte"}])
def test_summary_equals_plain_sql_for_the_range_and_the_period_before(reporting, real_warehouse, filters):
    body = get_json(reporting, "/v1/reports/summary", {"from": "2021-08-28", "to": "2021-08-31", **filters})
    assert body["current"] == plain_totals(real_warehouse, "2021-08-28", "2021-08-31", **filters)
    assert (body["previous_from"], body["previous_to"]) == ("2021-08-24", "2021-08-27")
    assert body["previous"] == plain_totals(real_warehouse, "2021-08-24", "2021-08-27", **filters)
    now, before = Decimal(body["current"]["revenue"]), Decimal(body["previous"]["revenue"])
    assert body["change_pct"]["revenue"] == str(((now - before) * 100 / before).quantize(Decimal("0.1"), ROUND_HALF_UP))


def test_summary_of_a_range_with_nothing_before_has_no_change(reporting):
    body = get_json(reporting, "/v1/reports/summary", WEEK)
    assert body["current"]["revenue"] == "115623.50" and body["previous"]["transactions"] == 0
    assert set(body["change_pct"].values()) == {None}


def test_options_offer_every_registered_branch_and_open_on_the_files_complete_week(reporting):
    body = get_json(reporting, "/v1/reports/options")
    assert body["branches"] == sorted(REAL_BRANCHES, key=str.lower)   # Isle of Wight has no sales and is offered
    assert "Latte" in body["products"] and len(body["products"]) == len({p.lower() for p in body["products"]})
    assert (body["first_day"], body["last_day"]) == ("2021-02-23", "2023-05-09")
    # 2023-05-09 is one stray sale day: the latest seven days in a row with sales are the files' week.
    assert (body["default_from"], body["default_to"]) == (WEEK["from"], WEEK["to"])
    leeds = get_json(reporting, "/v1/reports/options", {"branch": "Leeds"})
    assert (leeds["default_from"], leeds["default_to"]) == (WEEK["from"], WEEK["to"])
    assert leeds["branches"] == body["branches"]       # a filter does not narrow what may be chosen


def test_the_default_week_falls_back_and_today_is_not_complete(real_warehouse):
    from sqlalchemy.orm import Session

    with Session(real_warehouse) as session:
        # On the 31st the 31st is still selling: the 25th..30th are six days, no complete week, so it falls back
        # to the seven days up to the last day with sales.
        assert default_range(session, None, dt.date(2021, 8, 31), dt.date(2021, 8, 31)) == (
            dt.date(2021, 8, 25), dt.date(2021, 8, 31))
        assert default_range(session, None, dt.date(2021, 8, 31), dt.date(2021, 9, 1)) == (
            dt.date(2021, 8, 25), dt.date(2021, 8, 31))
        assert default_range(session, None, None, dt.date(2021, 9, 1)) is None


def test_a_manager_is_offered_their_branch_only(reporting):
    from tests.reporting.test_access_and_cache import _orders_user

    manager = {"Authorization": f"Bearer {issue_user_token(SECRET_KEY, _orders_user('mona', 'manager', 'Leeds'))}"}
    body = get_json(reporting, "/v1/reports/options", headers=manager)
    assert body["branches"] == ["Leeds"]
    assert (body["default_from"], body["default_to"]) == (WEEK["from"], WEEK["to"])
    assert reporting.get("/v1/reports/options?branch=Chesterfield", headers=manager).status_code == 403
    summary = get_json(reporting, "/v1/reports/summary", WEEK, headers=manager)
    assert summary["current"] == plain_totals(reporting.application.extensions["cafeflow.db"].engine,
                                              WEEK["from"], WEEK["to"], branch="Leeds")


def test_customers_per_period_carry_revenue_per_customer(reporting, real_warehouse):
    body = get_json(reporting, "/v1/reports/customers", {**WEEK, "granularity": "day"})
    trend = get_json(reporting, "/v1/reports/trend", {**WEEK, "granularity": "day"})["series"]
    for point, day in zip(body["series"], trend, strict=True):
        assert point["revenue"] == day["revenue"]
        assert point["revenue_per_customer"] == f"{Decimal(day['revenue']) / point['customers']:.2f}"


@pytest.mark.parametrize("query,status", [
    ("/v1/reports/sales?group_by=month&from=2000-01-01&to=2100-12-31", 200),        # rollups: any range
    ("/v1/reports/trend?granularity=month&from=2000-01-01&to=2100-12-31", 200),
    ("/v1/reports/summary?from=2000-01-01&to=2100-12-31", 200),
    ("/v1/reports/sales?group_by=hour&product=latte|large|&from=2000-01-01&to=2100-12-31", 200),
    ("/v1/reports/peak-hours?product=latte|large|&from=2000-01-01&to=2100-12-31", 200),
    ("/v1/reports/sales?group_by=hour&product=Latte&from=2000-01-01&to=2100-12-31", 422),   # facts: limited
    ("/v1/reports/sales?group_by=payment_method&product=latte|large|&from=2000-01-01&to=2100-12-31", 422),
    ("/v1/exports/transactions.csv?from=2000-01-01&to=2100-12-31", 422),
    ("/v1/reports/coverage?from=2000-01-01&to=2100-12-31", 422),
])
def test_a_long_range_is_refused_only_where_the_sales_themselves_are_read(reporting, query, status):
    response = reporting.get(query, headers=ADMIN)
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 422:
        assert response.get_json()["error"]["code"] == "range_too_large"
