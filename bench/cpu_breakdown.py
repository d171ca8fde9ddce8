"""Where the end-to-end load spends CPU: seconds per process group while 100,200 generated
transactions (300 day files) are posted over HTTP until all are loaded.

Groups: ingest (gunicorn master + workers), worker (Celery parent + children), PostgreSQL backends
serving the bench database, all PostgreSQL processes (on a shared machine this includes other users'
work), Redis, and this process (the posting client). Same setup as e2e_throughput.py. Also prints how
many uploads the workers loaded per transaction (from the worker's log).

Usage: .venv/bin/python bench/cpu_breakdown.py [--branches 100 --days 3 --per-day 334 --seed 1]
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e_throughput import branch_names, data_arguments, fresh_schema, generate_day_files  # noqa: E402

import psutil  # noqa: E402
import redis  # noqa: E402

from services.common.settings import Settings  # noqa: E402
from services.tools.upload_client import run as upload_files  # noqa: E402
from tests.support import ADMIN_TOKEN, Stack, reset_state  # noqa: E402


def cpu_by_pid(processes) -> dict[int, float]:
    seen = {}
    for process in processes:
        try:
            times = process.cpu_times()
            seen[process.pid] = times.user + times.system
        except psutil.Error:
            pass
    return seen


def used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two snapshots; a process that appeared in between counts from zero
    (database backends that the services open on their first request)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def named(fragment: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if fragment in (p.info["name"] or "")]


def backends_of(database: str) -> list[psutil.Process]:
    """PostgreSQL backends connected to one database (their title reads 'postgres: user db host ...')."""
    found = []
    for process in named("postgres"):
        try:
            title = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if f" {database} " in f"{title} ":
            found.append(process)
    return found


def batch_sizes(log_text: str) -> Counter:
    """Uploads per load transaction, from the worker's 'upload loaded' lines."""
    sizes: Counter = Counter()
    for line in log_text.splitlines():
        if '"upload loaded"' in line:
            try:
                sizes[json.loads(line).get("batch", 1)] += 1
            except ValueError:
                continue
    return Counter({size: count // size for size, count in sizes.items()})


def main() -> None:
    args = data_arguments(__doc__)

    settings = Settings()
    engine = fresh_schema(settings)
    reset_state(engine, redis.Redis.from_url(settings.redis_url), branches=branch_names(args))
    with tempfile.TemporaryDirectory(prefix="cafeflow-bench-cpu-") as tmp:
        workdir = Path(tmp)
        generate_day_files(workdir / "files", args)
        stack = Stack(workdir)
        try:
            stack.start_ingest()
            worker = stack.start_worker(concurrency=int(os.environ.get("BENCH_WORKER_CONCURRENCY", "2")))
            groups = {
                "ingest": lambda: tree(stack.processes[0].popen.pid),
                "worker": lambda: tree(worker.popen.pid),
                "postgresql (bench db)": lambda: backends_of(engine.url.database),
                "postgresql (all)": lambda: named("postgres"),
                "redis": lambda: named("redis"),
                "client (this process)": lambda: [psutil.Process()],
            }
            before = {name: cpu_by_pid(find()) for name, find in groups.items()}
            started = time.perf_counter()
            code = upload_files([workdir / "files"], url=stack.ingest_url, token=ADMIN_TOKEN, wait=True,
                                timeout=3600, parallel=4)
            elapsed = time.perf_counter() - started
            after = {name: cpu_by_pid(find()) for name, find in groups.items()}
        finally:
            stack.stop()
        batches = batch_sizes(worker.log_path.read_text(errors="replace"))
    assert code == 0, "upload failed"
    print(f"\nwall time {elapsed:.2f} s on {psutil.cpu_count()} cores")
    spent = {name: used(before[name], after[name]) for name in groups}
    for name, seconds in spent.items():
        print(f"{name:<24}{seconds:>8.2f} CPU-s")
    ours = sum(seconds for name, seconds in spent.items() if name != "postgresql (all)")
    print(f"{'total (bench db only)':<24}{ours:>8.2f} CPU-s")
    print("uploads per load transaction: " + ", ".join(f"{size} x{count}" for size, count in sorted(batches.items())))


if __name__ == "__main__":
    main()
