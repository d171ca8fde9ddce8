"""Corrections on the 10M-sale benchmark warehouse (bench/reporting_warehouse.py), p50 and p99 over --tries:

  retract a day file   one branch's day file (--per-day sales, for a day after the warehouse's last) is loaded
                       as an append upload, then retracted: corrections.retract_upload, the worker's code, in
                       one transaction; the retraction is timed, commit included
  replace a day        a corrected copy of one branch-day already in the warehouse (one sale voided, one rung
                       up a minute later) loaded in replace mode through load_uploads; timed, commit included
  replace a month      the corrected day files of one branch-month loaded in replace mode one after another
                       (30 or 31 loads); the month's total

Each branch-month is then put back with its original day files (replace mode again), so the warehouse ends
with the same sales it started with; `cafeflow warehouse check` on it stays exact.

Usage: .venv/bin/python bench/corrections_latency.py [--tries 20] [--check]
Uses BENCH_DATABASE_URL (default cafeflow_bench_reporting), built by bench/reporting_warehouse.py.
"""
from __future__ import annotations

import argparse
import datetime as dt
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

from bench.reporting_warehouse import _generate_branch, months  # noqa: E402
from bench.stored_uploads import store_upload  # noqa: E402
from services.common.rawstore import RawCipher  # noqa: E402
from services.common.settings import Settings  # noqa: E402
from services.transform.corrections import retract_upload  # noqa: E402
from services.transform.load import UploadJob, load_uploads  # noqa: E402
from services.transform.sale_builder import SaleBuilder  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class Loader:
    def __init__(self, engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.cipher = RawCipher(settings.secret_key.get_secret_value())
        with engine.connect() as conn:
            self.registered = conn.execute(text("SELECT branch_key FROM ingest.branch")).scalars().all()

    def load(self, raw: bytes, name: str, mode: str) -> float:
        """Stores and loads one upload; returns the seconds of the load's transaction, commit included."""
        with self.engine.connect() as conn:
            stored = store_upload(conn, self.cipher, raw, name, mode=mode)
            builder = SaleBuilder(self.settings.secret_key.get_secret_value(), expected_branch_key=None,
                                  registered_branch_keys=self.registered)
            with Session(bind=conn) as session:
                started = time.perf_counter()
                result = load_uploads(session, self.cipher, [UploadJob(stored.upload_id, stored.sha256_hex,
                                                                       stored.chunk_count, builder, mode)],
                                      chunk_rows=self.settings.parse_chunk_rows)
                session.commit()
                elapsed = time.perf_counter() - started
        if result.failed:
            raise SystemExit(f"{name} did not load: {result.failed}")
        return elapsed

    def retract(self, upload_id: int) -> float:
        with self.engine.connect() as conn, Session(bind=conn) as session:
            session.execute(text("UPDATE ingest.upload SET retract_requested_at = now(), retract_requested_by = "
                                 "'bench', retract_reason = 'bench' WHERE id = :id"), {"id": upload_id})
            session.commit()
            started = time.perf_counter()
            assert retract_upload(session, upload_id) == "retracted"
            session.commit()
            return time.perf_counter() - started


def corrected(raw: bytes) -> bytes:
    """The branch's corrected copy of a day file: the first sale voided, the second rung up a minute later."""
    lines = raw.splitlines(keepends=True)
    stamp = dt.datetime.strptime(lines[1][:16].decode(), "%d/%m/%Y %H:%M")
    later = (stamp + dt.timedelta(minutes=1)).strftime("%d/%m/%Y %H:%M").encode()
    return lines[1].replace(lines[1][:16], later, 1) + b"".join(lines[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--per-day", type=int, default=334)
    parser.add_argument("--check", action="store_true", help="run `cafeflow warehouse check` at the end (slow)")
    args = parser.parse_args()
    settings = Settings()
    engine = create_engine(settings.database_url)
    loader = Loader(engine, settings)
    with engine.connect() as conn:
        last = conn.execute(text("SELECT max(local_date) FROM warehouse.rollup_branch_day")).scalar()
        branches = conn.execute(text("SELECT count(*) FROM ingest.branch")).scalar()
        total = conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction")).scalar()
    print(f"warehouse: {total:,} sales, {branches} branches, last day {last}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    stamp = time.strftime("%Y%m%d%H%M%S")

    retractions = []
    with tempfile.TemporaryDirectory(prefix="cafeflow-bench-corrections-") as tmp:
        for n in range(args.tries):
            [path] = _generate_branch(Path(tmp) / "extra", n, last + dt.timedelta(days=1), 1, args.per_day)
            loader.load(path.read_bytes(), f"bench-extra-{stamp}-{n}.csv", "append")
            with engine.connect() as conn:
                upload_id = conn.execute(text("SELECT max(id) FROM ingest.upload")).scalar()
            retractions.append(loader.retract(upload_id))
        day_replaces, month_replaces = [], []
        # Whole months only (the first --tries months of the warehouse, one branch each).
        full_months = [(start, days) for start, days in months((last - dt.date(2024, 1, 1)).days + 1)
                       if days >= 28][:args.tries]
        for n, (month_start, days) in enumerate(full_months):
            originals = [p.read_bytes() for p in _generate_branch(Path(tmp) / f"m{n}", n, month_start, days,
                                                                   args.per_day)]
            month = 0.0
            for d, raw in enumerate(originals):
                seconds = loader.load(corrected(raw), f"bench-fix-{stamp}-{n}-{d}.csv", "replace")
                day_replaces.append(seconds)
                month += seconds
            month_replaces.append(month)
            for d, raw in enumerate(originals):          # put the month back as it was
                loader.load(raw, f"bench-restore-{stamp}-{n}-{d}.csv", "replace")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"\n{'correction':<36}{'tries':>6}{'p50 ms':>10}{'p99 ms':>10}")
    for label, values in ((f"retract a day file ({args.per_day} sales)", retractions),
                          ("replace a day (corrected day file)", day_replaces),
                          (f"replace a branch-month ({len(day_replaces) // max(1, len(month_replaces))} files)",
                           month_replaces)):
        print(f"{label:<36}{len(values):>6}{statistics.median(values) * 1000:>10.1f}"
              f"{percentile(values, 0.99) * 1000:>10.1f}")
    print("\ntarget: a day file retracted in under 200 ms")
    if args.check:
        from services.transform.rollups import differences
        with Session(engine) as session:
            found = differences(session)
        print(f"warehouse check: {'exact' if not found else found}")


if __name__ == "__main__":
    main()
