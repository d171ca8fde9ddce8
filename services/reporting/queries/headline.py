"""The headline figures of a range (revenue, sales, average spend, items per sale) beside those of the
period of the same length just before it, and the change between them: the dashboard's tiles."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.orm import Session

from services.reporting.filters import EARLIEST, Filters
from services.reporting.queries.sales import grouped

MEASURES = ("revenue", "transactions", "average_spend", "items_per_sale")


def previous_period(filters: Filters) -> Filters | None:
    """The same number of days ending the day before `from` (a week before a week, 28 days before 28 days),
    or None when it would start before the warehouse's earliest possible day."""
    date_to = filters.date_from - dt.timedelta(days=1)
    date_from = date_to - dt.timedelta(days=filters.days - 1)
    return replace(filters, date_from=date_from, date_to=date_to) if date_from >= EARLIEST else None


def _figures(session: Session, filters: Filters) -> tuple[dict, str]:
    rows, source = grouped(session, (), filters)
    row = rows[0]
    items_per_sale = (Decimal(row["items"]) / row["transactions"]) if row["transactions"] else Decimal(0)
    return {"transactions": row["transactions"], "items": row["items"], "revenue": row["revenue"],
            "average_spend": row["average_spend"],
            "items_per_sale": str(items_per_sale.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))}, source


def _change_pct(now: str | int, before: str | int) -> str | None:
    now, before = Decimal(now), Decimal(before)
    if not before:
        return None
    return str(((now - before) * 100 / before).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def headline(session: Session, filters: Filters) -> tuple[dict, str]:
    current, source = _figures(session, filters)
    before = previous_period(filters)
    previous = _figures(session, before)[0] if before is not None else None
    return {
        "current": current,
        "previous": previous,
        "previous_from": before.date_from.isoformat() if before else None,
        "previous_to": before.date_to.isoformat() if before else None,
        "change_pct": {m: _change_pct(current[m], previous[m]) if previous else None for m in MEASURES},
    }, source
