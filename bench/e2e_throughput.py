"""End-to-end load throughput against two baselines, on the same generated data, in one run.

  ours         HTTP post of every file (cafeflow upload, 4 at a time) until all are `loaded`,
               with gunicorn (2 workers) and a Celery worker (2 processes) as deployed; twice, on the same
               files: the worker parsing row by row (VECTORISED_PARSE=false, main's path before issue 14)
               and vectorised (the default)
  copy floor   a plain COPY of the final fact rows into the same tables (same indexes and keys); the best of
               three runs, so a moment of contention on a shared machine cannot flatter the ratio. The target
               is quoted against this one.
  copy floor,  the same, for every warehouse table the load writes (facts, items, which upload contained
  all tables   each sale, hourly, daily and chain rollups, customer tables): what writing our final rows
               costs with none of the parsing, validation, dedupe or aggregation. Printed for context only.
  row by row   the chain's first pipeline: one INSERT per sale and per item, a SELECT per product
               and branch lookup, one commit per file

Usage: .venv/bin/python bench/e2e_throughput.py [--branches 100 --days 3 --per-day 334]
Prints the figures and the ratios (ours / floor, ours / row-by-row). Uses its own database
(BENCH_DATABASE_URL, default cafeflow_bench on the local server) and Redis db 14.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import re
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEST_DATABASE_URL", os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cafeflow_bench"))
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")

import psycopg2  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench.copy_floor import FACT_TABLES, LOAD_TABLES, run_copy_floor  # noqa: E402
from services.common.crypto import CUSTOMER_PSEUDONYM_KEY, derive_key, keyed_hex  # noqa: E402
from services.common.migrate import upgrade_all  # noqa: E402
from services.common.settings import Settings  # noqa: E402
from services.tools.generate import branch_name, generate  # noqa: E402
from services.tools.upload_client import run as upload_files  # noqa: E402
from tests.support import ADMIN_TOKEN, Stack, ensure_database, reset_state  # noqa: E402

ITEM = re.compile(r"^(?:(Regular|Large) )?(.+?)(?: - ([^-]+?))? - (\d+\.\d\d)$")


def fresh_schema(settings: Settings):
    ensure_database(settings.database_url)
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS ingest, warehouse CASCADE"))
    upgrade_all(settings.database_url)
    return engine


def counts(engine) -> tuple[int, int, Decimal]:
    with engine.connect() as conn:
        return conn.execute(text("""SELECT (SELECT count(*) FROM warehouse.fact_transaction),
                                           (SELECT count(*) FROM warehouse.fact_transaction_item),
                                           (SELECT coalesce(sum(total), 0) FROM warehouse.fact_transaction)""")).one()


def run_ours(files_dir: Path, engine, redis_client, workdir: Path, branches: list[str],
             vectorised: bool = True) -> float:
    reset_state(engine, redis_client, branches=branches)
    stack = Stack(workdir)
    try:
        url = stack.start_ingest()
        stack.start_worker(concurrency=int(os.environ.get("BENCH_WORKER_CONCURRENCY", "2")),
                           env={"VECTORISED_PARSE": "true" if vectorised else "false"})
        started = time.perf_counter()
        code = upload_files([files_dir], url=url, token=ADMIN_TOKEN, wait=True, timeout=3600, parallel=4)
        elapsed = time.perf_counter() - started
    finally:
        stack.stop()
    if code != 0:
        raise SystemExit(f"cafeflow upload exited {code}")
    return elapsed


def run_row_by_row(settings: Settings, files: list[Path]) -> float:
    """One statement per row and per item, with lookups, the way the first pipeline loaded."""
    key = derive_key(settings.secret_key.get_secret_value(), CUSTOMER_PSEUDONYM_KEY)
    raw = psycopg2.connect(settings.psycopg2_dsn)
    cur = raw.cursor()
    cur.execute(f"TRUNCATE {', '.join(FACT_TABLES)}")
    raw.commit()
    started = time.perf_counter()
    serial = 0
    for path in files:
        with path.open(newline="") as handle:
            for ts, branch, customer, basket, total, method, _card in csv.reader(handle):
                serial += 1
                cur.execute("SELECT id FROM warehouse.dim_branch WHERE name = %s", (branch,))
                branch_id = cur.fetchone()[0]
                occurred = dt.datetime.strptime(ts, "%d/%m/%Y %H:%M")
                cur.execute("""INSERT INTO warehouse.fact_transaction
                               (natural_key, branch_id, occurred_at, total, payment_method, customer_key,
                                source, source_line)
                               VALUES (md5(%s)::uuid, %s, %s::timestamp AT TIME ZONE 'Europe/London', %s, %s, %s,
                                       'file', %s) RETURNING id""",
                            (f"rbr:{serial}", branch_id, occurred, total, method,
                             keyed_hex(key, customer.casefold()), serial))
                transaction_id = cur.fetchone()[0]
                for line_no, item in enumerate(basket.split(", "), 1):
                    size, name, flavour, price = ITEM.match(item).groups()
                    product_key = f"{name.casefold()}|{(size or '').casefold()}|{(flavour or '').casefold()}"
                    cur.execute("SELECT id FROM warehouse.dim_product WHERE product_key = %s", (product_key,))
                    product_id = cur.fetchone()[0]
                    cur.execute("""INSERT INTO warehouse.fact_transaction_item
                                   (transaction_id, line_no, product_id, quantity, unit_price)
                                   VALUES (%s, %s, %s, 1, %s)""", (transaction_id, line_no, product_id, price))
        raw.commit()
    elapsed = time.perf_counter() - started
    raw.close()
    return elapsed


def data_arguments(doc: str) -> argparse.Namespace:
    """The generated data set, shared by the benchmarks so their figures describe the same files."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--branches", type=int, default=100)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--per-day", type=int, default=334)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def generate_day_files(out: Path, args: argparse.Namespace) -> list[Path]:
    return generate(out, branches=args.branches, days=args.days, dialect="a", seed=args.seed,
                    start=dt.date(2024, 3, 4), transactions_per_day=args.per_day)


def branch_names(args: argparse.Namespace) -> list[str]:
    return [branch_name(i) for i in range(args.branches)]


def main() -> None:
    args = data_arguments(__doc__)

    settings = Settings()
    engine = fresh_schema(settings)
    import redis
    redis_client = redis.Redis.from_url(settings.redis_url)

    with tempfile.TemporaryDirectory(prefix="cafeflow-bench-") as tmp:
        workdir = Path(tmp)
        files = generate_day_files(workdir / "files", args)
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        print(f"data: {len(files)} files, {size_mb:.1f} MB, generated with seed {args.seed}")
        print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

        row_wise = run_ours(workdir / "files", engine, redis_client, workdir, branch_names(args), vectorised=False)
        loaded_row_wise = counts(engine)
        ours = run_ours(workdir / "files", engine, redis_client, workdir, branch_names(args), vectorised=True)
        transactions, items, revenue = counts(engine)
        print(f"loaded: {transactions} transactions, {items} items, revenue {revenue}")
        assert loaded_row_wise == (transactions, items, revenue), "the two parse paths loaded different rows"

        floor = run_copy_floor(settings.psycopg2_dsn)
        assert counts(engine) == (transactions, items, revenue), "COPY floor did not restore the same rows"
        floor_all = run_copy_floor(settings.psycopg2_dsn, LOAD_TABLES)
        assert counts(engine) == (transactions, items, revenue), "COPY floor did not restore the same rows"
        row_by_row = run_row_by_row(settings, files)
        assert counts(engine)[:2] == (transactions, items), "row-by-row loader loaded different rows"

    print("load average at end: {:.2f} {:.2f} {:.2f} (on a shared machine, other work slows every loader)".format(
        *os.getloadavg()))
    print()
    print(f"{'loader':<28}{'seconds':>10}{'transactions/s':>18}")
    for name, seconds in (("ours, row-wise parse", row_wise), ("ours: HTTP post to loaded", ours),
                          ("COPY floor", floor), ("COPY floor, all tables", floor_all), ("row by row", row_by_row)):
        print(f"{name:<28}{seconds:>10.2f}{transactions / seconds:>18,.0f}")
    print()
    print(f"ours / COPY floor (throughput):  {floor / ours:.3f}x   (target >= 0.25; row-wise parse "
          f"{floor / row_wise:.3f}x)")
    print(f"ours / COPY floor, all tables:   {floor_all / ours:.3f}x   (context: the same final rows, written by COPY; "
          f"row-wise parse {floor_all / row_wise:.3f}x)")
    print(f"ours / row by row (throughput):  {row_by_row / ours:.1f}x   (target >= 30; row-wise parse "
          f"{row_by_row / row_wise:.1f}x)")
    print(f"vectorised / row-wise parse, end to end: {row_wise / ours:.2f}x")


if __name__ == "__main__":
    main()
