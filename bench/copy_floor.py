"""The COPY floor of bench/e2e_throughput.py, apart so a test can check it without the benchmark's settings:
the final rows of some warehouse tables written back with plain COPY, nothing else."""
from __future__ import annotations

import io
import time

import psycopg2

FACT_TABLES = ("warehouse.fact_transaction", "warehouse.fact_transaction_item")
# Everything a file load writes to the warehouse but the two small dimensions (nothing references them by
# foreign key, and they hold a few hundred rows).
LOAD_TABLES = FACT_TABLES + tuple(f"warehouse.{name}" for name in (
    "rollup_sales_hour", "rollup_product_hour", "rollup_sales_hour_chain", "rollup_product_day_chain",
    "rollup_sales_day", "rollup_product_day", "rollup_branch_day",
    "customer_first_seen", "customer_period", "customer_period_branch"))
# rollup_branch_day is copied like the others: the trigger that keeps it would add every row twice.
MAINTENANCE_TRIGGER = ("warehouse.rollup_sales_day", "rollup_branch_day_follows")


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
        trigger_table, trigger = MAINTENANCE_TRIGGER
        for _ in range(runs):
            cur.execute(f"TRUNCATE {', '.join(tables)}")
            raw.commit()
            if trigger_table in tables:
                # In the COPY's own transaction: however the run ends, the trigger is on again afterwards.
                cur.execute(f"ALTER TABLE {trigger_table} DISABLE TRIGGER {trigger}")
            started = time.perf_counter()
            for name in tables:
                cur.copy_expert(f"COPY {name} FROM STDIN", io.StringIO(dumps[name]))
            if trigger_table in tables:
                cur.execute(f"ALTER TABLE {trigger_table} ENABLE TRIGGER {trigger}")
            raw.commit()
            timings.append(time.perf_counter() - started)
        rows = sum(dump.count("\n") for dump in dumps.values())
        print(f"COPY floor, {len(tables)} tables ({rows:,} rows): " + ", ".join(f"{t:.2f} s" for t in timings))
        return min(timings)
    finally:
        raw.close()
