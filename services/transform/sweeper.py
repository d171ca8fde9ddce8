"""Beat's upload sweeper (every SWEEP_INTERVAL_SECONDS): nothing accepted waits on a dead worker or a lost
message for longer than a lease and a sweep.

- **A worker died holding an upload** (SIGKILL, out of memory, its node gone): the upload is `processing` and its
  lease (services/transform/leases.py) stopped being renewed. Once the lease has run out, the sweeper moves it
  back to `queued` and sends it again. An upload whose row lock a load still holds is skipped, whatever its
  lease says.
- **The queue lost its messages** (Redis restarted empty, flushed, failed over): the upload is `queued` and no
  message for it is in the queue, nor held by a live worker (Redis' `unacked` hash of late-acknowledged
  messages; one held longer than UNACKED_TRUSTED_SECONDS by an upload still queued was held by a worker that
  died, which Redis would hand back only after its visibility timeout, an hour).
  The sweeper sends it again. A queue that is merely long still holds a message for each queued upload, so
  nothing is sent twice; the broker is asked for the uploads' ids, not for a count. Only when the queue holds
  more than FULL_SCAN_MAX_MESSAGES (a large backfill) does the sweeper fall back to counting: as long as there
  are at least as many messages as queued uploads, it scans nothing (it would move tens of MB out of Redis on
  every pass).
- **A retraction's message was lost**: a requested retraction not done a sweep later is sent again.

A message sent twice is harmless (the claim, the load's single transaction and the warehouse's natural keys make
every upload load exactly once); these rules only keep the duplicates rare.
"""
from __future__ import annotations

import base64
import json
import logging
import time

import redis
from celery import shared_task
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from services.common import task_names, upload_states
from services.common.metrics import UPLOADS_REQUEUED
from services.common.upload_states import PROCESSING, QUEUED
from services.transform import leases

log = logging.getLogger(__name__)

# Kombu's Redis transport: a queue is a list (one per priority step above 0), and a message a worker has
# received but not yet acknowledged (acks_late) waits in this hash until it is.
UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"     # delivery tag -> when a worker received it
# A message a live worker holds is running (prefetch 1: none waits behind a busy process), and its upload is
# claimed within moments, or it is a retry waiting for its countdown (at most 30 s). One held longer for an
# upload still queued belongs to a worker that died: Redis would give it back only after the visibility
# timeout (an hour), so it does not count as present.
UNACKED_TRUSTED_SECONDS = 90
_PRIORITY_STEPS = (3, 6, 9)
_PRIORITY_SEPARATOR = "\x06\x16"
FULL_SCAN_MAX_MESSAGES = 20_000
SWEEP_BATCH = 1000

# Uploads whose holder stopped renewing its lease: back to the queue. A claim by a worker without leases (the
# previous release, during a rolling upgrade) counts as lapsed one lease after it started.
_REQUEUE_ABANDONED = upload_states.transition(QUEUED, assign="enqueued_at = now()", where=f"""
    id IN (SELECT u.id FROM ingest.upload u
           WHERE u.status = '{PROCESSING}' AND {leases.LAPSED}
             AND u.started_at < now() - make_interval(secs => :lease_seconds)
           ORDER BY u.id LIMIT {SWEEP_BATCH} FOR UPDATE OF u SKIP LOCKED)""")
# Queued uploads sent longer than a sweep ago (one posted this instant may not have reached the queue yet).
_QUEUED_CANDIDATES = text(f"""
    SELECT id FROM ingest.upload WHERE status = '{QUEUED}' AND enqueued_at < now() - make_interval(secs => :grace)
    ORDER BY id LIMIT :limit""")
_MARK_RESENT = text(f"""
    UPDATE ingest.upload SET enqueued_at = now(), updated_at = now()
    WHERE id = ANY(:ids) AND status = '{QUEUED}' RETURNING id""")
_PENDING_RETRACTIONS = text(f"""
    SELECT id FROM ingest.upload
    WHERE retract_requested_at IS NOT NULL AND retracted_at IS NULL
      AND retract_requested_at < now() - make_interval(secs => :interval)
    ORDER BY id LIMIT {SWEEP_BATCH}""")


@shared_task(bind=True, name=task_names.SWEEP_UPLOADS, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3)
def sweep_uploads(self) -> int:
    """Re-queues uploads whose worker died and re-sends queued uploads whose message was lost; returns how many
    uploads it sent."""
    settings = self.app.cafeflow.settings
    db = self.app.cafeflow.db
    with db.session() as session:
        abandoned = session.execute(_REQUEUE_ABANDONED, {"lease_seconds": settings.upload_lease_seconds}
                                    ).scalars().all()
        leases.release(session, abandoned)
        session.commit()
        lost = _lost_queued_uploads(session, settings)
        if lost:
            lost = session.execute(_MARK_RESENT, {"ids": lost}).scalars().all()
            session.commit()
        retractions = session.execute(_PENDING_RETRACTIONS, {"interval": settings.sweep_interval_seconds}
                                      ).scalars().all()
    for upload_id in sorted({*abandoned, *lost}):
        self.app.send_task(task_names.PROCESS_UPLOAD, args=[upload_id], queue=settings.transform_queue)
    for upload_id in retractions:
        self.app.send_task(task_names.RETRACT_UPLOAD, args=[upload_id], queue=settings.transform_queue)
    if abandoned:
        log.warning("re-queued uploads whose worker stopped renewing its lease",
                    extra={"count": len(abandoned), "upload_ids": sorted(abandoned)[:50]})
    if lost:
        log.warning("re-sent queued uploads whose queue message was lost",
                    extra={"count": len(lost), "upload_ids": sorted(lost)[:50]})
    if retractions:
        log.warning("resent pending retractions", extra={"count": len(retractions), "upload_ids": retractions[:50]})
    UPLOADS_REQUEUED.inc(len(abandoned) + len(lost))
    return len(abandoned) + len(lost)


def _lost_queued_uploads(session, settings) -> list[int]:
    """Queued uploads (sent more than a sweep ago) with no message in the broker; [] when Redis does not answer
    (nothing could be sent anyway) or when a very long queue holds at least one message per queued upload."""
    candidates = session.execute(_QUEUED_CANDIDATES, {"grace": settings.sweep_interval_seconds,
                                                      "limit": SWEEP_BATCH}).scalars().all()
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
        try:
            keys = queue_keys(settings.transform_queue)
            depth = sum(client.llen(key) for key in keys)
            if not candidates:
                return []
            held = client.hlen(UNACKED_KEY)
            if depth + held > FULL_SCAN_MAX_MESSAGES:
                queued = session.execute(text(f"SELECT count(*) FROM ingest.upload WHERE status = '{QUEUED}'")
                                         ).scalar()
                if depth + held >= queued:
                    return []
            present = uploads_in_broker(client, keys)
        finally:
            client.close()
    except redis.RedisError as exc:
        log.warning("the queue cannot be inspected; lost messages are looked for on the next pass",
                    extra={"error": type(exc).__name__})
        return []
    return [upload_id for upload_id in candidates if upload_id not in present]


def queue_keys(queue: str) -> list[str]:
    return [queue] + [f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS]


def uploads_in_broker(client: redis.Redis, keys: list[str]) -> set[int]:
    """The upload ids of every process_upload message waiting in the queue or held by a worker (received in the
    last UNACKED_TRUSTED_SECONDS). The queue is read before the unacked hash: a message a worker takes in
    between moves from the first to the second, so it is seen at least once."""
    found: set[int] = set()
    for key in keys:
        start = 0
        while batch := client.lrange(key, start, start + 999):
            found |= {upload_id for raw in batch if (upload_id := _upload_of(raw)) is not None}
            start += len(batch)
    recent = client.zrangebyscore(UNACKED_INDEX_KEY, time.time() - UNACKED_TRUSTED_SECONDS, "+inf")
    for start in range(0, len(recent), 1000):
        for raw in client.hmget(UNACKED_KEY, recent[start:start + 1000]):
            try:
                envelope = json.loads(raw)[0]
            except (ValueError, IndexError, TypeError):
                continue
            upload_id = _upload_of(envelope)
            if upload_id is not None:
                found.add(upload_id)
    return found


def _upload_of(message) -> int | None:
    """The upload id a process_upload message carries (its first argument), else None."""
    try:
        envelope = json.loads(message) if isinstance(message, (bytes, str)) else message
        if envelope["headers"]["task"] != task_names.PROCESS_UPLOAD:
            return None
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        return int(args[0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
