"""cafeflow upload's own words: the summary line and the rejection reasons it prints (the run against a real
ingest and worker is in tests/e2e/test_cafeflow_up.py and tests/e2e/test_real_files.py)."""
from __future__ import annotations

from pathlib import Path

from services.tools.upload_client import Outcome, _printable, summary


def _loaded(loaded: int, rejected: int = 0, duplicate: int = 0, status: str = "loaded") -> dict:
    return {"id": 1, "status": status, "rows_loaded": loaded, "rows_rejected": rejected,
            "rows_duplicate": duplicate}


def test_the_summary_counts_files_and_rows_by_outcome():
    outcomes = [Outcome(Path("a.csv"), upload=_loaded(10)),
                Outcome(Path("b.csv"), upload=_loaded(5, rejected=2, duplicate=1)),
                Outcome(Path("c.csv"), upload={**_loaded(0), "status": "failed", "error": "unreadable"}),
                Outcome(Path("d.csv"), error="HTTP 413: too large")]
    assert summary(outcomes, waited=True) == (
        "4 files: 1 clean, 1 with rejected rows, 1 failed, 1 not posted; rows: 15 loaded, 2 rejected, 1 duplicate")
    assert summary(outcomes, waited=False) == "4 files: 3 posted, 1 not posted (not waited for)"


def test_a_reason_quoting_a_file_cannot_send_escape_sequences_to_the_terminal():
    hostile = "field 'x\x1b]0;owned\x07' is missing"
    shown = _printable(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and shown == "field 'x\\x1b]0;owned\\x07' is missing"
    assert _printable("the line has 8 cells, expected 7") == "the line has 8 cells, expected 7"
