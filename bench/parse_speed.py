"""CPU per sale of the worker's Python side, without a database: parsing (validation, pseudonyms,
identity keys) and writing the staging COPY text. The files of one run share one memo, as the files of
one load batch do. The parse paths on the same files in one run: "row-wise" (every line through
csv_records, main's path before issue 14), "vectorised, per file" (services/transform/csv_vectorised.py, as
a lone upload is parsed) and "vectorised, batches" (32 files parsed as one block, as the worker parses a
batch of small uploads).

BENCH_BASELINE_REF=<git commit> adds that commit's services/transform/csv_vectorised.py (loaded from git as a
module of its own, beside this tree's) to the same run, both ways: e.g. vparse's Arrow-direct version against
this tree's pandas one. The rest of the parser (csv_records, sale_builder, ...) is this tree's for both.

Usage: [BENCH_BASELINE_REF=54cf84b] .venv/bin/python bench/parse_speed.py [--branches 100 --days 3 --per-day 334]
Prints the best of five passes, in microseconds of CPU per sale.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.e2e_throughput import branch_names, data_arguments, generate_day_files
from services.common.naming import branch_key
from services.transform import csv_vectorised, load
from services.transform.csv_records import iter_csv, iter_lines
from services.transform.load import _Staging
from services.transform.records import ParseStats
from services.transform.sale_builder import SaleBuilder, ValueMemo

ROOT = Path(__file__).resolve().parent.parent
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


def vectorised_of_commit(ref: str) -> ModuleType:
    """services/transform/csv_vectorised.py as it was at commit `ref`, as a module named after the commit."""
    source = subprocess.run(["git", "show", f"{ref}:services/transform/csv_vectorised.py"], cwd=ROOT,
                            capture_output=True, check=True).stdout
    name = f"csv_vectorised_at_{ref.replace('/', '_').replace('-', '_')}"
    directory = Path(tempfile.mkdtemp(prefix="cafeflow-bench-baseline-"))
    (directory / f"{name}.py").write_bytes(source)
    spec = importlib.util.spec_from_file_location(name, directory / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                    # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def main() -> None:
    args = data_arguments(__doc__)
    registered = [branch_key(name) for name in branch_names(args)]
    with tempfile.TemporaryDirectory(prefix="cafeflow-bench-parse-") as tmp:
        raw_files = [path.read_bytes() for path in generate_day_files(Path(tmp), args)]

    def run(stage: bool, engine: ModuleType | None, batches: bool) -> None:
        memo = ValueMemo()
        staging = _Staging(_DiscardingCursor(), 20_000)
        builders = [SaleBuilder(SECRET, expected_branch_key=None, registered_branch_keys=registered, memo=memo)
                    for _raw in raw_files]
        if engine is None:                        # main's path before issue 14: every line through csv_records
            parsed = [list(iter_csv(builder, iter_lines([raw]), ParseStats()))
                      for builder, raw in zip(builders, raw_files)]
        elif batches:                             # as the worker parses a batch of small uploads
            parsed = []
            for start in range(0, len(raw_files), BATCH_UPLOADS):
                files = [(builders[i], raw_files[i], ParseStats()) for i in range(start, start + BATCH_UPLOADS)
                         if i < len(raw_files)]
                parsed += engine.parse_csv_files(files)
        else:                                     # one file at a time, as the worker parses a lone upload
            parsed = [list(engine.iter_csv_vectorised(builder, [raw], ParseStats()))
                      for builder, raw in zip(builders, raw_files)]
        if stage:
            load.copy_columns = (engine or csv_vectorised).copy_columns     # the block's own staging columns
            block_class = (engine or csv_vectorised).SaleBlock
            for upload_id, records in enumerate(parsed, 1):
                for block in [r for r in records if r.__class__ is block_class]:
                    staging.add_block(upload_id, block)
                staging.add(upload_id, [r for r in records if r.__class__ is not block_class])
        staging.flush()
        load.copy_columns = csv_vectorised.copy_columns

    sales = sum(raw.count(b"\n") for raw in raw_files)
    print(f"{len(raw_files)} files, {sales} sales; load average {os.getloadavg()[0]:.2f}")
    paths = [("row-wise", None, False)]
    baseline = os.environ.get("BENCH_BASELINE_REF")
    if baseline:
        engine = vectorised_of_commit(baseline)
        paths += [(f"{baseline}, per file", engine, False), (f"{baseline}, batches", engine, True)]
    paths += [("vectorised, per file", csv_vectorised, False), ("vectorised, batches", csv_vectorised, True)]
    for label, engine, batches in paths:
        parse = best_of(5, lambda: run(False, engine, batches))
        both = best_of(5, lambda: run(True, engine, batches))
        print(f"{label:<21} parse:           {parse * 1e6 / sales:6.2f} us CPU per sale")
        print(f"{label:<21} parse + staging: {both * 1e6 / sales:6.2f} us CPU per sale "
              f"(staging {(both - parse) * 1e6 / sales:.2f})")
    print(f"load average {os.getloadavg()[0]:.2f}")

if __name__ == "__main__":
    main()
