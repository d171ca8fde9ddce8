"""How the load task treats failures: which are retried, which fail the upload, and when it gives up."""
from __future__ import annotations

import psycopg2
import pytest
from sqlalchemy import text

from services.transform.tasks import is_transient
from tests.transform.helpers import load, post, scalar

ROW = b'25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'


def real_error(settings, action):
    connection = psycopg2.connect(settings.psycopg2_dsn)
    try:
        action(connection)
    except psycopg2.Error as exc:
        return exc
    finally:
        connection.close()
    raise AssertionError("no error")


def test_a_connection_killed_mid_statement_is_transient(settings):
    def killed(connection):
        pid = connection.get_backend_pid()
        other = psycopg2.connect(settings.psycopg2_dsn)
        other.autocommit = True
        other.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
        other.close()
        connection.cursor().execute("SELECT 1")
    assert is_transient(real_error(settings, killed))


def test_data_errors_are_not_transient(settings):
    too_long_for_an_index = real_error(settings, lambda c: c.cursor().execute(
        "CREATE TEMP TABLE t (k text UNIQUE); "
        "INSERT INTO t SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 300)"))
    not_a_number = real_error(settings, lambda c: c.cursor().execute("SELECT 'a'::int"))
    assert too_long_for_an_index.pgcode == "54000"
    assert not is_transient(too_long_for_an_index) and not is_transient(not_a_number)


def test_an_upload_that_keeps_being_interrupted_fails_instead_of_looping(client, run_task, admin_headers,
                                                                          clean, settings):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    with clean.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET attempts = :n, status = 'processing' WHERE id = :id"),
                     {"n": settings.max_load_attempts, "id": upload_id})
    assert run_task("transform.process_upload", upload_id) == "failed"
    upload = client.get(f"/v1/uploads/{upload_id}", headers=admin_headers).get_json()
    assert upload["status"] == "failed" and "did not complete" in upload["error"]
    assert scalar(clean, "SELECT count(*) FROM warehouse.fact_transaction") == 0
    # An operator who split nothing but fixed the cause can still replay it.
    from click.testing import CliRunner

    from services.cli import main
    assert CliRunner().invoke(main, ["uploads", "retry", str(upload_id)]).exit_code == 0
    assert run_task("transform.process_upload", upload_id) == "loaded"


@pytest.mark.parametrize("queue_holds_it", [True, False])
def test_sweeper_resends_queued_uploads_only_when_the_queue_lost_them(client, run_task, admin_headers, clean,
                                                                      redis_client, settings, queue_holds_it):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    if not queue_holds_it:
        redis_client.delete(settings.transform_queue)
    with clean.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET enqueued_at = now() - interval '1 hour'"))
    before = redis_client.llen(settings.transform_queue)
    requeued = run_task("transform.sweep_uploads")
    assert requeued == (0 if queue_holds_it else 1)
    assert redis_client.llen(settings.transform_queue) == before + requeued
    if requeued:
        assert f"[{upload_id}]".encode() in redis_client.lindex(settings.transform_queue, 0)


def test_failed_uploads_raw_bytes_are_purged_too(client, run_task, admin_headers, clean):
    upload = load(client, run_task, b"not, a till file\nat, all\n", admin_headers)
    assert upload["status"] == "failed"
    with clean.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET finished_at = now() - interval '8 days'"))
    assert run_task("transform.purge_raw_files") == 1
    assert scalar(clean, "SELECT count(*) FROM ingest.upload_chunk") == 0


def test_a_load_stopped_by_the_statement_timeout_fails_saying_how_long_it_may_take(client, admin_headers, clean,
                                                                                   settings):
    """The worker's role, database or URL may set statement_timeout; a load that runs into it (here: waiting
    behind a lock the test holds) fails with a readable error, not "internal error (QueryCanceled)"."""
    from services.common import task_names
    from services.transform.celery_app import create_celery

    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    bounded = settings.model_copy(update={
        "database_url": settings.database_url + "?options=-c%20statement_timeout%3D300"})
    worker = create_celery(bounded)
    worker.loader.import_default_modules()
    with clean.connect() as conn:
        conn.execute(text("LOCK TABLE warehouse.dim_product IN ACCESS EXCLUSIVE MODE"))
        result = worker.tasks[task_names.PROCESS_UPLOAD].apply(args=[upload_id])
        conn.rollback()
    assert result.failed()
    upload = client.get(f"/v1/uploads/{upload_id}", headers=admin_headers).get_json()
    assert upload["status"] == "failed"
    assert upload["error"].startswith("loading took longer than 300ms, the database's statement_timeout")
    assert "QueryCanceled" not in upload["error"]
    worker.cafeflow.db.engine.dispose()
