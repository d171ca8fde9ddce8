"""Time from the end of a fault to every accepted upload loaded, with DEFAULT timing settings (issue 12).

Each fault hits a running stack (ingest, beat, one worker of 2 processes) in the middle of a backfill:

  worker SIGKILL      the whole worker (children too) killed mid-load of a large file; a new one started at once
  Redis restart empty the stack's Redis (a redis-server of its own, no persistence) killed and started again
  PostgreSQL fast     the stack's PostgreSQL (a cluster of its own, on its own port) stopped with -m fast, started
  PostgreSQL crash    the same stopped with -m immediate (a crash: recovery from the WAL at start)

"Fault end" is the new worker started, Redis answering again, PostgreSQL accepting connections again. Every
scenario checks that the warehouse then holds exactly the files' sales (count and revenue). Target: < 60 s each
(before leases and the lost-message sweep: up to STUCK_UPLOAD_SECONDS, 900 s).

Usage: flock /tmp/cafeflow-bench.lock .venv/bin/python bench/recovery.py [--files 120 --per-day 334]
Uses its own database (BENCH_DATABASE_URL, default cafeflow_bench_recovery on the local server), Redis db 13, and
for the Redis and PostgreSQL faults a server of its own on a free port (never the shared ones).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import signal
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEST_DATABASE_URL", os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cafeflow_bench_recovery"))
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")

import redis  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from services.common.migrate import upgrade_all  # noqa: E402
from services.tools.generate import branch_name, generate  # noqa: E402
from services.tools.upload_client import run as upload_files  # noqa: E402
from tests.support import (ADMIN_TOKEN, TEST_DATABASE_URL, TEST_REDIS_URL, LocalPostgres, LocalRedis,  # noqa: E402
                           Stack, ensure_database, reset_state, wait_until)

TIMEOUT = 900


def expected_of(files: list[Path]) -> tuple[int, Decimal]:
    count, revenue = 0, Decimal(0)
    for path in files:
        with path.open(newline="") as handle:
            for row in csv.reader(handle):
                count += 1
                revenue += Decimal(row[4])
    return count, revenue


def statuses(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, count(*) FROM ingest.upload GROUP BY status")).all())


def figures(engine) -> tuple[int, Decimal]:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT count(*), coalesce(sum(total), 0) FROM warehouse.fact_transaction")
                                  ).one())


def fresh(url: str, branches: list[str], redis_url: str):
    url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    ensure_database(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS ingest, warehouse, orders CASCADE"))
    upgrade_all(url)
    client = redis.Redis.from_url(redis_url)
    reset_state(engine, client, branches=branches)
    client.close()
    return engine


def post(url: str, files_dir: Path) -> None:
    code = upload_files([files_dir], url=url, token=ADMIN_TOKEN, wait=False, timeout=TIMEOUT, parallel=4)
    if code != 0:
        raise SystemExit(f"cafeflow upload exited {code}")


def wait_all_loaded(engine, total: int, since: float) -> float:
    wait_until(lambda: statuses(engine) == {"loaded": total}, TIMEOUT,
               lambda: f"not all loaded {time.monotonic() - since:.0f} s after the fault: {statuses(engine)}",
               interval=0.5)
    return time.monotonic() - since


def backend_busy(engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("""
            SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cafeflow-worker' AND state = 'active'
              AND (query ILIKE 'COPY stage%' OR query ILIKE '%INSERT INTO warehouse%')""")).scalar())


def stack_in(directory: Path) -> Stack:
    directory.mkdir(parents=True, exist_ok=True)
    return Stack(directory)


def report(name: str, seconds: float, pending: int, engine, expected) -> None:
    got = figures(engine)
    exact = "exact" if got == expected else f"WRONG: {got} != {expected}"
    print(f"{name:<22} {seconds:6.1f} s from fault end to all loaded  ({pending} uploads unfinished at the fault; "
          f"figures {exact})", flush=True)


def worker_sigkill(work: Path, files_dir: Path, big_dir: Path, branches, expected, total: int) -> None:
    engine = fresh(TEST_DATABASE_URL, branches, TEST_REDIS_URL)
    stack = stack_in(work / "kill")
    try:
        url = stack.start_ingest()
        stack.start_beat()
        worker = stack.start_worker(concurrency=2)
        post(url, big_dir)
        post(url, files_dir)
        wait_until(lambda: backend_busy(engine), 120, "the big load never reached the database")
        worker.kill(signal.SIGKILL)
        pending = total - statuses(engine).get("loaded", 0)
        stack.start_worker(concurrency=2)
        report("worker SIGKILL", wait_all_loaded(engine, total, time.monotonic()), pending, engine, expected)
    finally:
        stack.stop()
        engine.dispose()


def redis_restart(work: Path, files_dir: Path, branches, expected, total: int) -> None:
    engine = fresh(TEST_DATABASE_URL, branches, TEST_REDIS_URL)
    broker = LocalRedis(work)
    env = {"REDIS_URL": broker.url}
    stack = stack_in(work / "redis")
    try:
        url = stack.start_ingest(env)
        stack.start_beat(env)
        worker = stack.start_worker(concurrency=2, env=env)
        post(url, files_dir)
        broker.stop()
        pending = total - statuses(engine).get("loaded", 0)
        broker.start()
        back = time.monotonic()
        # Celery's Redis transport can end the worker on a broker loss ("Unrecoverable error: AttributeError
        # ... 'hostname'"): its supervisor (Kubernetes, compose's restart policy) starts it again; so does this.
        time.sleep(2)
        if worker.popen.poll() is not None:
            print("  the worker exited when Redis went away; restarted as its supervisor would", flush=True)
            stack.start_worker(concurrency=2, env=env)
        report("Redis restart empty", wait_all_loaded(engine, total, back), pending, engine, expected)
    finally:
        stack.stop()
        broker.stop()
        engine.dispose()


def postgres_restart(work: Path, files_dir: Path, branches, expected, total: int, mode: str) -> None:
    cluster = LocalPostgres("cafeflow_bench_recovery")
    try:
        engine = fresh(cluster.url, branches, TEST_REDIS_URL)
        env = {"DATABASE_URL": cluster.url}
        stack = stack_in(work / f"pg-{mode}")
        try:
            url = stack.start_ingest(env)
            stack.start_beat(env)
            stack.start_worker(concurrency=2, env=env)
            post(url, files_dir)
            pending = total - statuses(engine).get("loaded", 0)
            engine.dispose()
            cluster.stop(mode)
            cluster.start()
            name = {"fast": "PostgreSQL fast", "immediate": "PostgreSQL crash"}[mode]
            report(name, wait_all_loaded(engine, total, time.monotonic()), pending, engine, expected)
        finally:
            stack.stop()
            engine.dispose()
    finally:
        cluster.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=120, help="day files in the backfill")
    parser.add_argument("--per-day", type=int, default=334, help="sales per day file")
    parser.add_argument("--big", type=int, default=60_000, help="sales of the large file the killed worker loads")
    parser.add_argument("--only", choices=["kill", "redis", "pg-fast", "pg-crash"], action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cafeflow-bench-recovery-") as tmp:
        work = Path(tmp)
        branches_n = max(1, args.files // 30)
        files = generate(work / "files", branches=branches_n, days=-(-args.files // branches_n), dialect="a",
                         seed=12, start=dt.date(2024, 1, 1), transactions_per_day=args.per_day)
        big = generate(work / "big", branches=1, days=1, dialect="a", seed=13, start=dt.date(2023, 6, 1),
                       transactions_per_day=args.big)
        branches = sorted({branch_name(i) for i in range(max(branches_n, 1))})
        expected = expected_of(files)
        print(f"backfill: {len(files)} day files, {expected[0]} sales; large file: {args.big} sales; default "
              f"settings; load average before: {os.getloadavg()[0]:.2f}", flush=True)
        chosen = args.only or ["kill", "redis", "pg-fast", "pg-crash"]
        if "kill" in chosen:
            big_expected = expected_of(big)
            worker_sigkill(work, work / "files", work / "big", branches, (expected[0] + big_expected[0],
                                                                          expected[1] + big_expected[1]),
                           len(files) + len(big))
        if "redis" in chosen:
            redis_restart(work, work / "files", branches, expected, len(files))
        if "pg-fast" in chosen:
            postgres_restart(work, work / "files", branches, expected, len(files), "fast")
        if "pg-crash" in chosen:
            postgres_restart(work, work / "files", branches, expected, len(files), "immediate")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
