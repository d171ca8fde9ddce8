"""What a reader can filter on, and the range a dashboard opens on: every registered branch (a branch is
offered before its first sale), every product name, the first and last day with sales, and the default
range, all within the reader's branch scope."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.reporting.filters import SOURCES

BranchIds = tuple[int, ...] | None      # None: every branch
DEFAULT_DAYS = 7
# How many of the latest days with sales are searched for a complete week: bounds the work on any history
# (a year of daily files; older warehouses with gaps fall back to the last week with sales).
SEARCH_DAYS = 400

_BRANCHES = "SELECT name FROM ingest.branch {where} ORDER BY lower(name)"
# One entry per name however it is capitalised: a product filter matches the name case-insensitively.
_PRODUCTS = "SELECT min(name) FROM warehouse.dim_product GROUP BY lower(name) ORDER BY lower(name)"
_EXTENT = """
SELECT min(local_date) AS first_day, max(local_date) FILTER (WHERE local_date <= :today) AS last_day
FROM warehouse.rollup_branch_day {where}
"""
# The last day, before today, that ends a run of DEFAULT_DAYS consecutive days with sales. The days with sales
# are walked newest first one index probe each (a loose index scan: PostgreSQL has no skip scan, and DISTINCT
# would read every row), at most SEARCH_DAYS of them, numbered n = 1, 2, ...; then gaps and islands: walking
# back through consecutive dates, `local_date + n` stays the same, so it names the run a date belongs to.
_LAST_FULL_WEEK_END = """
WITH RECURSIVE days(local_date, n) AS (
    (SELECT local_date, 1 FROM warehouse.rollup_branch_day WHERE local_date < :today {branch}
     ORDER BY local_date DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT r.local_date FROM warehouse.rollup_branch_day r
            WHERE r.local_date < d.local_date {branch_r} ORDER BY r.local_date DESC LIMIT 1), d.n + 1
    FROM days d WHERE d.local_date IS NOT NULL AND d.n < :search_days
), runs AS (
    SELECT local_date, local_date + CAST(n AS int) AS run FROM days WHERE local_date IS NOT NULL
), numbered AS (
    SELECT local_date, row_number() OVER (PARTITION BY run ORDER BY local_date) AS day_in_run FROM runs
)
SELECT max(local_date) FROM numbered WHERE day_in_run >= :days
"""


def default_range(session: Session, branch_ids: BranchIds, last_day: dt.date | None,
                  today: dt.date) -> tuple[dt.date, dt.date] | None:
    """The latest complete week that has sales: the last DEFAULT_DAYS consecutive days with sales that ended
    before today (today is still selling). Without such a run (a few days of files), the DEFAULT_DAYS up to
    the last day with sales; None for an empty warehouse."""
    if last_day is None:
        return None
    scoped = branch_ids is not None
    sql = _LAST_FULL_WEEK_END.format(branch="AND branch_id = ANY(:branch_ids)" if scoped else "",
                                     branch_r="AND r.branch_id = ANY(:branch_ids)" if scoped else "")
    end = session.execute(text(sql), {"today": today, "search_days": SEARCH_DAYS, "days": DEFAULT_DAYS,
                                      "branch_ids": list(branch_ids or ())}).scalar()
    end = end or last_day
    return end - dt.timedelta(days=DEFAULT_DAYS - 1), end


def extent(session: Session, branch_ids: BranchIds, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """The first and the last day with sales (up to today; only future-dated sales: the last of them)."""
    where = "WHERE branch_id = ANY(:ids)" if branch_ids is not None else ""
    row = session.execute(text(_EXTENT.format(where=where)), {"ids": list(branch_ids or ()), "today": today}).one()
    return row.first_day, row.last_day or row.first_day


def opening_range(session: Session, branch_ids: BranchIds, today: dt.date) -> tuple[dt.date, dt.date] | None:
    """Where a dashboard opens: the latest complete week with sales (see default_range)."""
    return default_range(session, branch_ids, extent(session, branch_ids, today)[1], today)


def choices(session: Session, scope_keys: tuple[str, ...] | None, branch_ids: tuple[int, ...] | None,
            today: dt.date) -> dict:
    """`scope_keys`: the branches the reader may see (None: all); `branch_ids`: those whose days count for
    the first, last and default days (None: every branch)."""
    where = "WHERE branch_key = ANY(:keys)" if scope_keys is not None else ""
    branches = session.execute(text(_BRANCHES.format(where=where)), {"keys": list(scope_keys or ())}).scalars().all()
    products = session.execute(text(_PRODUCTS)).scalars().all()
    first_day, last_day = extent(session, branch_ids, today)
    default = default_range(session, branch_ids, last_day, today)
    return {"branches": list(branches), "products": list(products), "sources": list(SOURCES),
            "first_day": first_day.isoformat() if first_day else None,
            "last_day": last_day.isoformat() if last_day else None, "today": today.isoformat(),
            "default_from": default[0].isoformat() if default else None,
            "default_to": default[1].isoformat() if default else None}
