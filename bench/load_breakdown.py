"""Where a batched load spends its time, step by step, on the data of bench/e2e_throughput.py.

The uploads are stored as ingest stores them, then loaded in-process in batches of LOAD_BATCH_UPLOADS (the
worker's batch size, 32 by default) by the worker's own load_uploads, one process, nothing else running;
each step's time comes from the loader's timings (the same figures the worker logs as timings_ms), which
time every derived table (services/transform/rollups.py) on its own.

Usage: .venv/bin/python bench/load_breakdown.py [--branches 100 --days 3 --per-day 334 --seed 1]
Uses BENCH_DATABASE_URL (default cafeflow_bench), which it empties.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEST_DATABASE_URL", os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cafeflow_bench"))
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")

from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.e2e_throughput import branch_names, fresh_schema, generate_day_files  # noqa: E402
from bench.stored_uploads import store_upload  # noqa: E402
from services.common.rawstore import RawCipher  # noqa: E402
from services.common.settings import Settings  # noqa: E402
from services.transform import load as loader  # noqa: E402
from services.transform.sale_builder import SaleBuilder, ValueMemo  # noqa: E402
from tests.support import register_branches  # noqa: E402

def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--branches", type=int, default=100)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--per-day", type=int, default=334)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    settings = Settings()
    engine = fresh_schema(settings)
    register_branches(engine, branch_names(args))
    secret = settings.secret_key.get_secret_value()
    cipher = RawCipher(secret)
    with tempfile.TemporaryDirectory(prefix="cafeflow-bench-breakdown-") as tmp, engine.connect() as conn:
        files = generate_day_files(Path(tmp), args)
        registered = conn.execute(text("SELECT branch_key FROM ingest.branch")).scalars().all()
        conn.rollback()
        stored = [store_upload(conn, cipher, path.read_bytes(), path.name) for path in files]
        batch_size = settings.load_batch_uploads
        steps: Counter[str] = Counter()
        started = time.perf_counter()
        for first in range(0, len(stored), batch_size):
            batch = stored[first:first + batch_size]
            memo = ValueMemo()
            jobs = [loader.UploadJob(u.upload_id, u.sha256_hex, u.chunk_count,
                                     SaleBuilder(secret, expected_branch_key=None, registered_branch_keys=registered,
                                                 memo=memo)) for u in batch]
            with Session(bind=conn) as session:
                result = loader.load_uploads(session, cipher, jobs, chunk_rows=settings.parse_chunk_rows)
                session.commit()
            if result.failed:
                raise SystemExit(f"uploads failed: {result.failed}")
            # Every upload of a batch carries the batch's timings: count them once.
            steps.update(next(iter(result.loaded.values())).timings_ms)
        elapsed = time.perf_counter() - started
        transactions = conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction")).scalar()

    print(f"{len(files)} files, {transactions:,} transactions loaded in batches of {batch_size}, one process: "
          f"{elapsed:.2f} s ({transactions / elapsed:,.0f} transactions/s)")
    total = sum(steps.values())
    print(f"\n{'step':<22}{'seconds':>9}{'share':>8}")
    for step, ms in steps.most_common():
        print(f"{step:<22}{ms / 1000:>9.2f}{ms / total:>8.0%}")

if __name__ == "__main__":
    main()
