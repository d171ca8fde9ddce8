"""Raw bytes are purged after the retention period; counts and sha256 stay; retry replays kept files."""
from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import text

from services.common import task_names
from services.cli import main
from tests.transform.helpers import load, post, scalar

ROW = b'25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'


def test_raw_bytes_are_purged_after_retention(client, run_task, admin_headers, clean):
    upload = load(client, run_task, ROW, admin_headers)
    assert scalar(clean, "SELECT count(*) FROM ingest.upload_chunk") == 1
    assert run_task(task_names.PURGE_RAW_FILES) == 0                          # loaded just now: kept
    with clean.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET finished_at = now() - interval '8 days'"))
    assert run_task(task_names.PURGE_RAW_FILES) == 1
    assert scalar(clean, "SELECT count(*) FROM ingest.upload_chunk") == 0
    after = client.get(f"/v1/uploads/{upload['id']}", headers=admin_headers).get_json()
    assert (after["raw_retained"], after["rows_loaded"], after["sha256"]) == (False, 1, upload["sha256"])
    # A purged file cannot be replayed, and says so.
    result = CliRunner().invoke(main, ["uploads", "retry", str(upload["id"])])
    assert result.exit_code == 1 and "purged" in result.output


def test_retry_replays_a_failed_upload_without_duplicates(client, run_task, admin_headers, clean, redis_client,
                                                          settings):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    run_task("transform.process_upload", upload_id)
    with clean.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET status = 'failed', error = 'simulated' WHERE id = :id"),
                     {"id": upload_id})
    redis_client.delete(settings.transform_queue)
    result = CliRunner().invoke(main, ["uploads", "retry", "--status", "failed"])
    assert result.exit_code == 0 and f"upload {upload_id}: queued again" in result.output
    assert redis_client.llen(settings.transform_queue) == 1
    run_task("transform.process_upload", upload_id)
    after = client.get(f"/v1/uploads/{upload_id}", headers=admin_headers).get_json()
    assert (after["status"], after["rows_loaded"], after["rows_duplicate"], after["error"]) == ("loaded", 1, 0, None)
    assert scalar(clean, "SELECT count(*) FROM warehouse.fact_transaction") == 1


def test_sweeper_requeues_only_stuck_uploads(client, run_task, admin_headers, clean, redis_client, settings):
    fresh = post(client, ROW, admin_headers).get_json()["id"]
    stuck = post(client, ROW.replace(b"A B", b"C D"), admin_headers).get_json()["id"]
    redis_client.delete(settings.transform_queue)
    with clean.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET enqueued_at = now() - interval '1 hour' WHERE id = :id"),
                     {"id": stuck})
    assert run_task(task_names.SWEEP_UPLOADS) == 1
    assert redis_client.llen(settings.transform_queue) == 1
    assert fresh != stuck


def test_a_duplicate_delivery_of_a_loaded_upload_changes_nothing(client, run_task, admin_headers, clean):
    upload = load(client, run_task, ROW, admin_headers)
    assert run_task("transform.process_upload", upload["id"]) == "skipped"
    assert scalar(clean, "SELECT version FROM warehouse.version") == 1
    assert scalar(clean, "SELECT count(*) FROM warehouse.fact_transaction") == 1
