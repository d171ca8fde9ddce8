"""Loading uploads in one transaction: COPY into temporary staging tables, then set-based inserts
into the star schema with ON CONFLICT, rejections, rollups from the rows that were new, and each
upload's status. Killed half-way, PostgreSQL rolls all of it back.

Several small uploads can share one transaction (a batch): a day file is a few hundred rows, so the
fixed cost of a merge (ten statements, a commit) outweighed its rows. Every staged row carries its
upload's id, so counts, repeat numbers and rejections stay per upload; a file that turns out
unreadable is dropped from the batch without touching the others."""
from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow.csv as pa_csv
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common import upload_states
from services.common.rawstore import RawCipher, RawFileCorrupt, iter_raw
from services.common.upload_states import LOADED
from services.transform import corrections, rollups
from services.transform.rollups import LOCAL_DATE, LOCAL_HOUR
from services.transform.csv_vectorised import SaleBlock, copy_columns, parse_csv_files
from services.transform.parse import iter_record_blocks, sniff_format
from services.transform.records import WRONG_BRANCH, FileUnreadable, ParseStats, Product, Rejection, Sale
from services.transform.sale_builder import SaleBuilder
from services.transform.values import money_text, storable_copy

STAGE_FLUSH_ROWS = 5_000
# Arrow quotes every text cell and writes null as an empty unquoted cell: what COPY ... (FORMAT csv) reads as
# NULL, as _cell writes None.
_ARROW_COPY_CSV = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
STRUCTURAL_CODES = {"wrong_field_count", "unreadable_line", "bad_json"}   # "not a sales row at all"

# Created once per database session and emptied at every commit or rollback: no catalog churn per
# upload (a day file is a few hundred rows, so per-upload DDL would cost more than the rows).
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_sale (
    upload_id bigint, line_no integer, content_key uuid, branch_key text, branch_name text, occurred_epoch bigint,
    total numeric(12, 2), payment_method text, card_network text, customer_key uuid, extra jsonb
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_item (
    upload_id bigint, line_no integer, item_no smallint, product_key text, name text, size text, flavour text,
    quantity integer, unit_price numeric(10, 2)
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_reject (
    upload_id bigint, line_no integer, code text, reason text, masked_row text, rows integer
) ON COMMIT DELETE ROWS;
"""
# Autovacuum never analyses temporary tables; without statistics a large stage gets nested loops.
# Below this, plans are fine without statistics, and ANALYZE (~50 ms) would cost more than it saves.
ANALYZE_FROM_ROWS = 20_000
_ANALYZE = "ANALYZE stage_sale; ANALYZE stage_item;"
_DROP_STAGED = """
DELETE FROM stage_sale WHERE upload_id = :upload_id;
DELETE FROM stage_item WHERE upload_id = :upload_id;
DELETE FROM stage_reject WHERE upload_id = :upload_id;
"""

# Each sale's identity is its content key plus its repeat number within its file: two customers with
# the same basket in the same minute differ by customer key; the same till line twice in one file
# differs by repeat number; the same file re-encoded or re-sent collides and is skipped.
NUMBERED = """numbered AS (
    SELECT s.*, row_number() OVER (PARTITION BY upload_id, content_key ORDER BY line_no) AS repeat_no FROM stage_sale s
)"""
NATURAL_KEY = "md5(n.content_key::text || ':' || n.repeat_no)::uuid"

# Each step is its own statement, so the worker's log times every step (timings_ms).
_DIMENSION_STEPS = (
    ("dim_branch", """
-- New dimension rows only: the anti-join spares sorting every staged row by its text key.
INSERT INTO warehouse.dim_branch (branch_key, name)
SELECT DISTINCT ON (branch_key) branch_key, branch_name FROM stage_sale s
WHERE NOT EXISTS (SELECT FROM warehouse.dim_branch b WHERE b.branch_key = s.branch_key)
ORDER BY branch_key, upload_id, line_no
ON CONFLICT (branch_key) DO NOTHING
"""),
    ("dim_product", """
INSERT INTO warehouse.dim_product (product_key, name, size, flavour)
SELECT DISTINCT ON (product_key) product_key, name, size, flavour FROM stage_item i
WHERE NOT EXISTS (SELECT FROM warehouse.dim_product p WHERE p.product_key = i.product_key)
ORDER BY product_key, upload_id, line_no, item_no
ON CONFLICT (product_key) DO NOTHING
"""),
    )
_FACT_STEPS = (
    ("facts", """
WITH """ + NUMBERED + """, inserted AS (
    INSERT INTO warehouse.fact_transaction (natural_key, branch_id, occurred_at, total, payment_method,
                                            card_network, customer_key, upload_id, source, source_line, extra)
    SELECT """ + NATURAL_KEY + """, b.id, to_timestamp(n.occurred_epoch), n.total, n.payment_method,
           n.card_network, n.customer_key, n.upload_id, 'file', n.line_no, n.extra
    FROM numbered n JOIN warehouse.dim_branch b ON b.branch_key = n.branch_key
    ORDER BY n.upload_id, n.line_no
    ON CONFLICT (natural_key) DO NOTHING
    RETURNING id, upload_id, source_line, natural_key, branch_id, occurred_at, payment_method, source, total,
              customer_key
)
-- The sales this load added, as the rollups' delta: UK-local day and hour worked out once per sale here,
-- and each basket's item count from staging (nothing is read back from the fact tables).
INSERT INTO delta_sale (id, sign, upload_id, source_line, natural_key, branch_id, occurred_at, local_date, local_hour,
                        payment_method, source, total, items, customer_key)
SELECT i.id, 1, i.upload_id, i.source_line, i.natural_key, i.branch_id, i.occurred_at,
       """ + LOCAL_DATE.format(ts="i.occurred_at") + """, """ + LOCAL_HOUR.format(ts="i.occurred_at") + """,
       i.payment_method, i.source, i.total, q.items, i.customer_key
FROM inserted i
JOIN (SELECT upload_id, line_no, sum(quantity) AS items FROM stage_item GROUP BY upload_id, line_no) q
  ON q.upload_id = i.upload_id AND q.line_no = i.source_line
"""),
    ("items", """
INSERT INTO warehouse.fact_transaction_item (transaction_id, line_no, product_id, quantity, unit_price)
SELECT n.id, i.item_no, p.id, i.quantity, i.unit_price
FROM delta_sale n
JOIN stage_item i ON i.upload_id = n.upload_id AND i.line_no = n.source_line
JOIN warehouse.dim_product p ON p.product_key = i.product_key
"""),
    ("lines", """
INSERT INTO delta_line (id, sign, local_date, local_hour, branch_id, source, product_id, quantity, revenue)
SELECT n.id, 1, n.local_date, n.local_hour, n.branch_id, n.source, p.id, sum(i.quantity), sum(i.quantity * i.unit_price)
FROM delta_sale n
JOIN stage_item i ON i.upload_id = n.upload_id AND i.line_no = n.source_line
JOIN warehouse.dim_product p ON p.product_key = i.product_key
GROUP BY n.id, n.local_date, n.local_hour, n.branch_id, n.source, p.id
"""),
    ("claims", """
-- Each new sale is contained by the upload that added it.
INSERT INTO warehouse.upload_sale (transaction_id, upload_id)
SELECT id, upload_id FROM delta_sale ORDER BY id
ON CONFLICT DO NOTHING
"""),
    )
_REJECTION_STEPS = (
    ("clear_rejections", """
DELETE FROM ingest.upload_rejection WHERE upload_id = ANY(:upload_ids)
"""),
    ("rejections", """
INSERT INTO ingest.upload_rejection (upload_id, line_no, code, reason, masked_row, rows)
SELECT upload_id, line_no, code, reason, masked_row, rows FROM stage_reject
ON CONFLICT (upload_id, line_no) DO NOTHING
"""),
)

# A row that was a duplicate is a sale this upload contains too: it keeps the sale standing if the upload
# that added it is retracted. Run only for uploads with duplicates (most loads have none).
_CLAIM_DUPLICATES = """
WITH """ + NUMBERED.replace("FROM stage_sale s", "FROM stage_sale s WHERE s.upload_id = ANY(:upload_ids)") + """
INSERT INTO warehouse.upload_sale (transaction_id, upload_id)
SELECT f.id, n.upload_id FROM numbered n JOIN warehouse.fact_transaction f ON f.natural_key = """ + NATURAL_KEY + """
WHERE NOT EXISTS (SELECT FROM delta_sale d WHERE d.upload_id = n.upload_id AND d.natural_key = f.natural_key)
ORDER BY 1, 2
ON CONFLICT DO NOTHING
"""

# Counts describe the file: of its valid rows, those this upload put in the warehouse (over all its
# runs: a replay adds only what is still missing) and the rest, already loaded by an upload.
# (PostgreSQL runs a data-modifying CTE whether or not the query reads it: the version is bumped.)
_FINISH = """
WITH fresh AS (SELECT upload_id, count(*) AS n FROM delta_sale WHERE sign > 0 GROUP BY upload_id),
bump AS (
    UPDATE warehouse.version SET version = version + 1, updated_at = now()
    WHERE EXISTS (SELECT FROM delta_sale)
),
branches AS (
    SELECT upload_id, array_agg(DISTINCT branch_key ORDER BY branch_key) AS keys FROM stage_sale GROUP BY upload_id
),
job AS (
    SELECT * FROM jsonb_to_recordset(CAST(:jobs AS jsonb))
        AS j(id bigint, dialect text, extra_fields jsonb, rejected integer, valid integer, retracted integer)
)
UPDATE ingest.upload u SET
    """ + upload_states.assignment(LOADED) + """, error = NULL, finished_at = now(),
    dialect = j.dialect, extra_fields = j.extra_fields,
    file_branch_keys = coalesce(b.keys, '{}'),
    rows_loaded = u.rows_loaded + coalesce(f.n, 0),
    rows_rejected = j.rejected,
    rows_duplicate = j.valid - u.rows_loaded - coalesce(f.n, 0),
    rows_retracted = j.retracted
FROM job j LEFT JOIN fresh f ON f.upload_id = j.id LEFT JOIN branches b ON b.upload_id = j.id
WHERE u.id = j.id AND """ + upload_states.guard(LOADED, alias="u") + """
RETURNING u.id, u.rows_loaded, u.rows_rejected, u.rows_duplicate, u.rows_retracted;
"""


@dataclass
class UploadJob:
    """One upload to load: where its raw bytes are and the builder that validates its rows."""
    upload_id: int
    sha256_hex: str
    chunk_count: int
    builder: SaleBuilder
    mode: str = "append"             # "replace": the file is the whole record of the branch-days it covers


@dataclass
class LoadResult:
    rows_loaded: int
    rows_rejected: int
    rows_duplicate: int
    rows_retracted: int
    dialect: str | None
    timings_ms: dict[str, float]


@dataclass
class BatchResult:
    loaded: dict[int, LoadResult]
    failed: dict[int, str]          # upload id -> the readable reason it cannot be loaded


class _Staging:
    """COPY buffers shared by the uploads of a batch: one COPY per table per `flush_rows` rows
    rather than three per upload. Rows are written as CSV text directly: the cells that can hold
    commas or quotes (names, JSON) are quoted, and each distinct product, branch and amount is
    formatted once per batch."""

    def __init__(self, cursor, flush_rows: int) -> None:
        self._cursor = cursor
        # Small flushes keep the text of a huge file's rows from piling up in memory.
        self._flush_rows = min(flush_rows, STAGE_FLUSH_ROWS)
        self._sales: list[str] = []
        self._items: list[str] = []
        self._rejects = io.StringIO()
        self._reject_writer = csv.writer(self._rejects, lineterminator="\n")
        self._rows = 0
        self._products: dict[Product, str] = {}
        self._branches: dict[tuple[str, str], str] = {}
        self._money: dict[int, str] = {}

    def _amount(self, pence: int) -> str:
        text = self._money.get(pence)
        if text is None:
            text = self._money[pence] = money_text(pence)
        return text

    def add(self, upload_id: int, records: list[Sale | Rejection]) -> None:
        sales, items, products, amount = self._sales, self._items, self._products, self._amount
        for r in records:
            if r.__class__ is not Sale:
                self._reject_writer.writerow((upload_id, r.line_no, r.code, r.reason, storable_copy(r.masked_row), 1))
                continue
            branch = self._branches.get((r.branch_key, r.branch_name))
            if branch is None:
                branch = self._branches[(r.branch_key, r.branch_name)] = f"{_cell(r.branch_key)},{_cell(r.branch_name)}"
            extra = _cell(json.dumps(r.extra, ensure_ascii=False, allow_nan=False)) if r.extra else ""
            # content and customer keys are hex, the method CASH/CARD, the network [a-z ]: never quoted
            sales.append(f"{upload_id},{r.line_no},{r.content_key},{branch},{r.occurred_epoch},"
                         f"{amount(r.total_pence)},{r.payment_method},{r.card_network or ''},"
                         f"{r.customer_key or ''},{extra}\n")
            for number, item in enumerate(r.items, 1):
                product = products.get(item.product)
                if product is None:
                    p = item.product
                    product = products[p] = f"{_cell(p.product_key)},{_cell(p.name)},{_cell(p.size)},{_cell(p.flavour)}"
                items.append(f"{upload_id},{r.line_no},{number},{product},{item.quantity},"
                             f"{amount(item.unit_pence)}\n")
        self._rows += len(records)
        if self._rows >= self._flush_rows:
            self.flush()

    def add_block(self, upload_id: int, block: SaleBlock) -> None:
        """A vectorised block's sales and items: the rows add() writes for the same sales, written by Arrow."""
        sales, items = copy_columns(block, upload_id, self._money)
        for table, lines in ((sales, self._sales), (items, self._items)):
            buffer = io.BytesIO()
            pa_csv.write_csv(table, buffer, _ARROW_COPY_CSV)
            lines.append(buffer.getvalue().decode())
        self._rows += len(block)
        if self._rows >= self._flush_rows:
            self.flush()

    def add_file_rejection(self, upload_id: int, first: Rejection, reason: str, rows: int) -> None:
        """One rejection standing for `rows` rows of the file, shown at the first of them."""
        self._reject_writer.writerow((upload_id, first.line_no, first.code, reason, storable_copy(first.masked_row),
                                      rows))

    def flush(self) -> None:
        for table, lines in (("stage_sale", self._sales), ("stage_item", self._items)):
            if lines:
                self._cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv)",
                                         io.BytesIO("".join(lines).encode()))
                lines.clear()
        if self._rejects.tell():
            self._rejects.seek(0)
            self._cursor.copy_expert("COPY stage_reject FROM STDIN WITH (FORMAT csv)", self._rejects)
            self._rejects.seek(0)
            self._rejects.truncate()
        self._rows = 0


def _cell(value: str | None) -> str:
    """A CSV cell for COPY: None (or empty) as an unquoted empty cell, which COPY reads as NULL."""
    if not value:
        return ""
    return '"' + value.replace('"', '""') + '"'


@dataclass
class _Counts:
    stats: ParseStats
    valid: int = 0
    rejected: int = 0
    structural: int = 0
    # Rows for another registered branch, per reason (one reason per foreign branch): their first row and count.
    foreign: dict[str, list] = field(default_factory=dict)

    def set_aside_foreign(self, batch: list[Sale | Rejection]) -> list[Sale | Rejection]:
        """The batch without its rows for another branch, which are counted here instead: a file from the
        wrong branch is one mistake, reported once (\"this file is for Birmingham; this upload is for Leeds\"),
        not once per row."""
        kept = []
        for record in batch:
            if record.__class__ is Rejection and record.code == WRONG_BRANCH:
                seen = self.foreign.setdefault(record.reason, [record, 0])
                seen[1] += 1
            else:
                kept.append(record)
        return kept


def _stage_records(upload_id: int, records: Iterator[SaleBlock | Sale | Rejection], staging: _Staging,
                   counts: _Counts, chunk_rows: int) -> None:
    """Counts and stages an upload's records, chunk_rows at a time (rows for another branch set aside)."""
    for batch in _batches(upload_id, records, staging, counts, chunk_rows):
        rejections = [r for r in batch if r.__class__ is Rejection]
        counts.valid += len(batch) - len(rejections)
        counts.rejected += len(rejections)
        counts.structural += sum(r.code in STRUCTURAL_CODES for r in rejections)
        staging.add(upload_id, counts.set_aside_foreign(batch) if rejections else batch)


def _batches(upload_id: int, records: Iterator[SaleBlock | Sale | Rejection], staging: _Staging, counts: _Counts,
             chunk_rows: int) -> Iterator[list[Sale | Rejection]]:
    """The records in lists of chunk_rows; a vectorised block of sales is staged the moment it comes (it is
    already columns, and holding it would hold a block of the file)."""
    batch: list[Sale | Rejection] = []
    for record in records:
        if record.__class__ is SaleBlock:
            counts.valid += len(record)
            staging.add_block(upload_id, record)
            continue
        batch.append(record)
        if len(batch) >= chunk_rows:
            yield batch
            batch = []
    if batch:
        yield batch


def _parse_together(session: Session, cipher: RawCipher, jobs: list[UploadJob]) -> dict[int, tuple | Exception]:
    """A batch's small uploads (one stored chunk each) read whole, their CSV files parsed as one
    vectorised block (csv_vectorised.parse_csv_files): a day file is a few hundred rows, and the fixed cost of
    each Arrow call is then paid once per batch. Per upload: (records, stats), or the error reading it raised."""
    raws: dict[int, bytes | Exception] = {}
    for job in jobs:
        try:
            raws[job.upload_id] = b"".join(iter_raw(session, cipher, upload_id=job.upload_id,
                                                    sha256_hex=job.sha256_hex, chunk_count=job.chunk_count))
        except RawFileCorrupt as exc:
            raws[job.upload_id] = exc
    parsed: dict[int, tuple | Exception] = {}
    together = []
    for job in jobs:
        raw = raws[job.upload_id]
        if isinstance(raw, Exception):
            parsed[job.upload_id] = raw
        elif sniff_format(raw[:4096].decode("utf-8", errors="replace")) == "csv":
            together.append((job, raw, ParseStats()))
        else:
            stats = ParseStats()
            parsed[job.upload_id] = (iter_record_blocks(job.builder, [raw], stats), stats)
    for (job, _raw, stats), records in zip(together, parse_csv_files([(j.builder, raw, s) for j, raw, s in together])):
        parsed[job.upload_id] = (records, stats)
    return parsed


def _stage_upload(session: Session, cipher: RawCipher, staging: _Staging, job: UploadJob,
                  chunk_rows: int, vectorised: bool, parsed: tuple | Exception | None = None) -> _Counts:
    """Parses one upload into the staging buffers (or stages what _parse_together parsed of it); raises
    FileUnreadable / RawFileCorrupt."""
    if isinstance(parsed, Exception):
        raise parsed
    if parsed is None:
        raw = iter_raw(session, cipher, upload_id=job.upload_id, sha256_hex=job.sha256_hex,
                       chunk_count=job.chunk_count)
        counts = _Counts(ParseStats())
        records = iter_record_blocks(job.builder, raw, counts.stats, vectorised=vectorised)
    else:
        records, stats = parsed
        counts = _Counts(stats)
        records = iter(records)
    _stage_records(job.upload_id, records, staging, counts, chunk_rows)
    for reason, (first, rows) in counts.foreign.items():
        staging.add_file_rejection(job.upload_id, first, f"{reason} ({rows} {'row' if rows == 1 else 'rows'} "
                                                         "not loaded)", rows)
    if counts.valid == 0 and counts.rejected == counts.structural:
        if counts.rejected == 0:
            raise FileUnreadable("the file has no sales rows (it is empty apart from headers or blank lines)")
        raise FileUnreadable(
            f"no line of the file looks like a sales row ({counts.rejected} lines checked): expected a branch "
            "till CSV (7 comma-separated columns: time, branch, customer, basket, total, payment, card) or JSON "
            "sales")
    return counts


def load_uploads(session: Session, cipher: RawCipher, jobs: list[UploadJob], *, chunk_rows: int,
                 vectorised: bool = True) -> BatchResult:
    """Stages and merges every job inside the caller's transaction; the caller commits. An upload whose
    file is unreadable or whose stored bytes fail authentication is left out (reported in `failed`);
    any database error fails the whole call, and the caller rolls back."""
    clock = _Clock()
    session.execute(text(_STAGING))
    rollups.create_temp_tables(session)
    clock.lap("prepare")
    cursor = session.connection().connection.cursor()
    staging = _Staging(cursor, chunk_rows)
    counted: dict[int, _Counts] = {}
    failed: dict[int, str] = {}
    # Uploads of one stored chunk (1 MiB) are read whole and parsed together; larger ones stream block by block.
    small = [job for job in jobs if job.chunk_count <= 1]
    parsed = _parse_together(session, cipher, small) if vectorised and len(small) > 1 else {}
    for job in jobs:
        try:
            counted[job.upload_id] = _stage_upload(session, cipher, staging, job, chunk_rows, vectorised,
                                                   parsed.pop(job.upload_id, None))
        except (FileUnreadable, RawFileCorrupt) as exc:
            staging.flush()
            session.execute(text(_DROP_STAGED), {"upload_id": job.upload_id})
            failed[job.upload_id] = str(exc)
    staging.flush()
    clock.lap("parse_and_stage")
    replacing = [job.upload_id for job in jobs if job.mode == "replace" and job.upload_id in counted]
    if replacing and len(jobs) > 1:
        raise ValueError("a replacing upload is loaded alone")     # the tasks never batch one
    for upload_id in [u for u in replacing if counted[u].rejected]:
        # A replacement stands for the whole of its branch-days: applied with a rejected row, it would
        # take away the sale that row meant. It fails instead, keeping its rejections to show what to fix.
        _store_rejections(session, [upload_id])
        failed[upload_id] = (f"nothing was replaced: {counted[upload_id].rejected} of the file's rows were rejected "
                             "(listed with the upload), and a replacing file must hold every sale of the days "
                             "it covers; fix those rows and post the file again")
        del counted[upload_id]
        replacing.remove(upload_id)
    if not counted:
        return BatchResult({}, failed)
    if sum(c.valid for c in counted.values()) >= ANALYZE_FROM_ROWS:
        session.execute(text(_ANALYZE))
        clock.lap("analyze_staging")
    for step, sql in _DIMENSION_STEPS:
        session.execute(text(sql))
        clock.lap(step)
    # Appends of one branch run side by side; a replacement (or a retraction) of it waits for them and they for it.
    corrections.lock_branches(session, "SELECT b.id FROM warehouse.dim_branch b WHERE b.branch_key IN "
                                       "(SELECT DISTINCT branch_key FROM stage_sale)", exclusive=bool(replacing))
    clock.lap("lock_branches")
    for step, sql in _FACT_STEPS:
        session.execute(text(sql))
        clock.lap(step)
    fresh = dict(session.execute(text("SELECT upload_id, count(*) FROM delta_sale GROUP BY upload_id")).all())
    with_duplicates = [upload_id for upload_id, c in counted.items() if fresh.get(upload_id, 0) < c.valid]
    if with_duplicates:
        session.execute(text(_CLAIM_DUPLICATES), {"upload_ids": with_duplicates})
        clock.lap("claim_duplicates")
    retracted = {upload_id: corrections.supersede_branch_days(session, upload_id) for upload_id in replacing}
    if replacing:
        clock.lap("replace")
    _store_rejections(session, list(counted), clock.lap)
    jobs_json = []
    for upload_id, c in counted.items():
        jobs_json.append({"id": upload_id, "dialect": c.stats.dialect(), "extra_fields": c.stats.extra_report(),
                          "rejected": c.rejected, "valid": c.valid, "retracted": retracted.get(upload_id, 0)})
    finished = session.execute(text(_FINISH), {"jobs": json.dumps(jobs_json)}).all()
    if len(finished) != len(jobs_json):
        # The caller holds every job's row lock and checked it is processing: this cannot happen, and if it
        # did, the sales must not stand without their upload saying loaded (the caller rolls back).
        stray = sorted(set(counted) - {row.id for row in finished})[0]
        raise upload_states.IllegalUploadMove(stray, None, LOADED)
    clock.lap("finish")
    # Every derived table, from the sales this load added (and, replacing, took away).
    rollups.apply_delta(session, lap=clock.lap)
    for upload_id in replacing:
        corrections.log_correction(session, "replace", actor="upload", upload_id=upload_id,
                                   sales_removed=retracted[upload_id])
    loaded = {row.id: LoadResult(row.rows_loaded, row.rows_rejected, row.rows_duplicate, row.rows_retracted,
                                 counted[row.id].stats.dialect(), clock.laps) for row in finished}
    return BatchResult(loaded, failed)


def _store_rejections(session: Session, upload_ids: list[int], lap: Callable[[str], None] | None = None) -> None:
    """Replaces the uploads' stored rejections with the staged ones."""
    for step, sql in _REJECTION_STEPS:
        session.execute(text(sql), {"upload_ids": upload_ids} if ":upload_ids" in sql else {})
        if lap is not None:
            lap(step)


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round((now - self._last) * 1000, 2)
        self._last = now
