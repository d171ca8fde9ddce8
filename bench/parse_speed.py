"""CPU per sale of the worker's Python side, without a database: parsing (validation, pseudonyms,
identity keys) and writing the staging COPY text. The files of one run share one memo, as the files of
one load batch do. The parse paths on the same files in one run: "row-wise" (every line through
csv_records, main's path before issue 14), "vectorised, per file" (services/transform/csv_vectorised.py, as
a lone upload is parsed) and "vectorised, batches" (32 files parsed as one block, as the worker parses a
batch of small uploads).

Usage: .venv/bin/python bench/parse_speed.py [--branches 100 --days 3 --per-day 334 --seed 1]
Prints the best of five passes, in microseconds of CPU per sale.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e_throughput import branch_names, data_arguments, generate_day_files
from services.common.naming import branch_key
from services.transform.load import _Staging
from services.transform.csv_vectorised import SaleBlock, parse_csv_files
from services.transform.parse import iter_record_blocks
from services.transform.records import ParseStats
from services.transform.sale_builder import SaleBuilder, ValueMemo

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
BATCH_UPLOADS = 32        # LOAD_BATCH_UPLOADS' default: the small uploads one worker task loads together


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

    def run(stage: bool, path: str) -> None:
        memo = ValueMemo()
        staging = _Staging(_DiscardingCursor(), 20_000)
        builders = [SaleBuilder(SECRET, expected_branch_key=None, registered_branch_keys=registered, memo=memo)
                    for _raw in raw_files]
        if path == "vectorised, batches":         # as the worker parses a batch of small uploads
            parsed = []
            for start in range(0, len(raw_files), BATCH_UPLOADS):
                files = [(builders[i], raw_files[i], ParseStats()) for i in range(start, start + BATCH_UPLOADS)
                         if i < len(raw_files)]
                parsed += parse_csv_files(files)
        else:                                     # one file at a time, as the worker parses a lone upload
            parsed = [list(iter_record_blocks(builder, [raw], ParseStats(), vectorised=path != "row-wise"))
                      for builder, raw in zip(builders, raw_files)]
        if stage:
            for upload_id, records in enumerate(parsed, 1):
                for block in [r for r in records if r.__class__ is SaleBlock]:
                    staging.add_block(upload_id, block)
                staging.add(upload_id, [r for r in records if r.__class__ is not SaleBlock])
        staging.flush()

    sales = sum(raw.count(b"\n") for raw in raw_files)
    print(f"{len(raw_files)} files, {sales} sales; load average {os.getloadavg()[0]:.2f}")
    for path in ("row-wise", "vectorised, per file", "vectorised, batches"):
        parse = best_of(5, lambda: run(stage=False, path=path))
        both = best_of(5, lambda: run(stage=True, path=path))
        print(f"{path:<21} parse:           {parse * 1e6 / sales:6.2f} us CPU per sale")
        print(f"{path:<21} parse + staging: {both * 1e6 / sales:6.2f} us CPU per sale "
              f"(staging {(both - parse) * 1e6 / sales:.2f})")

if __name__ == "__main__":
    main()
