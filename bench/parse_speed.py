"""CPU per sale of the worker's Python side, without a database: parsing (validation, pseudonyms,
identity keys) and writing the staging COPY text. The files of one run share one memo, as the files of
one load batch do. Both parse paths on the same files in one run: "row-wise" (every line through
csv_records, main's path before issue 14) and "vectorised" (services/transform/csv_vectorised.py).

Usage: .venv/bin/python bench/parse_speed.py [--branches 100 --days 3 --per-day 334 --seed 1]
Prints the best of five passes, in microseconds of CPU per sale.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e_throughput import branch_names, data_arguments, generate_day_files
from services.common.naming import branch_key
from services.transform.load import _Staging
from services.transform.csv_vectorised import SaleBlock
from services.transform.parse import iter_record_blocks
from services.transform.records import ParseStats
from services.transform.sale_builder import SaleBuilder, ValueMemo

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


class _DiscardingCursor:
    def copy_expert(self, _sql: str, source) -> None:
        source.read()


def best_of(passes: int, action) -> float:
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        action()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    args = data_arguments(__doc__)
    registered = [branch_key(name) for name in branch_names(args)]
    with tempfile.TemporaryDirectory(prefix="cafeflow-bench-parse-") as tmp:
        raw_files = [path.read_bytes() for path in generate_day_files(Path(tmp), args)]

    def run(stage: bool, vectorised: bool) -> None:
        memo = ValueMemo()
        staging = _Staging(_DiscardingCursor(), 20_000)
        for upload_id, raw in enumerate(raw_files, 1):
            builder = SaleBuilder(SECRET, expected_branch_key=None, registered_branch_keys=registered, memo=memo)
            # one file at a time, as the worker
            records = list(iter_record_blocks(builder, [raw], ParseStats(), vectorised=vectorised))
            if stage:
                for block in [r for r in records if r.__class__ is SaleBlock]:
                    staging.add_block(upload_id, block)
                staging.add(upload_id, [r for r in records if r.__class__ is not SaleBlock])
        staging.flush()

    sales = sum(raw.count(b"\n") for raw in raw_files)
    print(f"{len(raw_files)} files, {sales} sales")
    for name, vectorised in (("row-wise", False), ("vectorised", True)):
        parse = best_of(5, lambda: run(stage=False, vectorised=vectorised))
        both = best_of(5, lambda: run(stage=True, vectorised=vectorised))
        print(f"{name:<11} parse:           {parse * 1e6 / sales:6.2f} us CPU per sale")
        print(f"{name:<11} parse + staging: {both * 1e6 / sales:6.2f} us CPU per sale "
              f"(staging {(both - parse) * 1e6 / sales:.2f})")

if __name__ == "__main__":
    main()
