"""`cafeflow upload` rides out an outage for --patience seconds, telling the user it waits and why, and gives
up with a clear error after that. (With PostgreSQL itself stopped and started: tests/e2e/test_outage.py.)"""
from __future__ import annotations

import subprocess
import threading
import time

from sqlalchemy import text

from tests.support import ADMIN_TOKEN, CLI, ROOT, free_port

ROW = b'25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'


def upload(url: str, path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + ["upload", str(path), "--url", url, "--token", ADMIN_TOKEN, *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_upload_waits_for_ingest_to_come_up_and_then_loads(stack, clean, tmp_path):
    day = tmp_path / "leeds.csv"
    day.write_bytes(ROW)
    stack.start_worker(concurrency=1)
    url = stack.url_of("ingest")                 # nothing listens there yet
    started = threading.Event()

    def start_ingest_later() -> None:
        time.sleep(3)
        started.set()
        stack.start_ingest()
    later = threading.Thread(target=start_ingest_later)
    later.start()
    result = upload(url, day)
    later.join()
    assert started.is_set()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "waiting: cannot reach ingest" in result.stderr and "(--patience)" in result.stderr
    assert "ingest answers again" in result.stderr
    assert "OK" in result.stdout and "1 loaded" in result.stdout
    with clean.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM warehouse.fact_transaction")).scalar() == 1


def test_upload_gives_up_after_its_patience_and_says_why(tmp_path):
    day = tmp_path / "leeds.csv"
    day.write_bytes(ROW)
    began = time.monotonic()
    result = upload(f"http://127.0.0.1:{free_port()}", day, "--patience", "2", timeout=60)
    assert result.returncode == 2
    assert "gave up after --patience 2 s: cannot reach ingest (ConnectError)" in result.stdout
    assert "waiting: cannot reach ingest" in result.stderr
    assert time.monotonic() - began < 30
