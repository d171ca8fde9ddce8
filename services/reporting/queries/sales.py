"""Sales figures grouped by any of the report dimensions, from the smallest table that can answer exactly.

  rollup_branch_day        branch, day, week, month                           (no product filter)
  rollup_sales_day         ... and payment method
  rollup_sales_hour_chain  day, week, month, hour, weekday                    (no product, no branch)
  rollup_sales_hour        ... and by branch or payment method                (no product filter)
  rollup_product_day_chain product, day, week, month, weekday                 (product lines, no branch)
  rollup_product_day       ... and by branch                                  (product lines)
  rollup_product_hour      ... and by hour (peak hours)                       (product lines)
  fact tables          anything else with a product: payment method of a product's sales, or several
                       products (a 'Latte' of two sizes) summed, where adding the per-product sale counts
                       would count a sale holding both twice.

Without a product, a row's figures are whole sales: transactions, items, revenue = paid totals. With a
product (grouped by product, or filtered to one), they are that product's lines: transactions = sales
that contained it, items = its quantity, revenue = quantity x unit price.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.reporting.filters import Filters

DIMENSIONS = ("branch", "product", "day", "week", "month", "hour", "weekday", "payment_method")
TIME_DIMENSIONS = ("day", "week", "month", "hour", "weekday")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_LOCAL = "(f.occurred_at AT TIME ZONE 'Europe/London')"
_ROLLUP_KEYS = {
    "branch": "r.branch_id", "product": "r.product_id", "payment_method": "r.payment_method",
    "day": "r.local_date", "week": "date_trunc('week', r.local_date)::date",
    "month": "date_trunc('month', r.local_date)::date", "hour": "r.local_hour::int",
    "weekday": "extract(isodow FROM r.local_date)::int",
}
_FACT_KEYS = {
    "branch": "f.branch_id", "product": "i.product_id", "payment_method": "f.payment_method",
    "day": f"{_LOCAL}::date", "week": f"date_trunc('week', {_LOCAL})::date",
    "month": f"date_trunc('month', {_LOCAL})::date", "hour": f"extract(hour FROM {_LOCAL})::int",
    "weekday": f"extract(isodow FROM {_LOCAL})::int",
}


@dataclass(frozen=True)
class Source:
    name: str
    table: str
    measures: str


SALES_DAY = Source("rollup_sales_day", "warehouse.rollup_sales_day r",
                   "sum(r.transactions) AS transactions, sum(r.items) AS items, sum(r.revenue) AS revenue")
BRANCH_DAY = Source("rollup_branch_day", "warehouse.rollup_branch_day r", SALES_DAY.measures)
SALES_HOUR = Source("rollup_sales_hour", "warehouse.rollup_sales_hour r", SALES_DAY.measures)
SALES_HOUR_CHAIN = Source("rollup_sales_hour_chain", "warehouse.rollup_sales_hour_chain r", SALES_DAY.measures)
PRODUCT_DAY = Source("rollup_product_day", "warehouse.rollup_product_day r",
                     "sum(r.transactions) AS transactions, sum(r.quantity) AS items, sum(r.revenue) AS revenue")
PRODUCT_DAY_CHAIN = Source("rollup_product_day_chain", "warehouse.rollup_product_day_chain r", PRODUCT_DAY.measures)
PRODUCT_HOUR = Source("rollup_product_hour", "warehouse.rollup_product_hour r", PRODUCT_DAY.measures)
FACT_LINES = Source("fact tables", "warehouse.fact_transaction f "
                    "JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id",
                    "count(DISTINCT f.id) AS transactions, sum(i.quantity) AS items, "
                    "sum(i.quantity * i.unit_price) AS revenue")


def choose_source(dims: tuple[str, ...], filters: Filters) -> Source:
    by_product = "product" in dims or filters.product_ids is not None
    whole_chain = filters.branch_ids is None and "branch" not in dims
    if not by_product:
        if set(dims) <= {"branch", "day", "week", "month"}:
            return BRANCH_DAY
        if set(dims) <= {"branch", "day", "week", "month", "payment_method"}:
            return SALES_DAY
        return SALES_HOUR_CHAIN if whole_chain and "payment_method" not in dims else SALES_HOUR
    one_product_per_row = "product" in dims or len(filters.product_ids or ()) == 1
    if not one_product_per_row or "payment_method" in dims:
        return FACT_LINES
    if "hour" not in dims:
        return PRODUCT_DAY_CHAIN if whole_chain else PRODUCT_DAY
    return PRODUCT_HOUR


def _where(source: Source, filters: Filters) -> str:
    if source is FACT_LINES:
        clauses = ["f.occurred_at >= CAST(:date_from AS timestamp) AT TIME ZONE 'Europe/London'",
                   "f.occurred_at < (CAST(:date_to AS timestamp) + interval '1 day') AT TIME ZONE 'Europe/London'",
                   "f.source = ANY(:sources)"]
        branch, product = "f.branch_id", "i.product_id"
    else:
        clauses = ["r.local_date BETWEEN :date_from AND :date_to", "r.source = ANY(:sources)"]
        branch, product = "r.branch_id", "r.product_id"
    if filters.branch_ids is not None:
        clauses.append(f"{branch} = ANY(:branch_ids)")
    if filters.product_ids is not None:
        clauses.append(f"{product} = ANY(:product_ids)")
    return " AND ".join(clauses)


def grouped_sql(dims: tuple[str, ...], filters: Filters, *, order: str | None = None,
                limit: int | None = None) -> tuple[str, Source]:
    source = choose_source(dims, filters)
    if source is FACT_LINES:
        filters.require_span_within_limit("a question read from the sales themselves (a product by payment "
                                          "method, or several products summed)")
    keys = _FACT_KEYS if source is FACT_LINES else _ROLLUP_KEYS
    # No dimension: one row of totals (the dashboard's headline figures).
    select_keys = "".join(f"{keys[d]} AS {d}, " for d in dims)
    group_by = "GROUP BY " + ", ".join(str(n) for n in range(1, len(dims) + 1)) if dims else ""
    joins, names = [], []
    if "branch" in dims:
        joins.append("LEFT JOIN warehouse.dim_branch b ON b.id = g.branch")
        names.append("b.name AS branch_name")
    if "product" in dims:
        joins.append("LEFT JOIN warehouse.dim_product p ON p.id = g.product")
        names += ["p.name AS product_name", "p.size AS product_size", "p.flavour AS product_flavour"]
    key_order = "".join(f", g.{d}" for d in dims)
    if order in ("desc", "asc"):
        ordering = f"g.revenue {order.upper()}{key_order}"
    elif set(dims) <= set(TIME_DIMENSIONS):
        ordering = key_order.lstrip(", ") or "1"
    else:
        ordering = f"g.revenue DESC{key_order}"
    sql = f"""
    WITH g AS (
        SELECT {select_keys}{source.measures}
        FROM {source.table}
        WHERE {_where(source, filters)}
        {group_by}
    )
    SELECT g.*, round(g.revenue / nullif(g.transactions, 0), 2) AS average_spend{''.join(', ' + n for n in names)}
    FROM g {' '.join(joins)}
    ORDER BY {ordering}
    {f'LIMIT {int(limit)}' if limit else ''}
    """
    return sql, source


def money(value: Decimal | None) -> str:
    return f"{(value or Decimal(0)):.2f}"


def _key_value(dim: str, value):
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m") if dim == "month" else value.isoformat()
    return value


def shape_row(dims: tuple[str, ...], row) -> dict:
    out: dict = {}
    m = row._mapping
    for dim in dims:
        if dim == "branch":
            out.update(branch_id=m["branch"], branch=m["branch_name"])
        elif dim == "product":
            out.update(product_id=m["product"], product=m["product_name"], size=m["product_size"],
                       flavour=m["product_flavour"])
        elif dim == "weekday":
            out.update(weekday=m["weekday"], weekday_name=WEEKDAYS[m["weekday"] - 1])
        elif dim == "week":
            out["week_start"] = _key_value(dim, m["week"])
        elif dim == "day":
            out["date"] = _key_value(dim, m["day"])
        else:
            out[dim] = _key_value(dim, m[dim])
    out.update(transactions=int(m["transactions"] or 0), items=int(m["items"] or 0), revenue=money(m["revenue"]),
               average_spend=money(m["average_spend"]))
    return out


def grouped(session: Session, dims: tuple[str, ...], filters: Filters, *, order: str | None = None,
            limit: int | None = None) -> tuple[list[dict], str]:
    sql, source = grouped_sql(dims, filters, order=order, limit=limit)
    rows = session.execute(text(sql), filters.params()).all()
    return [shape_row(dims, r) for r in rows], source.name
