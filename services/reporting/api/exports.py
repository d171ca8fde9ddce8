"""/v1/exports/...: sales and items of a date range as CSV or Parquet, streamed, without personal data."""
from __future__ import annotations

from flask import Response, current_app
from flask_smorest import Blueprint

from services.common.errors import ApiError
from services.reporting.auth import authenticate
from services.reporting.filters import resolve_filters
from services.reporting.queries.exports import stream_csv, stream_parquet
from services.reporting.schemas import ReportArgs

bp = Blueprint("exports", __name__, url_prefix="/v1/exports",
               description="Streamed exports for data scientists (bearer token required)")
# Mimetypes without a charset: werkzeug adds `; charset=utf-8` to text types itself.
FORMATS = {"csv": ("text/csv", stream_csv),
           "parquet": ("application/vnd.apache.parquet", stream_parquet)}
_DOC = {"responses": {"200": {"description": "the file, streamed", "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}}}}}}


def _export(kind: str, fmt: str, args: dict) -> Response:
    db = current_app.extensions["cafeflow.db"]
    settings = current_app.extensions["cafeflow.settings"]
    if fmt not in FORMATS:
        raise ApiError(404, "not_found", "exports come as .csv or .parquet")
    with db.session() as session:
        reader = authenticate(session)
        filters = resolve_filters(session, args, reader, settings.reporting_max_range_days)
        filters.require_span_within_limit("an export")
    mimetype, stream = FORMATS[fmt]
    name = f"{kind}_{filters.date_from.isoformat()}_{filters.date_to.isoformat()}.{fmt}"
    # The generator opens its own connection (same read-only role) and holds it only while streaming.
    response = Response(stream(db.engine, kind, filters), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/transactions.<string:fmt>")
@bp.doc(operationId="exports-transactions", security=[{"bearer": []}])
@bp.arguments(ReportArgs, location="query", as_kwargs=True)
@bp.alt_response(401, description="no valid token")
@bp.alt_response(422, description="bad parameters")
@bp.doc(**_DOC)
def transactions(fmt: str, **args):
    """One row per sale: id, time, UK-local day, branch, total, payment method, card network, source,
    and whether the customer had bought before (no name, no card number, no pseudonym). With `product`: the
    sales that contained it. fmt: csv or parquet; in CSV, a text cell a spreadsheet would run as a formula
    starts with `'`."""
    return _export("transactions", fmt, args)


@bp.get("/items.<string:fmt>")
@bp.doc(operationId="exports-items", security=[{"bearer": []}])
@bp.arguments(ReportArgs, location="query", as_kwargs=True)
@bp.alt_response(401, description="no valid token")
@bp.alt_response(422, description="bad parameters")
@bp.doc(**_DOC)
def items(fmt: str, **args):
    """One row per basket line: sale id, line, time, branch, product, size, flavour, quantity, unit price.
    With `product`: that product's lines. fmt: csv or parquet; in CSV, a text cell a spreadsheet would run as
    a formula starts with `'`."""
    return _export("items", fmt, args)
