"""What one Prometheus scrape of beat costs: beat reads the uploads table at scrape time (uploads held past
their lease, the oldest claim, each branch's time since its last loaded file; services/common/metrics.py).
Builds a chain's worth of upload rows (BRANCHES branches x DAYS days of loaded files, plus some processing),
then times the collector: p50 and p99 of REPEAT scrapes, and EXPLAIN ANALYZE of the per-branch query.

    .venv/bin/python bench/beat_scrape.py [--branches 500] [--days 365] [--repeat 30]

Uses BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/cafeflow_bench_beat), rebuilt each run.
Prometheus scrapes every 15 s (compose), so a scrape well under a second is what matters."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cafeflow_bench_beat")

_BRANCHES = """
INSERT INTO ingest.branch (branch_key, name)
SELECT 'bench branch ' || b, 'Bench branch ' || b FROM generate_series(1, :branches) AS b
"""
# One loaded file a day per branch, posted with its branch's token (branch_id), a tenth by the admin
# (expected_branch_key, file_branch_keys); and a few uploads still processing.
_UPLOADS = """
INSERT INTO ingest.upload (sha256, poster_key, mode, filename, size_bytes, chunk_count, submitted_by, status,
                           attempts, started_at, created_at, branch_id, expected_branch_key, file_branch_keys)
SELECT md5(b || '-' || d), 'bench', 'append', 'bench_' || b || '_' || d || '.csv', 50000, 1, 'bench',
       CASE WHEN d = 0 AND b % 50 = 0 THEN 'processing' ELSE 'loaded' END, 1,
       now() - make_interval(days => d, hours => 3), now() - make_interval(days => d),
       CASE WHEN b % 10 = 0 THEN NULL ELSE br.id END,
       CASE WHEN b % 10 = 0 THEN br.branch_key END,
       CASE WHEN b % 10 = 0 THEN ARRAY[br.branch_key] ELSE '{}' END
FROM generate_series(1, :branches) AS b
JOIN ingest.branch br ON br.branch_key = 'bench branch ' || b
CROSS JOIN generate_series(0, :days - 1) AS d
"""


def build(settings, branches: int, days: int) -> None:
    from services.common.migrate import upgrade_all
    from tests.support import ensure_database

    ensure_database(settings.database_url)
    upgrade_all(settings.database_url)
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE ingest.upload, ingest.branch RESTART IDENTITY CASCADE"))
        conn.execute(text(_BRANCHES), {"branches": branches})
        conn.execute(text(_UPLOADS), {"branches": branches, "days": days})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE ingest.upload"))
        count = conn.execute(text("SELECT count(*) FROM ingest.upload")).scalar()
    engine.dispose()
    print(f"uploads: {count:,} ({branches} branches x {days} days)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    import tests.support  # noqa: F401 - the test secrets in the environment, as the other benches have them
    from services.common.metrics import _BRANCH_FILE_AGE, UploadStateCollector
    from services.common.settings import Settings

    settings = Settings(DATABASE_URL=BENCH_DATABASE_URL, CAFEFLOW_ENV="development")
    build(settings, args.branches, args.days)
    collector = UploadStateCollector(settings.psycopg2_dsn, settings.task_time_limit)
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        families = {family.name: family for family in collector.collect()}
        timings.append(time.perf_counter() - started)
    assert families["cafeflow_uploads_table_up"].samples[0].value == 1, "the scrape failed (statement timeout?)"
    timings.sort()
    p99 = timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]
    print(f"beat scrape (uploads table, fresh connection): p50 {statistics.median(timings) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms over {args.repeat}; branches exported: "
          f"{len(families['cafeflow_branch_last_file_age_seconds'].samples)}, held past lease: "
          f"{families['cafeflow_uploads_held_past_lease'].samples[0].value:.0f}")
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        plan = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + _BRANCH_FILE_AGE)).scalars().all()
    engine.dispose()
    print("per-branch query:", plan[-1].strip(), "|", plan[-2].strip())
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
