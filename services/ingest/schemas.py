"""API schemas (kept apart from the tables)."""
from marshmallow import Schema, fields, validate
from webargs.fields import DelimitedList

from services.common.upload_states import STATUSES as UPLOAD_STATUSES
from services.common.uploads import UPLOAD_MODES, UPLOAD_OUTCOMES


class UploadPublic(Schema):
    id = fields.Int(required=True)
    status = fields.Str(required=True, metadata={"enum": list(UPLOAD_STATUSES)})
    outcome = fields.Str(allow_none=True, metadata={"enum": list(UPLOAD_OUTCOMES), "description": (
        "what became of the file's rows, once loaded or failed (null while queued or processing): clean (every "
        "row taken, some new), partial (some taken, some rejected), all_rejected (nothing taken), all_duplicate "
        "(every sale was already in), failed (the file could not be loaded; see error)")})
    summary = fields.Str(metadata={"description": (
        "the outcome in words, e.g. 'Partly loaded (loaded 250, already had 0, rejected 4).'")})
    sha256 = fields.Str(required=True)
    filename = fields.Str()
    size_bytes = fields.Int()
    branch = fields.Str(allow_none=True, metadata={"description": "branch of the token that posted it"})
    dialect = fields.Str(allow_none=True)
    file_branches = fields.List(fields.Str(), allow_none=True, metadata={
        "description": "branch keys of the rows loaded from the file"})
    mode = fields.Str(metadata={"enum": list(UPLOAD_MODES), "description": (
        "append: the file's sales are added (duplicates skipped); replace: the file is the complete record of "
        "every branch-day it covers")})
    rows_loaded = fields.Int()
    rows_rejected = fields.Int()
    rows_duplicate = fields.Int()
    rows_retracted = fields.Int(metadata={"description": (
        "sales this upload took out of the warehouse: for a replacing upload, the earlier sales of its "
        "branch-days that it lacks; for a retracted upload, its sales that no other standing upload contains")})
    retraction = fields.Dict(allow_none=True, metadata={"description": (
        "who asked to retract the upload, when and why, and when it was done (null if never asked)")})
    error = fields.Str(allow_none=True)
    extra_fields = fields.Dict(allow_none=True, metadata={
        "description": "unknown JSON fields: `fields` (records per name), `types` (JSON types per name) and "
                       "`withheld` (paths whose text or numbers were not kept)"})
    attempts = fields.Int()
    raw_retained = fields.Bool(metadata={"description": "whether the encrypted raw bytes are still kept"})
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    status_url = fields.Str()
    rejections_url = fields.Str()


class UploadCreateArgs(Schema):
    mode = fields.Str(load_default="append", validate=validate.OneOf(UPLOAD_MODES), metadata={"description": (
        "append (default): add the file's sales, skipping those already loaded; replace: the file is the "
        "complete record of every branch and UK-local day it covers, so the sales earlier files gave those "
        "branch-days and this file lacks are retracted once it loads")})


class PageArgs(Schema):
    page = fields.Int(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Int(load_default=50, validate=validate.Range(min=1, max=500))


class UploadListArgs(PageArgs):
    branch = fields.Str(validate=validate.Length(min=1, max=200))
    status = fields.Str(validate=validate.OneOf(UPLOAD_STATUSES))
    ids = DelimitedList(fields.Int(validate=validate.Range(min=1)), validate=validate.Length(min=1, max=500),
                        metadata={"description": "only these uploads (comma-separated ids): one request tells "
                                                 "a client waiting on a backfill how all its files are doing"})


class UploadPage(Schema):
    items = fields.List(fields.Nested(UploadPublic))
    page = fields.Int()
    page_size = fields.Int()
    total = fields.Int()


class RejectionPublic(Schema):
    line_no = fields.Int(metadata={"description": "line of the file (record number for JSON arrays)"})
    code = fields.Str()
    reason = fields.Str()
    row = fields.Str(metadata={"description": "the row with customer name and card number masked"})
    rows = fields.Int(metadata={"description": (
        "rows of the file this rejection stands for: 1, or all of a file's rows for another branch (one "
        "rejection per file and branch: 'this file is for Birmingham; this upload is for Leeds (254 rows not "
        "loaded)', at the first of them)")})


class RejectionPage(Schema):
    items = fields.List(fields.Nested(RejectionPublic))
    page = fields.Int()
    page_size = fields.Int()
    total = fields.Int()


class CoverageArgs(Schema):
    date_from = fields.Date(data_key="from", metadata={"description": "first day (default: 27 days before `to`)"})
    date_to = fields.Date(data_key="to", metadata={
        "description": "last day (default: yesterday, UK time); at most 366 days in all"})
    branch = fields.Str(validate=validate.Length(min=1, max=200), metadata={
        "description": "the admin: one registered branch (default: every branch); a branch: its own only"})


class CoverageBranch(Schema):
    branch = fields.Str()
    status = fields.List(fields.Str(metadata={"enum": ["loaded", "pending", "failed", "no_sales", "missing"]}),
                         metadata={"description": (
                             "per day of `days`: loaded (file sales are in), pending (its file waits or loads), "
                             "failed (its file failed), no_sales (its file loaded but added no sale of the day), "
                             "missing (no file)")})
    transactions = fields.List(fields.Int(), metadata={"description": "file sales in the warehouse, per day"})
    days_missing = fields.Int(metadata={"description": "days without file sales"})
    missing_last_day = fields.Bool()
    upload_ids = fields.Dict(keys=fields.Str(), values=fields.List(fields.Int()), metadata={
        "description": "per day (ISO date): the uploads whose file name carries it"})


class CoveragePublic(Schema):
    date_from = fields.Str(data_key="from")
    date_to = fields.Str(data_key="to")
    last_day = fields.Str()
    days = fields.List(fields.Str())
    branches = fields.List(fields.Nested(CoverageBranch))
