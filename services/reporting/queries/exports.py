"""Streamed exports of sales and their items for a date range, as CSV or Parquet, read batch by batch
through a server-side cursor (memory stays flat whatever the range).

No personal data, and no customer pseudonym either: the keyed pseudonym links one person's purchases
over time (a behavioural profile; still personal data under GDPR), and what analysts need from it, new
vs returning, is given as `returning_customer` (the sale came after the customer's first one).
Free-form `extra` JSON is left out as well: producers may put text in it that we cannot vet."""
from __future__ import annotations

import io
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine, text

from services.common.spreadsheet import csv_writer
from services.reporting.filters import Filters

BATCH_ROWS = 10_000

_RANGE = """
      f.occurred_at >= CAST(:date_from AS timestamp) AT TIME ZONE 'Europe/London'
  AND f.occurred_at < (CAST(:date_to AS timestamp) + interval '1 day') AT TIME ZONE 'Europe/London'
  AND f.source = ANY(:sources) {branch} {product}
"""
TRANSACTIONS_SQL = """
SELECT f.id AS transaction_id, f.occurred_at, (f.occurred_at AT TIME ZONE 'Europe/London')::date AS local_date,
       b.name AS branch, f.total, f.payment_method, f.card_network, f.source,
       CASE WHEN f.customer_key IS NULL THEN NULL ELSE f.occurred_at > c.first_at END AS returning_customer
FROM warehouse.fact_transaction f
JOIN warehouse.dim_branch b ON b.id = f.branch_id
LEFT JOIN warehouse.customer_first_seen c ON c.customer_key = f.customer_key
WHERE {range}
ORDER BY f.occurred_at, f.id
"""
ITEMS_SQL = """
SELECT i.transaction_id, i.line_no, f.occurred_at, b.name AS branch, p.name AS product, p.size, p.flavour,
       i.quantity, i.unit_price, f.source
FROM warehouse.fact_transaction f
JOIN warehouse.fact_transaction_item i ON i.transaction_id = f.id
JOIN warehouse.dim_branch b ON b.id = f.branch_id
JOIN warehouse.dim_product p ON p.id = i.product_id
WHERE {range}
ORDER BY f.occurred_at, i.transaction_id, i.line_no
"""
MONEY = pa.decimal128(12, 2)
UTC_TIME = pa.timestamp("us", tz="UTC")
SCHEMAS = {
    "transactions": pa.schema([("transaction_id", pa.int64()), ("occurred_at", UTC_TIME), ("local_date", pa.date32()),
                               ("branch", pa.string()), ("total", MONEY), ("payment_method", pa.string()),
                               ("card_network", pa.string()), ("source", pa.string()),
                               ("returning_customer", pa.bool_())]),
    "items": pa.schema([("transaction_id", pa.int64()), ("line_no", pa.int16()), ("occurred_at", UTC_TIME),
                        ("branch", pa.string()), ("product", pa.string()), ("size", pa.string()),
                        ("flavour", pa.string()), ("quantity", pa.int32()), ("unit_price", MONEY),
                        ("source", pa.string())]),
}


# A product filter keeps what the reports count for a product: the sales that contained it, and its lines.
_PRODUCT = {
    "transactions": """AND EXISTS (SELECT FROM warehouse.fact_transaction_item pi
                                   WHERE pi.transaction_id = f.id AND pi.product_id = ANY(:product_ids))""",
    "items": "AND i.product_id = ANY(:product_ids)",
}


def export_sql(kind: str, filters: Filters) -> str:
    branch = "AND f.branch_id = ANY(:branch_ids)" if filters.branch_ids is not None else ""
    product = _PRODUCT[kind] if filters.product_ids is not None else ""
    body = TRANSACTIONS_SQL if kind == "transactions" else ITEMS_SQL
    return body.format(range=_RANGE.format(branch=branch, product=product))


def _batches(engine: Engine, kind: str, filters: Filters) -> Iterator[list]:
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=BATCH_ROWS).execute(
            text(export_sql(kind, filters)), filters.params())
        while rows := result.fetchmany(BATCH_ROWS):
            yield rows


def stream_csv(engine: Engine, kind: str, filters: Filters) -> Iterator[bytes]:
    """Names in the cells come from branch files and orders: the shared writer keeps a spreadsheet from
    running them as formulas."""
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow(SCHEMAS[kind].names)
    for rows in _batches(engine, kind, filters):
        writer.writerows(rows)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


class _Sink(io.RawIOBase):
    """A write-only file that hands out what was written so far (pyarrow writes the Parquet file to it)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        out, self.chunks = b"".join(self.chunks), []
        return out


def stream_parquet(engine: Engine, kind: str, filters: Filters) -> Iterator[bytes]:
    schema = SCHEMAS[kind]
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    for rows in _batches(engine, kind, filters):
        columns = list(zip(*rows))
        writer.write_table(pa.Table.from_arrays([pa.array(col, type=field.type)
                                                 for col, field in zip(columns, schema)], schema=schema))
        yield sink.drain()
    writer.close()
    yield sink.drain()
