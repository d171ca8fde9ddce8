"""/v1/coverage: which days of a branch are in the warehouse, which are missing and which failed, for the branch
portal and a branch's scripts. The grid is the one reporting answers with (services/common/coverage.py); here a
branch sees its own branch only, and the admin any registered branch."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import select

from services.common.coverage import coverage as coverage_grid
from services.common.errors import ApiError
from services.common.naming import branch_key
from services.common.uploads import Branch
from services.ingest.auth import authenticate
from services.ingest.schemas import CoverageArgs, CoveragePublic

bp = Blueprint("coverage", __name__, url_prefix="/v1/coverage", description="Which days of a branch are in")
UK = ZoneInfo("Europe/London")
DEFAULT_DAYS = 28
MAX_DAYS = 366


@bp.route("", methods=["GET"])
@bp.doc(operationId="coverage-get", summary="A branch's days: in, missing, failed, pending", security=[{"bearer": []}])
@bp.arguments(CoverageArgs, location="query")
@bp.response(200, CoveragePublic)
def get_coverage(args):
    db = current_app.extensions["cafeflow.db"]
    settings = current_app.extensions["cafeflow.settings"]
    date_to = args.get("date_to") or dt.datetime.now(UK).date() - dt.timedelta(days=1)
    date_from = args.get("date_from") or date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
    if date_from > date_to:
        raise ApiError(422, "invalid_range", "'from' is after 'to'",
                       {"from": [date_from.isoformat()], "to": [date_to.isoformat()]})
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise ApiError(422, "range_too_large", f"at most {MAX_DAYS} days at a time",
                       {"days": (date_to - date_from).days + 1, "max_days": MAX_DAYS})
    with db.session() as session:
        caller = authenticate(session, settings)
        if caller.is_admin:
            keys = [branch_key(args["branch"])] if args.get("branch") else None
        elif caller.branch_key is None:
            raise ApiError(403, "forbidden", "this token is not tied to a branch")
        elif args.get("branch") and branch_key(args["branch"]) != caller.branch_key:
            raise ApiError(403, "forbidden", "a branch sees its own days only")
        else:
            keys = [caller.branch_key]
        if keys and session.execute(select(Branch.id).where(Branch.branch_key == keys[0])).first() is None:
            raise ApiError(404, "not_found", "no such registered branch")
        grid = coverage_grid(session, date_from=date_from, date_to=date_to, branch_keys=keys)
    return {"date_from": date_from.isoformat(), "date_to": date_to.isoformat(), **grid}
