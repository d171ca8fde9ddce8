"""Builds the benchmark warehouse for bench/reporting_latency.py: generated branch files loaded through the
transform code (the same load_uploads the worker runs, called in-process to skip HTTP), resumable.

Shape: --branches branches (default 100) x --per-day sales a day (default 334) x as many days from
2024-01-01 as --transactions needs. Each branch's month is one upload (a month-long till export,
which the parser accepts), so per-file overhead does not dominate a 10M build.

Usage: .venv/bin/python bench/reporting_warehouse.py --transactions 10000000 [--processes 2]
Uses BENCH_DATABASE_URL (default cafeflow_bench_reporting on the local server).
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL",
                                    "postgresql://postgres@127.0.0.1:5432/cafeflow_bench_reporting")
os.environ["TEST_DATABASE_URL"] = BENCH_DATABASE_URL
os.environ.setdefault("TEST_REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from services.common.migrate import upgrade_all  # noqa: E402
from services.common.rawstore import RawCipher  # noqa: E402
from services.common.settings import Settings  # noqa: E402
from services.tools.generate import branch_name  # noqa: E402
from services.transform.load import UploadJob, load_uploads  # noqa: E402
from services.transform.sale_builder import SaleBuilder  # noqa: E402
from bench.stored_uploads import store_upload  # noqa: E402
from tests.support import ensure_database, register_branches  # noqa: E402

START = dt.date(2024, 1, 1)
SEED = 4


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--branches", type=int, default=100)
    parser.add_argument("--per-day", type=int, default=334)
    parser.add_argument("--processes", type=int, default=2)
    return parser.parse_args()


def months(days: int) -> list[tuple[dt.date, int]]:
    """(first day, number of days) per calendar month covering `days` days from START."""
    out, day, end = [], START, START + dt.timedelta(days=days)
    while day < end:
        nxt = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        out.append((day, (min(nxt, end) - day).days))
        day = nxt
    return out


def load_month(job: tuple[int, dt.date, int, int, int]) -> int:
    """Generates one month of every branch in [first, last) and loads each branch-month as one upload."""
    branches_from, month_start, days, per_day, branches_to = job
    settings = Settings()
    engine = create_engine(settings.database_url)
    cipher = RawCipher(settings.secret_key.get_secret_value())
    loaded = 0
    with tempfile.TemporaryDirectory(prefix="cafeflow-bench-rep-") as tmp, engine.connect() as conn:
        registered = conn.execute(text("SELECT branch_key FROM ingest.branch")).scalars().all()
        conn.rollback()
        for b in range(branches_from, branches_to):
            name = f"bench_{b}_{month_start:%Y-%m}.csv"
            if conn.execute(text("SELECT 1 FROM ingest.upload WHERE filename = :f AND status = 'loaded'"),
                            {"f": name}).scalar():
                conn.rollback()
                continue
            # A build killed mid-load left this month's upload row stored but not loaded (its load rolled
            # back): drop it (its chunks go with it) rather than collide with it on the same sha256.
            conn.execute(text("DELETE FROM ingest.upload WHERE filename = :f AND status <> 'loaded'"), {"f": name})
            conn.commit()
            files = _generate_branch(Path(tmp), b, month_start, days, per_day)
            raw = b"".join(p.read_bytes() for p in files)
            for p in files:
                p.unlink()
            stored = store_upload(conn, cipher, raw, name)
            with Session(bind=conn) as session:
                builder = SaleBuilder(settings.secret_key.get_secret_value(), expected_branch_key=None,
                                      registered_branch_keys=registered)
                job = UploadJob(stored.upload_id, stored.sha256_hex, stored.chunk_count, builder)
                result = load_uploads(session, cipher, [job], chunk_rows=settings.parse_chunk_rows)
                if result.failed:
                    raise SystemExit(f"{name} did not load: {result.failed[stored.upload_id]}")
                session.commit()
            loaded += result.loaded[stored.upload_id].rows_loaded
    engine.dispose()
    return loaded


def _generate_branch(tmp: Path, index: int, month_start: dt.date, days: int, per_day: int) -> list[Path]:
    # What generate() writes for this branch alone: a branch's files depend only on (seed, branch, day).
    from services.tools import generate as gen

    customers = gen._customer_pool(SEED)
    out = tmp / str(index)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for d in range(days):
        day = month_start + dt.timedelta(days=d)
        path = out / f"{gen.branch_slug(branch_name(index))}_{day:%d-%m-%Y}.csv"
        gen._write_file(path, "a", branch_name(index), day, per_day, SEED, customers)
        paths.append(path)
    return paths


def main() -> None:
    args = arguments()
    days = math.ceil(args.transactions / (args.branches * args.per_day))
    settings = Settings()
    ensure_database(settings.database_url)
    upgrade_all(settings.database_url)
    engine = create_engine(settings.database_url)
    register_branches(engine, [branch_name(i) for i in range(args.branches)])
    jobs = []
    for month_start, n_days in months(days):
        half = args.branches // 2
        jobs.append((0, month_start, n_days, args.per_day, half))
        jobs.append((half, month_start, n_days, args.per_day, args.branches))
    print(f"building {args.branches} branches x {days} days x {args.per_day} sales "
          f"({args.branches * days * args.per_day:,} transactions) into {settings.database_url}", flush=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.processes) as pool:
        for job, loaded in zip(jobs, pool.map(load_month, jobs)):
            print(f"{job[1]:%Y-%m} branches {job[0]}-{job[4] - 1}: +{loaded:,} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        total = conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction")).scalar()
    print(f"warehouse: {total:,} transactions ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
