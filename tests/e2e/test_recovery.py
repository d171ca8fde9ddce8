"""Recovery with real processes and DEFAULT timing settings (issue 12): a worker killed with SIGKILL mid-load
and restarted at once, a Redis restarted empty after uploads were accepted, and a queue emptied under a running
stack all end with every upload loaded and the exact figures, within 90 s of the fault's end (the lease and the
sweeper, services/transform/sweeper.py; before, recovery waited for a 15-minute age limit). The PostgreSQL
outage is tests/e2e/test_outage.py; the measured times are bench/recovery.py's."""
from __future__ import annotations

import csv
import datetime as dt
import subprocess
import time
from decimal import Decimal

import pytest
from sqlalchemy import text

from services.tools.generate import generate
from tests.realdata import real_figures
from tests.support import ADMIN_TOKEN, CLI, REAL_FILES, LocalRedis, wait_until

pytestmark = pytest.mark.e2e
RECOVERY_SECONDS = 90       # the bound, from the end of the fault, with default settings


def post_files(url: str, *paths, wait: bool) -> None:
    result = subprocess.run(CLI + ["upload", *map(str, paths), "--url", url, "--token", ADMIN_TOKEN,
                                   "--wait" if wait else "--no-wait", "--timeout", "300"],
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr


def statuses(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, count(*) FROM ingest.upload GROUP BY status")).all())


def figures_of(engine, where: str = "true", **params):
    with engine.connect() as conn:
        return conn.execute(text(f"""
            SELECT count(*), coalesce(sum(total), 0),
                   (SELECT coalesce(sum(quantity), 0) FROM warehouse.fact_transaction_item i
                    JOIN warehouse.fact_transaction t ON t.id = i.transaction_id WHERE {where})
            FROM warehouse.fact_transaction WHERE {where}"""), params).one()


def real_expected():
    f = real_figures()
    return (f.transactions, f.revenue, f.items)


def test_emptied_queue_loses_no_file(stack, clean, redis_client, settings):
    url = stack.start_ingest()
    post_files(url, REAL_FILES, wait=False)
    assert redis_client.llen(settings.transform_queue) > 0
    redis_client.delete(settings.transform_queue)          # the broker lost every queued job
    assert statuses(clean) == {"queued": 65}
    stack.start_beat()
    stack.start_worker(concurrency=2)
    wait_until(lambda: statuses(clean) == {"loaded": 65}, RECOVERY_SECONDS,
               lambda: f"not all loaded: {statuses(clean)}")
    assert figures_of(clean) == real_expected()
    assert "re-sent queued uploads whose queue message was lost" in stack.logs()


def test_redis_restarted_empty_after_uploads_were_accepted(stack, clean, tmp_path):
    """A Redis of the test's own (never the shared one) holds the queue; it is killed and started again empty
    while beat runs, then a worker starts: every accepted upload loads, exactly."""
    broker = LocalRedis(tmp_path)
    env = {"REDIS_URL": broker.url}
    try:
        url = stack.start_ingest(env)
        stack.start_beat(env)
        post_files(url, REAL_FILES, wait=False)
        assert statuses(clean) == {"queued": 65}
        broker.stop()
        broker.start()                                      # back, and empty
        back = time.monotonic()
        stack.start_worker(concurrency=2, env=env)
        wait_until(lambda: statuses(clean) == {"loaded": 65}, RECOVERY_SECONDS,
                   lambda: f"not all loaded {time.monotonic() - back:.0f} s after Redis came back: {statuses(clean)}")
        assert figures_of(clean) == real_expected()
        assert "re-sent queued uploads whose queue message was lost" in stack.logs()
    finally:
        stack.stop()
        broker.stop()


def test_worker_killed_mid_load_leaves_nothing_half_done(stack, clean, tmp_path):
    """SIGKILL of the whole worker mid-load, a new one started at once, beat running: default settings."""
    big_dir = tmp_path / "big"
    [big_file] = generate(big_dir, branches=1, days=1, dialect="a", seed=7, start=dt.date(2024, 3, 5),
                          transactions_per_day=60_000)
    big_transactions, big_revenue = 0, Decimal(0)
    with big_file.open(newline="") as handle:
        for row in csv.reader(handle):
            big_transactions += 1
            big_revenue += Decimal(row[4])

    url = stack.start_ingest()
    stack.start_beat()
    worker = stack.start_worker(concurrency=1)
    post_files(url, big_file, wait=False)
    with clean.connect() as conn:
        big_id = conn.execute(text("SELECT max(id) FROM ingest.upload")).scalar()
    post_files(url, REAL_FILES, wait=False)

    def processing() -> bool:
        with clean.connect() as conn:
            return conn.execute(text("SELECT status FROM ingest.upload WHERE id = :id"),
                                {"id": big_id}).scalar() == "processing"
    wait_until(processing, 60, "the big upload never started")
    wait_until(lambda: _backend_busy(clean), 30, "the load never reached the database")
    worker.kill()                                           # SIGKILL the whole worker, children too

    # Nothing of the interrupted load is visible: no facts, no rejections, no rollups.
    assert figures_of(clean, "upload_id = :id", id=big_id) == (0, 0, 0)
    assert statuses(clean).get("processing") == 1

    stack.start_worker(concurrency=2)
    restarted = time.monotonic()
    wait_until(lambda: statuses(clean) == {"loaded": 66}, RECOVERY_SECONDS,
               lambda: f"not all loaded {time.monotonic() - restarted:.0f} s after the restart: {statuses(clean)}")
    assert figures_of(clean, "upload_id <> :id", id=big_id) == real_expected()
    count, revenue, _ = figures_of(clean, "upload_id = :id", id=big_id)
    assert (count, revenue) == (big_transactions, big_revenue)
    with clean.connect() as conn:
        attempts = conn.execute(text("SELECT attempts FROM ingest.upload WHERE id = :id"), {"id": big_id}).scalar()
        rollup = conn.execute(text("SELECT sum(transactions), sum(revenue) FROM warehouse.rollup_sales_hour")).one()
    assert attempts >= 2
    assert rollup == (big_transactions + real_figures().transactions, big_revenue + real_figures().revenue)


def _backend_busy(engine) -> bool:
    """True once the worker's database session is running a statement (COPY or the merge)."""
    with engine.connect() as conn:
        return bool(conn.execute(text("""
            SELECT count(*) FROM pg_stat_activity
            WHERE application_name = 'cafeflow-worker' AND state = 'active'
              AND (query ILIKE 'COPY stage%' OR query ILIKE '%INSERT INTO warehouse%')""")).scalar())
