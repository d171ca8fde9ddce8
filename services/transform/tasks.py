"""Transform tasks. Every task is idempotent: a duplicate delivery or a re-run after a crash ends in
the same warehouse state."""
from __future__ import annotations

import logging
import time
import traceback

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
import psycopg2
from psycopg2.errors import LockNotAvailable
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from services.common import task_names, upload_states
from services.common.logging import task_id_var, upload_id_var
from services.common.metrics import ROWS, TASK_DURATION, TASK_FAILURES, UPLOADS_FINISHED
from services.common.outages import statement_timed_out
from services.common.rawstore import RawCipher
from services.common.upload_states import FAILED, PROCESSING, QUEUED, UNFINISHED
from services.transform import corrections, leases
from services.transform.load import BatchResult, UploadJob, load_uploads
from services.transform.sale_builder import SaleBuilder, ValueMemo

log = logging.getLogger(__name__)

# Marks the upload processing unless it is finished or another worker holds it right now: a live lease of
# another holder, or the row lock of a load in progress.
_CLAIM = upload_states.transition(PROCESSING, assign="attempts = attempts + 1, started_at = now()", where=f"""
    id = (SELECT u.id FROM ingest.upload u
          WHERE u.id = :id AND (u.status = '{QUEUED}' OR (u.status = '{PROCESSING}' AND {leases.FREE_FOR_HOLDER}))
          FOR UPDATE OF u SKIP LOCKED)""", returning="attempts, size_bytes, mode")
# Companions: other small queued uploads, loaded in the same transaction as the claimed one. Only
# uploads never tried before: one that was interrupted is loaded alone, so a file that kills its
# worker cannot take others down with it. Newest first: their own messages are the furthest back
# in the queue, so when a worker receives them they are loaded and skipped instead of racing this
# worker for the row lock.
_CLAIM_COMPANIONS = upload_states.transition(PROCESSING, assign="attempts = attempts + 1, started_at = now()",
                                             where=f"""
    id IN (SELECT id FROM ingest.upload
           WHERE status = '{QUEUED}' AND attempts = 0 AND size_bytes <= :max_bytes AND id <> :id AND mode = 'append'
           ORDER BY id DESC LIMIT :limit FOR UPDATE SKIP LOCKED)""")
# Held for the whole load: a second delivery of the same task gives up at once instead of waiting.
_LOCK = text("""
SELECT id, status, sha256, chunk_count, expected_branch_key, raw_purged_at, mode
FROM ingest.upload WHERE id = :id FOR UPDATE NOWAIT
""")
# Companions another worker took in the meantime are skipped: that worker loads them.
_LOCK_COMPANIONS = text(f"""
SELECT id, status, sha256, chunk_count, expected_branch_key, raw_purged_at, mode
FROM ingest.upload WHERE id = ANY(:ids) AND status = '{PROCESSING}' ORDER BY id FOR UPDATE SKIP LOCKED
""")
_REQUEUE = upload_states.transition(QUEUED, assign="enqueued_at = now()", where=f"""
    id IN (SELECT id FROM ingest.upload WHERE id = ANY(:ids) AND status = '{PROCESSING}' FOR UPDATE SKIP LOCKED)""")
# A loaded (or retracted) upload stays as it is: failing is only for one still on its way.
_FAIL = upload_states.transition(FAILED, assign="error = :error, finished_at = now()")


# Retries after a transient error (the database restarting) wait at most this long: a worker must notice a
# database that is back within seconds, not minutes. Eight tries span about two minutes; an outage longer
# than that is the sweeper's (a lapsed lease, a lost message), which re-sends the upload when it is back.
RETRY_BACKOFF_MAX_SECONDS = 30


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


@shared_task(bind=True, name=task_names.PROCESS_UPLOAD, acks_late=True, autoretry_for=(TransientLoadError,),
             retry_backoff=2, retry_backoff_max=RETRY_BACKOFF_MAX_SECONDS, retry_jitter=True, max_retries=8)
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
        TASK_FAILURES.labels(task_names.PROCESS_UPLOAD, "time_limit").inc()
        _mark_failed(ctx, upload_id, f"loading took longer than {ctx.settings.task_soft_time_limit} s; "
                                     "split the file or raise TASK_SOFT_TIME_LIMIT")
        raise LoadFailed("SoftTimeLimitExceeded") from None
    except Exception as exc:  # noqa: BLE001 - every failure is classified, counted and recorded
        error = type(getattr(exc, "orig", None) or exc).__name__
        TASK_FAILURES.labels(task_names.PROCESS_UPLOAD, failure_kind(exc)).inc()
        if is_transient(exc):
            if self.request.retries < self.max_retries:
                outcome = "retry"
                log.warning("transient database error, will retry", extra={"error": error})
                raise TransientLoadError(error) from None
            _mark_failed(ctx, upload_id, "the database was unreachable during every attempt; "
                                         "retry with `cafeflow uploads retry` or post the file again")
        elif statement_timed_out(exc):
            log.warning("a statement of the load ran into its timeout", extra={"error": error})
            _mark_failed(ctx, upload_id, f"loading took longer than {_statement_timeout(ctx)}, the database's "
                                         "statement_timeout for the worker, and was stopped: split the file or "
                                         "raise that timeout, then `cafeflow uploads retry`")
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
            TASK_DURATION.labels(task_names.PROCESS_UPLOAD, settled).observe(share)
        task_id_var.reset(task_token)
        upload_id_var.reset(upload_token)


def _process(task, ctx, upload_id: int, settled: list[str]) -> str:
    settings = ctx.settings
    holder = task.request.id or f"local-{upload_id}"
    with ctx.db.session() as session:
        claimed = session.execute(_CLAIM, {"id": upload_id, "holder": holder}).one_or_none()
        companions: list[int] = []
        # A replacing upload is loaded alone: it is the whole record of its branch-days at its turn.
        if claimed is not None and claimed.attempts == 1 and settings.load_batch_uploads > 1 \
                and claimed.mode == "append" and claimed.size_bytes <= settings.load_batch_file_bytes:
            companions = list(session.execute(_CLAIM_COMPANIONS, {
                "id": upload_id, "max_bytes": settings.load_batch_file_bytes,
                "limit": settings.load_batch_uploads - 1}).scalars())
        if claimed is not None:
            leases.take(session, [upload_id, *companions], holder=holder, seconds=settings.upload_lease_seconds)
        session.commit()
    if claimed is None:
        log.info("upload not claimable: finished, unknown, or being loaded by another worker")
        return "skipped"
    with leases.Renewal(ctx.db.engine, [upload_id, *companions], holder=holder,
                        seconds=settings.upload_lease_seconds):
        return _load_claimed(task, ctx, upload_id, claimed, companions, settled)


def _load_claimed(task, ctx, upload_id: int, claimed, companions: list[int], settled: list[str]) -> str:
    settings = ctx.settings
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
        rows = [row for row in rows if row.status == PROCESSING]
        if companions:
            rows += session.execute(_LOCK_COMPANIONS, {"ids": companions}).all()
        if not rows:
            return "skipped"
        registered = dict(session.execute(text("SELECT branch_key, name FROM ingest.branch")).all())
        allowed = session.execute(text("SELECT path FROM ingest.extra_field_allowed")).scalars().all()
        memo = ValueMemo()
        jobs = []
        for row in rows:
            if row.raw_purged_at is not None:
                failed[row.id] = "the raw file was purged after its retention period; post the file again to reload it"
                continue
            builder = SaleBuilder(secret, expected_branch_key=row.expected_branch_key,
                                  registered_branch_keys=registered, branch_names=registered, memo=memo,
                                  allowed_extra_fields=allowed)
            jobs.append(UploadJob(row.id, row.sha256, row.chunk_count, builder, row.mode))
        result = load_uploads(session, RawCipher(secret), jobs, chunk_rows=settings.parse_chunk_rows,
                              vectorised=settings.vectorised_parse) \
            if jobs else BatchResult({}, {})
        failed.update(result.failed)
        for failed_id, error in failed.items():
            session.execute(_FAIL, {"id": failed_id, "error": error})
        leases.release(session, [row.id for row in rows])
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
            leases.release(session, requeued)
            session.commit()
        for requeued_id in sorted(requeued):
            task.app.send_task(task_names.PROCESS_UPLOAD, args=[requeued_id], queue=ctx.settings.transform_queue)
    except Exception as exc:  # noqa: BLE001 - they stay processing; their leases run out and the sweeper
        # re-queues them (tests/transform/test_leases.py)
        log.error("could not re-queue the rest of a failed batch", extra={"error": type(exc).__name__})


def _statement_timeout(ctx) -> str:
    """The worker's statement_timeout as PostgreSQL spells it (`5s`, `300ms`): set on its role, database or URL."""
    try:
        with ctx.db.session() as session:
            return session.execute(text("SHOW statement_timeout")).scalar()
    except Exception:  # noqa: BLE001 - the message says less, the upload is still marked failed
        return "its statement timeout"


def _mark_failed(ctx, upload_id: int, error: str) -> None:
    UPLOADS_FINISHED.labels("failed").inc()
    try:
        with ctx.db.session() as session:
            session.execute(_FAIL, {"id": upload_id, "error": error})
            leases.release(session, [upload_id])
            session.commit()
    except Exception as exc:  # noqa: BLE001 - the upload stays processing; its lease runs out, the sweeper retries it
        log.error("could not mark the upload failed", extra={"error": type(exc).__name__})


@shared_task(bind=True, name=task_names.RETRACT_UPLOAD, acks_late=True, autoretry_for=(TransientLoadError,),
             retry_backoff=2, retry_backoff_max=RETRY_BACKOFF_MAX_SECONDS, retry_jitter=True, max_retries=8)
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
        TASK_FAILURES.labels(task_names.RETRACT_UPLOAD, failure_kind(exc)).inc()
        if is_transient(exc):
            outcome = "retry"
            raise TransientLoadError(error) from None
        outcome = "failed"
        log.error("retraction failed with an internal error", extra={
            "error": error, "traceback": "".join(traceback.format_tb(exc.__traceback__))})
        raise LoadFailed(error) from None
    finally:
        TASK_DURATION.labels(task_names.RETRACT_UPLOAD, outcome).observe(time.perf_counter() - started)
        task_id_var.reset(task_token)
        upload_id_var.reset(upload_token)


@shared_task(bind=True, name=task_names.PURGE_RAW_FILES, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3)
def purge_raw_files(self) -> int:
    """Deletes the encrypted raw bytes of uploads finished (loaded or failed) longer ago than
    RAW_RETENTION_DAYS; the upload row, its sha256 and its counts stay for good."""
    ctx = _context(self)
    with ctx.db.session() as session:
        ids = session.execute(text(f"""
            UPDATE ingest.upload SET raw_purged_at = now(), updated_at = now()
            WHERE status NOT IN {upload_states.sql_list(UNFINISHED)} AND raw_purged_at IS NULL
              AND coalesce(retracted_at, finished_at) < now() - make_interval(secs => :seconds)
            RETURNING id"""), {"seconds": ctx.settings.raw_retention_days * 86400}).scalars().all()
        if ids:
            session.execute(text("DELETE FROM ingest.upload_chunk WHERE upload_id = ANY(:ids)"), {"ids": list(ids)})
        session.commit()
    if ids:
        log.info("purged raw files", extra={"count": len(ids)})
    return len(ids)


@shared_task(bind=True, name=task_names.ERASE_ORDER_CUSTOMER_DETAILS, acks_late=True, autoretry_for=(OperationalError,),
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
