"""The COPY floor of bench/e2e_throughput.py, apart so a test can check it without the benchmark's settings:
the final rows of some warehouse tables written back with plain COPY, nothing else."""
from __future__ import annotations

import io
import time

import psycopg2

from services.transform.rollups import DERIVED_TABLES

FACT_TABLES = ("warehouse.fact_transaction", "warehouse.fact_transaction_item")
# Everything a file load writes to the warehouse but the two small dimensions (nothing references them by
# foreign key, and they hold a few hundred rows): the facts, which upload contained each sale, and every
# derived table.
LOAD_TABLES = FACT_TABLES + ("warehouse.upload_sale",) + tuple(f"warehouse.{name}" for name in DERIVED_TABLES)


def run_copy_floor(dsn: str, tables: tuple[str, ...] = FACT_TABLES, runs: int = 3) -> float:
    """Exports the final rows of `tables`, then `runs` times empties them and times COPY of them back in
    (one transaction, as a load is); returns the fastest run. The tables end as they started."""
    raw = psycopg2.connect(dsn)
    timings = []
    try:
        cur = raw.cursor()
        dumps = {}
        for name in tables:
            buffer = io.StringIO()
            cur.copy_expert(f"COPY {name} TO STDOUT", buffer)
            dumps[name] = buffer.getvalue()
        raw.commit()
        for _ in range(runs):
            cur.execute(f"TRUNCATE {', '.join(tables)}")
            raw.commit()
            started = time.perf_counter()
            for name in tables:
                cur.copy_expert(f"COPY {name} FROM STDIN", io.StringIO(dumps[name]))
            raw.commit()
            timings.append(time.perf_counter() - started)
        rows = sum(dump.count("\n") for dump in dumps.values())
        print(f"COPY floor, {len(tables)} tables ({rows:,} rows): " + ", ".join(f"{t:.2f} s" for t in timings))
        return min(timings)
    finally:
        raw.close()
