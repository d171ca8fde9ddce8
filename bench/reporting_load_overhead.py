"""What keeping the derived tables (services/transform/rollups.py: every rollup and customer table) costs the
loader.

Loads the same generated day files into the benchmark warehouse through
services.transform.load.load_uploads (one file a call), alternately with and without applying the rollups'
delta, each load in a transaction that is rolled back afterwards (the warehouse is left as it was). Files are
for days after the warehouse's last day, so every sale is new.

Usage: .venv/bin/python bench/reporting_load_overhead.py [--files 40 --per-day 334 --rounds 3]
Uses BENCH_DATABASE_URL (default cafeflow_bench_reporting).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL",
                                    "postgresql://postgres@127.0.0.1:5432/cafeflow_bench_reporting")
os.environ["TEST_DATABASE_URL"] = BENCH_DATABASE_URL
os.environ.setdefault("TEST_REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import services.transform.load as load_module  # noqa: E402
from services.transform import rollups  # noqa: E402
from services.common.rawstore import RawCipher, chunk_count, store_raw  # noqa: E402
from services.common.settings import Settings  # noqa: E402
from services.tools.generate import branch_name, generate  # noqa: E402
from services.transform.sale_builder import SaleBuilder  # noqa: E402
from tests.support import register_branches  # noqa: E402

WITH_STEP = rollups.apply_delta


def WITHOUT_STEP(session, lap=None) -> None:  # noqa: N802 - stands in for rollups.apply_delta
    session.execute(text("DELETE FROM delta_sale; DELETE FROM delta_line;"))


def load_rolled_back(engine, settings, cipher, raw: bytes, registered: list[str]) -> float:
    sha = hashlib.sha256(raw).hexdigest()
    with engine.connect() as conn:
        transaction = conn.begin()
        upload_id = conn.execute(text("""
            INSERT INTO ingest.upload (sha256, poster_key, filename, size_bytes, chunk_count, submitted_by, status)
            VALUES (:sha, 'bench-overhead', 'overhead.csv', :size, :chunks, 'bench', 'processing') RETURNING id"""),
            {"sha": sha, "size": len(raw), "chunks": chunk_count(len(raw))}).scalar()
        session = Session(bind=conn)
        store_raw(session, cipher, upload_id=upload_id, sha256_hex=sha, size=len(raw), source=io.BytesIO(raw))
        builder = SaleBuilder(settings.secret_key.get_secret_value(), expected_branch_key=None,
                              registered_branch_keys=registered)
        started = time.perf_counter()
        # One file per call (the batched loader's smallest batch), so the step runs once per file.
        job = load_module.UploadJob(upload_id, sha, chunk_count(len(raw)), builder)
        load_module.load_uploads(session, cipher, [job], chunk_rows=settings.parse_chunk_rows)
        session.flush()
        elapsed = time.perf_counter() - started
        transaction.rollback()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--per-day", type=int, default=334)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        last = conn.execute(text("SELECT max(local_date) FROM warehouse.rollup_sales_day")).scalar()
        registered = conn.execute(text("SELECT branch_key FROM ingest.branch")).scalars().all()
        total = conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction")).scalar()
    register_branches(engine, [branch_name(i) for i in range(args.files)])
    cipher = RawCipher(settings.secret_key.get_secret_value())
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp), branches=args.files, days=1, dialect="a", seed=9,
                         start=last + dt.timedelta(days=1), transactions_per_day=args.per_day)
        raws = [p.read_bytes() for p in files]
    print(f"warehouse: {total:,} transactions; {len(raws)} day files of {args.per_day} sales, {args.rounds} rounds")
    timings: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(args.rounds):
        for label, statement in (("without", WITHOUT_STEP), ("with", WITH_STEP)):
            rollups.apply_delta = statement
            timings[label].append(sum(load_rolled_back(engine, settings, cipher, raw, registered) for raw in raws))
    rollups.apply_delta = WITH_STEP
    without, with_step = statistics.median(timings["without"]), statistics.median(timings["with"])
    per_file = (with_step - without) / len(raws) * 1000
    print(f"load_uploads, {len(raws)} files: without the step {without:.2f} s, with it {with_step:.2f} s "
          f"(median of {args.rounds}): +{(with_step / without - 1) * 100:.1f}%, {per_file:.1f} ms per file")


if __name__ == "__main__":
    main()
