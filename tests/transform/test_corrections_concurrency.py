"""Corrections under concurrency: every outcome is that of some serial order, and a worker killed mid-correction
leaves nothing half-done. In-process races run two tasks at once on two threads (two database sessions), as
two worker processes would; the kill uses real worker processes."""
from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from collections import Counter
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common import task_names, upload_states
from services.tools.generate import generate
from tests.support import ADMIN_TOKEN, CLI, REAL_FILES, wait_until

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LEEDS_DAY = REAL_FILES / "leeds_25-08-2021_09-00-00.csv"


@pytest.fixture
def ingest(settings, clean):
    from services.ingest.app import create_app

    return create_app(settings).test_client()


def post(ingest, content: bytes, mode: str = "append") -> int:
    response = ingest.post(f"/v1/uploads?mode={mode}", data={"file": (io.BytesIO(content), "day.csv")},
                           headers=ADMIN)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def at_once(*calls):
    """Runs the calls on threads released together; returns their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(n, call):
        barrier.wait()
        results[n] = call()
    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def task(celery_app, name: str, *args):
    def call():
        result = celery_app.tasks[name].apply(args=list(args))
        assert result.successful(), result.result
        return result.result
    return call


def standing(engine) -> Counter:
    with engine.connect() as conn:
        return Counter(conn.execute(text(
            "SELECT occurred_at, total, payment_method FROM warehouse.fact_transaction")).all())


def sales_of(lines: list[bytes]) -> Counter:
    out = Counter()
    for row in csv.reader(io.StringIO(b"".join(lines).decode())):
        local = dt.datetime.strptime(row[0], "%d/%m/%Y %H:%M").replace(tzinfo=ZoneInfo("Europe/London"))
        out[(local, Decimal(row[4]).quantize(Decimal("0.01")), row[5])] += 1
    return out


def assert_exact(engine) -> None:
    from services.transform.rollups import differences

    with Session(engine) as session:
        assert differences(session) == {}


def test_two_retractions_of_one_upload_retract_it_once(ingest, celery_app, engine):
    upload_id = post(ingest, LEEDS_DAY.read_bytes())
    task(celery_app, task_names.PROCESS_UPLOAD, upload_id)()
    assert ingest.delete(f"/v1/uploads/{upload_id}", json={"reason": "twice"}, headers=ADMIN).status_code == 202
    retraction = task(celery_app, task_names.RETRACT_UPLOAD, upload_id)
    outcomes = at_once(retraction, retraction)
    assert sorted(outcomes) == ["already_retracted", "retracted"]
    with engine.connect() as conn:
        log = conn.execute(text("SELECT kind, sales_removed FROM warehouse.correction_log")).all()
    assert log == [("retract", 382)] and standing(engine) == Counter()
    assert_exact(engine)


@pytest.mark.parametrize("round_", range(3))
def test_a_replacement_and_an_append_of_one_day_end_as_one_serial_order(ingest, celery_app, engine, round_):
    lines = LEEDS_DAY.read_bytes().splitlines(keepends=True)
    task(celery_app, task_names.PROCESS_UPLOAD, post(ingest, b"".join(lines)))()
    replacement, appended = lines[:200], lines[150:300] + [
        lines[0].replace(b"25/08/2021 09:00", b"25/08/2021 21:59")]        # one sale no other file has
    replace_id, append_id = post(ingest, b"".join(replacement), "replace"), post(ingest, b"".join(appended))
    calls = [task(celery_app, task_names.PROCESS_UPLOAD, replace_id),
             task(celery_app, task_names.PROCESS_UPLOAD, append_id)]
    assert at_once(*(calls if round_ % 2 == 0 else calls[::-1])) == ["loaded", "loaded"]
    replace_then_append = sales_of(replacement) | sales_of(appended)    # union: a shared sale is one sale
    append_then_replace = sales_of(replacement)
    assert standing(engine) in (replace_then_append, append_then_replace)
    assert_exact(engine)


def test_a_retraction_racing_a_load_that_shares_its_sales_ends_exact(ingest, celery_app, engine):
    lines = LEEDS_DAY.read_bytes().splitlines(keepends=True)
    first = post(ingest, b"".join(lines[:250]))
    task(celery_app, task_names.PROCESS_UPLOAD, first)()
    second = post(ingest, b"".join(lines[100:]))
    assert ingest.delete(f"/v1/uploads/{first}", json={"reason": "race"}, headers=ADMIN).status_code == 202
    assert sorted(at_once(task(celery_app, task_names.RETRACT_UPLOAD, first),
                          task(celery_app, task_names.PROCESS_UPLOAD, second))) == ["loaded", "retracted"]
    # Whichever went first, exactly the second file's sales stand.
    assert standing(engine) == sales_of(lines[100:])
    assert_exact(engine)


FAST_SWEEP = {"UPLOAD_LEASE_SECONDS": "3", "SWEEP_INTERVAL_SECONDS": "1"}


def test_a_worker_killed_mid_correction_leaves_nothing_half_done(stack, clean, tmp_path):
    """SIGKILL while a replacing file loads and while a retraction runs: the transaction is rolled back, the
    work runs again on a new worker, and the warehouse ends exact."""
    import subprocess

    [month] = generate(tmp_path / "base", 1, 1, "a", seed=5, start=dt.date(2024, 3, 5),
                       transactions_per_day=40_000)
    lines = month.read_bytes().splitlines(keepends=True)
    replacement = tmp_path / "replacement.csv"
    replacement.write_bytes(b"".join(lines[5_000:]))
    url = stack.start_ingest()

    def upload(path, *extra) -> None:
        result = subprocess.run(CLI + ["upload", str(path), "--url", url, "--token", ADMIN_TOKEN, "--no-wait",
                                       *extra], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr

    def status(upload_id: int) -> str:
        with clean.connect() as conn:
            return conn.execute(text("SELECT status FROM ingest.upload WHERE id = :id"), {"id": upload_id}).scalar()

    def busy() -> bool:
        with clean.connect() as conn:
            return bool(conn.execute(text("""
                SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cafeflow-worker' AND state = 'active'
                  AND query ILIKE '%warehouse%'""")).scalar())

    worker = stack.start_worker(concurrency=1)
    upload(month)
    wait_until(lambda: status(1) == "loaded", 180, "the base file did not load")
    upload(replacement, "--replace")
    wait_until(lambda: status(2) == "processing" and busy(), 60, "the replacement never started")
    worker.kill()
    assert standing(clean) == sales_of(lines)                     # nothing of the replacement is visible
    worker = stack.start_worker(concurrency=1, env=FAST_SWEEP)
    stack.start_beat(env=FAST_SWEEP)
    wait_until(lambda: status(2) == "loaded", 180, lambda: f"not reloaded: {status(2)}\n{stack.logs()[-3000:]}")
    assert standing(clean) == sales_of(lines[5_000:])
    assert_exact(clean)

    response = __import__("httpx").delete(f"{url}/v1/uploads/2", params={"reason": "kill test"},
                                          headers=ADMIN, timeout=30)
    assert response.status_code == 202
    wait_until(busy, 30, "the retraction never reached the database")
    worker.kill()
    assert status(2) == "loaded" and standing(clean) == sales_of(lines[5_000:])
    stack.start_worker(concurrency=1, env=FAST_SWEEP)
    wait_until(lambda: status(2) == "retracted", 120, lambda: f"not retracted: {status(2)}\n{stack.logs()[-3000:]}")
    # The base upload's claims on the day ended with the replacement, so nothing of it stands either.
    assert standing(clean) == Counter()
    assert_exact(clean)


def test_a_retraction_waits_for_a_load_of_another_branch_adding_the_same_customer(ingest, celery_app, engine,
                                                                                  settings):
    """The branch locks do not order a retraction at Leeds and a load at Birmingham, but both touch the
    customer's period rows: the retraction must not drop the customer's day while a Birmingham sale of the
    same customer is being added unseen (the load's key insert found the row present and did nothing)."""
    from services.common.rawstore import RawCipher
    from services.transform.load import UploadJob, load_uploads
    from services.transform.sale_builder import SaleBuilder

    leeds = post(ingest, b"25/08/2021 09:00,Leeds,Ada Example,Regular Latte - 2.15,2.15,CASH,\n")
    task(celery_app, task_names.PROCESS_UPLOAD, leeds)()
    birmingham = post(ingest, b"25/08/2021 10:00,Birmingham,Ada Example,Regular Latte - 2.15,2.15,CASH,\n")
    assert ingest.delete(f"/v1/uploads/{leeds}", json={"reason": "wrong file"}, headers=ADMIN).status_code == 202

    secret = settings.secret_key.get_secret_value()
    with Session(engine) as load_session:
        upload_states.move(load_session, birmingham, upload_states.PROCESSING)       # claimed, as a worker does
        row = load_session.execute(text("SELECT sha256, chunk_count FROM ingest.upload WHERE id = :id"),
                                   {"id": birmingham}).one()
        registered = load_session.execute(text("SELECT branch_key FROM ingest.branch")).scalars().all()
        job = UploadJob(birmingham, row.sha256, row.chunk_count, SaleBuilder(secret, expected_branch_key=None,
                                                            registered_branch_keys=registered))
        result = load_uploads(load_session, RawCipher(secret), [job], chunk_rows=1000)
        assert result.loaded[birmingham].rows_loaded == 1          # in the load's transaction, not committed

        outcome: list = []
        retract = task(celery_app, task_names.RETRACT_UPLOAD, leeds)
        retraction = threading.Thread(target=lambda: outcome.append(retract()))
        retraction.start()
        waiting = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock' AND wait_event = 'advisory'")
        wait_until(lambda: retraction.is_alive() and load_session.execute(text(waiting)).scalar() == 1
                   or not retraction.is_alive(), 20, "the retraction to wait or finish")
        assert retraction.is_alive(), "the retraction did not wait for the load touching the same customer"
        load_session.commit()
    retraction.join(60)
    assert outcome == ["retracted"]
    with engine.connect() as conn:
        days = conn.execute(text("SELECT count(*) FROM warehouse.customer_period WHERE period = 'day'")).scalar()
    assert days == 1                   # Ada's day stands, through the Birmingham sale
    assert_exact(engine)
