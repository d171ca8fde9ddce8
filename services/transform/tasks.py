"""Transform tasks. Every task is idempotent: a duplicate delivery or a re-run after a crash ends in
the same warehouse state."""
from __future__ import annotations

import logging
import time
import traceback

import redis
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
import psycopg2
from psycopg2.errors import LockNotAvailable
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from services.common.logging import task_id_var, upload_id_var
from services.common.metrics import ROWS, TASK_DURATION, TASK_FAILURES, UPLOADS_FINISHED, UPLOADS_REQUEUED
from services.common.rawstore import RawCipher
from services.common.uploads import PROCESS_UPLOAD_TASK, RETRACT_UPLOAD_TASK
from services.transform import corrections
from services.transform.celery_app import ERASE_CUSTOMERS_TASK, PURGE_TASK, SWEEP_TASK
from services.transform.load import BatchResult, UploadJob, load_uploads
from services.transform.parse import SaleBuilder, ValueMemo

log = logging.getLogger(__name__)

# Marks the upload 'processing' unless it is finished or another worker holds it right now.
_CLAIM = text("""
UPDATE ingest.upload SET status = 'processing', attempts = attempts + 1, started_at = now(), updated_at = now()
WHERE id = (SELECT id FROM ingest.upload WHERE id = :id AND status IN ('queued', 'processing')
            FOR UPDATE SKIP LOCKED)
RETURNING attempts, size_bytes, mode
""")
# Companions: other small queued uploads, loaded in the same transaction as the claimed one. Only
# uploads never tried before: one that was interrupted is loaded alone, so a file that kills its
# worker cannot take others down with it. Newest first: their own messages are the furthest back
# in the queue, so when a worker receives them they are loaded and skipped instead of racing this
# worker for the row lock.
_CLAIM_COMPANIONS = text("""
UPDATE ingest.upload SET status = 'processing', attempts = attempts + 1, started_at = now(), updated_at = now()
WHERE id IN (SELECT id FROM ingest.upload
             WHERE status = 'queued' AND attempts = 0 AND size_bytes <= :max_bytes AND id <> :id AND mode = 'append'
             ORDER BY id DESC LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING id
""")
# Held for the whole load: a second delivery of the same task gives up at once instead of waiting.
_LOCK = text("""
SELECT id, status, sha256, chunk_count, expected_branch_key, raw_purged_at, mode
FROM ingest.upload WHERE id = :id FOR UPDATE NOWAIT
""")
# Companions another worker took in the meantime are skipped: that worker loads them.
_LOCK_COMPANIONS = text("""
SELECT id, status, sha256, chunk_count, expected_branch_key, raw_purged_at, mode
FROM ingest.upload WHERE id = ANY(:ids) AND status = 'processing' ORDER BY id FOR UPDATE SKIP LOCKED
""")
_REQUEUE = text("""
UPDATE ingest.upload SET status = 'queued', enqueued_at = now(), updated_at = now()
WHERE id IN (SELECT id FROM ingest.upload WHERE id = ANY(:ids) AND status = 'processing' FOR UPDATE SKIP LOCKED)
RETURNING id
""")
_FAIL = text("""
UPDATE ingest.upload SET status = 'failed', error = :error, finished_at = now(), updated_at = now()
WHERE id = :id AND status <> 'loaded'
""")


def _context(task):
    return task.app.cafeflow


class TransientLoadError(Exception):
    """A failure worth retrying (connection lost, deadlock, server restarting). Carries only the error
    class name: database error texts can quote row data."""


class LoadFailed(Exception):
    """The upload is marked failed; carries only a class name, for the same reason."""


# SQLSTATEs worth a retry: serialization failure, deadlock, admin shutdown / crash / cannot connect
# now, disk full, out of memory, too many connections, and the connection-exception class 08.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "53100", "53200", "53300"}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeout):
        return True                                   # every pooled connection busy: try again later
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, (psycopg2.OperationalError, psycopg2.InterfaceError)) and orig.pgcode is None:
        return True                                   # the connection itself failed or was closed
    code = getattr(orig, "pgcode", None) or ""
    return code.startswith("08") or code in _TRANSIENT_SQLSTATES


def failure_kind(exc: BaseException) -> str:
    """The bounded `error` label of cafeflow_task_failures_total (metrics.TASK_FAILURE_KINDS)."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return "time_limit"
    return "transient" if is_transient(exc) else "internal"


@shared_task(bind=True, name=PROCESS_UPLOAD_TASK, acks_late=True, autoretry_for=(TransientLoadError,),
             retry_backoff=2, retry_backoff_max=300, retry_jitter=True, max_retries=8)
def process_upload(self, upload_id: int) -> str:
    ctx = _context(self)
    task_token, upload_token = task_id_var.set(self.request.id), upload_id_var.set(upload_id)
    started = time.perf_counter()
    outcome = "error"
    companions: list[str] = []      # outcomes of the other uploads this task loaded in its batch
    try:
        outcome = _process(self, ctx, upload_id, companions)
        return outcome
    except SoftTimeLimitExceeded:
        outcome = "failed"
        TASK_FAILURES.labels(PROCESS_UPLOAD_TASK, "time_limit").inc()
        _mark_failed(ctx, upload_id, f"loading took longer than {ctx.settings.task_soft_time_limit} s; "
                                     "split the file or raise TASK_SOFT_TIME_LIMIT")
        raise LoadFailed("SoftTimeLimitExceeded") from None
    except Exception as exc:  # noqa: BLE001 - every failure is classified, counted and recorded
        error = type(getattr(exc, "orig", None) or exc).__name__
        TASK_FAILURES.labels(PROCESS_UPLOAD_TASK, failure_kind(exc)).inc()
        if is_transient(exc):
            if self.request.retries < self.max_retries:
                outcome = "retry"
                log.warning("transient database error, will retry", extra={"error": error})
                raise TransientLoadError(error) from None
            _mark_failed(ctx, upload_id, "the database was unreachable during every attempt; "
                                         "retry with `cafeflow uploads retry` or post the file again")
        else:
            # The traceback's frames show where; the exception text may quote data, so it is left out.
            log.error("upload failed with an internal error", extra={
                "error": error, "traceback": "".join(traceback.format_tb(exc.__traceback__))})
            _mark_failed(ctx, upload_id, f"internal error ({error}) while loading; the team can find it in "
                                         "the logs by this upload's id")
        outcome = "failed"
        raise LoadFailed(error) from None
    finally:
        # One observation per upload the task settled, each its share of the time: a batch of 32 is 32
        # loads (their own later deliveries then count as skipped).
        share = (time.perf_counter() - started) / (1 + len(companions))
        for settled in (outcome, *companions):
            TASK_DURATION.labels(PROCESS_UPLOAD_TASK, settled).observe(share)
        task_id_var.reset(task_token)
        upload_id_var.reset(upload_token)


def _process(task, ctx, upload_id: int, settled: list[str]) -> str:
    settings = ctx.settings
    with ctx.db.session() as session:
        claimed = session.execute(_CLAIM, {"id": upload_id}).one_or_none()
        companions: list[int] = []
        # A replacing upload is loaded alone: it is the whole record of its branch-days at its turn.
        if claimed is not None and claimed.attempts == 1 and settings.load_batch_uploads > 1 \
                and claimed.mode == "append" and claimed.size_bytes <= settings.load_batch_file_bytes:
            companions = list(session.execute(_CLAIM_COMPANIONS, {
                "id": upload_id, "max_bytes": settings.load_batch_file_bytes,
                "limit": settings.load_batch_uploads - 1}).scalars())
        session.commit()
    if claimed is None:
        log.info("upload not claimable: finished, unknown, or being loaded by another worker")
        return "skipped"
    if claimed.attempts > settings.max_load_attempts:
        # A file that keeps killing its worker (memory, hard time limit) must not be retried forever.
        _mark_failed(ctx, upload_id, f"loading did not complete in {claimed.attempts - 1} attempts (worker "
                                     "crashes, memory or time limits, or a database that stayed unavailable); fix "
                                     "the cause or split the file, then `cafeflow uploads retry`")
        return "failed"
    if not companions:
        return _load(ctx, upload_id, [])
    try:
        return _load(ctx, upload_id, companions, settled)
    except SoftTimeLimitExceeded:
        _requeue(task, ctx, companions)
        raise
    except Exception as exc:  # noqa: BLE001 - one upload's failure must not fail the others
        log.warning("batch load failed: loading this upload alone, re-queueing the others",
                    extra={"error": type(getattr(exc, "orig", None) or exc).__name__, "batch": len(companions) + 1})
        _requeue(task, ctx, companions)
        return _load(ctx, upload_id, [])


def _load(ctx, upload_id: int, companions: list[int], settled: list[str] | None = None) -> str:
    """Loads the claimed upload and its companions in one transaction; returns the claimed upload's
    outcome and appends the companions' outcomes to `settled`."""
    settings = ctx.settings
    secret = settings.secret_key.get_secret_value()
    failed: dict[int, str] = {}
    with ctx.db.session() as session:
        try:
            rows = [session.execute(_LOCK, {"id": upload_id}).one()]
        except DBAPIError as exc:
            if not isinstance(exc.orig, LockNotAvailable):
                raise
            log.info("upload is being loaded by another worker")
            session.rollback()
            rows = []
        rows = [row for row in rows if row.status == "processing"]
        if companions:
            rows += session.execute(_LOCK_COMPANIONS, {"ids": companions}).all()
        if not rows:
            return "skipped"
        registered = session.execute(text("SELECT branch_key FROM ingest.branch")).scalars().all()
        allowed = session.execute(text("SELECT path FROM ingest.extra_field_allowed")).scalars().all()
        memo = ValueMemo()
        jobs = []
        for row in rows:
            if row.raw_purged_at is not None:
                failed[row.id] = "the raw file was purged after its retention period; post the file again to reload it"
                continue
            builder = SaleBuilder(secret, expected_branch_key=row.expected_branch_key,
                                  registered_branch_keys=registered, memo=memo, allowed_extra_fields=allowed)
            jobs.append(UploadJob(row.id, row.sha256, row.chunk_count, builder, row.mode))
        result = load_uploads(session, RawCipher(secret), jobs, chunk_rows=settings.parse_chunk_rows) \
            if jobs else BatchResult({}, {})
        failed.update(result.failed)
        for failed_id, error in failed.items():
            session.execute(_FAIL, {"id": failed_id, "error": error})
        session.commit()
    for failed_id, error in failed.items():
        UPLOADS_FINISHED.labels("failed").inc()
        token = upload_id_var.set(failed_id)
        log.warning("upload failed", extra={"error": error})
        upload_id_var.reset(token)
    for loaded_id, loaded in result.loaded.items():
        ROWS.labels("loaded").inc(loaded.rows_loaded)
        ROWS.labels("rejected").inc(loaded.rows_rejected)
        ROWS.labels("duplicate").inc(loaded.rows_duplicate)
        UPLOADS_FINISHED.labels("loaded").inc()
        token = upload_id_var.set(loaded_id)
        log.info("upload loaded", extra={"rows_loaded": loaded.rows_loaded, "rows_rejected": loaded.rows_rejected,
                                         "rows_duplicate": loaded.rows_duplicate, "dialect": loaded.dialect,
                                         "batch": len(jobs), "timings_ms": loaded.timings_ms})
        upload_id_var.reset(token)
    if settled is not None:
        settled += ["loaded" for loaded_id in result.loaded if loaded_id != upload_id]
        settled += ["failed" for failed_id in failed if failed_id != upload_id]
    if upload_id in result.loaded:
        return "loaded"
    return "failed" if upload_id in failed else "skipped"


def _requeue(task, ctx, upload_ids: list[int]) -> None:
    """Puts claimed companions back in the queue after a failed batch; each is then loaded alone."""
    try:
        with ctx.db.session() as session:
            requeued = session.execute(_REQUEUE, {"ids": upload_ids}).scalars().all()
            session.commit()
        for requeued_id in sorted(requeued):
            task.app.send_task(PROCESS_UPLOAD_TASK, args=[requeued_id], queue=ctx.settings.transform_queue)
    except Exception as exc:  # noqa: BLE001 - they stay processing; the sweeper re-enqueues them
        log.error("could not re-queue the rest of a failed batch", extra={"error": type(exc).__name__})


def _mark_failed(ctx, upload_id: int, error: str) -> None:
    UPLOADS_FINISHED.labels("failed").inc()
    try:
        with ctx.db.session() as session:
            session.execute(_FAIL, {"id": upload_id, "error": error})
            session.commit()
    except Exception as exc:  # noqa: BLE001 - the upload stays processing; the sweeper retries it
        log.error("could not mark the upload failed", extra={"error": type(exc).__name__})


@shared_task(bind=True, name=RETRACT_UPLOAD_TASK, acks_late=True, autoretry_for=(TransientLoadError,),
             retry_backoff=2, retry_backoff_max=300, retry_jitter=True, max_retries=8)
def retract_upload(self, upload_id: int) -> str:
    """Takes a retracted upload's sales out of the warehouse (those no other standing upload contains),
    in one transaction; a repeat finds it retracted and does nothing."""
    ctx = _context(self)
    task_token, upload_token = task_id_var.set(self.request.id), upload_id_var.set(upload_id)
    started = time.perf_counter()
    outcome = "error"
    try:
        with ctx.db.session() as session:
            outcome = corrections.retract_upload(session, upload_id)
            session.commit()
        log.info("retraction", extra={"outcome": outcome})
        return outcome
    except Exception as exc:  # noqa: BLE001 - classified: transient errors retry, others are logged
        error = type(getattr(exc, "orig", None) or exc).__name__
        TASK_FAILURES.labels(RETRACT_UPLOAD_TASK, failure_kind(exc)).inc()
        if is_transient(exc):
            outcome = "retry"
            raise TransientLoadError(error) from None
        outcome = "failed"
        log.error("retraction failed with an internal error", extra={
            "error": error, "traceback": "".join(traceback.format_tb(exc.__traceback__))})
        raise LoadFailed(error) from None
    finally:
        TASK_DURATION.labels(RETRACT_UPLOAD_TASK, outcome).observe(time.perf_counter() - started)
        task_id_var.reset(task_token)
        upload_id_var.reset(upload_token)


@shared_task(bind=True, name=SWEEP_TASK, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3)
def sweep_uploads(self) -> int:
    """Re-enqueues uploads left queued or processing past STUCK_UPLOAD_SECONDS (a lost queue, a dead
    worker). Uploads being loaded right now are locked and skipped."""
    ctx = _context(self)
    depth = _queue_depth(ctx)
    with ctx.db.session() as session:
        queued = session.execute(text("SELECT count(*) FROM ingest.upload WHERE status = 'queued'")).scalar()
        # During a long backfill, queued uploads are still in the queue: re-send them only when the
        # queue holds fewer messages than there are queued uploads (some were lost).
        ids = session.execute(text("""
            UPDATE ingest.upload SET enqueued_at = now(), updated_at = now()
            WHERE id IN (SELECT id FROM ingest.upload
                         WHERE (status = 'processing' OR (status = 'queued' AND :resend_queued))
                           AND updated_at < now() - make_interval(secs => :stuck)
                         ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED)
            RETURNING id"""), {"stuck": ctx.settings.stuck_upload_seconds,
                               "resend_queued": depth is None or depth < queued}).scalars().all()
        session.commit()
        # Retractions asked for and not done a sweep later: their message was lost (or the broker was down).
        retractions = session.execute(text("""
            SELECT id FROM ingest.upload
            WHERE retract_requested_at IS NOT NULL AND retracted_at IS NULL
              AND retract_requested_at < now() - make_interval(secs => :interval)
            ORDER BY id LIMIT 1000"""), {"interval": ctx.settings.sweep_interval_seconds}).scalars().all()
    for upload_id in sorted(ids):
        self.app.send_task(PROCESS_UPLOAD_TASK, args=[upload_id], queue=ctx.settings.transform_queue)
    for upload_id in retractions:
        self.app.send_task(RETRACT_UPLOAD_TASK, args=[upload_id], queue=ctx.settings.transform_queue)
    if ids:
        UPLOADS_REQUEUED.inc(len(ids))
        log.warning("re-enqueued stuck uploads", extra={"count": len(ids), "upload_ids": sorted(ids)[:50]})
    if retractions:
        log.warning("resent pending retractions", extra={"count": len(retractions), "upload_ids": retractions[:50]})
    return len(ids)


def _queue_depth(ctx) -> int | None:
    try:
        client = redis.Redis.from_url(ctx.settings.redis_url, socket_timeout=2)
        depth = client.llen(ctx.settings.transform_queue)
        client.close()
    except redis.RedisError as exc:
        log.warning("queue depth unavailable", extra={"error": type(exc).__name__})
        return None
    return depth


@shared_task(bind=True, name=PURGE_TASK, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3)
def purge_raw_files(self) -> int:
    """Deletes the encrypted raw bytes of uploads finished (loaded or failed) longer ago than
    RAW_RETENTION_DAYS; the upload row, its sha256 and its counts stay for good."""
    ctx = _context(self)
    with ctx.db.session() as session:
        ids = session.execute(text("""
            UPDATE ingest.upload SET raw_purged_at = now(), updated_at = now()
            WHERE status IN ('loaded', 'failed', 'retracted') AND raw_purged_at IS NULL
              AND coalesce(retracted_at, finished_at) < now() - make_interval(secs => :seconds)
            RETURNING id"""), {"seconds": ctx.settings.raw_retention_days * 86400}).scalars().all()
        if ids:
            session.execute(text("DELETE FROM ingest.upload_chunk WHERE upload_id = ANY(:ids)"), {"ids": list(ids)})
        session.commit()
    if ids:
        log.info("purged raw files", extra={"count": len(ids)})
    return len(ids)


@shared_task(bind=True, name=ERASE_CUSTOMERS_TASK, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3)
def erase_order_customer_details(self) -> int:
    """Erases the customer name, address and phone of live orders not changed for ORDERS_CUSTOMER_RETENTION_DAYS
    (finished, or abandoned open). The rule is the orders schema's own function (orders migrations 0003, 0004),
    called here like the live-order hand-off: through SQL, so the worker imports no orders code."""
    ctx = _context(self)
    with ctx.db.session() as session:
        erased = session.execute(text("SELECT orders.erase_customer_details(make_interval(secs => :seconds))"),
                                 {"seconds": ctx.settings.orders_customer_retention_days * 86400}).scalar()
        session.commit()
    if erased:
        log.info("erased customer details of orders", extra={"count": erased})
    return erased
