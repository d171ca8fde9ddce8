"""Peak memory of one worker loading one ~200 MB branch file (target: at most 300 MB).

Generates a single dialect-A file of about 200 MB, posts it over HTTP to a real ingest service,
and samples every 50 ms the resident memory (RSS) of the Celery worker process that loads it
(`cafeflow worker --concurrency 1`: one parent, one child that runs the task), until it is loaded.

Runs once per parse path asked for (`--paths vectorised,row-wise`: VECTORISED_PARSE true / false), each on a
fresh schema and worker, the same file.

Usage: .venv/bin/python bench/worker_memory.py [--transactions 1300000] [--paths vectorised,row-wise]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEST_DATABASE_URL", os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cafeflow_bench"))
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")

import psutil  # noqa: E402
import redis  # noqa: E402

from bench.e2e_throughput import counts, fresh_schema  # noqa: E402
from services.common.settings import Settings  # noqa: E402
from services.tools.generate import branch_name, generate  # noqa: E402
from services.tools.upload_client import run as upload_files  # noqa: E402
from tests.support import ADMIN_TOKEN, Stack, reset_state  # noqa: E402


class PeakRss:
    """Samples the RSS of a process and of each of its children."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_by_pid: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for proc in [self.root, *self.root.children(recursive=True)]:
                    rss = proc.memory_info().rss
                    self.peak_by_pid[proc.pid] = max(rss, self.peak_by_pid.get(proc.pid, 0))
            except psutil.Error:
                pass
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=1_300_000)
    parser.add_argument("--paths", default="vectorised,row-wise")
    args = parser.parse_args()

    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="cafeflow-bench-mem-") as tmp:
        workdir = Path(tmp)
        [big] = generate(workdir / "file", branches=1, days=1, dialect="a", seed=3, start=dt.date(2024, 5, 6),
                         transactions_per_day=args.transactions)
        size_mb = big.stat().st_size / 1e6
        print(f"file: {big.name}, {size_mb:.1f} MB, {args.transactions} transactions")
        for path in args.paths.split(","):
            print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            measure(settings, workdir / path, big, vectorised={"vectorised": True, "row-wise": False}[path], name=path)


def measure(settings: Settings, workdir: Path, big: Path, vectorised: bool, name: str) -> None:
    engine = fresh_schema(settings)
    reset_state(engine, redis.Redis.from_url(settings.redis_url), branches=[branch_name(0)])
    workdir.mkdir()
    stack = Stack(workdir)
    try:
        url = stack.start_ingest()
        code = upload_files([big], url=url, token=ADMIN_TOKEN, wait=False, timeout=600, parallel=1)
        assert code == 0, "upload failed"
        worker = stack.start_worker(concurrency=1, env={"VECTORISED_PARSE": "true" if vectorised else "false"})
        with PeakRss(worker.popen.pid) as sampler:
            started = time.perf_counter()
            code = upload_files([big], url=url, token=ADMIN_TOKEN, wait=True, timeout=3600, parallel=1)
            elapsed = time.perf_counter() - started
        assert code == 0, "load failed"
    finally:
        stack.stop()
    transactions, items, revenue = counts(engine)
    print(f"[{name}] loaded {transactions} transactions, {items} items, revenue {revenue} in {elapsed:.1f} s")
    peaks = sorted(sampler.peak_by_pid.values(), reverse=True)
    print(f"[{name}] peak RSS per worker process (MB): {[round(p / 2**20, 1) for p in peaks]}")
    print(f"[{name}] peak RSS of the loading process: {peaks[0] / 2**20:.1f} MB (target <= 300 MB)")

if __name__ == "__main__":
    main()
