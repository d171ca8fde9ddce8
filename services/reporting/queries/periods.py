"""Reports over calendar periods (UK-local day, ISO week from Monday, month): the revenue trend and new vs
returning customers. `from` and `to` are widened to whole periods, so every period is complete and the
first week or month is not a fragment."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.reporting.filters import Filters
from services.reporting.queries.sales import grouped, money

GRANULARITIES = ("day", "week", "month")
PERIOD_KEY = {"day": "date", "week": "week_start", "month": "month"}     # a period's key in a grouped row


def period_start(day: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def next_period(start: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return start + dt.timedelta(days=7)
    if granularity == "month":
        return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return start + dt.timedelta(days=1)


def widen(filters: Filters, granularity: str) -> Filters:
    last = next_period(period_start(filters.date_to, granularity), granularity) - dt.timedelta(days=1)
    return replace(filters, date_from=period_start(filters.date_from, granularity), date_to=last)


def periods(filters: Filters, granularity: str) -> list[dt.date]:
    out, start = [], filters.date_from
    while start <= filters.date_to:
        out.append(start)
        start = next_period(start, granularity)
    return out


def label(start: dt.date, granularity: str) -> str:
    return start.strftime("%Y-%m") if granularity == "month" else start.isoformat()


def _change(now: Decimal, before: Decimal | None) -> tuple[str | None, str | None]:
    if before is None:
        return None, None
    pct = None
    if before:
        pct = str(((now - before) * 100 / before).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
    return money(now - before), pct


def trend(session: Session, filters: Filters, granularity: str) -> tuple[dict, str]:
    whole = widen(filters, granularity)
    rows, source = grouped(session, (granularity,), whole)
    by_period = {r[PERIOD_KEY[granularity]]: r for r in rows}
    series, before = [], None
    for start in periods(whole, granularity):
        row = by_period.get(label(start, granularity))
        revenue = Decimal(row["revenue"]) if row else Decimal(0)
        change, pct = _change(revenue, before)
        series.append({
            "period": label(start, granularity), "period_start": start.isoformat(),
            "transactions": row["transactions"] if row else 0, "items": row["items"] if row else 0,
            "revenue": money(revenue), "average_spend": row["average_spend"] if row else money(None),
            "revenue_change": change, "revenue_change_pct": pct,
        })
        before = revenue
    return {"granularity": granularity, "from": whole.date_from.isoformat(), "to": whole.date_to.isoformat(),
            "series": series}, source


_CUSTOMERS_ROLLUP = """
SELECT cp.period_start AS period, count(DISTINCT cp.customer_key) AS customers,
       count(DISTINCT cp.customer_key) FILTER (WHERE fs.first_local_date >= cp.period_start) AS new_customers
FROM warehouse.customer_period cp
JOIN warehouse.customer_first_seen fs ON fs.customer_key = cp.customer_key
WHERE cp.period = :granularity AND cp.period_start BETWEEN :date_from AND :date_to AND cp.source = ANY(:sources)
GROUP BY 1 ORDER BY 1
"""

# With branches (and no product): customer_period_branch, counted distinct across the chosen branches.
_CUSTOMERS_BRANCH_ROLLUP = """
SELECT cp.period_start AS period, count(DISTINCT cp.customer_key) AS customers,
       count(DISTINCT cp.customer_key) FILTER (WHERE fs.first_local_date >= cp.period_start) AS new_customers
FROM warehouse.customer_period_branch cp
JOIN warehouse.customer_first_seen fs ON fs.customer_key = cp.customer_key
WHERE cp.branch_id = ANY(:branch_ids) AND cp.period = :granularity AND cp.period_start BETWEEN :date_from AND :date_to
  AND cp.source = ANY(:sources)
GROUP BY 1 ORDER BY 1
"""

# With a product, which customers bought it is only in the facts; who is new still comes
# from customer_first_seen (first sale anywhere in the chain).
_CUSTOMERS_FACTS = """
WITH active AS (
    SELECT DISTINCT date_trunc(:granularity, f.occurred_at AT TIME ZONE 'Europe/London')::date AS period,
           f.customer_key
    FROM warehouse.fact_transaction f
    WHERE f.customer_key IS NOT NULL
      AND f.occurred_at >= CAST(:date_from AS timestamp) AT TIME ZONE 'Europe/London'
      AND f.occurred_at < (CAST(:date_to AS timestamp) + interval '1 day') AT TIME ZONE 'Europe/London'
      AND f.source = ANY(:sources) {branch} {product}
)
SELECT a.period, count(*) AS customers, count(*) FILTER (WHERE fs.first_local_date >= a.period) AS new_customers
FROM active a JOIN warehouse.customer_first_seen fs ON fs.customer_key = a.customer_key
GROUP BY 1 ORDER BY 1
"""


def customers(session: Session, filters: Filters, granularity: str) -> tuple[dict, str]:
    """Per period: distinct customers (keyed pseudonyms; sales without a name are not counted), those whose
    first sale anywhere in the chain fell in the period (new), the rest (returning), and the period's revenue
    (the same filters) with the revenue per customer: the average a customer spent in the period."""
    whole = widen(filters, granularity)
    if whole.branch_ids is None and whole.product_ids is None:
        sql, source = _CUSTOMERS_ROLLUP, "customer_period"
    elif whole.product_ids is None:
        sql, source = _CUSTOMERS_BRANCH_ROLLUP, "customer_period_branch"
    else:
        branch = "AND f.branch_id = ANY(:branch_ids)" if whole.branch_ids is not None else ""
        product = ("AND EXISTS (SELECT 1 FROM warehouse.fact_transaction_item i WHERE i.transaction_id = f.id "
                   "AND i.product_id = ANY(:product_ids))") if whole.product_ids is not None else ""
        whole.require_span_within_limit("customers of a product (read from the sales themselves)")
        sql, source = _CUSTOMERS_FACTS.format(branch=branch, product=product), "fact tables"
    found = {r.period: r for r in session.execute(text(sql), {**whole.params(), "granularity": granularity})}
    revenue = {r[PERIOD_KEY[granularity]]: Decimal(r["revenue"]) for r in grouped(session, (granularity,), whole)[0]}
    series = []
    for start in periods(whole, granularity):
        row = found.get(start)
        total, new = (int(row.customers), int(row.new_customers)) if row else (0, 0)
        spent = revenue.get(label(start, granularity), Decimal(0))
        series.append({"period": label(start, granularity), "period_start": start.isoformat(), "customers": total,
                       "new_customers": new, "returning_customers": total - new, "revenue": money(spent),
                       "revenue_per_customer": money(spent / total) if total else None})
    return {"granularity": granularity, "from": whole.date_from.isoformat(), "to": whole.date_to.isoformat(),
            "series": series}, source
