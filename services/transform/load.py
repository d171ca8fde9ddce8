"""Loading one upload in one transaction: COPY into temporary staging tables, then set-based
inserts into the star schema with ON CONFLICT, rejections, rollups from the rows that were new, and
the upload's status. Killed half-way, PostgreSQL rolls all of it back."""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from itertools import islice
from typing import Iterable, Iterator

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common.rawstore import RawCipher, iter_raw
from services.transform.parse import FileUnreadable, ParseStats, Rejection, Sale, SaleBuilder, iter_records, money_text

STRUCTURAL_CODES = {"wrong_field_count", "unreadable_line", "bad_json"}   # "not a sales row at all"

# Created once per database session and emptied at every commit or rollback: no catalog churn per
# upload (a day file is a few hundred rows, so per-upload DDL would cost more than the rows).
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_sale (
    line_no integer, content_key uuid, branch_key text, branch_name text, occurred_epoch bigint,
    total numeric(12, 2), payment_method text, card_network text, customer_key uuid, extra jsonb
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_item (
    line_no integer, item_no smallint, product_key text, name text, size text, flavour text,
    quantity integer, unit_price numeric(10, 2)
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_reject (line_no integer, code text, reason text, masked_row text)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS new_sale (
    id bigint, source_line integer, branch_id integer, occurred_at timestamptz, total numeric(12, 2),
    payment_method text
) ON COMMIT DELETE ROWS;
"""
# Autovacuum never analyses temporary tables; without statistics a large stage gets nested loops.
ANALYZE_FROM_ROWS = 5_000
_ANALYZE = "ANALYZE stage_sale; ANALYZE stage_item;"

# Each sale's identity is its content key plus its repeat number within the file: two customers with
# the same basket in the same minute differ by customer key; the same till line twice in one file
# differs by repeat number; the same file re-encoded or re-sent collides and is skipped.
_MERGE = """
INSERT INTO warehouse.dim_branch (branch_key, name)
SELECT DISTINCT ON (branch_key) branch_key, branch_name FROM stage_sale ORDER BY branch_key, line_no
ON CONFLICT (branch_key) DO NOTHING;

INSERT INTO warehouse.dim_product (product_key, name, size, flavour)
SELECT DISTINCT ON (product_key) product_key, name, size, flavour FROM stage_item
ORDER BY product_key, line_no, item_no
ON CONFLICT (product_key) DO NOTHING;

WITH numbered AS (
    SELECT s.*, row_number() OVER (PARTITION BY content_key ORDER BY line_no) AS repeat_no FROM stage_sale s
), inserted AS (
    INSERT INTO warehouse.fact_transaction (natural_key, branch_id, occurred_at, total, payment_method,
                                            card_network, customer_key, upload_id, source, source_line, extra)
    SELECT md5(n.content_key::text || ':' || n.repeat_no)::uuid, b.id, to_timestamp(n.occurred_epoch), n.total,
           n.payment_method,
           n.card_network, n.customer_key, :upload_id, 'file', n.line_no, n.extra
    FROM numbered n JOIN warehouse.dim_branch b ON b.branch_key = n.branch_key
    ORDER BY n.line_no
    ON CONFLICT (natural_key) DO NOTHING
    RETURNING id, source_line, branch_id, occurred_at, total, payment_method
)
INSERT INTO new_sale SELECT * FROM inserted;

INSERT INTO warehouse.fact_transaction_item (transaction_id, line_no, product_id, quantity, unit_price)
SELECT n.id, i.item_no, p.id, i.quantity, i.unit_price
FROM new_sale n
JOIN stage_item i ON i.line_no = n.source_line
JOIN warehouse.dim_product p ON p.product_key = i.product_key;

-- Rollups by UK-local day and hour, summed only from the sales this load inserted. ORDER BY keeps
-- concurrent loads locking rollup rows in one order (no deadlock between two workers).
INSERT INTO warehouse.rollup_sales_hour AS r
    (local_date, local_hour, branch_id, payment_method, source, transactions, items, revenue)
SELECT (n.occurred_at AT TIME ZONE 'Europe/London')::date,
       extract(hour FROM n.occurred_at AT TIME ZONE 'Europe/London')::smallint,
       n.branch_id, n.payment_method, 'file', count(*), sum(q.items), sum(n.total)
FROM new_sale n
JOIN (SELECT line_no, sum(quantity) AS items FROM stage_item GROUP BY line_no) q ON q.line_no = n.source_line
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (local_date, local_hour, branch_id, payment_method, source) DO UPDATE
SET transactions = r.transactions + EXCLUDED.transactions, items = r.items + EXCLUDED.items,
    revenue = r.revenue + EXCLUDED.revenue;

INSERT INTO warehouse.rollup_product_hour AS r
    (local_date, local_hour, branch_id, product_id, source, quantity, revenue)
SELECT (n.occurred_at AT TIME ZONE 'Europe/London')::date,
       extract(hour FROM n.occurred_at AT TIME ZONE 'Europe/London')::smallint,
       n.branch_id, p.id, 'file', sum(i.quantity), sum(i.quantity * i.unit_price)
FROM new_sale n
JOIN stage_item i ON i.line_no = n.source_line
JOIN warehouse.dim_product p ON p.product_key = i.product_key
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (local_date, local_hour, branch_id, product_id, source) DO UPDATE
SET quantity = r.quantity + EXCLUDED.quantity, revenue = r.revenue + EXCLUDED.revenue;

DELETE FROM ingest.upload_rejection WHERE upload_id = :upload_id;
INSERT INTO ingest.upload_rejection (upload_id, line_no, code, reason, masked_row)
SELECT :upload_id, line_no, code, reason, masked_row FROM stage_reject
ON CONFLICT (upload_id, line_no) DO NOTHING;
"""

# Reporting's daily rollups and customer tables (warehouse migration 0002), from the sales this load
# inserted; the live path calls the same function with its own new ids.
_RECORD_NEW_SALES = "SELECT warehouse.record_new_sales(ARRAY(SELECT id FROM new_sale))"

# Counts describe the file: of its valid rows, those this upload put in the warehouse (over all its
# runs: a replay adds only what is still missing) and the rest, already loaded by an upload.
# (PostgreSQL runs a data-modifying CTE whether or not the query reads it: the version is bumped.)
_FINISH = """
WITH fresh AS (SELECT count(*) AS n FROM new_sale),
bump AS (
    UPDATE warehouse.version SET version = version + 1, updated_at = now()
    WHERE (SELECT n FROM fresh) > 0
)
UPDATE ingest.upload u SET
    status = 'loaded', error = NULL, finished_at = now(), updated_at = now(),
    dialect = :dialect, extra_fields = CAST(:extra_fields AS jsonb),
    file_branch_keys = ARRAY(SELECT DISTINCT branch_key FROM stage_sale ORDER BY 1),
    rows_loaded = u.rows_loaded + (SELECT n FROM fresh),
    rows_rejected = :rejected,
    rows_duplicate = :valid - u.rows_loaded - (SELECT n FROM fresh)
WHERE u.id = :upload_id
RETURNING rows_loaded, rows_rejected, rows_duplicate;
"""


@dataclass
class LoadResult:
    rows_loaded: int
    rows_rejected: int
    rows_duplicate: int
    dialect: str | None
    timings_ms: dict[str, float]


def _copy(cursor, table: str, rows: Iterable[tuple]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    if not buffer.tell():
        return
    buffer.seek(0)
    cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv)", buffer)


def _sale_rows(batch: list[Sale]) -> Iterator[tuple]:
    for s in batch:
        yield (s.line_no, s.content_key, s.branch_key, s.branch_name, s.occurred_epoch,
               money_text(s.total_pence), s.payment_method, s.card_network, s.customer_key,
               json.dumps(s.extra, ensure_ascii=False, allow_nan=False) if s.extra else None)


def _item_rows(batch: list[Sale]) -> Iterator[tuple]:
    for s in batch:
        for number, item in enumerate(s.items, 1):
            p = item.product
            yield (s.line_no, number, p.product_key, p.name, p.size, p.flavour, item.quantity,
                   money_text(item.unit_pence))


def load_upload(session: Session, cipher: RawCipher, builder: SaleBuilder, *, upload_id: int, sha256_hex: str,
                chunk_count: int, chunk_rows: int) -> LoadResult:
    """Stages and merges the whole upload inside the caller's transaction; the caller commits."""
    raw = iter_raw(session, cipher, upload_id=upload_id, sha256_hex=sha256_hex, chunk_count=chunk_count)

    clock = _Clock()
    session.execute(text(_STAGING))
    clock.lap("prepare")
    cursor = session.connection().connection.cursor()
    stats = ParseStats()
    valid = rejected = structural = 0
    records = iter_records(builder, raw, stats)
    while batch := list(islice(records, chunk_rows)):
        sales = [r for r in batch if isinstance(r, Sale)]
        rejections = [r for r in batch if isinstance(r, Rejection)]
        valid += len(sales)
        rejected += len(rejections)
        structural += sum(r.code in STRUCTURAL_CODES for r in rejections)
        _copy(cursor, "stage_sale", _sale_rows(sales))
        _copy(cursor, "stage_item", _item_rows(sales))
        _copy(cursor, "stage_reject", ((r.line_no, r.code, r.reason, r.masked_row) for r in rejections))
    clock.lap("parse_and_stage")
    if valid >= ANALYZE_FROM_ROWS:
        session.execute(text(_ANALYZE))
    if valid == 0 and rejected == structural:
        if rejected == 0:
            raise FileUnreadable("the file has no sales rows (it is empty apart from headers or blank lines)")
        raise FileUnreadable(
            f"no line of the file looks like a sales row ({rejected} lines checked): expected a branch till "
            "CSV (7 comma-separated columns: time, branch, customer, basket, total, payment, card) or JSON sales")
    session.execute(text(_MERGE), {"upload_id": upload_id})
    session.execute(text(_RECORD_NEW_SALES))
    clock.lap("merge")
    extra = None
    if stats.extra_fields:
        extra = {"fields": stats.extra_fields, "pseudonymised": sorted(stats.pseudonymised_fields)}
    loaded, rejected_rows, duplicate = session.execute(text(_FINISH), {
        "upload_id": upload_id, "dialect": stats.dialect(), "rejected": rejected, "valid": valid,
        "extra_fields": json.dumps(extra) if extra else None,
    }).one()
    clock.lap("finish")
    return LoadResult(loaded, rejected_rows, duplicate, stats.dialect(), clock.laps)


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round((now - self._last) * 1000, 2)
        self._last = now
