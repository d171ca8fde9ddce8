"""The benchmarks are not run by the suite (they time things), but each must still import against the
current code: a renamed function once broke bench/reporting_warehouse.py without any test noticing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def test_there_are_benchmarks_to_check():
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_imports_against_current_code(script: Path):
    # run_name other than __main__: module-level imports and definitions run, the benchmark does not.
    result = subprocess.run([sys.executable, "-c", f"import runpy; runpy.run_path({str(script)!r}, "
                             "run_name='bench_import_check')"], capture_output=True, text=True, timeout=120,
                            cwd=BENCH.parent)
    assert result.returncode == 0, result.stderr[-2000:]
