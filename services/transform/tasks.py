"""Transform tasks. Every task is idempotent: a duplicate delivery or a re-run after a crash ends in
the same warehouse state."""
from __future__ import annotations

import logging
import time

import redis
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from psycopg2.errors import LockNotAvailable
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from services.common.logging import task_id_var, upload_id_var
from services.common.metrics import (QUEUE_DEPTH, ROWS, TASK_DURATION, TASK_FAILURES, UPLOADS_FINISHED,
                                     UPLOADS_REQUEUED)
from services.common.rawstore import RawCipher, RawFileCorrupt
from services.common.uploads import PROCESS_UPLOAD_TASK
from services.transform.celery_app import PURGE_TASK, SWEEP_TASK
from services.transform.load import load_upload
from services.transform.parse import FileUnreadable, SaleBuilder

log = logging.getLogger(__name__)

# Marks the upload 'processing' unless it is finished or another worker holds it right now.
_CLAIM = text("""
UPDATE ingest.upload SET status = 'processing', attempts = attempts + 1, started_at = now(), updated_at = now()
WHERE id = (SELECT id FROM ingest.upload WHERE id = :id AND status IN ('queued', 'processing')
            FOR UPDATE SKIP LOCKED)
RETURNING id
""")
# Held for the whole load: a second delivery of the same task gives up at once instead of waiting.
_LOCK = text("""
SELECT status, sha256, chunk_count, expected_branch_key, raw_purged_at
FROM ingest.upload WHERE id = :id FOR UPDATE NOWAIT
""")
_FAIL = text("""
UPDATE ingest.upload SET status = 'failed', error = :error, finished_at = now(), updated_at = now()
WHERE id = :id AND status <> 'loaded'
""")


def _context(task):
    return task.app.cafeflow


@shared_task(bind=True, name=PROCESS_UPLOAD_TASK, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=2, retry_backoff_max=300, retry_jitter=True, max_retries=8)
def process_upload(self, upload_id: int) -> str:
    ctx = _context(self)
    task_token, upload_token = task_id_var.set(self.request.id), upload_id_var.set(upload_id)
    started = time.perf_counter()
    outcome = "error"
    try:
        outcome = _process(ctx, upload_id)
        return outcome
    except OperationalError as exc:
        outcome = "retry"
        if self.request.retries >= self.max_retries:
            outcome = "failed"
            _mark_failed(ctx, upload_id, "the database was unreachable during every attempt; "
                                         "it will be retried by `cafeflow uploads retry`")
        TASK_FAILURES.labels(PROCESS_UPLOAD_TASK, type(exc.orig).__name__).inc()
        log.warning("transient database error, will retry", extra={"error": type(exc.orig).__name__})
        raise
    except SoftTimeLimitExceeded:
        outcome = "failed"
        TASK_FAILURES.labels(PROCESS_UPLOAD_TASK, "SoftTimeLimitExceeded").inc()
        _mark_failed(ctx, upload_id, f"loading took longer than {ctx.settings.task_soft_time_limit} s; "
                                     "split the file or raise TASK_SOFT_TIME_LIMIT")
        raise
    except Exception as exc:
        outcome = "failed"
        TASK_FAILURES.labels(PROCESS_UPLOAD_TASK, type(exc).__name__).inc()
        log.error("upload failed with an internal error", exc_info=exc)
        _mark_failed(ctx, upload_id, f"internal error ({type(exc).__name__}) while loading; the team has "
                                     "been alerted through the logs")
        raise
    finally:
        TASK_DURATION.labels(PROCESS_UPLOAD_TASK, outcome).observe(time.perf_counter() - started)
        task_id_var.reset(task_token)
        upload_id_var.reset(upload_token)


def _process(ctx, upload_id: int) -> str:
    with ctx.db.session() as session:
        claimed = session.execute(_CLAIM, {"id": upload_id}).scalar()
        session.commit()
    if claimed is None:
        log.info("upload not claimable: finished, unknown, or being loaded by another worker")
        return "skipped"
    with ctx.db.session() as session:
        try:
            row = session.execute(_LOCK, {"id": upload_id}).one()
        except DBAPIError as exc:
            if isinstance(exc.orig, LockNotAvailable):
                log.info("upload is being loaded by another worker")
                return "skipped"
            raise
        if row.status != "processing":
            return "skipped"
        if row.raw_purged_at is not None:
            session.rollback()
            _mark_failed(ctx, upload_id, "the raw file was purged after its retention period; post it again")
            return "failed"
        settings = ctx.settings
        builder = SaleBuilder(settings.secret_key.get_secret_value(), expected_branch_key=row.expected_branch_key)
        try:
            result = load_upload(session, RawCipher(settings.secret_key.get_secret_value()), builder,
                                 upload_id=upload_id, sha256_hex=row.sha256, chunk_count=row.chunk_count,
                                 chunk_rows=settings.parse_chunk_rows)
        except (FileUnreadable, RawFileCorrupt) as exc:
            session.rollback()
            _mark_failed(ctx, upload_id, str(exc))
            log.warning("upload failed", extra={"error": str(exc)})
            return "failed"
        session.commit()
    ROWS.labels("loaded").inc(result.rows_loaded)
    ROWS.labels("rejected").inc(result.rows_rejected)
    ROWS.labels("duplicate").inc(result.rows_duplicate)
    UPLOADS_FINISHED.labels("loaded").inc()
    log.info("upload loaded", extra={"rows_loaded": result.rows_loaded, "rows_rejected": result.rows_rejected,
                                     "rows_duplicate": result.rows_duplicate, "dialect": result.dialect,
                                     "timings_ms": result.timings_ms})
    return "loaded"


def _mark_failed(ctx, upload_id: int, error: str) -> None:
    UPLOADS_FINISHED.labels("failed").inc()
    with ctx.db.session() as session:
        session.execute(_FAIL, {"id": upload_id, "error": error})
        session.commit()


@shared_task(bind=True, name=SWEEP_TASK, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3)
def sweep_uploads(self) -> int:
    """Re-enqueues uploads left queued or processing past STUCK_UPLOAD_SECONDS (a lost queue, a dead
    worker). Uploads being loaded right now are locked and skipped."""
    ctx = _context(self)
    with ctx.db.session() as session:
        ids = session.execute(text("""
            UPDATE ingest.upload SET enqueued_at = now(), updated_at = now()
            WHERE id IN (SELECT id FROM ingest.upload
                         WHERE status IN ('queued', 'processing')
                           AND updated_at < now() - make_interval(secs => :stuck)
                         ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED)
            RETURNING id"""), {"stuck": ctx.settings.stuck_upload_seconds}).scalars().all()
        session.commit()
    for upload_id in sorted(ids):
        self.app.send_task(PROCESS_UPLOAD_TASK, args=[upload_id], queue=ctx.settings.transform_queue)
    if ids:
        UPLOADS_REQUEUED.inc(len(ids))
        log.warning("re-enqueued stuck uploads", extra={"count": len(ids), "upload_ids": sorted(ids)[:50]})
    _record_queue_depth(ctx)
    return len(ids)


def _record_queue_depth(ctx) -> None:
    try:
        client = redis.Redis.from_url(ctx.settings.redis_url, socket_timeout=2)
        QUEUE_DEPTH.labels(ctx.settings.transform_queue).set(client.llen(ctx.settings.transform_queue))
        client.close()
    except redis.RedisError as exc:
        log.warning("queue depth unavailable", extra={"error": type(exc).__name__})


@shared_task(bind=True, name=PURGE_TASK, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3)
def purge_raw_files(self) -> int:
    """Deletes the encrypted raw bytes of uploads loaded longer ago than RAW_RETENTION_DAYS; the upload
    row, its sha256 and its counts stay for good."""
    ctx = _context(self)
    with ctx.db.session() as session:
        ids = session.execute(text("""
            UPDATE ingest.upload SET raw_purged_at = now(), updated_at = now()
            WHERE status = 'loaded' AND raw_purged_at IS NULL
              AND finished_at < now() - make_interval(secs => :seconds)
            RETURNING id"""), {"seconds": ctx.settings.raw_retention_days * 86400}).scalars().all()
        if ids:
            session.execute(text("DELETE FROM ingest.upload_chunk WHERE upload_id = ANY(:ids)"), {"ids": list(ids)})
        session.commit()
    if ids:
        log.info("purged raw files", extra={"count": len(ids)})
    return len(ids)
