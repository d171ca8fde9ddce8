"""A PostgreSQL outage under a running stack (issue 12's must-show): the test's own cluster on its own port
(never the shared server) is stopped and started again while `cafeflow upload` posts and waits. Posts during
the outage get 503 with Retry-After; the upload started before the outage finishes every file after it; the
figures are exact. Default timing settings throughout."""
from __future__ import annotations

import subprocess
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from services.common.migrate import upgrade_all
from tests.realdata import real_figures
from tests.support import (ADMIN_TOKEN, CLI, REAL_BRANCHES, REAL_FILES, ROOT, LocalPostgres, register_branches,
                           wait_until)

pytestmark = pytest.mark.e2e
OUTAGE_SECONDS = 20


@pytest.fixture
def local_postgres():
    cluster = LocalPostgres()
    try:
        upgrade_all(cluster.url)
        yield cluster
    finally:
        cluster.remove()


def test_a_postgres_outage_is_503_and_the_upload_rides_it_out(stack, local_postgres, tmp_path):
    engine = create_engine(local_postgres.url)
    register_branches(engine, REAL_BRANCHES)
    env = {"DATABASE_URL": local_postgres.url}
    url = stack.start_ingest(env)
    stack.start_beat(env)
    stack.start_worker(concurrency=2, env=env)

    output = (tmp_path / "upload.out").open("w+")
    upload = subprocess.Popen(CLI + ["upload", str(REAL_FILES), "--url", url, "--token", ADMIN_TOKEN,
                                     "--parallel", "1"], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, text=True)
    with engine.connect() as conn:
        wait_until(lambda: conn.execute(text("SELECT count(*) FROM ingest.upload")).scalar() >= 5, 60,
                   "the upload did not start")
        conn.rollback()
    engine.dispose()
    local_postgres.stop("fast")
    down_since = time.monotonic()
    answers = []
    while time.monotonic() - down_since < OUTAGE_SECONDS:
        answers.append(httpx.post(f"{url}/v1/uploads", files={"file": ("late.csv", b"01/03/2024 09:00,Leeds,A,"
                                                                                     b"\"Latte - 2.45\",2.45,CASH,\n")},
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30))
        time.sleep(2)
    local_postgres.start()
    assert answers and {response.status_code for response in answers} == {503}
    for response in answers:
        assert int(response.headers["Retry-After"]) > 0
        assert response.json()["error"]["code"] == "database_unavailable"

    assert upload.wait(timeout=600) == 0, output.seek(0) or output.read()
    output.seek(0)
    said = output.read()
    assert "waiting: ingest answered 503" in said
    engine = create_engine(local_postgres.url)
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT status, count(*) FROM ingest.upload GROUP BY status")).all()) == \
            {"loaded": 65}
        count, revenue = conn.execute(text("SELECT count(*), sum(total) FROM warehouse.fact_transaction")).one()
    engine.dispose()
    expected = real_figures()
    assert (count, revenue) == (expected.transactions, expected.revenue)
