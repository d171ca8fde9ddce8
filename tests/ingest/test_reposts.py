"""Re-posting: per-poster identity, failed uploads retried from the new bytes, header hygiene."""
from __future__ import annotations

import io

from sqlalchemy import text

from services.common import task_names
from tests.transform.helpers import post, scalar

ROW = b'25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'


def test_admin_backfill_is_found_by_the_branch_of_its_rows(client, run_task, admin_headers, clean):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    run_task(task_names.PROCESS_UPLOAD, upload_id)
    listing = client.get("/v1/uploads?branch=Leeds", headers=admin_headers).get_json()
    assert [u["id"] for u in listing["items"]] == [upload_id]
    assert listing["items"][0]["file_branches"] == ["leeds"]
    assert client.get("/v1/uploads?branch=soho", headers=admin_headers).get_json()["total"] == 0


def test_reposting_a_failed_upload_retries_it_from_the_new_bytes(client, run_task, admin_headers, clean):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    with clean.begin() as conn:                      # the stored bytes are lost (disk, operator error)
        conn.execute(text("DELETE FROM ingest.upload_chunk WHERE upload_id = :id"), {"id": upload_id})
    run_task(task_names.PROCESS_UPLOAD, upload_id)
    failed = client.get(f"/v1/uploads/{upload_id}", headers=admin_headers).get_json()
    assert failed["status"] == "failed" and "missing" in failed["error"]
    again = post(client, ROW, admin_headers)
    assert (again.status_code, again.get_json()["id"], again.get_json()["status"]) == (202, upload_id, "queued")
    run_task(task_names.PROCESS_UPLOAD, upload_id)
    loaded = client.get(f"/v1/uploads/{upload_id}", headers=admin_headers).get_json()
    assert (loaded["status"], loaded["rows_loaded"], loaded["error"]) == ("loaded", 1, None)
    assert post(client, ROW, admin_headers).status_code == 200        # loaded now: a plain repeat


def test_control_characters_in_multipart_headers_are_dropped(client, admin_headers, clean):
    response = client.post("/v1/uploads", headers=admin_headers, data={
        "file": (io.BytesIO(ROW), "le\x00eds\x01.csv", "text/c\x00sv")})
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["filename"] == "leeds.csv"


def test_utf16_is_refused_with_a_helpful_message(client, admin_headers, clean):
    response = post(client, ROW.decode().encode("utf-16"), admin_headers)
    assert response.status_code == 415 and "UTF-16" in response.get_json()["error"]["message"]


def test_branch_add_registers_many_without_tokens(clean):
    from click.testing import CliRunner

    from services.cli import main
    result = CliRunner().invoke(main, ["branch", "add", "Whitby", "東京", "--no-token"])
    assert result.exit_code == 0, result.output
    assert scalar(clean, "SELECT count(*) FROM ingest.branch WHERE branch_key IN ('whitby', '東京')") == 2
    assert scalar(clean, "SELECT count(*) FROM ingest.api_token") == 0


def test_an_upload_is_accepted_while_redis_is_down_and_swept_in_later(settings, clean, run_task, redis_client,
                                                                      admin_headers):
    from services.ingest.app import create_app

    broker_down = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})).test_client()
    response = post(broker_down, ROW, admin_headers)
    assert response.status_code == 202 and response.get_json()["status"] == "queued"
    assert redis_client.llen(settings.transform_queue) == 0
    with clean.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET enqueued_at = now() - interval '1 hour'"))
    assert run_task("transform.sweep_uploads") == 1
    run_task(task_names.PROCESS_UPLOAD, response.get_json()["id"])
    assert scalar(clean, "SELECT count(*) FROM warehouse.fact_transaction") == 1
