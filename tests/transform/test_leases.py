"""Leases and the sweeper (services/transform/leases.py, services/transform/sweeper.py): an upload whose worker
stopped renewing its lease is re-queued on the next pass, one being loaded is left alone, queued uploads whose
message the broker lost are sent again and those still in the queue are not. The same with real processes and
default settings: tests/e2e/test_recovery.py."""
from __future__ import annotations

import json
import logging
import time

from sqlalchemy import text

from services.common import task_names
from services.common.db import Database
from services.transform import leases, sweeper
from services.transform.celery_app import TransformContext
from services.transform.tasks import _requeue
from tests.support import free_port
from tests.transform.helpers import post, scalar

ROW = b'25/08/2021 09:00,Leeds,A B,"Regular Chai latte - 2.30",2.30,CASH,\n'


def rows(n: int) -> list[bytes]:
    return [ROW.replace(b"A B", f"Customer {i}".encode()) for i in range(n)]


def held_by_a_dead_worker(engine, upload_ids: list[int], lapsed: bool = True) -> None:
    """What a worker killed mid-load leaves: the uploads processing, its lease no longer renewed."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET status = 'processing', attempts = 1, "
                          "started_at = now() - interval '1 minute' WHERE id = ANY(:ids)"), {"ids": upload_ids})
        conn.execute(text("INSERT INTO ingest.upload_lease (upload_id, holder, expires_at) "
                          "SELECT unnest(CAST(:ids AS bigint[])), 'dead-task', now() + make_interval(secs => :s)"),
                     {"ids": upload_ids, "s": -1 if lapsed else 60})


def queued_message_ids(redis_client, settings) -> list[int]:
    return sorted(sweeper._upload_of(raw) for raw in redis_client.lrange(settings.transform_queue, 0, -1))


def age_queued(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE ingest.upload SET enqueued_at = now() - interval '1 hour' WHERE status = 'queued'"))


def test_a_load_takes_a_lease_and_finishing_it_gives_the_lease_back(client, run_task, admin_headers, clean):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    assert run_task(task_names.PROCESS_UPLOAD, upload_id) == "loaded"
    assert scalar(clean, "SELECT count(*) FROM ingest.upload_lease") == 0
    assert scalar(clean, "SELECT attempts FROM ingest.upload WHERE id = :id", id=upload_id) == 1


def test_the_lease_is_renewed_while_the_load_runs(client, admin_headers, clean, settings):
    upload_id = post(client, ROW, admin_headers).get_json()["id"]
    held_by_a_dead_worker(clean, [upload_id], lapsed=False)
    with clean.begin() as conn:
        conn.execute(text("UPDATE ingest.upload_lease SET holder = 'me', expires_at = now()"))
    database = Database(settings.database_url)
    with leases.Renewal(database.engine, [upload_id], holder="me", seconds=1.0):
        time.sleep(1.0)          # four renewal beats of a one-second lease
        assert scalar(clean, "SELECT expires_at > now() FROM ingest.upload_lease") is True
    database.engine.dispose()


def test_an_upload_whose_worker_stopped_renewing_is_requeued_and_loads_once(client, run_task, admin_headers, clean,
                                                                           redis_client, settings):
    other = post(client, ROW, admin_headers).get_json()["id"]
    redis_client.delete(settings.transform_queue)               # the dead worker had taken its message
    held_by_a_dead_worker(clean, [other])
    assert run_task(task_names.SWEEP_UPLOADS) == 1
    assert scalar(clean, "SELECT status FROM ingest.upload WHERE id = :id", id=other) == "queued"
    assert scalar(clean, "SELECT count(*) FROM ingest.upload_lease") == 0
    assert queued_message_ids(redis_client, settings) == [other]
    assert run_task(task_names.PROCESS_UPLOAD, other) == "loaded"
    assert run_task(task_names.PROCESS_UPLOAD, other) == "skipped"      # the dead worker's message, redelivered
    assert scalar(clean, "SELECT count(*) FROM warehouse.fact_transaction WHERE upload_id = :id", id=other) == 1


def test_a_live_lease_and_a_load_in_progress_are_left_alone(client, run_task, admin_headers, clean, redis_client,
                                                           settings):
    renewing, loading = [post(client, row, admin_headers).get_json()["id"] for row in rows(2)]
    redis_client.delete(settings.transform_queue)
    held_by_a_dead_worker(clean, [renewing], lapsed=False)       # its holder is alive and renewing
    held_by_a_dead_worker(clean, [loading])                      # lapsed, but a load holds the row lock
    with clean.connect() as conn:
        conn.execute(text("SELECT id FROM ingest.upload WHERE id = :id FOR UPDATE"), {"id": loading})
        assert run_task(task_names.SWEEP_UPLOADS) == 0
        # Another delivery of the renewed upload does not take it from its holder.
        assert run_task(task_names.PROCESS_UPLOAD, renewing) == "skipped"
        conn.rollback()
    assert scalar(clean, "SELECT count(*) FROM ingest.upload WHERE status = 'processing'") == 2
    assert run_task(task_names.SWEEP_UPLOADS) == 1               # the lock is gone: the lapsed one goes back
    assert queued_message_ids(redis_client, settings) == [loading]


def test_a_long_queue_is_not_resent_and_a_lost_message_is(client, run_task, admin_headers, clean, redis_client,
                                                           settings):
    ids = [post(client, row, admin_headers).get_json()["id"] for row in rows(40)]
    age_queued(clean)
    assert run_task(task_names.SWEEP_UPLOADS) == 0               # every queued upload has its message
    assert queued_message_ids(redis_client, settings) == ids
    # A live worker received one (Redis holds it, unacknowledged), a worker that died an hour ago held another,
    # and the broker lost three others.
    messages = redis_client.lrange(settings.transform_queue, 0, -1)
    by_id = {sweeper._upload_of(raw): raw for raw in messages}
    for tag, upload_id, received in (("live", ids[0], time.time()), ("dead", ids[1], time.time() - 3600)):
        redis_client.hset(sweeper.UNACKED_KEY, tag, json.dumps([json.loads(by_id[upload_id]), "", "transform"]))
        redis_client.zadd(sweeper.UNACKED_INDEX_KEY, {tag: received})
    for upload_id in ids[:5]:
        redis_client.lrem(settings.transform_queue, 1, by_id[upload_id])
    assert run_task(task_names.SWEEP_UPLOADS) == 4
    assert sorted(queued_message_ids(redis_client, settings)) == sorted(ids[1:])
    assert run_task(task_names.SWEEP_UPLOADS) == 0               # sent again just now: not again


def test_queued_uploads_are_resent_when_redis_lost_everything(client, run_task, admin_headers, clean, redis_client,
                                                              settings):
    ids = [post(client, row, admin_headers).get_json()["id"] for row in rows(5)]
    assert run_task(task_names.SWEEP_UPLOADS) == 0               # just posted: their messages may be on the way
    redis_client.flushdb()                                        # Redis restarted empty
    age_queued(clean)
    assert run_task(task_names.SWEEP_UPLOADS) == 5
    assert queued_message_ids(redis_client, settings) == ids
    for upload_id in ids:
        run_task(task_names.PROCESS_UPLOAD, upload_id)
    assert scalar(clean, "SELECT count(*) FROM warehouse.fact_transaction") == 5


def test_the_rest_of_a_failed_batch_that_cannot_be_requeued_while_the_database_is_down_is_swept_later(
        client, run_task, admin_headers, clean, redis_client, settings, celery_app, caplog):
    """The batch's companions stay processing when the database is down as the batch fails (the log says so);
    their leases run out, and the sweeper re-queues them: each loads exactly once."""
    ids = [post(client, row, admin_headers).get_json()["id"] for row in rows(3)]
    redis_client.delete(settings.transform_queue)                # their messages were taken with the batch
    held_by_a_dead_worker(clean, ids, lapsed=False)
    down = settings.model_copy(update={"database_url": settings.database_url.replace(":5432/", f":{free_port()}/")})
    unreachable = TransformContext(down, Database(down.database_url))
    with caplog.at_level(logging.ERROR):
        _requeue(celery_app.tasks[task_names.PROCESS_UPLOAD], unreachable, ids)
    assert "could not re-queue the rest of a failed batch" in caplog.text
    assert scalar(clean, "SELECT count(*) FROM ingest.upload WHERE status = 'processing'") == 3
    assert redis_client.llen(settings.transform_queue) == 0
    assert run_task(task_names.SWEEP_UPLOADS) == 0               # their leases still run
    with clean.begin() as conn:
        conn.execute(text("UPDATE ingest.upload_lease SET expires_at = now() - interval '1 second'"))
    assert run_task(task_names.SWEEP_UPLOADS) == 3
    for upload_id in queued_message_ids(redis_client, settings):
        assert run_task(task_names.PROCESS_UPLOAD, upload_id) == "loaded"
    assert scalar(clean, "SELECT count(*) FROM warehouse.fact_transaction") == 3
    assert scalar(clean, "SELECT count(*) FROM ingest.upload WHERE status = 'loaded'") == 3
