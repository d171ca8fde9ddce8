"""Request and response schemas (the OpenAPI document is generated from them)."""
from marshmallow import Schema, ValidationError, fields, validate

from services.reporting.filters import SOURCES
from services.reporting.queries.periods import GRANULARITIES
from services.reporting.queries.sales import DIMENSIONS



def _no_control_characters(value: str) -> None:
    # PostgreSQL refuses NUL in text (a driver error, not a 422) and no name holds control characters.
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError("control characters are not allowed")


_NAME = [validate.Length(min=1, max=200), _no_control_characters]
MONEY = {"description": "decimal string, pounds", "example": "1234.50"}


class RangeArgs(Schema):
    date_from = fields.Date(data_key="from", metadata={"description": "first UK-local day (YYYY-MM-DD), inclusive; "
                                                       "default: four weeks before `to`"})
    date_to = fields.Date(data_key="to", metadata={"description": "last UK-local day, inclusive; default: the "
                                                   "latest day with sales"})
    branch = fields.List(fields.Str(validate=_NAME), metadata={"description": "branch name; repeatable"})
    source = fields.List(fields.Str(validate=validate.OneOf(SOURCES)),
                         metadata={"description": "file, live, or both (default; repeat the parameter)"})


class ReportArgs(RangeArgs):
    product = fields.Str(validate=_NAME, metadata={
        "description": "product name (every size and flavour), or `name|size|flavour` for one"})


class SalesArgs(ReportArgs):
    group_by = fields.Str(required=True, validate=validate.OneOf(DIMENSIONS))
    order = fields.Str(validate=validate.OneOf(("desc", "asc")), metadata={
        "description": "sort by revenue: desc gives the top N, asc the bottom N (with `limit`)"})
    limit = fields.Int(validate=validate.Range(min=1, max=10_000))


class TrendArgs(ReportArgs):
    granularity = fields.Str(load_default="day", validate=validate.OneOf(GRANULARITIES))


class CustomersArgs(ReportArgs):
    granularity = fields.Str(load_default="week", validate=validate.OneOf(GRANULARITIES))


class CoverageArgs(Schema):
    date_from = fields.Date(data_key="from", metadata={"description": "default: two weeks before `to`"})
    date_to = fields.Date(data_key="to", metadata={"description": "default: yesterday (UK)"})
    branch = fields.List(fields.Str(validate=_NAME), metadata={"description": "branch name; repeatable"})


class Figures(Schema):
    transactions = fields.Int(required=True)
    items = fields.Int(required=True)
    revenue = fields.Str(required=True, metadata=MONEY)
    average_spend = fields.Str(required=True, metadata=MONEY)


class SalesRow(Figures):
    class Meta:
        # The grouping keys vary with group_by: branch_id/branch, product_id/product/size/flavour, date,
        # week_start, month, hour, weekday/weekday_name or payment_method.
        unknown = "include"

    branch_id = fields.Int()
    branch = fields.Str()
    product_id = fields.Int()
    product = fields.Str()
    size = fields.Str(allow_none=True)
    flavour = fields.Str(allow_none=True)
    date = fields.Str()
    week_start = fields.Str()
    month = fields.Str()
    hour = fields.Int()
    weekday = fields.Int(metadata={"description": "ISO weekday, 1 = Monday"})
    weekday_name = fields.Str()
    payment_method = fields.Str()


class ReportMeta(Schema):
    date_from = fields.Str(data_key="from")
    date_to = fields.Str(data_key="to")
    answered_from = fields.Str(metadata={"description": "table the figures were read from"})
    warehouse_version = fields.Int()


class SalesReport(ReportMeta):
    group_by = fields.Str()
    rows = fields.List(fields.Nested(SalesRow))


class PeakCell(Schema):
    weekday = fields.Int()
    weekday_name = fields.Str()
    hour = fields.Int()
    transactions = fields.Int()
    revenue = fields.Str(metadata=MONEY)


class PeakHoursReport(ReportMeta):
    cells = fields.List(fields.Nested(PeakCell))


class TrendPoint(Figures):
    period = fields.Str()
    period_start = fields.Str()
    revenue_change = fields.Str(allow_none=True, metadata={"description": "vs the previous period"})
    revenue_change_pct = fields.Str(allow_none=True)


class TrendReport(ReportMeta):
    granularity = fields.Str()
    series = fields.List(fields.Nested(TrendPoint))


class CustomerPoint(Schema):
    period = fields.Str()
    period_start = fields.Str()
    customers = fields.Int()
    new_customers = fields.Int()
    returning_customers = fields.Int()


class CustomerPointSpend(CustomerPoint):
    revenue = fields.Str(metadata={**MONEY, "description": "the period's revenue (same filters)"})
    revenue_per_customer = fields.Str(allow_none=True, metadata={
        **MONEY, "description": "revenue / customers: what a customer spent on average in the period; null "
                                "without customers"})


class CustomersReport(ReportMeta):
    granularity = fields.Str()
    series = fields.List(fields.Nested(CustomerPointSpend))


COVERAGE_STATUSES = ["loaded", "pending", "failed", "no_sales", "missing"]


class CoverageBranch(Schema):
    branch = fields.Str()
    missing_last_day = fields.Bool()
    days_missing = fields.Int(metadata={"description": "days in range without file sales in the warehouse"})
    status = fields.List(fields.Str(metadata={"enum": COVERAGE_STATUSES}), metadata={
        "description": "one per entry of the report's `days`: loaded (file sales in the warehouse), pending or "
                       "failed (a file for that day arrived and is not loaded), no_sales (its file loaded without "
                       "sales for the day) or missing"})
    transactions = fields.List(fields.Int(), metadata={"description": "file sales loaded, one per entry of `days`"})
    upload_ids = fields.Dict(keys=fields.Str(), values=fields.List(fields.Int()), metadata={
        "description": "the uploads of this branch per day (by the date in their file name); days without any "
                       "are left out"})


class CoverageReport(ReportMeta):
    last_day = fields.Str()
    days = fields.List(fields.Str(), metadata={"description": "the days of the grid, oldest first"})
    branches = fields.List(fields.Nested(CoverageBranch))


class HeadlineFigures(Schema):
    transactions = fields.Int()
    items = fields.Int()
    revenue = fields.Str(metadata=MONEY)
    average_spend = fields.Str(metadata=MONEY)
    items_per_sale = fields.Str(metadata={"description": "items / transactions, two decimals"})


class ChangePct(Schema):
    revenue = fields.Str(allow_none=True)
    transactions = fields.Str(allow_none=True)
    average_spend = fields.Str(allow_none=True)
    items_per_sale = fields.Str(allow_none=True)


class SummaryReport(ReportMeta):
    current = fields.Nested(HeadlineFigures)
    previous = fields.Nested(HeadlineFigures, allow_none=True, metadata={
        "description": "the same figures for the days just before `from`, as many as in the range"})
    previous_from = fields.Str(allow_none=True)
    previous_to = fields.Str(allow_none=True)
    change_pct = fields.Nested(ChangePct, metadata={
        "description": "percent change on the previous period, one decimal; null when it had none"})


class OptionsArgs(Schema):
    branch = fields.List(fields.Str(validate=_NAME), metadata={"description": "branch name; repeatable"})


class OptionsReport(Schema):
    branches = fields.List(fields.Str(), metadata={"description": "every registered branch the reader may see"})
    products = fields.List(fields.Str(), metadata={"description": "every product name (all sizes and flavours)"})
    sources = fields.List(fields.Str())
    first_day = fields.Str(allow_none=True, metadata={"description": "first UK-local day with sales"})
    last_day = fields.Str(allow_none=True, metadata={"description": "last UK-local day with sales, up to today"})
    today = fields.Str(metadata={"description": "today in the UK"})
    default_from = fields.Str(allow_none=True, metadata={
        "description": "the latest complete week with sales: seven consecutive days with sales ending before "
                       "today (else the seven days up to the last day with sales); null with no sales"})
    default_to = fields.Str(allow_none=True)
    max_range_days = fields.Int(metadata={
        "description": "the longest range (REPORTING_MAX_RANGE_DAYS) of the answers read from the sales themselves "
                       "and of exports; answers from the rollups take any range"})
    warehouse_version = fields.Int()
