"""Must show: on the 65 real files, every report equals the same question asked as plain SQL over the
fact tables (exactly, decimals as decimals), revenue per branch matches the files, the total is 119,138.75."""
from __future__ import annotations

import datetime as dt
import importlib.util
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import text

from services import transform
from tests.realdata import real_figures
from tests.reporting.conftest import ALL_TIME, get_json

LOCAL = "(f.occurred_at AT TIME ZONE 'Europe/London')"
ITEMS = "(SELECT sum(quantity) FROM warehouse.fact_transaction_item i WHERE i.transaction_id = f.id)"
# What a BI tool would ask the raw tables, per grouping; written here, apart from the service's SQL.
PLAIN_KEYS = {
    "branch": "b.name", "day": f"{LOCAL}::date::text", "week": f"date_trunc('week', {LOCAL})::date::text",
    "month": f"to_char({LOCAL}, 'YYYY-MM')", "hour": f"extract(hour FROM {LOCAL})::int",
    "weekday": f"extract(isodow FROM {LOCAL})::int", "payment_method": "f.payment_method",
}
ROW_KEYS = {"branch": "branch", "day": "date", "week": "week_start", "month": "month", "hour": "hour",
            "weekday": "weekday", "payment_method": "payment_method"}


def plain(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def plain_sales(engine, group_by: str, branch: str | None = None) -> dict:
    rows = plain(engine, f"""
        SELECT {PLAIN_KEYS[group_by]} AS k, count(*), sum({ITEMS}), sum(f.total), round(sum(f.total) / count(*), 2)
        FROM warehouse.fact_transaction f JOIN warehouse.dim_branch b ON b.id = f.branch_id
        WHERE b.name = :branch OR CAST(:branch AS text) IS NULL GROUP BY 1""", branch=branch)
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def figures(row: dict) -> tuple:
    return (row["transactions"], row["items"], Decimal(row["revenue"]), Decimal(row["average_spend"]))


@pytest.mark.parametrize("branch", [None, "Leeds"])
@pytest.mark.parametrize("group_by", sorted(PLAIN_KEYS))
def test_sales_grouped_equals_plain_sql(reporting, real_warehouse, group_by, branch):
    params = {**ALL_TIME, "group_by": group_by, **({"branch": branch} if branch else {})}
    body = get_json(reporting, "/v1/reports/sales", params)
    hourly = "rollup_sales_hour" if branch or group_by == "payment_method" else "rollup_sales_hour_chain"
    daily = {"branch": "rollup_branch_day", "day": "rollup_branch_day", "week": "rollup_branch_day",
             "month": "rollup_branch_day", "payment_method": "rollup_sales_day"}
    assert body["answered_from"] == daily.get(group_by, hourly)
    answer = {row[ROW_KEYS[group_by]]: figures(row) for row in body["rows"]}
    assert answer == plain_sales(real_warehouse, group_by, branch)


def test_revenue_per_branch_matches_the_files_and_totals_119138_75(reporting):
    body = get_json(reporting, "/v1/reports/sales", {**ALL_TIME, "group_by": "branch"})
    revenue = {row["branch"]: Decimal(row["revenue"]) for row in body["rows"]}
    transactions = {row["branch"]: row["transactions"] for row in body["rows"]}
    assert revenue == real_figures().revenue_per_branch
    assert transactions == dict(real_figures().per_branch)
    assert sum(revenue.values()) == Decimal("119138.75")
    ranked = [row["revenue"] for row in body["rows"]]
    assert ranked == sorted(ranked, key=Decimal, reverse=True)      # a ranking, best first


@pytest.mark.parametrize("branch,source", [(None, "rollup_product_day_chain"), ("Leeds", "rollup_product_day")])
def test_sales_by_product_equals_plain_sql_over_items(reporting, real_warehouse, branch, source):
    params = {**ALL_TIME, "group_by": "product", **({"branch": branch} if branch else {})}
    body = get_json(reporting, "/v1/reports/sales", params)
    assert body["answered_from"] == source
    answer = {row["product_id"]: figures(row) for row in body["rows"]}
    rows = plain(real_warehouse, """
        SELECT i.product_id, count(DISTINCT i.transaction_id), sum(i.quantity), sum(i.quantity * i.unit_price),
               round(sum(i.quantity * i.unit_price) / count(DISTINCT i.transaction_id), 2)
        FROM warehouse.fact_transaction_item i JOIN warehouse.fact_transaction f ON f.id = i.transaction_id
        JOIN warehouse.dim_branch b ON b.id = f.branch_id
        WHERE b.name = :branch OR CAST(:branch AS text) IS NULL GROUP BY 1""", branch=branch)
    assert answer == {r[0]: tuple(r[1:]) for r in rows}


def test_top_and_bottom_products(reporting, real_warehouse):
    top = get_json(reporting, "/v1/reports/sales", {**ALL_TIME, "group_by": "product", "order": "desc", "limit": 3})
    bottom = get_json(reporting, "/v1/reports/sales", {**ALL_TIME, "group_by": "product", "order": "asc", "limit": 3})
    rows = plain(real_warehouse, """
        SELECT i.product_id, sum(i.quantity * i.unit_price) AS revenue FROM warehouse.fact_transaction_item i
        GROUP BY 1 ORDER BY 2 DESC, 1""")
    assert [r["product_id"] for r in top["rows"]] == [r[0] for r in rows[:3]]
    by_revenue_asc = sorted(rows, key=lambda r: (r[1], r[0]))
    assert [r["product_id"] for r in bottom["rows"]] == [r[0] for r in by_revenue_asc[:3]]


@pytest.mark.parametrize("group_by,product,branch,source", [
    ("hour", "latte", None, "fact tables"), ("branch", "latte", None, "fact tables"),
    ("payment_method", "latte", None, "fact tables"), ("weekday", "latte", None, "fact tables"),
    ("branch", "latte|large|", None, "rollup_product_day"),
    ("month", "latte|regular|", None, "rollup_product_day_chain"),
    ("hour", "latte|large|", None, "rollup_product_hour"),
    ("hour", "chai latte|regular|", "Leeds", "rollup_product_hour"),
    ("weekday", "latte|large|", None, "rollup_product_day_chain"),
    ("weekday", "chai latte|large|", "Leeds", "rollup_product_day"),
    ("payment_method", "latte|large|", None, "fact tables")])
def test_sales_of_one_product_equal_plain_sql(reporting, real_warehouse, group_by, product, branch, source):
    """Filtered to a product name ('Latte': all its sizes, each sale counted once) or to one product key:
    that product's lines."""
    params = {**ALL_TIME, "group_by": group_by, "product": product, **({"branch": branch} if branch else {})}
    body = get_json(reporting, "/v1/reports/sales", params)
    assert body["answered_from"] == source
    rows = plain(real_warehouse, f"""
        SELECT {PLAIN_KEYS[group_by]}, count(DISTINCT f.id), sum(i.quantity), sum(i.quantity * i.unit_price),
               round(sum(i.quantity * i.unit_price) / count(DISTINCT f.id), 2)
        FROM warehouse.fact_transaction f JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id
        JOIN warehouse.dim_product p ON p.id = i.product_id JOIN warehouse.dim_branch b ON b.id = f.branch_id
        WHERE (lower(p.name) = :p OR p.product_key = :p) AND (b.name = :branch OR CAST(:branch AS text) IS NULL)
        GROUP BY 1""", p=product, branch=branch)
    assert rows, "the real files sell lattes (Leeds: chai lattes)"
    assert {row[ROW_KEYS[group_by]]: figures(row) for row in body["rows"]} == {r[0]: tuple(r[1:]) for r in rows}


def test_filters_by_branch_date_and_source(reporting, real_warehouse):
    params = {"from": "2021-08-26", "to": "2021-08-28", "branch": ["Leeds", "chesterfield"], "group_by": "day"}
    body = get_json(reporting, "/v1/reports/sales", params)
    rows = plain(real_warehouse, f"""
        SELECT {LOCAL}::date::text, count(*), sum({ITEMS}), sum(f.total), round(sum(f.total) / count(*), 2)
        FROM warehouse.fact_transaction f JOIN warehouse.dim_branch b ON b.id = f.branch_id
        WHERE b.name IN ('Leeds', 'Chesterfield') AND {LOCAL}::date BETWEEN '2021-08-26' AND '2021-08-28'
        GROUP BY 1""")
    assert len(rows) == 3
    assert {row["date"]: figures(row) for row in body["rows"]} == {r[0]: tuple(r[1:]) for r in rows}
    live_only = get_json(reporting, "/v1/reports/sales", {**params, "source": "live"})
    assert live_only["rows"] == []


def test_peak_hours_equal_plain_sql(reporting, real_warehouse):
    body = get_json(reporting, "/v1/reports/peak-hours", ALL_TIME)
    rows = plain(real_warehouse, f"""
        SELECT extract(isodow FROM {LOCAL})::int, extract(hour FROM {LOCAL})::int, count(*), sum(f.total)
        FROM warehouse.fact_transaction f GROUP BY 1, 2""")
    assert {(c["weekday"], c["hour"]): (c["transactions"], Decimal(c["revenue"])) for c in body["cells"]} == \
        {(r[0], r[1]): (r[2], r[3]) for r in rows}
    assert sum(Decimal(c["revenue"]) for c in body["cells"]) == Decimal("119138.75")


@pytest.mark.parametrize("product,branch,source", [
    ("latte|large|", None, "rollup_product_hour"), ("chai latte|regular|", "Leeds", "rollup_product_hour"),
    ("latte", None, "fact tables")])
def test_peak_hours_of_a_product_equal_plain_sql(reporting, real_warehouse, product, branch, source):
    """A product's peak hours: the sales that contained it (each counted once) and its lines' revenue."""
    params = {**ALL_TIME, "product": product, **({"branch": branch} if branch else {})}
    body = get_json(reporting, "/v1/reports/peak-hours", params)
    assert body["answered_from"] == source
    rows = plain(real_warehouse, f"""
        SELECT extract(isodow FROM {LOCAL})::int, extract(hour FROM {LOCAL})::int, count(DISTINCT f.id),
               sum(i.quantity * i.unit_price)
        FROM warehouse.fact_transaction f JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id
        JOIN warehouse.dim_product p ON p.id = i.product_id JOIN warehouse.dim_branch b ON b.id = f.branch_id
        WHERE (lower(p.name) = :p OR p.product_key = :p) AND (b.name = :branch OR CAST(:branch AS text) IS NULL)
        GROUP BY 1, 2""", p=product, branch=branch)
    assert rows, "the real files sell lattes (Leeds: chai lattes)"
    assert [(c["weekday"], c["hour"]) for c in body["cells"]] == sorted((r[0], r[1]) for r in rows)
    assert {(c["weekday"], c["hour"]): (c["transactions"], Decimal(c["revenue"])) for c in body["cells"]} == \
        {(r[0], r[1]): (r[2], r[3]) for r in rows}


@pytest.mark.parametrize("granularity", ["day", "week", "month"])
def test_trend_equals_plain_sql_with_period_over_period_change(reporting, real_warehouse, granularity):
    params = {"from": "2021-08-01", "to": "2021-09-15", "granularity": granularity}
    body = get_json(reporting, "/v1/reports/trend", params)
    key = {"day": f"{LOCAL}::date", "week": f"date_trunc('week', {LOCAL})::date",
           "month": f"date_trunc('month', {LOCAL})::date"}[granularity]
    rows = plain(real_warehouse, f"""
        SELECT {key}, sum(f.total) FROM warehouse.fact_transaction f
        WHERE {LOCAL}::date BETWEEN :lo AND :hi GROUP BY 1""",
                 lo=dt.date.fromisoformat(body["from"]), hi=dt.date.fromisoformat(body["to"]))
    expected = {r[0].isoformat(): r[1] for r in rows}
    series = body["series"]
    assert {p["period_start"]: Decimal(p["revenue"]) for p in series if p["transactions"]} == expected
    assert sum(Decimal(p["revenue"]) for p in series) == sum(expected.values())
    for before, now in pairwise(series):
        assert Decimal(now["revenue_change"]) == Decimal(now["revenue"]) - Decimal(before["revenue"])
    assert series[0]["revenue_change"] is None
    if granularity == "month":
        assert [p["period"] for p in series] == ["2021-08", "2021-09"]


CUSTOMERS_PLAIN = f"""
WITH first AS (
    SELECT customer_key, (min(occurred_at) AT TIME ZONE 'Europe/London')::date AS first_day
    FROM warehouse.fact_transaction WHERE customer_key IS NOT NULL GROUP BY 1
), active AS (
    SELECT DISTINCT date_trunc(:granularity, {LOCAL})::date AS period, f.customer_key
    FROM warehouse.fact_transaction f JOIN warehouse.dim_branch b ON b.id = f.branch_id
    WHERE f.customer_key IS NOT NULL AND (b.name = ANY(:branches) OR CAST(:branches AS text[]) IS NULL)
      AND (CAST(:product AS text) IS NULL OR EXISTS (
          SELECT 1 FROM warehouse.fact_transaction_item i JOIN warehouse.dim_product p ON p.id = i.product_id
          WHERE i.transaction_id = f.id AND lower(p.name) = :product))
)
SELECT a.period, count(*), count(*) FILTER (WHERE first.first_day >= a.period)
FROM active a JOIN first ON first.customer_key = a.customer_key GROUP BY 1
"""


@pytest.mark.parametrize("granularity,branches,product,source", [
    ("week", None, None, "customer_period"), ("month", None, None, "customer_period"),
    ("day", ["Leeds"], None, "customer_period_branch"), ("week", ["Leeds"], None, "customer_period_branch"),
    # Two branches: a customer who bought in both counts once per period.
    ("week", ["Leeds", "Chesterfield"], None, "customer_period_branch"),
    ("month", ["Leeds", "Longridge", "Birmingham"], None, "customer_period_branch"),
    ("week", None, "latte", "fact tables"), ("day", ["Leeds"], "chai latte", "fact tables")])
def test_new_vs_returning_customers_equal_plain_sql(reporting, real_warehouse, granularity, branches, product,
                                                    source):
    params = {**ALL_TIME, "granularity": granularity}
    if branches:
        params["branch"] = branches
    if product:
        params["product"] = product
    body = get_json(reporting, "/v1/reports/customers", params)
    assert body["answered_from"] == source
    rows = plain(real_warehouse, CUSTOMERS_PLAIN, granularity=granularity, branches=branches, product=product)
    expected = {r[0].isoformat(): (r[1], r[2], r[1] - r[2]) for r in rows}
    answer = {p["period_start"]: (p["customers"], p["new_customers"], p["returning_customers"])
              for p in body["series"] if p["customers"]}
    assert answer and answer == expected
    if product is None:
        assert any(returning for _, _, returning in answer.values()), "some real customers come back"


def test_customers_of_several_branches_are_counted_once(reporting, real_warehouse):
    """Summing each branch's answer would count a customer who bought in two branches twice; the
    rollup must not."""
    both = get_json(reporting, "/v1/reports/customers", {**ALL_TIME, "granularity": "month",
                                                         "branch": ["Leeds", "Chesterfield"]})
    apart = [get_json(reporting, "/v1/reports/customers", {**ALL_TIME, "granularity": "month", "branch": name})
             for name in ("Leeds", "Chesterfield")]
    shared = plain(real_warehouse, """
        SELECT count(*) FROM (SELECT f.customer_key FROM warehouse.fact_transaction f
                              JOIN warehouse.dim_branch b ON b.id = f.branch_id
                              WHERE b.name IN ('Leeds', 'Chesterfield') AND f.customer_key IS NOT NULL
                              GROUP BY 1 HAVING count(DISTINCT b.name) = 2) s""")[0][0]
    total_both = sum(p["customers"] for p in both["series"])
    total_apart = sum(p["customers"] for one in apart for p in one["series"])
    assert total_both <= total_apart
    assert (total_both < total_apart) == (shared > 0)


def test_customer_period_branch_backfill_equals_what_loads_built(real_warehouse):
    """Migration 0004 fills customer_period_branch from the facts in one pass; the loads above built it row by
    row through record_new_sales. Both must hold the same rows (the 10M benchmark's table is the backfill's)."""
    path = Path(transform.__file__).parent / "migrations" / "versions" / "0004_customer_period_branch.py"
    spec = importlib.util.spec_from_file_location("migration_0004", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    table = "SELECT branch_id, period, period_start, source, customer_key FROM warehouse.customer_period_branch"
    with real_warehouse.connect() as conn, conn.begin() as transaction:
        conn.execute(text(migration.CUSTOMER_DAYS))
        backfill = f"({migration.BACKFILL_ROWS})"
        counts = conn.execute(text(f"""
            SELECT (SELECT count(*) FROM {backfill} b), (SELECT count(*) FROM ({table}) t),
                   (SELECT count(*) FROM ({backfill} EXCEPT ALL ({table})) missing),
                   (SELECT count(*) FROM (({table}) EXCEPT ALL {backfill}) extra)""")).one()
        transaction.rollback()
    assert counts[0] > 1000 and tuple(counts) == (counts[0], counts[0], 0, 0)


def test_coverage_equals_plain_sql(reporting, real_warehouse):
    body = get_json(reporting, "/v1/reports/coverage", {"from": "2021-08-24", "to": "2021-08-31"})
    rows = plain(real_warehouse, f"""
        SELECT b.name, {LOCAL}::date, count(*) FROM warehouse.fact_transaction f
        JOIN warehouse.dim_branch b ON b.id = f.branch_id
        WHERE f.source = 'file' AND {LOCAL}::date BETWEEN '2021-08-24' AND '2021-08-31' GROUP BY 1, 2""")
    loaded = {(r[0], r[1].isoformat()): r[2] for r in rows}
    registered = [r[0] for r in plain(real_warehouse, "SELECT name FROM ingest.branch")]
    assert sorted(b["branch"] for b in body["branches"]) == sorted(registered)
    assert body["days"] == [f"2021-08-{d}" for d in range(24, 32)]
    for branch in body["branches"]:
        assert branch["transactions"] == [loaded.get((branch["branch"], day), 0) for day in body["days"]]
        for count, status in zip(branch["transactions"], branch["status"], strict=True):
            assert status in (("loaded",) if count else ("missing", "no_sales"))
        assert branch["days_missing"] == branch["transactions"].count(0)
        assert branch["missing_last_day"] == (branch["transactions"][-1] == 0)
    missing_first = [b["missing_last_day"] for b in body["branches"]]
    assert missing_first == sorted(missing_first, reverse=True)
    assert any(missing_first) and not all(missing_first)
    assert body["branches"][0]["status"][-1] == "missing"


def test_rollup_branch_day_backfill_equals_what_loads_built(real_warehouse):
    """Migration 0005 fills rollup_branch_day by summing rollup_sales_day; the loads above built it through
    record_new_sales. Both must hold the same rows, and they must agree with the facts."""
    path = Path(transform.__file__).parent / "migrations" / "versions" / "0005_rollup_branch_day.py"
    spec = importlib.util.spec_from_file_location("migration_0005", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    table = "SELECT local_date, branch_id, source, transactions, items, revenue FROM warehouse.rollup_branch_day"
    facts = f"""SELECT {LOCAL}::date, f.branch_id, f.source, count(*), sum({ITEMS}), sum(f.total)
                FROM warehouse.fact_transaction f GROUP BY 1, 2, 3"""
    counts = plain(real_warehouse, f"""
        SELECT (SELECT count(*) FROM ({table}) t),
               (SELECT count(*) FROM (({migration.BACKFILL_ROWS}) EXCEPT ALL ({table})) missing),
               (SELECT count(*) FROM (({table}) EXCEPT ALL ({migration.BACKFILL_ROWS})) extra),
               (SELECT count(*) FROM (({facts}) EXCEPT ALL ({table})) not_in_facts)""")[0]
    assert counts[0] > 50 and tuple(counts[1:]) == (0, 0, 0)
