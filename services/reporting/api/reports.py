"""/v1/reports/...: the chain's questions as JSON, from the rollups, cached by query and warehouse version."""
from __future__ import annotations

import json
from collections.abc import Callable

from flask import Response, current_app
from flask_smorest import Blueprint
from sqlalchemy.orm import Session

from services.reporting.auth import authenticate
from services.reporting.cache import cache_key, warehouse_version
from services.reporting.filters import Filters, resolve_filters
from services.reporting.filters import resolve_branches, uk_today
from services.reporting.queries import coverage as coverage_queries
from services.reporting.queries import periods
from services.reporting.queries.choices import choices
from services.reporting.queries.headline import headline
from services.reporting.queries.sales import grouped
from services.reporting.schemas import (
    CoverageArgs,
    CoverageReport,
    CustomersArgs,
    CustomersReport,
    OptionsArgs,
    OptionsReport,
    PeakHoursReport,
    ReportArgs,
    SalesArgs,
    SalesReport,
    SummaryReport,
    TrendArgs,
    TrendReport,
)

bp = Blueprint("reports", __name__, url_prefix="/v1/reports", description="Sales reports (bearer token required)")


def json_response(body: bytes, cache_state: str | None = None) -> Response:
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = "private, no-store"
    if cache_state:
        response.headers["X-Cache"] = cache_state
    return response


def answer(report: str, args: dict, compute: Callable[[Session, Filters], tuple[dict, str]], *,
           extra: list | None = None, coverage: bool = False) -> Response:
    db = current_app.extensions["cafeflow.db"]
    settings = current_app.extensions["cafeflow.settings"]
    cache = current_app.extensions["cafeflow.report_cache"]
    with db.session() as session:
        # One snapshot for the version and the figures: an answer is never cached under a version
        # older than the data it was computed from.
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        reader = authenticate(session)
        filters = resolve_filters(session, args, reader, settings.reporting_max_range_days, coverage=coverage)
        if coverage:
            filters.require_span_within_limit("the coverage grid")
        # Coverage also shows uploads that did not load (which leave the version alone): key it on their state
        # too, read with the version in one round trip.
        if coverage:
            version, *state = coverage_queries.version_and_upload_state(session)
        else:
            version, state = warehouse_version(session), None
        key = cache_key(report, version, [filters.cache_parts(), extra or [], state])
        body = cache.get(key)
        if body is not None:
            return json_response(body, "hit")
        payload, source = compute(session, filters)
        payload = {"from": filters.date_from.isoformat(), "to": filters.date_to.isoformat(), **payload,
                   "answered_from": source, "warehouse_version": version}
        body = json.dumps(payload, separators=(",", ":")).encode()
        cache.put(key, body)
    return json_response(body, "miss")


@bp.get("/sales")
@bp.doc(operationId="reports-sales", security=[{"bearer": []}])
@bp.arguments(SalesArgs, location="query", as_kwargs=True)
@bp.response(200, SalesReport)
@bp.alt_response(401, description="no valid token")
@bp.alt_response(422, description="bad parameters")
def sales(group_by: str, order: str | None = None, limit: int | None = None, **args):
    """Transactions, items, revenue and average spend grouped by one dimension; order + limit give top/bottom N."""
    def compute(session, filters):
        rows, source = grouped(session, (group_by,), filters, order=order, limit=limit)
        return {"group_by": group_by, "rows": rows}, source
    return answer("sales", args, compute, extra=[group_by, order, limit])


@bp.get("/peak-hours")
@bp.doc(operationId="reports-peak-hours", security=[{"bearer": []}])
@bp.arguments(ReportArgs, location="query", as_kwargs=True)
@bp.response(200, PeakHoursReport)
@bp.alt_response(401, description="no valid token")
@bp.alt_response(422, description="bad parameters")
def peak_hours(**args):
    """Transactions and revenue per ISO weekday (1 = Monday) and UK-local hour; hours without sales are absent."""
    def compute(session, filters):
        rows, source = grouped(session, ("weekday", "hour"), filters)
        cells = [{k: r[k] for k in ("weekday", "weekday_name", "hour", "transactions", "revenue")} for r in rows]
        return {"cells": cells}, source
    return answer("peak-hours", args, compute)


@bp.get("/trend")
@bp.doc(operationId="reports-trend", security=[{"bearer": []}])
@bp.arguments(TrendArgs, location="query", as_kwargs=True)
@bp.response(200, TrendReport)
@bp.alt_response(401, description="no valid token")
@bp.alt_response(422, description="bad parameters")
def trend(granularity: str, **args):
    """Revenue per day, ISO week or month (whole periods), with the change on the period before."""
    return answer("trend", args, lambda s, f: periods.trend(s, f, granularity), extra=[granularity])


@bp.get("/customers")
@bp.doc(operationId="reports-customers", security=[{"bearer": []}])
@bp.arguments(CustomersArgs, location="query", as_kwargs=True)
@bp.response(200, CustomersReport)
@bp.alt_response(401, description="no valid token")
@bp.alt_response(422, description="bad parameters")
def customers(granularity: str, **args):
    """New vs returning customers per period, counted by keyed pseudonym (nothing personal is read)."""
    return answer("customers", args, lambda s, f: periods.customers(s, f, granularity), extra=[granularity])


@bp.get("/coverage")
@bp.doc(operationId="reports-coverage", security=[{"bearer": []}])
@bp.arguments(CoverageArgs, location="query", as_kwargs=True)
@bp.response(200, CoverageReport)
@bp.alt_response(401, description="no valid token")
@bp.alt_response(422, description="bad parameters")
def coverage(**args):
    """Per registered branch and day: did its file arrive and load? Branches missing the last day come first."""
    return answer("coverage", args, lambda s, f: (coverage_queries.coverage(s, f), "rollup_branch_day + ingest.upload"),
                  coverage=True)


@bp.get("/summary")
@bp.doc(operationId="reports-summary", security=[{"bearer": []}])
@bp.arguments(ReportArgs, location="query", as_kwargs=True)
@bp.response(200, SummaryReport)
@bp.alt_response(401, description="no valid token")
@bp.alt_response(422, description="bad parameters")
def summary(**args):
    """Revenue, sales, average spend and items per sale of the range, of the period of the same length just
    before it, and the percent change (the dashboard's headline tiles)."""
    return answer("summary", args, headline)


@bp.get("/options")
@bp.doc(operationId="reports-options", security=[{"bearer": []}])
@bp.arguments(OptionsArgs, location="query", as_kwargs=True)
@bp.response(200, OptionsReport)
@bp.alt_response(401, description="no valid token")
@bp.alt_response(422, description="bad parameters")
def options(branch: list[str] | None = None):
    """What the reader can filter on (every registered branch in their scope, every product name, the
    sources), the first and last day with sales, the range a dashboard opens on (with `branch`: those
    branches' days), and the longest range of the answers read from the sales themselves and of exports."""
    db = current_app.extensions["cafeflow.db"]
    with db.session() as session:
        reader = authenticate(session)
        scope_keys = resolve_branches(session, None, reader)[1]
        branch_ids = resolve_branches(session, branch, reader)[0]
        body = choices(session, scope_keys, branch_ids, uk_today())
        body["max_range_days"] = current_app.extensions["cafeflow.settings"].reporting_max_range_days
        body["warehouse_version"] = warehouse_version(session)
    return json_response(json.dumps(body, separators=(",", ":")).encode())
