"""What the bookkeeping of corrections adds to a normal load: bench/e2e_throughput.py's "ours" measurement
(HTTP post of every generated day file until all are loaded, gunicorn with 2 workers and a Celery worker
with 2 processes) for the code before corrections and for this code, on the same files, alternating, in one
run.

"Before" is a git commit (default: main just before corrections were merged, a981b93), checked out into a temporary
worktree and run from there (its own migrations, its own processes) against its own database; "after" is
this checkout. The bookkeeping measured: which uploads contain each sale (warehouse.upload_sale), the
(branch, time) and (customer, time) indexes on the facts, the per-branch locks, the delta the rollups are
kept from.

Usage: .venv/bin/python bench/corrections_overhead.py [--before a981b93] [--rounds 3]
                                                    [--branches 100 --days 3 --per-day 334]
Uses databases cafeflow_bench_before and cafeflow_bench_after on the local server (BENCH_SERVER_URL) and Redis
db 7 (BENCH_REDIS_URL).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from services.common.naming import branch_key  # noqa: E402
from services.tools.generate import branch_name, generate  # noqa: E402
from services.tools.upload_client import run as upload_files  # noqa: E402

SERVER = os.environ.get("BENCH_SERVER_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef0123456789"
SECRET = "bench-secret-key-0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Version:
    """One version of the code: a tree to run it from and a database of its own."""

    def __init__(self, label: str, tree: Path) -> None:
        self.label, self.tree = label, tree
        self.database_url = f"{SERVER}/cafeflow_bench_{label}"
        self.env = {**os.environ, "CAFEFLOW_ENV": "test", "DATABASE_URL": self.database_url, "REDIS_URL": REDIS_URL,
                    "CAFEFLOW_SECRET_KEY": SECRET, "CAFEFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
                    "TRANSFORM_QUEUE": "transform-bench", "WORKER_METRICS_PORT": "0", "BEAT_METRICS_PORT": "0",
                    "LOG_LEVEL": "WARNING", "PYTHONPATH": str(tree)}

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "services.cli", *args]

    def fresh_database(self, branches: list[str]) -> None:
        admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "cafeflow_bench_{self.label}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "cafeflow_bench_{self.label}"'))
        admin.dispose()
        subprocess.run(self.cli("migrate"), cwd=self.tree, env=self.env, check=True, capture_output=True)
        engine = create_engine(self.database_url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO ingest.branch (name, branch_key) VALUES (:name, :key)"),
                         [{"name": name, "key": branch_key(name)} for name in branches])
        engine.dispose()

    def load(self, files: Path, log_dir: Path) -> float:
        port = free_port()
        logs = []
        processes = []
        try:
            for name, args in (("ingest", ["serve", "ingest", "--port", str(port), "--host", "127.0.0.1",
                                           "--workers", "2"]),
                               ("worker", ["worker", "--concurrency", "2"])):
                log = (log_dir / f"{self.label}-{name}.log").open("wb")
                logs.append(log)
                processes.append(subprocess.Popen(self.cli(*args), cwd=self.tree, env=self.env, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.label}: ingest did not start; see {log_dir}")
                time.sleep(0.2)
            time.sleep(3)           # the worker's processes up and consuming
            started = time.perf_counter()
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                code = upload_files([files], url=url, token=ADMIN_TOKEN, wait=True, timeout=3600, parallel=4)
            elapsed = time.perf_counter() - started
            if code != 0:
                raise SystemExit(f"{self.label}: cafeflow upload exited {code}; see {log_dir}")
            return elapsed
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            for log in logs:
                log.close()

    def loaded(self) -> tuple:
        engine = create_engine(self.database_url)
        with engine.connect() as conn:
            figures = conn.execute(text("SELECT count(*), sum(total) FROM warehouse.fact_transaction")).one()
        engine.dispose()
        return tuple(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="a981b93", help="git commit of the code before corrections")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--branches", type=int, default=100)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--per-day", type=int, default=334)
    args = parser.parse_args()
    branches = [branch_name(i) for i in range(args.branches)]
    with tempfile.TemporaryDirectory(prefix="cafeflow-bench-overhead-") as tmp:
        workdir = Path(tmp)
        tree = workdir / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.before], check=True,
                       capture_output=True)
        try:
            generate(workdir / "files", branches=args.branches, days=args.days, dialect="a", seed=1,
                     start=dt.date(2024, 3, 4), transactions_per_day=args.per_day)
            versions = [Version("before", tree), Version("after", ROOT)]
            timings: dict[str, list[float]] = {v.label: [] for v in versions}
            print(f"data: {args.branches * args.days} day files, {args.branches * args.days * args.per_day:,} sales; "
                  f"before = {args.before}, after = this checkout")
            print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            results = {}
            for round_ in range(args.rounds):
                for version in (versions if round_ % 2 == 0 else versions[::-1]):
                    redis.Redis.from_url(REDIS_URL).flushdb()
                    version.fresh_database(branches)
                    seconds = version.load(workdir / "files", workdir)
                    timings[version.label].append(seconds)
                    results[version.label] = version.loaded()
                    print(f"round {round_ + 1}: {version.label:<6} {seconds:6.2f} s")
            if results["before"] != results["after"]:
                raise SystemExit(f"the two versions loaded different sales: {results}")
            before, after = statistics.median(timings["before"]), statistics.median(timings["after"])
            print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            print(f"\nloaded {results['after'][0]:,} sales, revenue {results['after'][1]} (both versions)")
            print(f"median of {args.rounds}: before {before:.2f} s, after {after:.2f} s: "
                  f"{(after / before - 1) * 100:+.1f}% (target <= +10%)")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
            shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    main()
