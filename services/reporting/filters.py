"""The common report filters, resolved once per request: dates defaulted and checked, branch and product
names turned into warehouse ids. Everything a report's answer depends on ends up in `cache_parts`.

The length of a range is limited (REPORTING_MAX_RANGE_DAYS) only where its cost grows with it: answers read
from the fact tables, exports, and the coverage grid (`require_span_within_limit`). An answer from the
rollups is a few rows per day at most, so any range the warehouse can hold is allowed there: "all time" on
the dashboard is never refused, whatever the history."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common.errors import ApiError
from services.common.naming import branch_key
from services.reporting.auth import Reader

UK = ZoneInfo("Europe/London")
SOURCES = ("file", "live")
EARLIEST = dt.date(2000, 1, 1)     # the loader rejects older sales; bounds date arithmetic too
LATEST = dt.date(2100, 12, 31)
DEFAULT_REPORT_DAYS = 28
DEFAULT_COVERAGE_DAYS = 14


@dataclass(frozen=True)
class Filters:
    date_from: dt.date
    date_to: dt.date
    branch_ids: tuple[int, ...] | None        # None: every branch
    branch_keys: tuple[str, ...] | None
    product_ids: tuple[int, ...] | None       # None: every product
    sources: tuple[str, ...]
    max_days: int | None = None               # the limit of a range read from the facts; not part of the answer

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1

    def require_span_within_limit(self, what: str) -> None:
        if self.max_days is not None and self.days > self.max_days:
            raise ApiError(422, "range_too_large", f"the range spans {self.days} days; {what} allows at most "
                           f"{self.max_days} (REPORTING_MAX_RANGE_DAYS): choose a shorter range",
                           {"days": self.days, "max_days": self.max_days})

    def params(self) -> dict:
        return {"date_from": self.date_from, "date_to": self.date_to, "branch_ids": list(self.branch_ids or ()),
                "branch_keys": list(self.branch_keys or ()), "product_ids": list(self.product_ids or ()),
                "sources": list(self.sources)}

    def cache_parts(self) -> list:
        # branch_keys too: branches without sales yet all resolve to the id -1, and coverage reads the keys.
        return [self.date_from.isoformat(), self.date_to.isoformat(), sorted(self.branch_ids or ()) or None,
                sorted(self.branch_keys or ()) or None, sorted(self.product_ids or ()) or None, sorted(self.sources)]


def uk_today() -> dt.date:
    return dt.datetime.now(UK).date()


def _check_dates(date_from: dt.date, date_to: dt.date) -> None:
    for name, value in (("from", date_from), ("to", date_to)):
        if not EARLIEST <= value <= LATEST:
            raise ApiError(422, "invalid_date", f"'{name}' must be between {EARLIEST} and {LATEST}",
                           {name: [f"out of range: {value.isoformat()}"]})
    if date_from > date_to:
        raise ApiError(422, "invalid_range", "'from' is after 'to'",
                       {"from": [date_from.isoformat()], "to": [date_to.isoformat()]})


def resolve_dates(session: Session, args: dict, *, coverage: bool = False) -> tuple[dt.date, dt.date]:
    """Missing `to`: the latest day with sales (reports) or yesterday (coverage); missing `from`: a few weeks
    before `to`. So the default answer is about the newest data, also for a warehouse of old files."""
    date_to = args.get("date_to")
    if date_to is None:
        if coverage:
            date_to = uk_today() - dt.timedelta(days=1)
        else:
            latest = session.execute(text("SELECT max(local_date) FROM warehouse.rollup_branch_day")).scalar()
            date_to = latest or uk_today()
    date_from = args.get("date_from")
    if date_from is None:
        span = DEFAULT_COVERAGE_DAYS if coverage else DEFAULT_REPORT_DAYS
        date_from = max(EARLIEST, date_to - dt.timedelta(days=span - 1)) if date_to >= EARLIEST else date_to
    _check_dates(date_from, date_to)
    return date_from, date_to


def resolve_branches(session: Session, names: list[str] | None, reader: Reader) -> tuple[tuple[int, ...] | None,
                                                                                          tuple[str, ...] | None]:
    keys = sorted({branch_key(n) for n in names or ()}) or None
    if reader.branch is not None:
        own = branch_key(reader.branch)
        if keys is not None and keys != [own]:
            raise ApiError(403, "forbidden", "your user may read only its own branch's figures")
        keys = [own]
    if keys is None:
        return None, None
    known = dict(session.execute(text("""
        SELECT k.key, b.id FROM unnest(CAST(:keys AS text[])) AS k(key)
        LEFT JOIN warehouse.dim_branch b ON b.branch_key = k.key
        WHERE b.id IS NOT NULL OR EXISTS (SELECT 1 FROM ingest.branch r WHERE r.branch_key = k.key)"""),
        {"keys": keys}).all())
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ApiError(422, "unknown_branch", "no such branch: " + ", ".join(unknown), {"branch": unknown})
    # A registered branch without sales yet has no warehouse id: it filters to nothing, not to everything.
    return tuple(sorted(i for i in known.values() if i is not None)) or (-1,), tuple(keys)


def resolve_product(session: Session, product: str | None) -> tuple[int, ...] | None:
    """A product name matches all its sizes and flavours ('Latte'); `name|size|flavour` matches one."""
    if product is None:
        return None
    ids = session.execute(text("""
        SELECT id FROM warehouse.dim_product
        WHERE lower(name) = lower(:p) OR product_key = lower(:p) ORDER BY id"""), {"p": product.strip()}).scalars()
    found = tuple(ids)
    if not found:
        raise ApiError(422, "unknown_product", "no such product (give a name like 'Latte', or 'latte|large|')",
                       {"product": ["unknown"]})
    return found


def resolve_filters(session: Session, args: dict, reader: Reader, max_days: int, *,
                    coverage: bool = False) -> Filters:
    date_from, date_to = resolve_dates(session, args, coverage=coverage)
    branch_ids, keys = resolve_branches(session, args.get("branch"), reader)
    sources = tuple(sorted(set(args.get("source") or SOURCES)))
    return Filters(date_from, date_to, branch_ids, keys, resolve_product(session, args.get("product")), sources,
                   max_days)
